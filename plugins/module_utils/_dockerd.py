# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, stop and probe a dockerd that no init system looks after (CI, containers).

Used by aiops.mlstack.dockerd_start. ``build_argv`` and the pid helpers are pure or
take their paths as arguments so that unit tests never touch a real daemon.
Standard library only.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from typing import Any

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_CONFIG = "/etc/docker/daemon.json"
DEFAULT_PIDFILE = "/var/run/docker.pid"
# dockerd looks for iptables, containerd and friends on PATH; a module may run with a short one.
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerdError(Exception):
    """A start or stop that did not work; the message carries the daemon's own words."""


def socket_path(host: str) -> str:
    """The filesystem path of a ``unix://`` Docker host; other schemes are refused."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        if path.startswith("/"):
            return path
    raise DockerdError(f"only a unix:// socket can be probed for a locally started dockerd, got {host!r}")


def build_argv(
    executable: str,
    host: str = DEFAULT_SOCKET,
    storage_driver: str | None = None,
    config_file: str = DEFAULT_CONFIG,
    pidfile: str = DEFAULT_PIDFILE,
    daemon_json: dict[str, Any] | None = None,
) -> list[str]:
    """The dockerd command line for a detached start.

    A directive that daemon.json already sets is not repeated as a flag: dockerd refuses
    to start when a setting comes from both. Flags equal to dockerd's defaults are left
    out, so the command line shows only what differs.
    """
    config = daemon_json or {}
    argv = [executable]
    if config_file != DEFAULT_CONFIG:
        argv.append(f"--config-file={config_file}")
    if host != DEFAULT_SOCKET and "hosts" not in config:
        argv.append(f"--host={host}")
    if storage_driver and "storage-driver" not in config:
        argv.append(f"--storage-driver={storage_driver}")
    if pidfile != DEFAULT_PIDFILE and "pidfile" not in config:
        argv.append(f"--pidfile={pidfile}")
    return argv


def read_pid(pidfile: str) -> int | None:
    """The pid written in ``pidfile``, or None when it is missing, empty or not a number."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def process_name(pid: int, proc_root: str = "/proc") -> str | None:
    """The command name of ``pid`` (from /proc/<pid>/comm), or None when it is gone."""
    try:
        with open(os.path.join(proc_root, str(pid), "comm"), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def running_dockerd_pid(pidfile: str, proc_root: str = "/proc") -> int | None:
    """The pid from ``pidfile`` when it names a live dockerd; a stale file gives None."""
    pid = read_pid(pidfile)
    if pid is None:
        return None
    return pid if process_name(pid, proc_root) == "dockerd" else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def stop(pid: int, timeout: float, poll: float = 0.2) -> None:
    """Send SIGTERM to ``pid`` and wait up to ``timeout`` seconds for it to exit.

    dockerd stops its containers on SIGTERM, which takes a while; it is never sent
    SIGKILL here (that strands containerd shims), a timeout is reported instead.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(poll)
    if _alive(pid):
        raise DockerdError(f"process {pid} did not exit within {timeout:g}s of SIGTERM; it was left running")


def ping(host: str, timeout: float = 2.0) -> bool:
    """True when the Docker API on a unix socket answers ``GET /_ping`` with 200 OK."""
    path = socket_path(host)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while len(data) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    status_line = data.split(b"\r\n", 1)[0]
    parts = status_line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1] == b"200"


def log_tail(log_path: str, offset: int = 0, lines: int = 25) -> str:
    """The last ``lines`` lines written to ``log_path`` after byte ``offset``."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError as exc:
        return f"(could not read {log_path}: {exc.strerror})"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def spawn(argv: list[str], log_path: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` in its own session, appending its output to ``log_path``.

    Returns the process and the log size before the start (where its own lines begin).
    """
    log_dir = os.path.dirname(log_path)
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = SBIN_PATH if not env.get("PATH") else f"{env['PATH']}:{SBIN_PATH}"
    with open(log_path, "ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=env,
        )
    return process, offset


def start(argv: list[str], host: str, log_path: str, timeout: float, poll: float = 0.5) -> int:
    """Start dockerd detached and wait until its API answers; return its pid.

    On failure the message carries the daemon's last log lines (its own error text).
    """
    process, offset = spawn(argv, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise DockerdError(
                f"{' '.join(argv)} exited with status {code} before answering on {host}; "
                f"last lines of {log_path}:\n{log_tail(log_path, offset)}"
            )
        if ping(host):
            return process.pid
        time.sleep(poll)
    raise DockerdError(
        f"{' '.join(argv)} (pid {process.pid}) did not answer on {host} within {timeout:g}s; "
        f"it was left running; last lines of {log_path}:\n{log_tail(log_path, offset)}"
    )


def ensure(
    state: str,
    argv: list[str],
    host: str,
    pidfile: str,
    log_path: str,
    timeout: float,
    check_mode: bool,
    proc_root: str = "/proc",
) -> dict[str, Any]:
    """Bring a no-init dockerd to ``state`` (``started`` or ``restarted``).

    ``started`` does nothing when the API answers. ``restarted`` stops the dockerd named
    by ``pidfile`` (only if that pid really is a dockerd) and starts it again; callers
    run it only when daemon.json changed. In check mode nothing is signalled or spawned.
    Returns ``changed``, ``pid``, ``argv`` and ``action`` (none, start, restart).
    """
    if state not in ("started", "restarted"):
        raise DockerdError(f"unknown state {state!r}")
    running = running_dockerd_pid(pidfile, proc_root)
    answering = ping(host)
    result: dict[str, Any] = {"changed": False, "pid": running, "argv": argv, "action": "none"}
    if state == "started":
        if answering:
            return result
        if running is not None and not check_mode:
            # A dockerd is up but still initialising (or stuck): wait for it, never start a second one.
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if ping(host):
                    return result
                if process_name(running, proc_root) != "dockerd":
                    break
                time.sleep(0.5)
            else:
                raise DockerdError(
                    f"dockerd (pid {running} from {pidfile}) is running but did not answer on {host} "
                    f"within {timeout:g}s; last lines of {log_path}:\n{log_tail(log_path, 0)}"
                )
        result.update(changed=True, action="start")
        if not check_mode:
            result["pid"] = start(argv, host, log_path, timeout)
        return result
    if running is None and answering:
        raise DockerdError(
            f"the engine answers on {host} but {pidfile} names no running dockerd; "
            "it is not managed as a detached dockerd, restart it with the tool that started it"
        )
    result.update(changed=True, action="restart" if running is not None else "start")
    if not check_mode:
        if running is not None:
            stop(running, timeout)
        result["pid"] = start(argv, host, log_path, timeout)
    return result
