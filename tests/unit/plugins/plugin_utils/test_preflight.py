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
