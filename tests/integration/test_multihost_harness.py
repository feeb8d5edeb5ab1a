"""tests/multihost/hosts.py for real: two namespaced hosts, each with its own dockerd and sshd.

The sequence: up --hosts 2 (twice: idempotent), ssh into each, copy local/debian:bookworm into both
engines, a container in h2 reaches a port published by a container in h1 on 10.77.0.11, stop-engine h1
makes that fail, start-engine h1 brings the engine (and its data) back, down leaves nothing behind.
Needs root, ip, iptables, dockerd and the main engine with local/debian:bookworm; skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
HOSTS_PY = ROOT / "tests" / "multihost" / "hosts.py"
RUN_ROOT = Path("/run/mlstack-multihost")
DATA_ROOT = Path("/var/lib/mlstack-multihost")
KEY = RUN_ROOT / "id_ed25519"
IMAGE = "local/debian:bookworm"
MAIN = "unix:///var/run/docker.sock"
SSH = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
       "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]  # fmt: skip
# A one-line TCP server on the Debian base (it has perl-base, no python3 or nc).
SERVER = (
    "$|=1; $s=IO::Socket::INET->new(LocalPort=>8080,Listen=>5,ReuseAddr=>1) or die qq(listen: $!);"
    " while($c=$s->accept){print $c qq(hello-from-h1\\n); close $c}"
)
CLIENT = "exec 3<>/dev/tcp/10.77.0.11/8080 && cat <&3"


def sh(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def harness(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = sh(sys.executable, str(HOSTS_PY), *args, timeout=timeout)
    assert proc.returncode == 0, f"hosts.py {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def docker(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return sh("docker", "-H", url, *args, timeout=timeout)


def why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it makes network namespaces, links and daemons)"
    missing = [t for t in ("ip", "iptables", "dockerd", "docker", "ssh", "ssh-keygen") if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)} on PATH"
    if sh("docker", "-H", MAIN, "info", "--format", "{{.ID}}", timeout=30).returncode != 0:
        return f"needs the main Docker engine at {MAIN}"
    if RUN_ROOT.exists() or "mlmh-h1" in sh("ip", "netns", "list").stdout:
        return f"a multihost harness is already up ({RUN_ROOT}): not touching someone else's hosts"
    return None


@pytest.fixture(scope="module")
def hosts_up() -> Iterator[dict[str, dict[str, object]]]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    if docker(MAIN, "image", "inspect", IMAGE).returncode != 0:
        if os.environ.get("MLSTACK_TEST_REQUIRE_IMAGES"):
            pytest.fail(f"needs {IMAGE} in the main engine")
        pytest.skip(f"needs {IMAGE} in the main engine (the images role builds it: debootstrap + docker import)")
    try:
        t0 = time.monotonic()
        harness("up", "--hosts", "2")
        print(f"up --hosts 2: {time.monotonic() - t0:.1f} s")
        yield json.loads((RUN_ROOT / "hosts.json").read_text())
    finally:
        sh(sys.executable, str(HOSTS_PY), "down", timeout=300)


def web_reachable_from_h2(h2_url: str) -> tuple[bool, str]:
    proc = docker(h2_url, "run", "--rm", IMAGE, "timeout", "5", "bash", "-c", CLIENT)
    return "hello-from-h1" in proc.stdout, proc.stdout + proc.stderr


def leftovers() -> list[str]:
    found = []
    found += [f"netns {n}" for n in sh("ip", "netns", "list").stdout.split() if n.startswith("mlmh")]
    found += [f"link {ln.strip()}" for ln in sh("ip", "-o", "link").stdout.splitlines() if "mlmh" in ln]
    found += [f"mount {ln}" for ln in Path("/proc/self/mountinfo").read_text().splitlines() if "multihost" in ln]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "mlstack-multihost" in cmdline and "pytest" not in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]}")
    found += [f"dir {d}" for d in (RUN_ROOT, DATA_ROOT) if d.exists()]
    rules = sh("iptables", "-w", "-S", "FORWARD").stdout + sh("iptables", "-w", "-t", "nat", "-S").stdout
    found += [f"iptables {r}" for r in rules.splitlines() if "mlmh0" in r or "10.77.0.0/24" in r]
    return found


def test_two_hosts_engines_ssh_cross_host_traffic_engine_loss_and_clean_down(hosts_up: dict) -> None:
    h1, h2 = hosts_up["h1"], hosts_up["h2"]
    assert (h1["address"], h2["address"]) == ("10.77.0.11", "10.77.0.12")
    url1, url2 = str(h1["docker_url"]), str(h2["docker_url"])
    main_networks = docker(MAIN, "network", "ls", "--format", "{{.ID}} {{.Name}}").stdout

    # Idempotent: a second up keeps the same daemons.
    harness("up", "--hosts", "2")
    again = json.loads((RUN_ROOT / "hosts.json").read_text())
    assert [again[h]["pid"] for h in ("h1", "h2")] == [h1["pid"], h2["pid"]]
    assert [again[h]["sshd_pid"] for h in ("h1", "h2")] == [h1["sshd_pid"], h2["sshd_pid"]]

    # SSH into each host; from there, its own engine answers on its own socket.
    for name, host in (("h1", h1), ("h2", h2)):
        remote = f"ip -4 -o addr show eth0; docker -H {host['docker_url']} info --format '{{{{.DockerRootDir}}}}'"
        proc = sh("ssh", "-i", str(KEY), *SSH, f"root@{host['address']}", remote, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert f"inet {host['address']}/24" in proc.stdout
        assert proc.stdout.strip().endswith(str(DATA_ROOT / name)), proc.stdout

    # Copy the base image into both engines; a second copy skips it.
    t0 = time.monotonic()
    out = harness("images", IMAGE).stdout
    print(f"images {IMAGE}: {time.monotonic() - t0:.1f} s\n{out}")
    main_id = docker(MAIN, "image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    for url in (url1, url2):
        assert docker(url, "image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip() == main_id
    assert harness("images", IMAGE).stdout.count("skipped") == 2

    # A container in h2 reaches a port published by a container in h1 on h1's address.
    web = docker(url1, "run", "-d", "--name", "mh-web", "--stop-timeout", "1", "-p", "10.77.0.11:8080:8080",
                 IMAGE, "perl", "-MIO::Socket::INET", "-e", SERVER)  # fmt: skip
    assert web.returncode == 0, web.stderr
    for _attempt in range(10):
        reached, output = web_reachable_from_h2(url2)
        if reached:
            break
        time.sleep(0.5)
    assert reached, output
    subnet1 = docker(url1, "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Subnet}}").stdout
    subnet2 = docker(url2, "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Subnet}}").stdout
    assert (subnet1.strip(), subnet2.strip()) == ("172.31.0.0/16", "172.32.0.0/16")

    # Losing h1's engine: its socket goes, and h2 can no longer reach the port.
    harness("stop-engine", "h1")
    assert docker(url1, "info", timeout=15).returncode != 0
    reached, output = web_reachable_from_h2(url2)
    assert not reached, output
    assert "refused" in output or "timed out" in output.lower() or output.strip() == "", output

    # start-engine brings it back with its data-root: the image and the (exited) container are still there.
    harness("start-engine", "h1")
    assert docker(url1, "image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip() == main_id
    assert docker(url1, "ps", "-a", "--filter", "name=mh-web", "--format", "{{.Names}}").stdout.strip() == "mh-web"

    # down leaves nothing, and the main engine and its networks are as they were.
    t0 = time.monotonic()
    print(harness("down").stdout.strip(), f"({time.monotonic() - t0:.1f} s with the CLI start)")
    assert leftovers() == []
    assert docker(MAIN, "network", "ls", "--format", "{{.ID}} {{.Name}}").stdout == main_networks
    assert sh("ip", "link", "show", "docker0").returncode == 0
    harness("down")  # idempotent
