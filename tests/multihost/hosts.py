"""Two or three Docker "hosts" on one machine: network namespaces on a bridge, each with its own dockerd and sshd.

Stdlib only, run as root. See tests/multihost/README.md for the layout and the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "mlmh0"
NETWORK = "10.77.0.0/24"
GATEWAY = "10.77.0.1"
PREFIX_LEN = 24
MAX_HOSTS = 3
RUN_ROOT = Path("/run/mlstack-multihost")
DATA_ROOT = Path("/var/lib/mlstack-multihost")
KEY = RUN_ROOT / "id_ed25519"
# Each engine also listens on its address, TCP with --tlsverify (mlstack_docker_tls): one CA, a server
# certificate per host, one client certificate.
ENGINE_TLS = RUN_ROOT / "engine-tls"
ENGINE_TLS_PORT = 2376
HOSTS_JSON = RUN_ROOT / "hosts.json"
MAIN_DOCKER = "unix:///var/run/docker.sock"
SSHD = Path("/usr/sbin/sshd")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
ENGINE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
SSH_OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
CHUNK = 1 << 20

# Root-namespace iptables rules the harness adds (and down removes): hosts reach each other across the bridge
# although Docker's FORWARD policy is DROP (br_netfilter sends bridged frames through iptables), and reach out.
ROOT_RULES: tuple[tuple[str, ...], ...] = (
    ("filter", "FORWARD", "-i", BRIDGE, "-j", "ACCEPT"),
    ("filter", "FORWARD", "-o", BRIDGE, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
    ("nat", "POSTROUTING", "-s", NETWORK, "!", "-o", BRIDGE, "-j", "MASQUERADE"),
)


class HarnessError(RuntimeError):
    """A step of the harness failed; the message says which and why."""


@dataclass(frozen=True)
class Host:
    """One simulated host hK: its names, address and paths (pure, no side effects)."""

    index: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_HOSTS:
            raise ValueError(f"host index must be 1..{MAX_HOSTS}, got {self.index}")

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def netns(self) -> str:
        return f"mlmh-{self.name}"

    @property
    def address(self) -> str:
        return f"10.77.0.1{self.index}"

    @property
    def veth(self) -> str:
        """The root-namespace end of the veth pair (its peer is eth0 inside the namespace)."""
        return f"mlmh-{self.name}r"

    @property
    def bip(self) -> str:
        return f"172.3{self.index}.0.1/16"

    @property
    def cgroup_parent(self) -> str:
        return f"/mlstack-multihost-{self.name}"

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def data_root(self) -> Path:
        return DATA_ROOT / self.name

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://{self.address}:{ENGINE_TLS_PORT}"

    @property
    def docker_pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def daemon_json(self) -> Path:
        return self.run_dir / "daemon.json"

    @property
    def dockerd_log(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def sshd_config(self) -> Path:
        return self.run_dir / "sshd_config"

    @property
    def sshd_pidfile(self) -> Path:
        return self.run_dir / "sshd.pid"

    @property
    def sshd_host_key(self) -> Path:
        return self.run_dir / "ssh_host_ed25519_key"

    @property
    def sshd_log(self) -> Path:
        return self.run_dir / "sshd.log"


def parse_host(name: str) -> Host:
    """'h2' -> Host(2); anything else is an argparse error."""
    if len(name) == 2 and name[0] == "h" and name[1].isdigit():
        try:
            return Host(int(name[1]))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    raise argparse.ArgumentTypeError(f"expected h1..h{MAX_HOSTS}, got {name!r}")


def hosts_upto(count: int) -> list[Host]:
    return [Host(k) for k in range(1, count + 1)]


# --- pure renderers ---------------------------------------------------------------------------------------


def dockerd_argv(host: Host) -> list[str]:
    return [
        "dockerd",
        "--data-root", str(host.data_root),
        "--exec-root", str(host.exec_root),
        "-H", host.docker_url,
        "-H", host.tcp_url,
        "--tlscacert", str(ENGINE_TLS / "ca.pem"),
        "--tlscert", str(ENGINE_TLS / f"{host.name}-cert.pem"),
        "--tlskey", str(ENGINE_TLS / f"{host.name}-key.pem"),
        "--pidfile", str(host.docker_pidfile),
        "--config-file", str(host.daemon_json),
        "--storage-driver", "overlay2",
        "--bip", host.bip,
        "--cgroup-parent", host.cgroup_parent,
        "--tlsverify",
    ]  # fmt: skip


def cgroup_mount_script(mountinfo: str) -> str:
    """Shell lines that remount the root namespace's cgroup hierarchies under /sys/fs/cgroup.

    `ip netns exec` gives the command a new mount namespace with a fresh sysfs, which has no cgroup mounts:
    dockerd (and sessions over SSH) would see no cgroups. Mounting the same hierarchies again gives them back.
    """
    lines = ["set -e"]
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mountpoint = fields[4]
        if mountpoint != "/sys/fs/cgroup" and not mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        fstype, source, superopts = line.split(" - ", 1)[1].split()[:3]
        opts = ",".join(o for o in superopts.split(",") if o not in ("rw", "ro"))
        if fstype == "tmpfs":
            opts = "mode=755"
        elif fstype not in ("cgroup", "cgroup2"):
            continue
        opt_args = f" -o {shlex.quote(opts)}" if opts else ""
        quoted = shlex.quote(mountpoint)
        lines.append(f"mkdir -p {quoted} && mount -t {fstype}{opt_args} {shlex.quote(source)} {quoted}")
    lines.append('exec "$@"')
    return "\n".join(lines)


def sshd_config_text(host: Host, key: Path = KEY) -> str:
    return "\n".join(
        [
            f"# mlstack multihost harness, host {host.name} (written by tests/multihost/hosts.py)",
            f"ListenAddress {host.address}:22",
            f"HostKey {host.sshd_host_key}",
            f"PidFile {host.sshd_pidfile}",
            "PermitRootLogin prohibit-password",
            f"AuthorizedKeysFile {key}.pub",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ]
    )


def host_record(host: Host, dockerd_pid: int | None, sshd_pid: int | None, key: Path = KEY) -> dict[str, object]:
    return {
        "address": host.address,
        "netns": host.netns,
        "docker_url": host.docker_url,
        "tcp_url": host.tcp_url,
        "engine_tls": engine_tls_files(),
        "docker_socket": str(host.socket),
        "ssh_key": str(key),
        "ssh_user": "root",
        "data_root": str(host.data_root),
        "exec_root": str(host.exec_root),
        "daemon_json": str(host.daemon_json),
        "dockerd_log": str(host.dockerd_log),
        "bip": host.bip,
        "pid": dockerd_pid,
        "sshd_pid": sshd_pid,
    }


def engine_tls_files() -> dict[str, str]:
    """The client's side of the engines' TLS, as mlstack_docker_tls takes it."""
    return {"ca_path": str(ENGINE_TLS / "ca.pem"), "cert_path": str(ENGINE_TLS / "client-cert.pem"),
            "key_path": str(ENGINE_TLS / "client-key.pem")}


def inventory_vars(host: Host, key: Path = KEY, python: str | None = None) -> dict[str, object]:
    variables: dict[str, object] = {
        "ansible_host": host.address,
        "ansible_connection": "ssh",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": " ".join(SSH_OPTIONS),
        "mlstack_docker_url": host.docker_url,
        "mlstack_host_address": host.address,
        "docker_engine_socket": host.docker_url,
        "docker_engine_install": False,
        "docker_engine_daemon_json_path": str(host.daemon_json),
    }
    if python:
        variables["ansible_python_interpreter"] = python
    return variables


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid double-quoted YAML scalar


def inventory_text(hosts: Sequence[Host], key: Path = KEY, python: str | None = None) -> str:
    """An Ansible YAML inventory: group docker_hosts under all, one entry per host."""
    lines = [
        "# Generated by tests/multihost/hosts.py inventory: the harness's Docker hosts (network namespaces).",
        "all:",
        "  children:",
        "    docker_hosts:",
        "      hosts:",
    ]
    for host in hosts:
        lines.append(f"        {host.name}:")
        lines.extend(f"          {k}: {_yaml_scalar(v)}" for k, v in inventory_vars(host, key, python).items())
    return "\n".join(lines) + "\n"


def wanted_images(listing: str) -> list[str]:
    """From `docker images --format '{{.Repository}}:{{.Tag}}'` output, the refs --all-mlstack means."""
    refs = []
    for ref in listing.split():
        repo, tag = ref.rpartition(":")[::2]
        if "<none>" in (repo, tag):
            continue
        if repo.startswith("mlstack") or repo == "local/debian":
            refs.append(ref)
    return sorted(set(refs))


def mounts_under(mountinfo: str, roots: Iterable[Path]) -> list[str]:
    """Mount points at or below any of roots, deepest first (the order to unmount them)."""
    prefixes = [str(r) for r in roots]
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda p: (p.count("/"), p), reverse=True)


# --- process helpers --------------------------------------------------------------------------------------


def run(argv: Sequence[str], check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise HarnessError(f"{shlex.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def ok(argv: Sequence[str], timeout: float = 30.0) -> bool:
    try:
        return run(argv, check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait for the process to go, SIGKILL after timeout."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    raise HarnessError(f"process {pid} did not exit after SIGKILL")


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def in_netns(host: Host, argv: Sequence[str]) -> list[str]:
    """Run argv inside the host's namespace, with the cgroup hierarchies remounted in its fresh sysfs."""
    script = cgroup_mount_script(Path("/proc/self/mountinfo").read_text())
    return ["ip", "netns", "exec", host.netns, "sh", "-c", script, "sh", *argv]


# --- network ----------------------------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return ok(["ip", "link", "show", "dev", name])


def netns_names() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ensure_bridge() -> None:
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "replace", f"{GATEWAY}/{PREFIX_LEN}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    for table, chain, *rule in ROOT_RULES:
        if not ok(["iptables", "-w", "-t", table, "-C", chain, *rule]):
            run(["iptables", "-w", "-t", table, "-I", chain, "1", *rule])
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def ensure_netns(host: Host) -> None:
    if host.netns not in netns_names():
        run(["ip", "netns", "add", host.netns])
    nsx = ["ip", "netns", "exec", host.netns]
    if not link_exists(host.veth):
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
    run([*nsx, "ip", "link", "set", "lo", "up"])
    run([*nsx, "ip", "addr", "replace", f"{host.address}/{PREFIX_LEN}", "dev", "eth0"])
    run([*nsx, "ip", "link", "set", "eth0", "up"])
    run([*nsx, "ip", "route", "replace", "default", "via", GATEWAY])


# --- docker engines ---------------------------------------------------------------------------------------


def engine_answers(url: str) -> bool:
    return ok(["docker", "-H", url, "info", "--format", "{{.ID}}"], timeout=10)


def ensure_engine(host: Host) -> int:
    pid = read_pid(host.docker_pidfile)
    if pid and engine_answers(host.docker_url):
        return pid
    if pid:
        terminate(pid)
    for path in (host.run_dir, host.exec_root, host.data_root):
        path.mkdir(parents=True, exist_ok=True)
    if not host.daemon_json.exists():
        host.daemon_json.write_text("{}\n")
    with host.dockerd_log.open("ab") as log:
        proc = subprocess.Popen(
            in_netns(host, dockerd_argv(host)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + ENGINE_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"dockerd of {host.name} exited {proc.returncode}:\n{log_tail(host.dockerd_log)}")
        if engine_answers(host.docker_url):
            return proc.pid
        time.sleep(0.3)
    raise HarnessError(
        f"dockerd of {host.name} did not answer on {host.docker_url} within {ENGINE_TIMEOUT_S:.0f} s:\n"
        f"{log_tail(host.dockerd_log)}"
    )


def stop_engine(host: Host) -> bool:
    """Stop the host's dockerd (its containers stop with it). False when none was running."""
    pid = read_pid(host.docker_pidfile)
    if pid is None:
        return False
    terminate(pid)
    return True


# --- ssh --------------------------------------------------------------------------------------------------


def ensure_sshd_installed() -> None:
    if SSHD.exists():
        return
    own_policy = not POLICY_RC_D.exists()
    if own_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# mlstack multihost harness: start no services while installing\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        install = [
            "apt-get",
            "-o",
            "DPkg::Lock::Timeout=300",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "openssh-server",
        ]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for attempt in range(4):
            proc = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
            if proc.returncode == 0:
                return
            if attempt == 1:
                subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], check=False, env=env)
            time.sleep(10)
        raise HarnessError(f"apt-get install openssh-server failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    finally:
        if own_policy:
            POLICY_RC_D.unlink(missing_ok=True)


def _openssl_cert(name: str, subject: str, extensions: Sequence[str], ca: bool = False) -> None:
    """``name``-key.pem and ``name``-cert.pem in ENGINE_TLS: self-signed when ``ca``, else signed by ca-*.pem."""
    key, cert = ENGINE_TLS / f"{name}-key.pem", ENGINE_TLS / f"{name}-cert.pem"
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)])
    key.chmod(0o600)
    if ca:
        added = [arg for extension in extensions for arg in ("-addext", extension)]
        run(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", "7", *added,
             "-out", str(cert)])
        return
    csr, ext = ENGINE_TLS / f"{name}.csr", ENGINE_TLS / f"{name}.ext"
    ext.write_text("\n".join(extensions) + "\n")
    run(["openssl", "req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr)])
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ENGINE_TLS / "ca-cert.pem"),
         "-CAkey", str(ENGINE_TLS / "ca-key.pem"), "-CAcreateserial", "-days", "7", "-extfile", str(ext),
         "-out", str(cert)])
    csr.unlink()
    ext.unlink()


def ensure_engine_tls(hosts: Sequence[Host]) -> None:
    """The engines' CA, a server certificate per host (its address), a client certificate (7 days each)."""
    ENGINE_TLS.mkdir(parents=True, exist_ok=True)
    if not (ENGINE_TLS / "ca-cert.pem").exists():
        _openssl_cert("ca", "/CN=mlstack multihost engine CA", ["basicConstraints=critical,CA:TRUE"], ca=True)
        shutil.copy(ENGINE_TLS / "ca-cert.pem", ENGINE_TLS / "ca.pem")
    if not (ENGINE_TLS / "client-cert.pem").exists():
        _openssl_cert("client", "/CN=mlstack multihost client", ["extendedKeyUsage=clientAuth"])
    for host in hosts:
        if not (ENGINE_TLS / f"{host.name}-cert.pem").exists():
            _openssl_cert(host.name, f"/CN={host.name}",
                          [f"subjectAltName=IP:{host.address}", "extendedKeyUsage=serverAuth"])


def ensure_key() -> None:
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    if not KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mlstack-multihost", "-f", str(KEY)])
    KEY.chmod(0o600)


def ssh_argv(host: Host, *command: str) -> list[str]:
    return ["ssh", "-i", str(KEY), *SSH_OPTIONS, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR", f"root@{host.address}", *command]  # fmt: skip


def ensure_sshd(host: Host) -> int:
    pid = read_pid(host.sshd_pidfile)
    if pid is None:
        host.run_dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        if not host.sshd_host_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.sshd_host_key)])
        host.sshd_config.write_text(sshd_config_text(host))
        run([str(SSHD), "-t", "-f", str(host.sshd_config)])
        run(in_netns(host, [str(SSHD), "-f", str(host.sshd_config), "-E", str(host.sshd_log)]))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ok(ssh_argv(host, "true"), timeout=10):
            pid = read_pid(host.sshd_pidfile)
            if pid:
                return pid
        time.sleep(0.3)
    raise HarnessError(f"ssh root@{host.address} true fails:\n{log_tail(host.sshd_log)}")


# --- state ------------------------------------------------------------------------------------------------


def present_hosts() -> list[Host]:
    names = set(netns_names())
    return [h for h in hosts_upto(MAX_HOSTS) if h.netns in names or h.run_dir.exists()]


def write_hosts_json() -> dict[str, object]:
    names = set(netns_names())
    data = {
        h.name: host_record(h, read_pid(h.docker_pidfile), read_pid(h.sshd_pidfile))
        for h in hosts_upto(MAX_HOSTS)
        if h.netns in names
    }
    HOSTS_JSON.write_text(json.dumps(data, indent=2) + "\n")
    return data


# --- commands ---------------------------------------------------------------------------------------------


def require_root() -> None:
    if os.geteuid() != 0:
        raise HarnessError("run as root: the harness makes namespaces, links and daemons")
    missing = [tool for tool in ("ip", "iptables", "dockerd", "docker", "ssh", "ssh-keygen") if not shutil.which(tool)]
    if missing:
        raise HarnessError(f"missing tools: {', '.join(missing)}")


def cmd_up(args: argparse.Namespace) -> int:
    start = time.monotonic()
    ensure_sshd_installed()
    ensure_key()
    ensure_engine_tls(hosts_upto(args.hosts))
    ensure_bridge()
    for host in hosts_upto(args.hosts):
        t0 = time.monotonic()
        ensure_netns(host)
        dockerd_pid = ensure_engine(host)
        sshd_pid = ensure_sshd(host)
        print(f"{host.name}: {host.address} netns={host.netns} dockerd={dockerd_pid} sshd={sshd_pid} "
              f"docker_url={host.docker_url} ({time.monotonic() - t0:.1f} s)")  # fmt: skip
    write_hosts_json()
    print(f"up: {args.hosts} host(s) in {time.monotonic() - start:.1f} s; {HOSTS_JSON}")
    return 0


def image_id(url: str, ref: str) -> str | None:
    proc = run(["docker", "-H", url, "image", "inspect", "--format", "{{.Id}}", ref], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def plan_copies(needs: dict[str, list[str]]) -> list[tuple[list[str], list[str]]]:
    """Hosts that need the same images share one `docker save` (shared layers travel once): [(refs, hosts)]."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for host, refs in needs.items():
        if refs:
            groups.setdefault(tuple(refs), []).append(host)
    return [(list(refs), hosts) for refs, hosts in groups.items()]


def stream_images(refs: Sequence[str], targets: Sequence[Host]) -> int:
    """One `docker save` of the main engine fanned out to a `docker load` per target engine; bytes streamed."""
    save = subprocess.Popen(["docker", "-H", MAIN_DOCKER, "save", *refs], stdout=subprocess.PIPE)
    loads = [
        subprocess.Popen(
            ["docker", "-H", h.docker_url, "load", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for h in targets
    ]
    assert save.stdout is not None
    streamed = 0
    while chunk := save.stdout.read(CHUNK):
        streamed += len(chunk)
        for load in loads:
            assert load.stdin is not None
            load.stdin.write(chunk)
    errors = []
    if save.wait() != 0:
        errors.append(f"docker save {' '.join(refs)} exited {save.returncode}")
    for host, load in zip(targets, loads, strict=True):
        err = load.communicate()[1]
        if load.returncode != 0:
            errors.append(f"docker load into {host.name}: {err.decode(errors='replace').strip()}")
    if errors:
        raise HarnessError("; ".join(errors))
    return streamed


def hosts_needing(ref: str, hosts: Sequence[Host]) -> list[Host]:
    """The hosts that lack the main engine's image ref (by ID); a host with the ID under another name is tagged."""
    main_id = image_id(MAIN_DOCKER, ref)
    if main_id is None:
        raise HarnessError(f"image {ref} is not in the main engine ({MAIN_DOCKER})")
    needing = []
    for host in hosts:
        if image_id(host.docker_url, ref) == main_id:
            print(f"{ref}: {host.name} has it ({main_id[:19]}), skipped")
        elif image_id(host.docker_url, main_id) == main_id and ref != main_id:
            run(["docker", "-H", host.docker_url, "tag", main_id, ref])
            print(f"{ref}: {host.name} had {main_id[:19]} under another name, tagged")
        else:
            needing.append(host)
    return needing


def image_size(ref: str) -> int:
    return int(run(["docker", "-H", MAIN_DOCKER, "image", "inspect", "--format", "{{.Size}}", ref]).stdout)


def cmd_images(args: argparse.Namespace) -> int:
    hosts = []
    for host in present_hosts():
        if engine_answers(host.docker_url):
            hosts.append(host)
        else:
            print(f"{host.name}: engine does not answer on {host.docker_url}, skipped (start-engine {host.name})")
    if not hosts:
        raise HarnessError("no host engine answers: run `up` first")
    refs = list(args.images)
    if args.all_mlstack:
        listing = run(["docker", "-H", MAIN_DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
        refs += wanted_images(listing)
    if not refs:
        raise HarnessError("no images named (and --all-mlstack found none)")
    start = time.monotonic()
    refs = list(dict.fromkeys(refs))
    needs: dict[str, list[str]] = {h.name: [] for h in hosts}
    for ref in refs:
        for host in hosts_needing(ref, hosts):
            needs[host.name].append(ref)
    by_name = {h.name: h for h in hosts}
    for group_refs, names in plan_copies(needs):
        t0 = time.monotonic()
        streamed = stream_images(group_refs, [by_name[n] for n in names])
        sizes = ", ".join(f"{r} {image_size(r) / 1e6:.0f} MB" for r in group_refs)
        print(
            f"copied to {','.join(names)} in {time.monotonic() - t0:.1f} s, {streamed / 1e6:.0f} MB streamed "
            f"once for all of them: {sizes}"
        )
    print(f"images: {len(refs)} image(s) for {','.join(by_name)} in {time.monotonic() - start:.1f} s")
    return 0


def cmd_stop_engine(args: argparse.Namespace) -> int:
    host: Host = args.host
    t0 = time.monotonic()
    stopped = stop_engine(host)
    print(f"{host.name}: dockerd {'stopped' if stopped else 'was not running'} ({time.monotonic() - t0:.1f} s)")
    write_hosts_json()
    return 0


def cmd_start_engine(args: argparse.Namespace) -> int:
    host: Host = args.host
    if host.netns not in netns_names():
        raise HarnessError(f"{host.name} is not up (no namespace {host.netns}): run `up` first")
    t0 = time.monotonic()
    pid = ensure_engine(host)
    print(f"{host.name}: dockerd {pid} answers on {host.docker_url} ({time.monotonic() - t0:.1f} s)")
    write_hosts_json()
    return 0


def harness_pids(host: Host) -> set[int]:
    """Processes left in the host's namespace or its containers' cgroup (containerd, shims, containers)."""
    pids: set[int] = set()
    if host.netns in netns_names():
        out = run(["ip", "netns", "pids", host.netns], check=False).stdout
        pids.update(int(p) for p in out.split() if p.isdigit())
    marker = host.cgroup_parent + "/"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cgroup").read_text():
                    pids.add(int(proc.name))
            except OSError:
                continue
    pids.discard(os.getpid())
    return pids


def teardown_host(host: Host) -> None:
    for pidfile in (host.sshd_pidfile, host.docker_pidfile):
        pid = read_pid(pidfile)
        if pid:
            terminate(pid)
    for pid in harness_pids(host):
        terminate(pid, timeout=10)
    if host.netns in netns_names():
        run(["ip", "netns", "del", host.netns])
    # Deleting the namespace deletes eth0 and so its peer, but asynchronously: the veth may go under our feet.
    if link_exists(host.veth) and not ok(["ip", "link", "del", host.veth]) and link_exists(host.veth):
        raise HarnessError(f"could not delete link {host.veth}")


def unmount_leftovers() -> list[str]:
    points = mounts_under(Path("/proc/self/mountinfo").read_text(), (RUN_ROOT, DATA_ROOT))
    for point in points:
        if not ok(["umount", point]):
            run(["umount", "-l", point], check=False)
    return points


def cmd_down(args: argparse.Namespace) -> int:
    start = time.monotonic()
    for host in hosts_upto(MAX_HOSTS):
        teardown_host(host)
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])
    for table, chain, *rule in ROOT_RULES:
        while ok(["iptables", "-w", "-t", table, "-C", chain, *rule]):
            run(["iptables", "-w", "-t", table, "-D", chain, *rule])
    stopped = time.monotonic()
    unmounted = unmount_leftovers()
    for root in (RUN_ROOT, DATA_ROOT):
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            raise HarnessError(f"could not remove {root}")
    end = time.monotonic()
    extra = f", unmounted {len(unmounted)} leftover mount(s)" if unmounted else ""
    print(
        f"down: harness removed in {end - start:.1f} s (daemons and network {stopped - start:.1f} s, "
        f"files {end - stopped:.1f} s){extra}"
    )
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    text = inventory_text(hosts_upto(args.hosts), python=args.python)
    Path(args.out).write_text(text)
    print(f"inventory: {args.hosts} host(s) in group docker_hosts -> {args.out}")
    return 0


def host_count(value: str) -> int:
    count = int(value)
    if not 1 <= count <= MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"--hosts must be 1..{MAX_HOSTS}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hosts.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="make (or keep) hosts h1..hN up: namespace, dockerd, sshd")
    up.add_argument("--hosts", type=host_count, default=2)
    up.set_defaults(func=cmd_up)
    images = sub.add_parser("images", help="copy images from the main engine into every host's engine")
    images.add_argument("images", nargs="*", metavar="IMAGE")
    images.add_argument("--all-mlstack", action="store_true", help="every mlstack* image and local/debian")
    images.set_defaults(func=cmd_images)
    for name, func in (("stop-engine", cmd_stop_engine), ("start-engine", cmd_start_engine)):
        engine = sub.add_parser(name, help=f"{name.split('-', maxsplit=1)[0]} one host's dockerd")
        engine.add_argument("host", type=parse_host, metavar="hK")
        engine.set_defaults(func=func)
    down = sub.add_parser("down", help="remove every trace of the harness")
    down.set_defaults(func=cmd_down)
    inventory = sub.add_parser("inventory", help="write an Ansible YAML inventory for group docker_hosts")
    inventory.add_argument("--out", required=True)
    inventory.add_argument("--hosts", type=host_count, default=2)
    inventory.add_argument("--python", help="also set ansible_python_interpreter to this path")
    inventory.set_defaults(func=cmd_inventory)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "inventory":
            require_root()
        return int(args.func(args))
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        print(f"hosts.py {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
