"""The update strategies (start-first, stop-first): a failed upgrade leaves the last good container serving."""

from __future__ import annotations

from typing import Any

import pytest
from container_fake import SPEC, FakeEngine, deploy

from ansible_collections.aiops.mlstack.plugins.module_utils import _container_spec as cspec
from ansible_collections.aiops.mlstack.plugins.module_utils import _container_update as update


def test_unhealthy_replacement_is_rolled_back_to_the_previous_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:2"] = ["starting", "unhealthy"]
    with pytest.raises(update.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2"})
    result = err.value.result
    assert result["rolled_back"] is True
    assert result["failure"]["state"] == "unhealthy"
    assert result["failure"]["health_log"] == ["probe said unhealthy"]
    assert result["health"]["state"] == "healthy"
    # The previous container serves again under its own name; the broken one is gone.
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"
    assert engine.containers["mlstack-redis"]["State"]["Running"] is True
    assert set(engine.containers) == {"mlstack-redis"}


def test_start_first_candidate_that_fails_never_stops_the_serving_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine, {**SPEC, "ports": {"6379/tcp": ["127.0.0.1", 6379]}})
    engine.calls.clear()
    engine.health_script["img:2"] = ["starting", "unhealthy"]
    with pytest.raises(update.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2", "ports": {"6379/tcp": ["127.0.0.1", 6379]}},
               update_order="start-first")
    result = err.value.result
    assert result["rolled_back"] is True and result["not_serving_s"] == 0.0
    assert result["failure"]["state"] == "unhealthy"
    assert result["last_good"]["image_id"] == "sha256:aaa"
    # The candidate took no host port and no alias, and the serving container was never stopped.
    candidate = engine.created[-1]
    assert candidate["name"] == "mlstack-redis_next"
    assert "ports" not in candidate and "networking_config" not in candidate
    assert ("stop_and_rename", "mlstack-redis") not in engine.calls
    assert set(engine.containers) == {"mlstack-redis"}
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"


def test_start_first_without_a_host_port_promotes_the_candidate_before_the_old_one_stops() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine, {**SPEC, "restart_policy": "unless-stopped"})
    engine.calls.clear()
    result = deploy(engine, {**SPEC, "image": "img:2", "restart_policy": "unless-stopped"},
                    update_order="start-first")
    assert result["switched"] == "candidate promoted" and result["not_serving_s"] == 0.0
    assert [call[0] for call in engine.calls].count("create") == 1  # the candidate is the final container
    # The candidate answers under the unit's aliases before the serving container stops.
    order = [call[0] for call in engine.calls]
    assert order.index("take_aliases") < order.index("stop_and_rename")
    served = engine.containers["mlstack-redis"]
    assert served["Config"]["Image"] == "img:2" and served["State"]["Running"]
    assert served["NetworkSettings"]["Networks"]["backend"]["Aliases"] == ["redis"]
    assert served["HostConfig"]["RestartPolicy"] == {"Name": "unless-stopped"}
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:1"
    assert set(engine.containers) == {"mlstack-redis", "mlstack-redis_previous"}
    # The promoted container carries the new spec's hash: the next run has nothing to do.
    assert deploy(engine, {**SPEC, "image": "img:2", "restart_policy": "unless-stopped"},
                  update_order="start-first")["action"] == "none"


def test_a_candidate_that_cannot_take_the_aliases_is_removed_and_the_old_one_serves() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)

    def refuse(name: str, networks: list[dict[str, Any]]) -> None:
        raise RuntimeError("network backend not found")

    engine.take_aliases = refuse  # type: ignore[method-assign]
    with pytest.raises(update.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2"}, update_order="start-first")
    assert "network backend not found" in err.value.result["failure"]["message"]
    assert set(engine.containers) == {"mlstack-redis"}
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"
    assert engine.containers["mlstack-redis"]["State"]["Running"]


def test_start_first_with_a_host_port_switches_in_a_new_container_and_keeps_the_old_one() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    ports = {"6379/tcp": ["127.0.0.1", 6379]}
    deploy(engine, {**SPEC, "ports": ports})
    result = deploy(engine, {**SPEC, "image": "img:2", "ports": ports}, update_order="start-first")
    assert result["action"] == "recreate" and result["candidate"]["state"] == "healthy"
    assert [call[0] for call in engine.calls].count("create") == 3  # v1, candidate, final
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:1"
    assert "mlstack-redis_next" not in engine.containers
    assert result["not_serving_s"] >= 0


def test_failed_upgrade_keeps_the_previous_state_of_an_earlier_upgrade() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb", "img:3": "sha256:ccc"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    engine.health_script["img:3"] = ["unhealthy"]
    with pytest.raises(update.RolledBack):
        deploy(engine, {**SPEC, "image": "img:3"})
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:1"
    assert set(engine.containers) == {"mlstack-redis", "mlstack-redis_previous"}


def test_an_unhealthy_serving_container_is_not_called_last_good() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    engine.health_script["img:1"] = ["unhealthy"]
    engine.health_script["img:2"] = ["unhealthy"]
    with pytest.raises(update.HealthError):
        deploy(engine)
    with pytest.raises(update.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2"}, update_order="start-first")
    assert err.value.result["last_good"] is None
    assert "not healthy either" in err.value.result["failure"]["kept"]


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
def test_a_serving_container_read_unhealthy_by_a_busy_host_is_still_the_last_good(order: str) -> None:
    """The fresh-machine CI failure: v1 served throughout, but its probes timed out at the moment
    of the plan, and the failed upgrade's record said last_good None."""
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:1"] = ["unhealthy-slow", "unhealthy-slow", "healthy"]
    engine.health_script["img:2"] = ["starting", "unhealthy"]
    with pytest.raises(update.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2"}, update_order=order)
    last_good = err.value.result["last_good"]
    assert last_good is not None and last_good["image_id"] == "sha256:aaa" and last_good["state"] == "healthy"
    assert last_good["settled_s"] >= 0
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"


def test_an_outcome_reports_only_what_its_step_did() -> None:
    assert update.Outcome().entries() == {}
    assert update.Outcome(health={"state": "healthy"}, not_serving_s=0.0).entries() == {
        "health": {"state": "healthy"}, "not_serving_s": 0.0}
    assert update.Outcome(failure={"message": "m"}).failed and not update.Outcome(switched="x").failed


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
def test_a_failed_recreate_returns_its_outcome_and_the_last_good_container_serves(order: str) -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:2"] = ["unhealthy"]
    desired = cspec.normalize_spec({**SPEC, "image": "img:2"})
    kwargs = cspec.create_kwargs("mlstack-redis", desired, {})
    outcome = update.recreate(engine, "mlstack-redis", kwargs, desired, timeout=5, update_order=order,
                              served={"slot": "current"})
    assert outcome.failed and outcome.rolled_back is True and outcome.failure["state"] == "unhealthy"
    assert outcome.health == {"state": "healthy", "waited_s": outcome.health["waited_s"]}
    assert outcome.switched is None and outcome.candidate is None
    assert set(engine.containers) == {"mlstack-redis"}
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"
