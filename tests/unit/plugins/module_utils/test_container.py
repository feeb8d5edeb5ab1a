"""The container task end to end: plan, dependencies, critical and non-critical failures, the port holder."""

from __future__ import annotations

import json
from typing import Any

import pytest
from container_fake import SPEC, FakeEngine, deploy

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr


def test_first_run_creates_and_waits_for_health() -> None:
    engine = FakeEngine()
    result = deploy(engine)
    assert result["action"] == "create"
    assert result["changed"] is True
    assert result["health"]["state"] == "healthy"
    assert result["addresses"] == {"backend": "172.18.0.9"}
    assert engine.calls == [("create", "mlstack-redis"), ("start", "mlstack-redis")]


def test_second_run_with_same_spec_changes_nothing() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.calls.clear()
    result = deploy(engine)
    assert (result["action"], result["changed"]) == ("none", False)
    assert engine.calls == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"env": {}}, "env"),  # removing a declared variable recreates (USER-ASKS 2)
        ({"command": ["redis-server", "/x.conf"]}, "command"),
        ({"read_only": True}, "read_only"),
    ],
)
def test_changed_spec_recreates_once_and_names_the_field(change: dict[str, Any], field: str) -> None:
    engine = FakeEngine()
    deploy(engine)
    result = deploy(engine, {**SPEC, **change})
    assert result["action"] == "recreate"
    assert field in result["changed_fields"]
    assert field in result["reason"]
    # The replaced container is kept, stopped, as the restorable previous state.
    previous = engine.containers["mlstack-redis_previous"]
    assert previous["State"]["Running"] is False and previous["Config"]["Labels"] != \
        engine.containers["mlstack-redis"]["Config"]["Labels"]
    assert result["last_good"]["slot"] == "current" and result["last_good"]["state"] == "healthy"
    assert deploy(engine, {**SPEC, **change})["action"] == "none"


def test_new_image_id_recreates_even_with_the_same_spec() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.images["img:1"] = "sha256:bbb"
    result = deploy(engine)
    assert (result["action"], result["reason"]) == ("recreate", "image changed")


def test_stopped_container_is_started_not_recreated() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.containers["mlstack-redis"]["State"]["Running"] = False
    engine.calls.clear()
    result = deploy(engine)
    assert result["action"] == "start"
    assert engine.calls == [("start", "mlstack-redis")]


def test_check_mode_plans_but_touches_nothing() -> None:
    engine = FakeEngine()
    result = deploy(engine, check_mode=True)
    assert (result["action"], result["changed"]) == ("create", True)
    assert engine.calls == [] and engine.containers == {}


def test_foreign_container_is_recreated_unless_adopted() -> None:
    engine = FakeEngine()
    engine.containers["mlstack-redis"] = {
        "Config": {"Image": "img:1", "Labels": {}},
        "State": {"Running": True, "Health": {"Status": "healthy", "Log": []}},
        "NetworkSettings": {"Networks": {}},
    }
    adopted = deploy(engine, recreate="never")
    assert adopted["action"] == "none" and "drift not corrected" in adopted["reason"]
    assert deploy(engine)["action"] == "recreate"


def test_missing_image_names_the_unit_and_the_fix() -> None:
    with pytest.raises(ctr.SpecError, match="unit redis.*aiops.mlstack.images"):
        deploy(FakeEngine(), {**SPEC, "image": "absent:1"})


def test_env_values_never_reach_labels_or_diff() -> None:
    engine = FakeEngine()
    result = deploy(engine, {**SPEC, "env": {"TOKEN": "s3cr3t-value"}})
    labels = engine.containers["mlstack-redis"]["Config"]["Labels"]
    assert "s3cr3t-value" not in json.dumps(labels)
    assert "s3cr3t-value" not in json.dumps(result["diff"])


def test_unknown_update_order_is_refused() -> None:
    with pytest.raises(ctr.SpecError, match="update_order"):
        deploy(FakeEngine(), update_order="blue-green")


def test_non_critical_unit_without_last_good_state_is_stopped_and_degraded() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "bad:1": "sha256:bad"})
    engine.health_script["bad:1"] = ["unhealthy"]
    result = deploy(engine, {**SPEC, "image": "bad:1"}, critical=False)
    assert result["degraded"] is True and result["action"] == "stop"
    assert "no last good state" in result["failure"]["kept"]
    assert engine.containers["mlstack-redis"]["State"]["Running"] is False  # kept for its logs


def test_non_critical_unit_keeps_its_last_good_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:2"] = ["unhealthy"]
    result = deploy(engine, {**SPEC, "image": "img:2"}, critical=False)
    assert result["degraded"] is True and result["rolled_back"] is True
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"
    observed = ctr.evidence_observed(result)
    assert observed["degraded"] is True and observed["last_good"]["image_id"] == "sha256:aaa"


def test_critical_unit_failure_still_raises() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "bad:1": "sha256:bad"})
    engine.health_script["bad:1"] = ["unhealthy"]
    with pytest.raises(ctr.HealthError):
        deploy(engine, {**SPEC, "image": "bad:1"}, critical=True)


def test_non_critical_unit_whose_dependency_failed_is_not_started() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "bad:1": "sha256:bad"})
    engine.create({"name": "mlstack-postgresql", "image": "bad:1", "labels": {}}, [])
    engine.start("mlstack-postgresql")
    engine.health_script["bad:1"] = ["unhealthy"]
    result = ctr.run(engine, ctr.Request(name="mlstack-memory", unit="memory", spec=SPEC,
                                         depends_on=["mlstack-postgresql"], timeout=0.3, critical=False))
    assert result["degraded"] is True and result["action"] == "none"
    assert "mlstack-memory" not in engine.containers
    assert result["failure"]["dependency"] == "mlstack-postgresql"


def test_a_network_detached_behind_the_modules_back_is_repaired_by_a_recreate() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.containers["mlstack-redis"]["NetworkSettings"]["Networks"] = {}
    result = deploy(engine)
    assert result["action"] == "recreate" and "['backend'] no longer attached" in result["reason"]
    assert "backend" in engine.containers["mlstack-redis"]["NetworkSettings"]["Networks"]
    assert deploy(engine)["action"] == "none"


PUBLISHED = {**SPEC, "ports": {"6379/tcp": ["127.0.0.1", 6379]},
             "networks": [{"name": "frontend", "aliases": ["redis"]}, {"name": "backend", "aliases": ["redis"]}]}


def held(engine: FakeEngine, spec: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return deploy(engine, PUBLISHED if spec is None else spec, port_holder_image="holder:1", **kw)


def test_a_port_holder_binds_the_host_port_and_the_unit_binds_none() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh"})
    result = held(engine)
    assert result["port_holder"]["action"] == "create" and result["port_holder"]["health"] == "healthy"
    unit = next(k for k in engine.created if k["name"] == "mlstack-redis")
    holder = next(k for k in engine.created if k["name"] == "mlstack-redis_port")
    assert "ports" not in unit
    assert holder["ports"] == {"6379/tcp": ("127.0.0.1", 6379)} and holder["network"] == "frontend"
    assert holder["environment"] == {"MLSTACK_FORWARD": "6379>redis:6379"}
    assert holder["user"] == "65534:65534" and holder["read_only"] and holder["cap_drop"] == ["ALL"]
    assert "networking_config" not in holder  # the holder takes no alias: only the unit answers by name
    engine.calls.clear()
    assert held(engine)["port_holder"]["action"] == "none" and engine.calls == []


def test_with_a_port_holder_a_published_unit_is_upgraded_by_promotion_and_the_holder_stays() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb", "holder:1": "sha256:hhh"})
    held(engine, update_order="start-first")
    holder_before = engine.containers["mlstack-redis_port"]
    result = held(engine, {**PUBLISHED, "image": "img:2"}, update_order="start-first")
    assert result["switched"] == "candidate promoted" and result["not_serving_s"] == 0.0
    assert result["port_holder"]["action"] == "none"
    assert engine.containers["mlstack-redis_port"] == holder_before


def test_the_first_run_with_a_holder_moves_the_port_from_the_unit_to_the_holder() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh"})
    deploy(engine, PUBLISHED, update_order="start-first")  # before: the unit binds the port itself
    engine.calls.clear()
    result = held(engine, update_order="start-first")
    order = [c for c in engine.calls if c[0] in ("stop_and_rename", "create")]
    # The old container (holding the port) stops before the holder is created.
    assert order[-2:] == [("stop_and_rename", "mlstack-redis"), ("create", "mlstack-redis_port")]
    assert result["switched"] == "candidate promoted" and result["port_holder"]["action"] == "create"


def test_a_failing_holder_never_stops_a_non_critical_unit_and_fails_a_critical_one() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh"})
    engine.health_script["holder:1"] = ["unhealthy"]
    result = held(engine, critical=False)
    assert result["degraded"] is True and "port holder mlstack-redis_port" in result["failure"]["message"]
    assert engine.containers["mlstack-redis"]["State"]["Running"]
    engine = FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh"})
    engine.health_script["holder:1"] = ["unhealthy"]
    with pytest.raises(ctr.HealthError, match="serves, but its port holder"):
        held(engine)


def test_a_holder_needs_an_alias_to_reach_the_unit_by() -> None:
    with pytest.raises(ctr.SpecError, match="network alias"):
        held(FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh"}),
             {**PUBLISHED, "networks": [{"name": "frontend", "aliases": []}]})


def test_absent_removes_the_port_holder_too() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh"})
    held(engine)
    result = deploy(engine, state="absent")
    assert "mlstack-redis_port" in result["removed_containers"] and engine.containers == {}


def test_a_slow_serving_container_is_waited_for_on_a_no_op_run_and_never_stopped() -> None:
    """A busy host: the serving unit's probes time out, then it answers again. Not a failure."""
    engine = FakeEngine()
    deploy(engine)
    engine.health_script["img:1"] = ["unhealthy-slow", "unhealthy-slow", "healthy"]
    result = deploy(engine, critical=False)
    assert result["action"] == "none" and result.get("degraded") is None
    assert result["health"]["state"] == "healthy" and result["health"]["slow"] is True
    assert engine.containers["mlstack-redis"]["State"]["Running"] is True


def test_a_down_serving_container_still_fails_at_once_on_a_no_op_run() -> None:
    engine = FakeEngine()
    deploy(engine)
    # The plan reads the first status, the health gate the next ones.
    engine.health_script["img:1"] = ["unhealthy", "unhealthy", "healthy"]
    with pytest.raises(ctr.HealthError, match="is unhealthy after"):
        deploy(engine, timeout=30)


def test_a_slow_container_past_the_limit_fails_and_says_it_was_slow() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.health_script["img:1"] = ["unhealthy-slow"]
    with pytest.raises(ctr.HealthError, match="probes time out"):
        deploy(engine, timeout=0.3)


def test_check_mode_never_waits_for_a_slow_serving_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:1"] = ["unhealthy-slow"]
    result = deploy(engine, {**SPEC, "image": "img:2"}, check_mode=True, timeout=30)
    assert result["action"] == "recreate" and result["last_good"] is None


def test_check_mode_returns_the_plan_without_waiting_for_dependencies() -> None:
    """A dry run must neither block on nor fail for another unit: its dependency may not exist yet."""
    engine = FakeEngine()
    result = deploy(engine, depends_on=["mlstack-postgresql"], timeout=0.3, dependency_timeout=0.3, check_mode=True)
    assert (result["action"], result["changed"], result["dependencies"]) == ("create", True, {})
    assert engine.calls == []
    with pytest.raises(ctr.HealthError, match="dependency mlstack-postgresql was not created"):
        deploy(engine, depends_on=["mlstack-postgresql"], timeout=0.3, dependency_timeout=0.3)


def test_absent_removes_the_holders_previous_container_too() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "holder:1": "sha256:hhh", "holder:2": "sha256:hh2"})
    held(engine)
    deploy(engine, PUBLISHED, port_holder_image="holder:2")
    assert "mlstack-redis_port_previous" in engine.containers  # a new holder image keeps the old holder
    result = deploy(engine, state="absent")
    assert "mlstack-redis_port_previous" in result["removed_containers"] and engine.containers == {}


def test_a_serving_unit_whose_dependency_failed_keeps_serving() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "bad:1": "sha256:bad"})
    ctr.run(engine, ctr.Request(name="mlstack-memory", unit="memory", spec=SPEC, timeout=5, critical=False))
    assert engine.containers["mlstack-memory"]["State"]["Running"] is True
    # Its dependency is on a host that is lost: the wait fails, the unit degrades, nothing is stopped.
    lost = [{"unit": "postgresql", "docker_host": "h1", "address": "127.0.0.1", "port": 9}]
    result = ctr.run(engine, ctr.Request(name="mlstack-memory", unit="memory", spec=SPEC, timeout=0.3,
                                         remote_depends_on=lost, critical=False))
    assert result["degraded"] is True and result["action"] == "none" and result["changed"] is False
    assert result["failure"]["kept"] == "serving as it was: a dependency failed"
    assert "on Docker host h1" in result["failure"]["message"]
    assert engine.containers["mlstack-memory"]["State"]["Running"] is True
