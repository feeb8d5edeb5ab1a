"""The production example inventory (two Docker hosts) passes preflight, and fails it as it should.

Nothing here connects to a host: the inventory is loaded by Ansible's own InventoryManager
and VariableManager, and preflight (playbooks/preflight.yml) runs on localhost only, reading
the units' and the Docker hosts' vars from hostvars.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import catalog_of, docker_hosts_of, validate

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "inventories" / "production"
ROLES = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir() and not p.name.startswith("_")}
GPU1, DB1 = "gpu1.example.com", "db1.example.com"
# What "postgresql moved to a Docker host without mlstack_host_address" must say.
NO_ADDRESS = ("unit {client}: mlstack_depends_on names postgresql on Docker host db2.example.com, which has no "
              "mlstack_host_address: set mlstack_host_address on db2.example.com to its private address, or place "
              "{client} on db2.example.com")


class Loaded:
    """An inventory as Ansible loads it: its hosts, groups and (untemplated) vars."""

    def __init__(self, source: Path) -> None:
        self.loader = DataLoader()
        self.inventory = InventoryManager(loader=self.loader, sources=[str(source)])
        self.variables = VariableManager(loader=self.loader, inventory=self.inventory)
        # Registers itself as the variable manager's hostvars, as a playbook run does.
        HostVars(inventory=self.inventory, variable_manager=self.variables, loader=self.loader)
        self.hostvars = {h.name: self.variables.get_vars(host=h, include_hostvars=False)
                         for h in self.inventory.get_hosts()}

    def group(self, name: str) -> list[str]:
        return sorted(h.name for h in self.inventory.get_hosts(name))

    def templated(self, host: str, var: str) -> Any:
        """A host's var, templated as a task on that host sees it (hostvars of the others included)."""
        variables = self.variables.get_vars(host=self.inventory.get_host(host))
        return Templar(loader=self.loader, variables=variables).template(variables[var])

    def errors(self) -> list[str]:
        units = catalog_of(self.hostvars, self.group("mlstack_units"))
        return validate(units, docker_hosts_of(self.hostvars, self.group("docker_hosts")), ROLES)


def copy_with(tmp_path: Path, change: Any) -> Path:
    """A copy of the production inventory whose hosts.yml ``change(data)`` edited."""
    dest = tmp_path / "production"
    shutil.copytree(PRODUCTION, dest)
    data = yaml.safe_load((dest / "hosts.yml").read_text())
    change(data)
    (dest / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def move_postgresql_to_db2(data: dict[str, Any]) -> None:
    """A third Docker host, without mlstack_host_address, now runs postgresql."""
    data["all"]["children"]["docker_hosts"]["hosts"]["db2.example.com"] = {
        "mlstack_docker_url": "unix:///var/run/docker.sock"}
    databases = data["all"]["children"]["mlstack_units"]["children"]["mlstack_databases"]["hosts"]
    databases["postgresql"]["mlstack_docker_host"] = "db2.example.com"


@pytest.fixture(scope="module")
def production() -> Loaded:
    return Loaded(PRODUCTION)


def test_the_production_example_spreads_its_units_over_two_docker_hosts(production: Loaded) -> None:
    assert production.group("docker_hosts") == [DB1, GPU1]
    where = {u: production.hostvars[u]["mlstack_docker_host"] for u in production.group("mlstack_units")}
    assert sorted(u for u, h in where.items() if h == DB1) == ["postgresql", "redis"]
    assert {"llm", "voice-interaction", "chat", "reasoning", "perception", "memory"} <= {
        u for u, h in where.items() if h == GPU1}
    assert set(where.values()) == {GPU1, DB1}
    # db1 publishes what gpu1's units depend on, on its private address; gpu1's engine URLs are local sockets.
    assert production.hostvars[DB1]["mlstack_host_address"] == "10.0.0.21"
    for host in (GPU1, DB1):
        assert production.hostvars[host].get("mlstack_docker_url", "unix:///var/run/docker.sock") == \
            "unix:///var/run/docker.sock"
    # No unit carries an engine URL of its own any more (it was ssh://, which needed paramiko).
    assert not [u for u in where if "ssh://" in str(production.hostvars[u].get("mlstack_docker_url"))]


def test_the_production_example_passes_preflight(production: Loaded) -> None:
    assert production.errors() == []


def test_each_unit_takes_the_connection_of_its_docker_host(tmp_path: Path) -> None:
    def distinct_hosts(data: dict[str, Any]) -> None:
        hosts = data["all"]["children"]["docker_hosts"]["hosts"]
        hosts[DB1].update(ansible_host="10.0.0.21", ansible_port=2222, ansible_user="dbadmin",
                          ansible_python_interpreter="/opt/mlstack/venv/bin/python")
        hosts[GPU1].update(ansible_host="10.0.0.11", ansible_ssh_common_args="-o ProxyJump=bastion")

    loaded = Loaded(copy_with(tmp_path, distinct_hosts))
    redis = ("ansible_host", "ansible_port", "ansible_user", "ansible_python_interpreter", "ansible_ssh_common_args",
             "ansible_become", "ansible_connection")
    assert [loaded.templated("redis", v) for v in redis] == \
        ["10.0.0.21", 2222, "dbadmin", "/opt/mlstack/venv/bin/python", "", True, "ssh"]
    chat = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_common_args")
    assert [loaded.templated("chat", v) for v in chat] == ["10.0.0.11", 22, "deploy", "-o ProxyJump=bastion"]
    assert loaded.errors() == []


def test_postgresql_on_a_host_without_an_address_fails_preflight(tmp_path: Path) -> None:
    errors = Loaded(copy_with(tmp_path, move_postgresql_to_db2)).errors()
    clients = ["chat", "learning", "memory", "postgres-exporter", "sequential-thinking"]
    assert errors == [NO_ADDRESS.format(client=c) for c in clients]


def run_preflight(inventory: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "MLSTACK_EVIDENCE_DIR": str(tmp_path / "ev"),
           "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".ansible" / "collections"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
                           "playbooks/preflight.yml"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_playbook_preflight_passes_the_production_example_and_refuses_the_broken_copy(tmp_path: Path) -> None:
    # The action plugin itself, as phase5 runs it: it reads the Docker hosts' vars from hostvars.
    good = run_preflight(PRODUCTION, tmp_path)
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    assert "ok: [localhost]" in good.stdout
    bad = run_preflight(copy_with(tmp_path, move_postgresql_to_db2), tmp_path)
    assert bad.returncode != 0
    assert "preflight found 5 problem(s), nothing was changed" in bad.stdout
    assert f"- {NO_ADDRESS.format(client='chat')}\n" in bad.stdout, bad.stdout[-3000:]
