"""A unit's kept states: restoring the previous container, removing every container of a unit."""

from __future__ import annotations

import pytest
from container_fake import SPEC, FakeEngine, deploy

from ansible_collections.aiops.mlstack.plugins.module_utils import _container_restore as restore


def test_restore_previous_swaps_and_a_second_restore_rolls_forward() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    listed = restore.states(engine, "mlstack-redis")
    assert [(s["slot"], s["image"]) for s in listed] == [("current", "img:2"), ("previous", "img:1")]
    result = restore.restore_previous(engine, "mlstack-redis", unit="redis")
    assert result["restored"]["image"] == "img:1" and result["health"]["state"] == "healthy"
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:2"
    restore.restore_previous(engine, "mlstack-redis", unit="redis")
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"


def test_restore_without_a_host_port_starts_the_kept_container_before_the_serving_one_stops() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"}, update_order="start-first")
    engine.calls.clear()
    result = restore.restore_previous(engine, "mlstack-redis", unit="redis")
    assert result["not_serving_s"] == 0.0 and result["switched"].startswith("restored beside")
    assert engine.calls[:2] == [("start", "mlstack-redis_previous"), ("stop_and_rename", "mlstack-redis")]


def test_restore_with_a_host_port_stops_the_serving_container_first() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    ports = {"6379/tcp": ["127.0.0.1", 6379]}
    deploy(engine, {**SPEC, "ports": ports})
    deploy(engine, {**SPEC, "image": "img:2", "ports": ports})
    engine.calls.clear()
    result = restore.restore_previous(engine, "mlstack-redis", unit="redis")
    assert "switched" not in result and engine.calls[0] == ("stop_and_rename", "mlstack-redis")
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"


def test_restore_previous_that_fails_puts_the_replaced_container_back() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    engine.health_script["img:1"] = ["unhealthy"]
    engine.calls.clear()
    with pytest.raises(restore.RolledBack) as err:
        restore.restore_previous(engine, "mlstack-redis", unit="redis")
    assert err.value.result["not_serving_s"] == 0.0
    assert ("stop_and_rename", "mlstack-redis") not in engine.calls
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"
    assert engine.containers["mlstack-redis"]["State"]["Running"] is True
    assert engine.containers["mlstack-redis_previous"]["State"]["Running"] is False
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:1"


def test_restore_without_previous_state_names_the_unit() -> None:
    engine = FakeEngine()
    deploy(engine)
    with pytest.raises(restore.SpecError, match="unit redis has no previous state"):
        restore.restore_previous(engine, "mlstack-redis", unit="redis")


def test_restore_in_check_mode_touches_nothing() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    engine.calls.clear()
    result = restore.restore_previous(engine, "mlstack-redis", unit="redis", check_mode=True)
    assert result["changed"] is True and engine.calls == []


@pytest.mark.parametrize("purge", [False, True])
def test_absent_removes_every_container_of_the_unit_and_volumes_only_with_purge(purge: bool) -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine, {**SPEC, "volumes": ["mlstack-redis-data:/data"]})
    deploy(engine, {**SPEC, "image": "img:2", "volumes": ["mlstack-redis-data:/data"]})
    result = deploy(engine, {}, state="absent", purge=purge)
    assert result["removed_containers"] == ["mlstack-redis", "mlstack-redis_previous"]
    assert engine.containers == {}
    assert result["removed_volumes"] == (["mlstack-redis-data"] if purge else [])
    assert result["kept_volumes"] == ([] if purge else ["mlstack-redis-data"])
    assert (("remove_volume", "mlstack-redis-data") in engine.calls) is purge
