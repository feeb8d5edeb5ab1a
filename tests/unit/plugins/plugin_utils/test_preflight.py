"""Catalog validation: every message names the unit, the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import clients_of, validate


def unit(kind: str = "service", port: int = 8000, deps: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"mlstack_unit_kind": kind, "mlstack_port": port, "mlstack_docker_host": "localhost",
            "mlstack_depends_on": deps or [], **extra}


GOOD = {"redis": unit("database", 6379, mlstack_unit_role="redis"),
        "chat": unit(port=8007, deps=["redis"], mlstack_host_port=8007)}


def test_a_good_catalog_passes() -> None:
    assert validate(GOOD, {"localhost"}) == []


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ({**GOOD, "chat": unit(deps=["redis", "qdrant"])},
         "unit chat: mlstack_depends_on names unknown unit 'qdrant': add 'qdrant' to the inventory or remove it"),
        ({**GOOD, "Chat_2": unit()}, "unit 'Chat_2': inventory host name is not a valid unit name"),
        ({**GOOD, "voice": unit(port=8006, mlstack_host_port=8007)},
         "unit voice: mlstack_host_port=8007 is already published by unit chat on localhost"),
        ({**GOOD, "x": unit(port=70000)}, "unit x: mlstack_port=70000 is out of range"),
        ({**GOOD, "x": unit(port="http")}, "unit x: mlstack_port='http' is not a port number"),
        ({**GOOD, "x": {**unit(), "mlstack_docker_host": "gpu1"}},
         "unit x: mlstack_docker_host='gpu1' is not in group docker_hosts"),
        ({**GOOD, "x": unit(kind="thing")}, "unit x: mlstack_unit_kind='thing': set one of"),
        ({**GOOD, "x": unit(mlstack_latency_bound_ms="fast")},
         "unit x: mlstack_latency_bound_ms='fast' is not a latency: set a number of milliseconds above 0"),
        ({**GOOD, "x": unit(mlstack_latency_bound_ms=0)}, "unit x: mlstack_latency_bound_ms=0 is not a latency"),
        ({**GOOD, "x": unit(deps=["x"])}, "unit x: mlstack_depends_on names the unit itself"),
        ({"aa": unit(deps=["bb"]), "bb": unit(port=1, deps=["aa"])}, "forms a cycle aa -> bb -> aa"),
        ({}, "the inventory has no units"),
        ({**GOOD, "x": unit(mlstack_data_volume="bad/name", mlstack_update_order="stop-first")},
         "unit x: mlstack_data_volume='bad/name' is not a Docker volume name"),
        ({**GOOD, "x": unit(mlstack_data_volume="mlstack-redis-data", mlstack_update_order="stop-first")},
         "unit x: mlstack_data_volume='mlstack-redis-data' is already the data volume of unit redis on localhost"),
        ({**GOOD, "x": unit(mlstack_data_volume="mlstack-x-data")},
         "unit x: has mlstack_data_volume='mlstack-x-data' but is replaced start-first"),
        ({**GOOD, "x": unit(mlstack_gpu="required")}, "unit x: mlstack_gpu=required needs mlstack_gpu_memory_mb"),
        ({**GOOD, "x": unit(mlstack_gpu="yes")}, "unit x: mlstack_gpu='yes': set one of"),
        ({**GOOD, "chat": unit(deps=["redis", "reasoning"], mlstack_critical=True),
          "reasoning": unit(port=8005, mlstack_critical=False)},
         "unit chat: is critical but mlstack_depends_on names non-critical unit 'reasoning': move 'reasoning' to "
         "mlstack_optional"),
        ({**GOOD, "x": unit(mlstack_privileged=True)}, "unit x: mlstack_privileged=true is refused"),
        ({**GOOD, "x": unit(mlstack_security_exceptions={"root": "legacy"})},
         "unit x: mlstack_security_exceptions names unknown rule 'root'"),
        ({**GOOD, "x": unit(mlstack_security_exceptions={"jwt": ""})},
         "unit x: mlstack_security_exceptions.jwt has no reason"),
        ({**GOOD, "x": unit(mlstack_security_exceptions={"jwt": "internal"}, mlstack_host_port=9000)},
         "unit x: waives jwt but publishes mlstack_host_port=9000"),
        ({**GOOD, "chat": unit(deps=["redis"], mlstack_redis_acl=["get", "eval"])},
         "unit chat: mlstack_redis_acl: 'eval' is in @scripting, never granted to a service user: remove it"),
        ({**GOOD, "chat": unit(deps=["redis"], mlstack_redis_acl="everything")},
         "unit chat: mlstack_redis_acl='everything' is not a profile: use one of"),
        ({**GOOD, "x": unit(mlstack_redis_acl="sessions")},
         "unit x: mlstack_redis_acl is set but mlstack_depends_on names no Redis unit: add the Redis unit to "
         "mlstack_depends_on or remove mlstack_redis_acl"),
        ({**GOOD, "x": unit(mlstack_update_order="blue-green")},
         "unit x: mlstack_update_order='blue-green': set one of ['start-first', 'stop-first']"),
    ],
)
def test_bad_catalog_is_refused_with_a_precise_message(units: dict[str, Any], expected: str) -> None:
    errors = validate(units, {"localhost"})
    assert any(expected in e for e in errors), errors


def test_a_redis_permission_on_a_redis_client_passes() -> None:
    units = {**GOOD, "voice": unit(port=8006, deps=["redis"], mlstack_redis_acl="sessions"),
             "chat": unit(port=8007, deps=["redis"], mlstack_redis_acl=["ping", "get", "@list", "blpop"])}
    assert validate(units, {"localhost"}) == []


def test_unpublished_ports_may_repeat_across_units() -> None:
    units = {"redis": unit("database", 6379), "redis-cache": unit("database", 6379)}
    assert validate(units, {"localhost"}) == []


def test_same_host_port_on_different_docker_hosts_is_fine() -> None:
    units = {"aa": unit(mlstack_host_port=80), "bb": {**unit(mlstack_host_port=80), "mlstack_docker_host": "h2"}}
    assert validate(units, {"localhost", "h2"}) == []


def test_clients_are_the_services_that_depend_on_the_database() -> None:
    units = {**GOOD, "voice-interaction": unit(deps=["redis"]), "learning": unit(deps=["postgresql"]),
             "postgresql": unit("database", 5432)}
    assert clients_of(units, "redis") == ["chat", "voice-interaction"]
    assert clients_of(units, "postgresql") == ["learning"]


def test_unknown_unit_role_names_the_roles_that_exist() -> None:
    errors = validate({**GOOD, "extra": unit(mlstack_unit_role="qdrantt")}, {"localhost"}, {"redis", "ml_service"})
    assert errors == ["unit extra: mlstack_unit_role='qdrantt' is not a role of this collection: use one of "
                      "['ml_service', 'redis'], or remove it to keep the unit in the catalog undeployed"]


def test_non_critical_units_may_depend_on_each_other_and_on_critical_ones() -> None:
    units = {**GOOD, "memory": unit(port=8001, deps=["redis"], mlstack_critical=False),
             "coordination": unit(port=8000, deps=["memory"], mlstack_critical=False)}
    assert validate(units, {"localhost"}) == []


def test_each_unit_may_own_a_data_volume_replaced_stop_first() -> None:
    units = {**GOOD, "memory": unit(mlstack_data_volume="mlstack-memory-data", mlstack_update_order="stop-first"),
             "other": unit(port=1, mlstack_data_volume="mlstack-other-data", mlstack_update_order="stop-first")}
    assert validate(units, {"localhost"}) == []
    shared = {**units, "other": {**units["other"], "mlstack_data_volume": "mlstack-memory-data"}}
    assert any("already the data volume of unit memory" in e for e in validate(shared, {"localhost"}))


def test_a_declared_latency_bound_passes() -> None:
    assert validate({**GOOD, "xy": unit(port=8001, mlstack_latency_bound_ms=250)}, {"localhost"}) == []


# Several Docker hosts: the hosts' own vars (engine URL, TLS files, address) and the
# dependencies that cross from one host to another.

def two_hosts(db1: dict[str, Any] | None = None, gpu1: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The Docker hosts' vars: gpu1 runs the services, db1 the databases on 10.0.0.21."""
    return {"gpu1": {**(gpu1 or {})}, "db1": {"mlstack_host_address": "10.0.0.21", **(db1 or {})}}


def on(host: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "mlstack_docker_host": host}


TWO_HOSTS = {
    "redis": on("db1", unit("database", 6379, mlstack_unit_role="redis", mlstack_critical=True)),
    "postgresql": on("db1", unit("database", 5432, mlstack_unit_role="postgresql", mlstack_critical=True)),
    "llm": on("gpu1", unit(port=8080, mlstack_unit_role="ml_service", mlstack_critical=True)),
    "reasoning": on("gpu1", unit(port=8005, deps=["redis"], mlstack_unit_role="ml_service")),
    "chat": on("gpu1", unit(port=8007, deps=["redis", "postgresql", "llm"], mlstack_unit_role="ml_service",
                            mlstack_critical=True, mlstack_optional=["reasoning"], mlstack_host_port=8007)),
}


def test_a_valid_two_host_catalog_passes() -> None:
    assert validate(TWO_HOSTS, two_hosts(), {"redis", "postgresql", "ml_service"}) == []
    # Every engine URL the collection speaks, each with what it needs.
    hosts = two_hosts(gpu1={"mlstack_docker_url": "unix:///run/docker.sock"},
                      db1={"mlstack_docker_url": "ssh://deploy@db1"})
    assert validate(TWO_HOSTS, hosts, importable=lambda module: True) == []
    anywhere = two_hosts(db1={"mlstack_host_address": "0.0.0.0", "mlstack_host_address_any": True})
    assert validate(TWO_HOSTS, anywhere) == []


def test_a_names_only_host_list_still_validates_a_one_host_catalog() -> None:
    # Callers that know only the names: each host then sets none of the multi-host vars.
    assert validate(GOOD, ["localhost"]) == []
    assert validate(GOOD, {"localhost": None}) == []


def test_a_cross_host_dependency_without_the_host_address_is_refused() -> None:
    errors = validate(TWO_HOSTS, two_hosts(db1={"mlstack_host_address": None}))
    # In the order the unit names its dependencies.
    assert errors == [
        "unit chat: mlstack_depends_on names redis on Docker host db1, which has no mlstack_host_address: "
        "set mlstack_host_address on db1 to its private address, or place chat on db1",
        "unit chat: mlstack_depends_on names postgresql on Docker host db1, which has no mlstack_host_address: "
        "set mlstack_host_address on db1 to its private address, or place chat on db1",
        "unit reasoning: mlstack_depends_on names redis on Docker host db1, which has no mlstack_host_address: "
        "set mlstack_host_address on db1 to its private address, or place reasoning on db1",
    ]
    # The same units on one host need no address.
    one_host = {name: on("gpu1", entry) for name, entry in TWO_HOSTS.items()}
    assert validate(one_host, two_hosts(db1={"mlstack_host_address": None})) == []


def test_an_optional_unit_on_another_host_needs_the_address_too() -> None:
    units = {**TWO_HOSTS, "chat": {**TWO_HOSTS["chat"], "mlstack_depends_on": ["llm"],
                                   "mlstack_optional": ["redis", "ghost"]}}
    assert validate(units, two_hosts(db1={"mlstack_host_address": ""})) == [
        "docker host db1: mlstack_host_address is empty: set the host's private IP address or name (e.g. 10.0.0.21), "
        "or remove it",
        "unit chat: mlstack_optional names redis on Docker host db1, which has no mlstack_host_address: "
        "set mlstack_host_address on db1 to its private address, or place chat on db1",
        "unit reasoning: mlstack_depends_on names redis on Docker host db1, which has no mlstack_host_address: "
        "set mlstack_host_address on db1 to its private address, or place reasoning on db1",
    ]


def test_a_loopback_host_address_cannot_serve_another_host() -> None:
    errors = validate(TWO_HOSTS, two_hosts(db1={"mlstack_host_address": "127.0.0.1"}))
    assert "unit chat: mlstack_depends_on names postgresql on Docker host db1, whose " \
           "mlstack_host_address='127.0.0.1' is a loopback address gpu1 cannot reach: set mlstack_host_address " \
           "on db1 to its private address, or place chat on db1" in errors


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "[::]"])
def test_a_host_address_on_every_interface_needs_to_be_asked_for(address: str) -> None:
    errors = validate(TWO_HOSTS, two_hosts(db1={"mlstack_host_address": address}))
    assert errors == [
        f"docker host db1: mlstack_host_address={address!r} would publish the ports of its units on every interface "
        "of the host, public ones included: set the host's private address (e.g. 10.0.0.21), or set "
        "mlstack_host_address_any: true to publish on all interfaces on purpose"]
    assert validate(TWO_HOSTS, two_hosts(db1={"mlstack_host_address": address,
                                              "mlstack_host_address_any": "false"})) == errors
    assert validate(TWO_HOSTS, two_hosts(db1={"mlstack_host_address": address,
                                              "mlstack_host_address_any": "true"})) == []


@pytest.mark.parametrize(("dep", "role", "what"), [
    ("neo4j", "neo4j", "role neo4j"),
    ("qdrant", "qdrant", "role qdrant"),
    ("perception", "ml_service", "role ml_service"),
    ("helper", None, "no mlstack_unit_role"),
])
def test_a_cross_host_dependency_on_a_role_that_does_not_cross_hosts_is_refused(
        dep: str, role: str | None, what: str) -> None:
    extra = {"mlstack_unit_role": role} if role else {}
    units = {**TWO_HOSTS, dep: on("db1", unit("database" if role in ("neo4j", "qdrant") else "service", 7000, **extra)),
             "memory": on("gpu1", unit(port=8001, deps=[dep], mlstack_unit_role="ml_service"))}
    assert validate(units, two_hosts()) == [
        f"unit memory: mlstack_depends_on names {dep} ({what}) on Docker host db1, but memory runs on gpu1 and only "
        f"postgresql and redis units are reached across Docker hosts in this release: place memory and {dep} on one "
        f"host (mlstack_docker_host: db1 on memory, or gpu1 on {dep})"]
    # Beside its client it is fine.
    assert validate({**units, dep: on("gpu1", units[dep])}, two_hosts()) == []


def test_a_cross_host_http_dependency_in_mlstack_optional_is_refused() -> None:
    units = {**TWO_HOSTS, "reasoning": on("db1", TWO_HOSTS["reasoning"])}
    errors = validate(units, two_hosts())
    assert errors == [
        "unit chat: mlstack_optional names reasoning (role ml_service) on Docker host db1, but chat runs on gpu1 and "
        "only postgresql and redis units are reached across Docker hosts in this release: place chat and reasoning "
        "on one host (mlstack_docker_host: db1 on chat, or gpu1 on reasoning)"]


TLS_FILES = {"ca_path": "/etc/mlstack/docker-tls/ca.pem", "cert_path": "/etc/mlstack/docker-tls/cert.pem",
             "key_path": "/etc/mlstack/docker-tls/key.pem"}


def test_a_tcp_engine_with_its_tls_client_files_passes() -> None:
    hosts = two_hosts(gpu1={"mlstack_docker_url": "tcp://gpu1.example.com:2376", "mlstack_docker_tls": TLS_FILES})
    assert validate(TWO_HOSTS, hosts) == []


def test_a_tcp_engine_without_tls_is_refused() -> None:
    assert validate(TWO_HOSTS, two_hosts(gpu1={"mlstack_docker_url": "tcp://gpu1.example.com:2375"})) == [
        "docker host gpu1: mlstack_docker_url='tcp://gpu1.example.com:2375' is a tcp:// engine without TLS: set "
        "mlstack_docker_tls {ca_path, cert_path, key_path} (the engine's CA, a client certificate and its key, as "
        "files on the host's Ansible connection) for an engine run with --tlsverify, or use the default "
        "unix:///var/run/docker.sock, reached over Ansible's SSH connection"]


@pytest.mark.parametrize(("tls", "error"), [
    ({**TLS_FILES, "key_path": "key.pem"},
     "mlstack_docker_tls.key_path must be an absolute path on the Docker host's Ansible connection (where the "
     "tasks run), got 'key.pem': set it to the PEM file (e.g. /etc/mlstack/docker-tls/key.pem)"),
    ({"ca_path": TLS_FILES["ca_path"], "cert_path": TLS_FILES["cert_path"]},
     "mlstack_docker_tls.key_path must be an absolute path on the Docker host's Ansible connection (where the "
     "tasks run), got None: set it to the PEM file (e.g. /etc/mlstack/docker-tls/key.pem)"),
    ({**TLS_FILES, "client_key": "/k.pem"}, "mlstack_docker_tls has unknown keys client_key: use ca_path, "
     "cert_path, key_path, verify"),
    ("/etc/mlstack/docker-tls", "mlstack_docker_tls must be a mapping with ca_path, cert_path, key_path, verify, "
     "got str"),
])
def test_bad_tls_client_files_are_refused_naming_the_key(tls: object, error: str) -> None:
    hosts = two_hosts(gpu1={"mlstack_docker_url": "tcp://gpu1.example.com:2376", "mlstack_docker_tls": tls})
    assert validate(TWO_HOSTS, hosts) == [f"docker host gpu1: {error}"]


def test_tls_client_files_on_a_socket_engine_are_refused() -> None:
    hosts = two_hosts(gpu1={"mlstack_docker_url": "unix:///var/run/docker.sock", "mlstack_docker_tls": TLS_FILES})
    assert validate(TWO_HOSTS, hosts) == [
        "docker host gpu1: mlstack_docker_tls is set but mlstack_docker_url='unix:///var/run/docker.sock' is not a "
        "tcp:// engine: remove mlstack_docker_tls, or point mlstack_docker_url at the engine's TLS port "
        "(tcp://host:2376)"]


def test_an_ssh_engine_url_needs_paramiko_on_the_controller() -> None:
    hosts = two_hosts(db1={"mlstack_docker_url": "ssh://deploy@db1.example.com"})
    asked: list[str] = []

    def missing(module: str) -> bool:
        asked.append(module)
        return False

    assert validate(TWO_HOSTS, hosts, importable=missing) == [
        "docker host db1: mlstack_docker_url='ssh://deploy@db1.example.com' needs paramiko on the controller (the "
        "Docker SDK's ssh:// transport), which cannot be imported: pip install paramiko (it is in requirements.txt), "
        "or use the default unix:///var/run/docker.sock, which the units' tasks reach on their Docker host over "
        "Ansible's SSH connection"]
    assert asked == ["paramiko"]
    # The socket on the host (the default) and TLS over TCP need no paramiko.
    asked.clear()
    assert validate(TWO_HOSTS, two_hosts(db1={"mlstack_docker_url": "unix:///var/run/docker.sock"}),
                    importable=missing) == []
    assert asked == []


def test_the_real_import_check_finds_what_is_installed_and_not_what_is_not() -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import _importable

    assert _importable("json") is True
    assert _importable("mlstack_no_such_module") is False


def test_an_engine_url_of_an_unknown_scheme_is_refused() -> None:
    assert validate(TWO_HOSTS, two_hosts(gpu1={"mlstack_docker_url": "http://gpu1:2375"})) == [
        "docker host gpu1: mlstack_docker_url='http://gpu1:2375' is not an engine URL this collection speaks: use "
        "unix:///var/run/docker.sock (the default: the host's own socket, reached through Ansible's SSH connection), "
        "ssh://user@host, or tcp://host:2376 with mlstack_docker_tls"]


def test_an_unknown_docker_host_is_still_refused_with_host_vars() -> None:
    units = {**TWO_HOSTS, "chat": on("gpu9", TWO_HOSTS["chat"])}
    assert validate(units, two_hosts()) == [
        "unit chat: mlstack_docker_host='gpu9' is not in group docker_hosts (['db1', 'gpu1']): add that machine to "
        "docker_hosts or point the unit at one of them"]


def test_docker_hosts_of_reads_only_the_host_fields() -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import docker_hosts_of

    hostvars = {"db1": {"mlstack_host_address": "10.0.0.21", "ansible_host": "db1", "mlstack_docker_url": None}}
    assert docker_hosts_of(hostvars, ["db1", "gone"]) == {
        "db1": {"mlstack_docker_url": None, "mlstack_docker_tls": None, "mlstack_host_address": "10.0.0.21",
                "mlstack_host_address_any": None},
        "gone": {"mlstack_docker_url": None, "mlstack_docker_tls": None, "mlstack_host_address": None,
                 "mlstack_host_address_any": None}}


def test_the_pinned_requirements_let_the_docker_sdk_speak_ssh() -> None:
    # requirements.txt pins paramiko: without it the Docker SDK refuses every ssh:// URL with
    # "Install paramiko package to enable ssh:// support" before it tries to connect.
    import docker
    import paramiko

    from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import _importable

    assert _importable("paramiko")
    # Port 1 of the loopback address: nothing listens, so paramiko's own connect is what fails.
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        docker.APIClient(base_url="ssh://nobody@127.0.0.1:1", version="1.41", timeout=3)
