# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a rotated admin password recreates no container, and what rotate_passwords.yml rotates.

A container is recreated when its spec hash changes (plugins/module_utils/_container_spec.py: the
normalised spec plus the image id). These tests read the roles' own YAML: no password, admin or
other, may reach a container's spec or the content-addressed Redis configuration directory, so
a phase5 run after a rotation finds every spec unchanged (changed=0). The admin passwords reach
the containers only as files (POSTGRES_PASSWORD_FILE, NEO4J_AUTH_PATH, users.acl) in mounted
directories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ADMINS = {"redis": "redis_admin_user", "postgresql": "postgresql_admin_user", "neo4j": "neo4j"}


def _tasks(role: str) -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text())


def _task(role: str, key: str) -> dict[str, Any]:
    found = [t for t in _tasks(role) if key in t]
    assert len(found) == 1, (role, key)
    return found[0]


def _vars(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())


@pytest.mark.parametrize("role", sorted(ADMINS))
def test_no_secret_reaches_a_container_spec(role: str) -> None:
    task = _task(role, "aiops.mlstack.unit_reconcile")
    spec = json.dumps([task["aiops.mlstack.unit_reconcile"]["container"], task["vars"]])
    assert "secrets_values" not in spec and "secrets_previous" not in spec and "password }}" not in spec
    assert "spec" in task["aiops.mlstack.unit_reconcile"]["container"]


def test_the_redis_configuration_directory_hashes_no_password() -> None:
    variables = _vars("redis")
    assert list(variables["__redis_files"]) == ["redis.conf"], "users.acl stays out of the hashed files"
    assert "__redis_files | to_json" in variables["__redis_config_dir"]
    assert "__redis_acl" not in variables["__redis_config_dir"]
    conf = (ROOT / "roles/redis/templates/redis.conf.j2").read_text()
    assert "secrets_" not in conf, "redis.conf would change with a password: a new config dir, a recreate"


@pytest.mark.parametrize("role", sorted(ADMINS))
def test_each_database_role_rotates_its_admin(role: str) -> None:
    include = next(t for t in _tasks(role) if t.get("ansible.builtin.include_role", {}).get("name")
                   == "aiops.mlstack.secrets")
    rotating = str(include["vars"]["secrets_rotation_names"])
    assert ADMINS[role] in rotating


def _step(play: dict[str, Any]) -> tuple[str | None, str, str]:
    """A play of rotate_passwords.yml as (its rotation stage, the role it runs, for which units)."""
    if "ansible.builtin.import_playbook" in play:
        return ("import", str(play["ansible.builtin.import_playbook"]), "")
    task = play["tasks"][0]
    return (play.get("vars", {}).get("mlstack_rotation"), task["ansible.builtin.include_role"]["name"],
            str(task["when"]))


def test_the_neo4j_clients_hold_both_passwords_while_the_server_changes() -> None:
    steps = [_step(p) for p in yaml.safe_load((ROOT / "playbooks/rotate_passwords.yml").read_text())]
    neo4j, clients = "mlstack_unit_role | default('') == 'neo4j'", ("import", "rotate_neo4j_clients.yml", "")
    generated = steps.index(("begin", "aiops.mlstack.secrets", neo4j))
    # The new password on file first, the clients' files with both, then the server, the end, the files again.
    by_role = "aiops.mlstack.{{ mlstack_unit_role }}"
    assert steps[generated + 1:generated + 5] == [clients, ("begin", by_role, neo4j), ("end", by_role, neo4j), clients]
    [play] = yaml.safe_load((ROOT / "playbooks/rotate_neo4j_clients.yml").read_text())
    include = play["tasks"][0]["ansible.builtin.include_role"]
    assert (include["name"], include["tasks_from"]) == ("aiops.mlstack.ml_service", "credentials")
    # The files with both passwords: the wiring's rotation files, which the reconcile task's secret
    # files hold with the former value too while it is on file (plugin_utils/_secrets.py).
    [publish] = yaml.safe_load((ROOT / "roles/ml_service/tasks/credentials.yml").read_text())
    secret_files = publish["aiops.mlstack.unit_reconcile"]["secret_files"]
    assert secret_files["rotation_files"] == "{{ __ml_service_wiring.rotation_files }}"
    assert "container" not in publish["aiops.mlstack.unit_reconcile"], "the publish step restarts nothing"
    # The PostgreSQL stage still leads straight to the services' files.
    pg_begin = steps.index(("begin", by_role, "mlstack_unit_role | default('') == 'postgresql'"))
    assert steps[pg_begin + 1] == (None, "aiops.mlstack.ml_service", "mlstack_unit_role | default('') == 'ml_service'")


@pytest.mark.parametrize("role", ["ml_service", "monitoring", "neo4j", "postgresql", "redis"])
def test_the_reconcile_task_gets_its_arguments_and_vars_only_private_names(role: str) -> None:
    # An argument indented under vars: is silently a variable (Redis's prune once was).
    from ansible_collections.aiops.mlstack.plugins.action.unit_reconcile import ARGUMENT_SPEC

    task = _task(role, "aiops.mlstack.unit_reconcile")
    assert set(task["aiops.mlstack.unit_reconcile"]) <= set(ARGUMENT_SPEC)
    assert all(name.startswith(f"__{role}_") for name in task.get("vars", {})), task.get("vars", {}).keys()


def test_redis_prunes_the_configuration_directories_no_container_mounts() -> None:
    prune = _task("redis", "aiops.mlstack.unit_reconcile")["aiops.mlstack.unit_reconcile"]["prune"]
    assert prune["keep"] == ["{{ __redis_config_dir }}"]
    assert prune["containers"] == ["{{ __redis_unit.container }}", "{{ __redis_unit.previous }}"]
