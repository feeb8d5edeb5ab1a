"""tests/multihost/hosts.py: the pure parts (names, addresses, paths, rendered files, parsing)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("multihost_hosts", ROOT / "tests" / "multihost" / "hosts.py")
assert _spec is not None and _spec.loader is not None
hosts = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = hosts  # dataclasses look their module up there
_spec.loader.exec_module(hosts)

MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
90 22 0:50 / /run/mlstack-multihost/h1/exec/netns/abc rw - nsfs nsfs rw
91 22 0:51 / /var/lib/mlstack-multihost/h1/overlay2/x/merged rw - overlay overlay rw,lowerdir=/a
92 22 0:52 / /var/lib/mlstack-multihost/h1 rw - ext4 /dev/vda rw
93 22 0:53 / /var/lib/mlstack-multihostother rw - ext4 /dev/vda rw
94 22 0:54 / /var/lib/docker/overlay2/y/merged rw - overlay overlay rw
"""


@pytest.mark.parametrize(
    ("index", "address", "bip"), [(1, "10.77.0.11", "172.31.0.1/16"), (3, "10.77.0.13", "172.33.0.1/16")]
)
def test_host_names_addresses_and_paths(index: int, address: str, bip: str) -> None:
    host = hosts.Host(index)
    name = f"h{index}"
    assert (host.name, host.netns, host.address, host.bip) == (name, f"mlmh-{name}", address, bip)
    assert len(host.veth) <= 15  # IFNAMSIZ
    run = Path("/run/mlstack-multihost") / name
    assert host.socket == run / "docker.sock"
    assert host.docker_url == f"unix://{run}/docker.sock"
    assert (host.docker_pidfile, host.daemon_json, host.dockerd_log) == (
        run / "docker.pid",
        run / "daemon.json",
        run / "dockerd.log",
    )
    assert host.exec_root == run / "exec"
    assert host.data_root == Path("/var/lib/mlstack-multihost") / name


@pytest.mark.parametrize("index", [0, 4])
def test_host_index_is_bounded(index: int) -> None:
    with pytest.raises(ValueError, match="1..3"):
        hosts.Host(index)


def test_parse_host() -> None:
    assert hosts.parse_host("h2") == hosts.Host(2)
    for bad in ("h4", "h0", "2", "host1", "h12"):
        with pytest.raises(argparse.ArgumentTypeError):
            hosts.parse_host(bad)


def test_hosts_subnets_differ() -> None:
    bips = {h.bip for h in hosts.hosts_upto(3)}
    addresses = {h.address for h in hosts.hosts_upto(3)}
    assert len(bips) == len(addresses) == 3


def test_dockerd_argv_has_its_own_everything() -> None:
    host = hosts.Host(2)
    argv = hosts.dockerd_argv(host)
    assert (argv[0], argv[-1]) == ("dockerd", "--tlsverify")
    flags = list(zip(argv[1:-1:2], argv[2:-1:2], strict=True))
    assert flags == [
        ("--data-root", "/var/lib/mlstack-multihost/h2"),
        ("--exec-root", "/run/mlstack-multihost/h2/exec"),
        ("-H", "unix:///run/mlstack-multihost/h2/docker.sock"),
        # Its TCP port takes only clients with a certificate of the harness's engine CA.
        ("-H", "tcp://10.77.0.12:2376"),
        ("--tlscacert", "/run/mlstack-multihost/engine-tls/ca.pem"),
        ("--tlscert", "/run/mlstack-multihost/engine-tls/h2-cert.pem"),
        ("--tlskey", "/run/mlstack-multihost/engine-tls/h2-key.pem"),
        ("--pidfile", "/run/mlstack-multihost/h2/docker.pid"),
        ("--config-file", "/run/mlstack-multihost/h2/daemon.json"),
        ("--storage-driver", "overlay2"),
        ("--bip", "172.32.0.1/16"),
        ("--cgroup-parent", "/mlstack-multihost-h2"),
    ]
    assert "--bridge" not in argv  # never --bridge none (it deletes docker0)


def test_cgroup_mount_script_remounts_every_hierarchy_in_order() -> None:
    lines = hosts.cgroup_mount_script(MOUNTINFO).splitlines()
    assert lines[0] == "set -e" and lines[-1] == 'exec "$@"'
    assert lines[1:-1] == [
        "mkdir -p /sys/fs/cgroup && mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup",
        "mkdir -p /sys/fs/cgroup/cpu && mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu",
        "mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o xattr,name=systemd cgroup /sys/fs/cgroup/systemd",
        "mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup/unified",
    ]


def test_cgroup_mount_script_on_a_pure_v2_host() -> None:
    script = hosts.cgroup_mount_script("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert "mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup" in script


def test_sshd_config() -> None:
    host = hosts.Host(1)
    config = dict(
        line.split(" ", 1) for line in hosts.sshd_config_text(host).splitlines() if line and not line.startswith("#")
    )
    assert config["ListenAddress"] == "10.77.0.11:22"
    assert config["PermitRootLogin"] == "prohibit-password"
    assert config["AuthorizedKeysFile"] == "/run/mlstack-multihost/id_ed25519.pub"
    assert config["PidFile"] == "/run/mlstack-multihost/h1/sshd.pid"
    assert config["HostKey"] == "/run/mlstack-multihost/h1/ssh_host_ed25519_key"
    assert config["UsePAM"] == "no"
    assert config["PasswordAuthentication"] == "no"


def test_inventory_renders_the_agreed_keys() -> None:
    parsed = yaml.safe_load(hosts.inventory_text(hosts.hosts_upto(2)))
    members = parsed["all"]["children"]["docker_hosts"]["hosts"]
    assert list(members) == ["h1", "h2"]
    assert members["h2"] == {
        "ansible_host": "10.77.0.12",
        "ansible_connection": "ssh",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": "/run/mlstack-multihost/id_ed25519",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "mlstack_docker_url": "unix:///run/mlstack-multihost/h2/docker.sock",
        "mlstack_host_address": "10.77.0.12",
        "docker_engine_socket": "unix:///run/mlstack-multihost/h2/docker.sock",
        "docker_engine_install": False,
        "docker_engine_daemon_json_path": "/run/mlstack-multihost/h2/daemon.json",
    }


def test_inventory_python_is_optional() -> None:
    parsed = yaml.safe_load(hosts.inventory_text([hosts.Host(3)], python="/opt/venv/bin/python"))
    assert (
        parsed["all"]["children"]["docker_hosts"]["hosts"]["h3"]["ansible_python_interpreter"] == "/opt/venv/bin/python"
    )


def test_inventory_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "inv.yml"
    assert hosts.main(["inventory", "--out", str(out), "--hosts", "3"]) == 0
    assert list(yaml.safe_load(out.read_text())["all"]["children"]["docker_hosts"]["hosts"]) == ["h1", "h2", "h3"]


def test_host_count_is_bounded() -> None:
    with pytest.raises(SystemExit):
        hosts.build_parser().parse_args(["up", "--hosts", "4"])
    assert hosts.build_parser().parse_args(["up", "--hosts", "3"]).hosts == 3


def test_host_record_is_json() -> None:
    record = hosts.host_record(hosts.Host(1), 123, None)
    assert json.loads(json.dumps(record))["pid"] == 123
    assert {"address", "netns", "docker_url", "ssh_key", "data_root", "pid"} <= set(record)


def test_wanted_images() -> None:
    listing = (
        "mlstack-services:1.2\nlocal/debian:bookworm\n<none>:<none>\nredis:7\nmlstack/x:latest\nlocal/debian:bookworm\n"
    )
    assert hosts.wanted_images(listing) == ["local/debian:bookworm", "mlstack-services:1.2", "mlstack/x:latest"]


def test_mounts_under_is_deepest_first_and_exact() -> None:
    points = hosts.mounts_under(MOUNTINFO, (Path("/run/mlstack-multihost"), Path("/var/lib/mlstack-multihost")))
    assert points == [
        "/var/lib/mlstack-multihost/h1/overlay2/x/merged",
        "/run/mlstack-multihost/h1/exec/netns/abc",
        "/var/lib/mlstack-multihost/h1",
    ]


def test_root_rules_touch_only_the_harness_bridge_and_network() -> None:
    for table, chain, *rule in hosts.ROOT_RULES:
        assert (table, chain) in {("filter", "FORWARD"), ("nat", "POSTROUTING")}
        assert hosts.BRIDGE in rule
        assert "docker0" not in rule


def test_plan_copies_groups_hosts_that_need_the_same_images() -> None:
    needs = {"h1": ["a:1", "b:1"], "h2": ["a:1", "b:1"], "h3": ["b:1"], "h4": []}
    assert hosts.plan_copies(needs) == [(["a:1", "b:1"], ["h1", "h2"]), (["b:1"], ["h3"])]
    assert hosts.plan_copies({"h1": [], "h2": []}) == []
