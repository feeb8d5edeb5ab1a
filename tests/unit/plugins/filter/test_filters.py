"""Catalog and recipe filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.filter.catalog import credentials, unit_clients
from ansible_collections.aiops.mlstack.plugins.filter.tree_hash import tree_hash
from ansible_collections.aiops.mlstack.plugins.filter.unit import unit, unit_settings

HOSTVARS = {
    "voice-interaction": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis"],
                          "mlstack_redis_acl": "sessions"},
    "chat": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis", "postgresql"]},
    "redis": {"mlstack_unit_kind": "database", "mlstack_depends_on": []},
}


def test_unit_clients_gives_each_service_its_own_identifiers() -> None:
    clients = unit_clients(HOSTVARS, ["voice-interaction", "chat"], "redis")
    assert clients == [
        {"unit": "chat", "name": "chat", "prefix": "chat:", "database": "chat", "redis_acl": None, "member_of": []},
        {"unit": "voice-interaction", "name": "voice_interaction", "prefix": "voice-interaction:",
         "database": "voice_interaction", "redis_acl": "sessions", "member_of": []},
    ]


def test_credentials_add_passwords_and_keep_only_named_fields() -> None:
    clients = unit_clients(HOSTVARS, ["chat"], "postgresql")
    assert credentials(clients, {"chat": "pw"}, ["database"]) == [{"name": "chat", "password": "pw",
                                                                   "database": "chat"}]
    with pytest.raises(ValueError, match="no secret generated for client"):
        credentials(clients, {}, ["database"])


def test_tree_hash_changes_with_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = tree_hash(str(tmp_path))
    assert first == tree_hash(str(tmp_path))
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    second = tree_hash(str(tmp_path))
    (tmp_path / "Dockerfile").rename(tmp_path / "Containerfile")
    assert len({first, second, tree_hash(str(tmp_path))}) == 3


def test_tree_hash_of_missing_recipe_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        tree_hash(str(tmp_path / "nope"))


def test_service_wiring_gives_each_dependency_its_block() -> None:
    from ansible_collections.aiops.mlstack.plugins.filter.service import service_wiring

    hostvars = {
        "redis": {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis", "mlstack_port": 6379},
        "postgresql": {"mlstack_unit_kind": "database", "mlstack_unit_role": "postgresql", "mlstack_port": 5432},
        "llm": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8080},
        "chat": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8007,
                 "mlstack_depends_on": ["redis", "postgresql", "llm"], "mlstack_optional": ["reasoning", "memory"]},
        "memory": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8001},
    }
    wiring = service_wiring(unit("chat", hostvars))
    env = wiring["env"]
    assert env["REDIS_USER"] == "chat" and env["REDIS_PREFIX"] == "chat:" and env["REDIS_HOST"] == "redis"
    assert env["POSTGRES_DB"] == "chat" and env["POSTGRES_PORT"] == "5432"
    assert env["LLM_URL"] == "http://llm:8080"
    assert env["MEMORY_URL"] == "http://memory:8001"
    assert "REASONING_URL" not in env  # optional and absent from the catalog: not wired
    assert wiring["secrets"] == {"redis_password": ["redis", "chat"], "postgres_password": ["postgresql", "chat"]}
    assert wiring["depends_on"] == ["mlstack-redis", "mlstack-postgresql", "mlstack-llm"]
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in env)


def test_tree_hash_ignores_build_leftovers(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    before = tree_hash(str(tmp_path))
    for leftover in ("build/lib/x.py", "src/pkg.egg-info/PKG-INFO", "__pycache__/a.pyc", ".venv/bin/python",
                     "host-ca.crt"):
        (tmp_path / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / leftover).write_text("noise")
    assert tree_hash(str(tmp_path)) == before


def test_service_wiring_of_the_graph_and_vector_databases() -> None:
    from ansible_collections.aiops.mlstack.plugins.filter.service import service_wiring

    hostvars = {
        "neo4j": {"mlstack_unit_kind": "database", "mlstack_unit_role": "neo4j", "mlstack_port": 7687},
        "qdrant": {"mlstack_unit_kind": "database", "mlstack_unit_role": "qdrant", "mlstack_port": 6333},
        "memory": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8001,
                   "mlstack_depends_on": ["neo4j", "qdrant"]},
    }
    wiring = service_wiring(unit("memory", hostvars))
    env = wiring["env"]
    assert env["NEO4J_URI"] == "bolt://neo4j:7687" and env["NEO4J_USER"] == "neo4j"
    assert env["NEO4J_PASSWORD_FILE"] == "/run/secrets/neo4j_password"
    assert env["QDRANT_URL"] == "http://qdrant:6333"
    assert env["QDRANT_API_KEY_FILE"] == "/run/secrets/qdrant_api_key"
    assert wiring["secrets"] == {"neo4j_password": ["neo4j", "neo4j"], "qdrant_api_key": ["qdrant", "api_key"]}
    # Neo4j's one password per user changes live: its file carries the former one too in a rotation.
    assert wiring["rotation_files"] == ["neo4j_password"]


def test_tree_hash_of_a_maven_recipe_ignores_the_fetched_jars(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.jar").write_text("jar")
    without_pom = tree_hash(str(tmp_path))
    (tmp_path / "lib" / "a.jar").write_text("other jar")
    assert tree_hash(str(tmp_path)) != without_pom, "lib/ is content when no pom.xml fetches it"
    (tmp_path / "pom.xml").write_text("<project/>")
    with_pom = tree_hash(str(tmp_path))
    (tmp_path / "lib" / "a.jar").write_text("fetched again")
    assert tree_hash(str(tmp_path)) == with_pom
    (tmp_path / "pom.xml").write_text("<project><version>2</version></project>")
    assert tree_hash(str(tmp_path)) != with_pom


def test_the_unit_filter_reads_the_entry_its_peers_and_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    hostvars = {
        "redis": {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis", "mlstack_docker_url": "tcp://h:1"},
        "localhost": {"mlstack_docker_url": "tcp://h:1"},
        "chat": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8007,
                 "mlstack_docker_url": "tcp://h:1", "mlstack_depends_on": ["redis"],
                 "mlstack_optional": ["localhost", "absent"]},
    }
    chat = unit("chat", hostvars)
    assert chat["container"] == "mlstack-chat" and chat["docker_url"] == "tcp://h:1"
    assert chat["secrets_dir"] == "/home/op/.local/share/mlstack/secrets"
    # Only units are peers: a Docker host or a name outside the inventory is not wired.
    assert [d["unit"] for d in chat["depends_on"]] == ["redis"] and chat["depends_on"][0]["port"] == 6379
    assert unit_settings("localhost", hostvars)["docker_url"] == "tcp://h:1"


def test_the_unit_filter_names_an_unknown_host() -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="'nope' is not an inventory host"):
        unit("nope", {})


def _two_hosts() -> dict[str, dict[str, Any]]:
    return {
        "h1": {"mlstack_host_address": "10.77.0.11", "mlstack_docker_url": "unix:///run/h1.sock"},
        "h2": {"mlstack_host_address": "10.77.0.12"},
        "redis": {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis", "mlstack_docker_host": "h1"},
        "postgresql": {"mlstack_unit_kind": "database", "mlstack_unit_role": "postgresql", "mlstack_docker_host": "h1"},
        "learning": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8002,
                     "mlstack_docker_host": "h2", "mlstack_depends_on": ["postgresql", "redis"]},
        "thinking": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8004,
                     "mlstack_docker_host": "h1", "mlstack_depends_on": ["postgresql"]},
    }


def test_service_wiring_across_hosts_is_tls_to_the_hosts_address() -> None:
    from ansible_collections.aiops.mlstack.plugins.filter.service import service_wiring

    wiring = service_wiring(unit("learning", _two_hosts()))
    env = wiring["env"]
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("10.77.0.11", "5432")
    assert env["POSTGRES_SSLMODE"] == "verify-full"
    assert env["POSTGRES_SSLROOTCERT"] == env["REDIS_TLS_CA_FILE"] == "/run/secrets/mlstack_ca.pem"
    assert (env["REDIS_HOST"], env["REDIS_PORT"], env["REDIS_TLS"]) == ("10.77.0.11", "6380", "1")
    assert wiring["secrets"]["mlstack_ca.pem"] == ["tls", "ca.pem"]
    # Nothing to wait for on its own engine: the databases are awaited on h1's address.
    assert wiring["depends_on"] == []
    # A client on the databases' own host: plaintext on the internal network, as before.
    same = service_wiring(unit("thinking", _two_hosts()))
    assert same["env"]["POSTGRES_HOST"] == "postgresql" and "POSTGRES_SSLMODE" not in same["env"]
    assert "mlstack_ca.pem" not in same["secrets"]


def test_a_database_knows_its_clients_on_other_hosts_and_serves_them_tls() -> None:
    from ansible_collections.aiops.mlstack.plugins.filter.tls import tls_servers

    hostvars = _two_hosts()
    pg = unit("postgresql", hostvars)
    assert pg["remote_clients"] == ["learning"]
    assert pg["tls"]["names"] == ["postgresql", "mlstack-postgresql", "10.77.0.11"]
    assert pg["docker_url"] == "unix:///run/h1.sock"
    assert tls_servers(["redis", "postgresql", "learning", "thinking"], hostvars)["servers"] == [
        {"unit": "redis", "names": ["redis", "mlstack-redis", "10.77.0.11"]},
        {"unit": "postgresql", "names": ["postgresql", "mlstack-postgresql", "10.77.0.11"]}]
    # All on one host: no TLS, no CA.
    one = {k: {**v, "mlstack_docker_host": "h1"} for k, v in hostvars.items() if k not in ("h1", "h2")}
    assert tls_servers(list(one), {**one, "h1": hostvars["h1"]})["servers"] == []
