"""Unit tests for the detached-dockerd helper.

No real dockerd is touched: sockets, pid files and /proc entries live in temp
directories, and the "daemon" is a small Python script that answers GET /_ping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._dockerd import (
    DockerdError,
    build_argv,
    ensure,
    log_tail,
    ping,
    process_name,
    read_pid,
    running_dockerd_pid,
    socket_path,
    start,
    stop,
)

FAKE_DAEMON = r"""
import socket, sys, time
path, mode = sys.argv[1], sys.argv[2]
print("starting fake dockerd", flush=True)
if mode == "fail":
    print("failed to start daemon: error initializing graphdriver: driver not supported", flush=True)
    sys.exit(1)
if mode == "silent":
    time.sleep(60)
    sys.exit(0)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(5)
print("API listen on " + path, flush=True)
while True:
    conn, _ = srv.accept()
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    conn.close()
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_daemon(short_dir: Path) -> Path:
    script = short_dir / "fake_dockerd.py"
    script.write_text(FAKE_DAEMON)
    return script


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class _PingHandler(socketserver.StreamRequestHandler):
    status = b"200 OK"

    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 " + self.status + b"\r\nContent-Length: 2\r\n\r\nOK")


@contextlib.contextmanager
def _api(sock: Path, status: bytes = b"200 OK") -> Iterator[None]:
    handler = type("Handler", (_PingHandler,), {"status": status})
    server = socketserver.UnixStreamServer(str(sock), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, ["/usr/sbin/dockerd"], id="all-defaults"),
        pytest.param(
            {"storage_driver": "overlay2"}, ["/usr/sbin/dockerd", "--storage-driver=overlay2"], id="storage-driver"
        ),
        pytest.param({"storage_driver": ""}, ["/usr/sbin/dockerd"], id="empty-storage-driver-left-out"),
        pytest.param(
            {"storage_driver": "overlay2", "daemon_json": {"storage-driver": "vfs"}},
            ["/usr/sbin/dockerd"],
            id="storage-driver-in-daemon-json-wins",
        ),
        pytest.param(
            {"host": "unix:///run/alt.sock"},
            ["/usr/sbin/dockerd", "--host=unix:///run/alt.sock"],
            id="non-default-host",
        ),
        pytest.param(
            {"host": "unix:///run/alt.sock", "daemon_json": {"hosts": ["unix:///run/alt.sock"]}},
            ["/usr/sbin/dockerd"],
            id="hosts-in-daemon-json-no-flag",
        ),
        pytest.param(
            {"config_file": "/tmp/d.json", "pidfile": "/tmp/d.pid", "storage_driver": "overlay2"},
            ["/usr/sbin/dockerd", "--config-file=/tmp/d.json", "--storage-driver=overlay2", "--pidfile=/tmp/d.pid"],
            id="non-default-paths",
        ),
        pytest.param(
            {"pidfile": "/tmp/d.pid", "daemon_json": {"pidfile": "/tmp/other.pid"}},
            ["/usr/sbin/dockerd"],
            id="pidfile-in-daemon-json",
        ),
    ],
)
def test_build_argv(kwargs: dict, expected: list) -> None:
    assert build_argv("/usr/sbin/dockerd", **kwargs) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("unix:///var/run/docker.sock", "/var/run/docker.sock"),
        ("unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock"),
    ],
)
def test_socket_path(host: str, expected: str) -> None:
    assert socket_path(host) == expected


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:2375", "fd://", "unix://relative.sock", "/var/run/docker.sock"])
def test_socket_path_refuses_other_schemes(host: str) -> None:
    with pytest.raises(DockerdError, match="only a unix:// socket"):
        socket_path(host)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("3482\n", 3482, id="pid-newline"),
        pytest.param("  17  ", 17, id="spaces"),
        pytest.param("", None, id="empty"),
        pytest.param("abc", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param("0", None, id="zero"),
    ],
)
def test_read_pid(tmp_path: Path, content: str, expected: int | None) -> None:
    pidfile = tmp_path / "docker.pid"
    pidfile.write_text(content)
    assert read_pid(str(pidfile)) == expected


def test_read_pid_missing_file(tmp_path: Path) -> None:
    assert read_pid(str(tmp_path / "none.pid")) is None


@pytest.mark.parametrize(
    ("comm", "expected"),
    [
        pytest.param("dockerd\n", 4242, id="dockerd"),
        pytest.param("sleep\n", None, id="pid-reused-by-other-process"),
        pytest.param(None, None, id="stale-pidfile"),
    ],
)
def test_running_dockerd_pid(tmp_path: Path, comm: str | None, expected: int | None) -> None:
    proc = tmp_path / "proc"
    if comm is not None:
        (proc / "4242").mkdir(parents=True)
        (proc / "4242" / "comm").write_text(comm)
    pidfile = tmp_path / "docker.pid"
    pidfile.write_text("4242")
    assert running_dockerd_pid(str(pidfile), str(proc)) == expected
    assert process_name(4242, str(proc)) == (comm.strip() if comm else None)


def test_stop_terminates_a_process_and_waits() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    stop(child.pid, timeout=10, poll=0.05)
    assert time.monotonic() - started < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)  # already reaped by stop()


def test_stop_reports_a_process_that_ignores_sigterm() -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        with pytest.raises(DockerdError, match=rf"process {child.pid} did not exit within 0.5s"):
            stop(child.pid, timeout=0.5, poll=0.05)
        assert child.poll() is None, "a process that ignores SIGTERM must be left running, never killed"
    finally:
        child.kill()
        child.wait()


def test_stop_of_a_gone_process_is_quiet() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stop(child.pid, timeout=1)


def test_ping(short_dir: Path) -> None:
    sock = short_dir / "api.sock"
    assert ping(f"unix://{sock}", timeout=0.5) is False
    with _api(sock):
        assert ping(f"unix://{sock}", timeout=2) is True
    other = short_dir / "err.sock"
    with _api(other, b"500 Internal Server Error"):
        assert ping(f"unix://{other}", timeout=2) is False


def test_log_tail_reads_only_after_offset(tmp_path: Path) -> None:
    log = tmp_path / "dockerd.log"
    log.write_text("old line\n")
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.writelines(f"new {i}\n" for i in range(30))
    tail = log_tail(str(log), offset, lines=3)
    assert tail == "new 27\nnew 28\nnew 29"
    assert "old line" not in log_tail(str(log), offset)
    assert "could not read" in log_tail(str(tmp_path / "missing.log"))


def test_start_waits_until_the_api_answers(short_dir: Path, fake_daemon: Path) -> None:
    sock = short_dir / "d.sock"
    log = short_dir / "log" / "dockerd.log"
    pid = start(
        [sys.executable, str(fake_daemon), str(sock), "serve"], f"unix://{sock}", str(log), timeout=20, poll=0.05
    )
    try:
        assert ping(f"unix://{sock}") is True
        assert os.getsid(pid) == pid, "dockerd must run in its own session"
        assert "API listen on" in log.read_text()
    finally:
        _reap(pid)


def test_start_failure_carries_the_daemons_own_error(short_dir: Path, fake_daemon: Path) -> None:
    sock = short_dir / "d.sock"
    log = short_dir / "dockerd.log"
    log.write_text("an older run said something else\n")
    with pytest.raises(DockerdError) as info:
        start([sys.executable, str(fake_daemon), str(sock), "fail"], f"unix://{sock}", str(log), timeout=20, poll=0.05)
    message = str(info.value)
    assert "exited with status 1" in message
    assert "error initializing graphdriver: driver not supported" in message
    assert "an older run" not in message


def test_start_timeout_names_pid_and_leaves_it(short_dir: Path, fake_daemon: Path) -> None:
    sock = short_dir / "d.sock"
    log = short_dir / "dockerd.log"
    with pytest.raises(DockerdError, match=r"did not answer on unix://.* within 1s; it was left running") as info:
        start([sys.executable, str(fake_daemon), str(sock), "silent"], f"unix://{sock}", str(log), timeout=1, poll=0.05)
    pid = int(str(info.value).split("(pid ")[1].split(")")[0])
    try:
        assert process_name(pid) is not None
        assert "starting fake dockerd" in str(info.value)
    finally:
        _reap(pid)


def test_ensure_started_is_a_no_op_when_answering(short_dir: Path) -> None:
    sock = short_dir / "api.sock"
    with _api(sock):
        result = ensure(
            "started",
            ["/nonexistent/dockerd"],
            f"unix://{sock}",
            str(short_dir / "pid"),
            str(short_dir / "log"),
            5,
            False,
        )
    assert result == {"changed": False, "pid": None, "argv": ["/nonexistent/dockerd"], "action": "none"}


def test_ensure_started_in_check_mode_spawns_nothing(short_dir: Path) -> None:
    result = ensure(
        "started",
        ["/nonexistent/dockerd"],
        f"unix://{short_dir}/none.sock",
        str(short_dir / "pid"),
        str(short_dir / "log"),
        5,
        True,
    )
    assert result["changed"] is True
    assert result["action"] == "start"
    assert result["pid"] is None
    assert not (short_dir / "log").exists()


def test_ensure_started_starts_when_not_answering(short_dir: Path, fake_daemon: Path) -> None:
    sock = short_dir / "d.sock"
    argv = [sys.executable, str(fake_daemon), str(sock), "serve"]
    result = ensure("started", argv, f"unix://{sock}", str(short_dir / "pid"), str(short_dir / "log"), 20, False)
    try:
        assert result["changed"] is True
        assert result["action"] == "start"
        assert ping(f"unix://{sock}") is True
    finally:
        _reap(result["pid"])


def test_ensure_restart_refuses_an_engine_it_cannot_find(short_dir: Path) -> None:
    sock = short_dir / "api.sock"
    with _api(sock), pytest.raises(DockerdError, match="names no running dockerd"):
        ensure(
            "restarted",
            ["/nonexistent/dockerd"],
            f"unix://{sock}",
            str(short_dir / "pid"),
            str(short_dir / "log"),
            5,
            False,
        )


def test_ensure_restart_in_check_mode_signals_nothing(short_dir: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = short_dir / "proc"
        (proc / str(victim.pid)).mkdir(parents=True)
        (proc / str(victim.pid) / "comm").write_text("dockerd\n")
        (short_dir / "pid").write_text(str(victim.pid))
        result = ensure(
            "restarted",
            ["/nonexistent/dockerd"],
            f"unix://{short_dir}/none.sock",
            str(short_dir / "pid"),
            str(short_dir / "log"),
            5,
            True,
            proc_root=str(proc),
        )
        assert result == {"changed": True, "pid": victim.pid, "argv": ["/nonexistent/dockerd"], "action": "restart"}
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_ensure_restart_stops_the_old_daemon_and_starts_a_new_one(short_dir: Path, fake_daemon: Path) -> None:
    sock = short_dir / "d.sock"
    old = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc = short_dir / "proc"
    (proc / str(old.pid)).mkdir(parents=True)
    (proc / str(old.pid) / "comm").write_text("dockerd\n")
    (short_dir / "pid").write_text(str(old.pid))
    argv = [sys.executable, str(fake_daemon), str(sock), "serve"]
    result = ensure(
        "restarted",
        argv,
        f"unix://{sock}",
        str(short_dir / "pid"),
        str(short_dir / "log"),
        20,
        False,
        proc_root=str(proc),
    )
    try:
        assert result["action"] == "restart"
        assert result["changed"] is True
        assert old.poll() is not None, "the old daemon must be gone"
        assert result["pid"] != old.pid
        assert ping(f"unix://{sock}") is True
    finally:
        _reap(result["pid"])


def test_ensure_rejects_unknown_state(short_dir: Path) -> None:
    with pytest.raises(DockerdError, match="unknown state"):
        ensure("stopped", [], f"unix://{short_dir}/x.sock", str(short_dir / "pid"), str(short_dir / "log"), 1, True)
