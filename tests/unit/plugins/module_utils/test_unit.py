"""The resolved unit: every fallback applied once, every name derived once (module_utils/_unit.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _unit as u

HOME = "/home/op"
CHAT = {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8007,
        "mlstack_host_port": 8007, "mlstack_critical": True, "mlstack_depends_on": ["redis", "postgresql", "llm"],
        "mlstack_optional": ["reasoning", "memory"]}
PEERS: dict[str, dict[str, Any]] = {
    "redis": {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis"},
    "postgresql": {"mlstack_unit_kind": "database", "mlstack_unit_role": "postgresql", "mlstack_port": 5433},
    "llm": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8080},
    "memory": {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8001},
}


def _resolve(entry: dict[str, Any], settings: dict[str, Any] | None = None, name: str = "chat",
             peers: dict[str, dict[str, Any]] | None = None) -> u.ResolvedUnit:
    return u.resolve(name, entry, settings or {}, peers=PEERS if peers is None else peers, home=HOME)


@pytest.mark.parametrize(("settings", "field", "expected"), [
    ({}, "docker_url", "unix:///var/run/docker.sock"),
    ({"mlstack_docker_url": "ssh://ops@gpu1"}, "docker_url", "ssh://ops@gpu1"),
    ({}, "secrets_dir", "/home/op/.local/share/mlstack/secrets"),
    ({"mlstack_secrets_dir": "/srv/secrets"}, "secrets_dir", "/srv/secrets"),
    ({}, "runtime_dir", "/var/lib/mlstack"),
    ({"mlstack_runtime_dir": "/opt/ml/"}, "runtime_dir", "/opt/ml"),
    ({}, "backend_network", "mlstack_backend"),
    ({"mlstack_backend_network": "be"}, "backend_network", "be"),
    ({}, "frontend_network", "mlstack_frontend"),
    ({}, "recreate", "if_changed"),
    ({"mlstack_recreate": "always"}, "recreate", "always"),
    ({}, "image_source", "auto"),
    ({"mlstack_image_source": "build"}, "image_source", "build"),
    ({}, "vault_password_file", ""),
    ({}, "strict", False),
    ({"mlstack_strict": "true"}, "strict", True),
    # An empty value (an unset -e) falls back as an absent one does.
    ({"mlstack_docker_url": ""}, "docker_url", "unix:///var/run/docker.sock"),
])
def test_settings_fall_back_once(settings: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(u.resolve_settings(settings, HOME), field) == expected


@pytest.mark.parametrize(("field", "expected"), [
    ("container", "mlstack-chat"),
    ("candidate", "mlstack-chat_next"),
    ("previous", "mlstack-chat_previous"),
    ("replaced", "mlstack-chat_replaced"),
    ("holder", "mlstack-chat_port"),
    ("runtime_dir", "/var/lib/mlstack/chat"),
    ("data_volume", None),
    ("docker_host", "localhost"),
    ("port", 8007),
    ("host_port", 8007),
    ("port_holder", True),
    ("critical", True),
    ("update_order", "start-first"),
    ("awaited", ("mlstack-redis", "mlstack-postgresql", "mlstack-llm")),
    ("health_path", "/health"),
    ("health_timeout", 300),
    ("start_period", 120),
    ("shm_size", None),
    ("catalog_version", "1"),
])
def test_a_published_service_is_resolved_with_every_name_and_default(field: str, expected: Any) -> None:
    assert getattr(_resolve(CHAT), field) == expected


@pytest.mark.parametrize(("name", "entry", "field", "expected"), [
    # A database keeps its data on its own volume and is always replaced stop-first.
    ("redis", PEERS["redis"], "data_volume", "mlstack-redis-data"),
    ("redis", {**PEERS["redis"], "mlstack_update_order": "start-first"}, "update_order", "stop-first"),
    # Its role's port when the entry names none.
    ("redis", PEERS["redis"], "port", 6379),
    ("postgresql", PEERS["postgresql"], "port", 5433),
    ("neo4j", {"mlstack_unit_kind": "database", "mlstack_unit_role": "neo4j"}, "port", 7687),
    # A published database binds its own port: no holder, on the backend network only.
    ("redis", {**PEERS["redis"], "mlstack_host_port": 6379}, "port_holder", False),
    ("redis", {**PEERS["redis"], "mlstack_host_port": 6379}, "networks",
     ({"name": "mlstack_backend", "aliases": ["redis"]},)),
    # Critical only when the inventory says so (preflight and verify assumed so already).
    ("redis", PEERS["redis"], "critical", False),
    ("redis", {**PEERS["redis"], "mlstack_critical": "yes"}, "critical", True),
    ("memory", {**PEERS["memory"], "mlstack_data_volume": "mlstack-memory-data", "mlstack_update_order": "stop-first"},
     "update_order", "stop-first"),
    ("memory", {**PEERS["memory"], "mlstack_data_volume": "mlstack-memory-data"}, "data_volume", "mlstack-memory-data"),
    # A service publishing through its own container (no holder), or not published at all.
    ("chat", {**CHAT, "mlstack_port_holder": False}, "port_holder", False),
    ("chat", {**CHAT, "mlstack_host_port": None}, "port_holder", False),
    ("chat", {**CHAT, "mlstack_host_port": None}, "networks", ({"name": "mlstack_backend", "aliases": ["chat"]},)),
    ("chat", {**CHAT, "mlstack_host_port": "0"}, "host_port", None),
    ("chat", {**CHAT, "mlstack_host_port": "8017"}, "host_port", 8017),
    # Kept as given: a spec's hash sees 2 and 2.0 apart.
    ("llm", {**PEERS["llm"], "mlstack_cpus": 2.0}, "cpus", 2.0),
    ("llm", {**PEERS["llm"], "mlstack_cpus": "2"}, "cpus", 2),
    ("llm", {**PEERS["llm"], "mlstack_memory": "2g"}, "memory", "2g"),
    ("llm", {**PEERS["llm"], "mlstack_shm_size": "1g"}, "shm_size", "1g"),
    ("llm", {**PEERS["llm"], "mlstack_start_period": 30}, "start_period", 30),
    ("llm", {**PEERS["llm"], "mlstack_docker_host": "gpu1"}, "docker_host", "gpu1"),
    ("llm", {**PEERS["llm"], "mlstack_latency_bound_ms": "250"}, "latency_bound_ms", 250),
    ("llm", {**PEERS["llm"], "mlstack_security_exceptions": {"jwt": "internal"}}, "security_exceptions",
     {"jwt": "internal"}),
    ("llm", {**PEERS["llm"], "mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": "1024",
             "mlstack_gpu_env": {"L": "-1"}}, "gpu",
     {"mode": "preferred", "memory_mb": 1024, "device": None, "devices": None, "env": {"L": "-1"}}),
    ("llm", {**PEERS["llm"], "mlstack_gpus": [0]}, "gpu",
     {"mode": "none", "memory_mb": 0, "device": None, "devices": ["0"], "env": {}}),
    ("llm", {**PEERS["llm"], "mlstack_image_recipe": "llm", "mlstack_image_recipe_gpu": "llm-cuda"}, "image",
     {"ref": "", "ref_gpu": "", "recipe": "llm", "recipe_gpu": "llm-cuda"}),
    ("perception", {"mlstack_unit_kind": "service"}, "role", None),
])
def test_fallbacks_and_derived_values(name: str, entry: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(_resolve(entry, name=name), field) == expected


def test_a_published_service_joins_the_frontend_network_first() -> None:
    networks = _resolve(CHAT, {"mlstack_backend_network": "be", "mlstack_frontend_network": "fe"}).networks
    assert networks == ({"name": "fe", "aliases": ["chat"]}, {"name": "be", "aliases": ["chat"]})


@pytest.mark.parametrize(("dep", "expected"), [
    ("redis", {"container": "mlstack-redis", "host": "redis", "port": 6379, "awaited": True,
               "secret_file": "redis_password", "secret": ("redis", "chat")}),
    ("postgresql", {"container": "mlstack-postgresql", "port": 5433, "awaited": True,
                    "secret_file": "postgres_password", "secret": ("postgresql", "chat")}),
    ("llm", {"container": "mlstack-llm", "port": 8080, "awaited": True, "secret_file": None, "secret": None}),
    # Optional and in the catalog: wired, never awaited.
    ("memory", {"container": "mlstack-memory", "port": 8001, "awaited": False, "secret": None}),
])
def test_each_dependency_has_its_address_and_credentials(dep: str, expected: dict[str, Any]) -> None:
    found = {d.unit: d for d in _resolve(CHAT).depends_on}
    assert {key: getattr(found[dep], key) for key in expected} == expected


def test_an_optional_unit_outside_the_catalog_is_not_wired() -> None:
    assert [d.unit for d in _resolve(CHAT).depends_on] == ["redis", "postgresql", "llm", "memory"]


@pytest.mark.parametrize(("role", "file", "name"), [
    ("redis", "redis_password", "voice_interaction"),
    ("postgresql", "postgres_password", "voice_interaction"),
    ("neo4j", "neo4j_password", "neo4j"),
    ("qdrant", "qdrant_api_key", "api_key"),
])
def test_the_credentials_reference_follows_the_databases_role(role: str, file: str, name: str) -> None:
    entry = {"mlstack_unit_kind": "service", "mlstack_depends_on": ["db"]}
    dep = _resolve(entry, name="voice-interaction",
                   peers={"db": {"mlstack_unit_kind": "database", "mlstack_unit_role": role}}).depends_on[0]
    assert (dep.secret_file, dep.secret) == (file, ("db", name))


def test_every_unit_runs_with_the_one_hardening_baseline() -> None:
    resolved = _resolve(CHAT)
    assert resolved.hardening == u.HARDENING
    resolved.hardening["cap_drop"].append("NET_RAW")
    assert u.HARDENING["cap_drop"] == ["ALL"], "a unit's copy cannot change the baseline"


def test_the_resolved_unit_is_plain_data_for_jinja() -> None:
    data = _resolve(CHAT).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert isinstance(data["networks"], list) and isinstance(data["awaited"], list)
    assert data["depends_on"][0]["secret"] == ["redis", "chat"]


def test_the_settings_are_given_once_for_many_units() -> None:
    settings = u.resolve_settings({"mlstack_docker_url": "tcp://h:2375"}, HOME)
    assert _resolve(CHAT, settings=settings).docker_url == "tcp://h:2375"  # type: ignore[arg-type]


# --- several Docker hosts (docs/scale-out.md) ----------------------------------------------
HOSTS: dict[str, dict[str, Any]] = {
    "gpu1": {"mlstack_docker_url": "unix:///run/gpu1/docker.sock"},
    "db1": {"mlstack_host_address": "10.0.0.21"},
}
ON_GPU1 = {**CHAT, "mlstack_docker_host": "gpu1", "mlstack_host_port": None}
PEERS_ON_DB1 = {**PEERS, "redis": {**PEERS["redis"], "mlstack_docker_host": "db1"},
                "postgresql": {**PEERS["postgresql"], "mlstack_docker_host": "db1"},
                "llm": {**PEERS["llm"], "mlstack_docker_host": "gpu1"},
                "memory": {**PEERS["memory"], "mlstack_docker_host": "gpu1"}}


def _placed(entry: dict[str, Any], name: str = "chat", peers: dict[str, dict[str, Any]] | None = None,
            remote_clients: tuple[str, ...] = ()) -> u.ResolvedUnit:
    return u.resolve(name, entry, {}, peers=PEERS_ON_DB1 if peers is None else peers, home=HOME, hosts=HOSTS,
                     remote_clients=remote_clients)


def test_the_engine_is_the_docker_hosts_own() -> None:
    unit = _placed(ON_GPU1)
    assert (unit.docker_host, unit.docker_url, unit.host_address) == ("gpu1", "unix:///run/gpu1/docker.sock", None)
    # A host without its own URL: the collection-wide one.
    assert _placed({**ON_GPU1, "mlstack_docker_host": "db1"}).docker_url == "unix:///var/run/docker.sock"


def test_a_tcp_engine_carries_its_hosts_tls_client_files_in_its_url() -> None:
    tls = {"ca_path": "/tls/ca.pem", "cert_path": "/tls/cert.pem", "key_path": "/tls/key.pem"}
    hosts = {**HOSTS, "gpu1": {"mlstack_docker_url": "tcp://10.0.0.11:2376", "mlstack_docker_tls": tls}}
    unit = u.resolve("chat", ON_GPU1, {}, peers=PEERS_ON_DB1, home=HOME, hosts=hosts)
    assert unit.docker_url == "tcp://10.0.0.11:2376?tlscacert=%2Ftls%2Fca.pem&tlscert=%2Ftls%2Fcert.pem&tlskey=%2Ftls%2Fkey.pem"
    # The host plays' settings (images, networks) reach the same engine.
    settings = u.resolve_settings(hosts["gpu1"], HOME)
    assert settings.docker_url == unit.docker_url


def test_a_dependency_on_another_host_is_reached_on_that_hosts_address() -> None:
    deps = {d.unit: d for d in _placed(ON_GPU1).depends_on}
    pg = deps["postgresql"]
    assert (pg.host, pg.port, pg.cross_host) == ("10.0.0.21", 5433, True)
    # Redis: its TLS port, not the plaintext one its same-host clients use.
    assert (deps["redis"].host, deps["redis"].port, deps["redis"].docker_host) == ("10.0.0.21", 6380, "db1")
    # The same host: by name on the internal network, as before.
    assert (deps["llm"].host, deps["llm"].port, deps["llm"].cross_host) == ("llm", 8080, False)


def test_only_same_host_dependencies_are_awaited_by_container() -> None:
    unit = _placed(ON_GPU1)
    assert unit.awaited == ("mlstack-llm",)
    assert [r["unit"] for r in unit.remote_awaited] == ["redis", "postgresql"]
    assert unit.remote_awaited[0] == {"unit": "redis", "docker_host": "db1", "address": "10.0.0.21", "port": 6380}


def test_a_unit_that_crosses_hosts_gets_a_route_out() -> None:
    assert [n["name"] for n in _placed(ON_GPU1).networks] == ["mlstack_frontend", "mlstack_backend"]
    same_host = {k: {**v, "mlstack_docker_host": "gpu1"} for k, v in PEERS_ON_DB1.items()}
    assert [n["name"] for n in _placed(ON_GPU1, peers=same_host).networks] == ["mlstack_backend"]


@pytest.mark.parametrize(("role", "port", "remote"), [("postgresql", 5432, 5432), ("redis", 6380, 6380)])
def test_a_database_other_hosts_reach_serves_tls_on_its_hosts_address(role: str, port: int, remote: int) -> None:
    entry = {"mlstack_unit_kind": "database", "mlstack_unit_role": role, "mlstack_docker_host": "db1"}
    unit = _placed(entry, name=role, peers={}, remote_clients=("chat",))
    assert unit.tls == {"port": port, "remote_port": remote, "names": [role, f"mlstack-{role}", "10.0.0.21"],
                        "ca": ["tls", "ca.pem"], "cert": [role, "tls_cert.pem"], "key": [role, "tls_key.pem"]}
    assert unit.host_address == "10.0.0.21" and unit.remote_clients == ("chat",)
    # Without clients on other hosts: no TLS, the backend network only, as before.
    alone = _placed(entry, name=role, peers={})
    assert alone.tls is None and [n["name"] for n in alone.networks] == ["mlstack_backend"]


def test_a_database_role_that_cannot_cross_hosts_gets_no_tls() -> None:
    entry = {"mlstack_unit_kind": "database", "mlstack_unit_role": "neo4j", "mlstack_docker_host": "db1"}
    assert _placed(entry, name="neo4j", peers={}, remote_clients=("memory",)).tls is None


def test_mlstack_remote_port_moves_the_published_port() -> None:
    entry = {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis", "mlstack_docker_host": "db1",
             "mlstack_remote_port": 16380}
    assert _placed(entry, name="redis", peers={}, remote_clients=("chat",)).tls["remote_port"] == 16380
    peers = {**PEERS_ON_DB1, "redis": {**PEERS_ON_DB1["redis"], "mlstack_remote_port": 16380}}
    assert {d.unit: d.port for d in _placed(ON_GPU1, peers=peers).depends_on}["redis"] == 16380
