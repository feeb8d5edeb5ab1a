"""Reconciliation decisions and health gates, against an in-memory stand-in for Docker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr


class FakeEngine:
    """An in-memory Docker: containers are inspect-shaped dicts; health follows a script."""

    def __init__(self, images: dict[str, str] | None = None) -> None:
        self.images = images or {"img:1": "sha256:aaa"}
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        # name -> health states returned on successive inspects once running
        self.health_script: dict[str, list[str]] = {}
        self.created: list[dict[str, Any]] = []
        self.volumes: set[str] = set()

    def inspect(self, name: str) -> dict[str, Any] | None:
        c = self.containers.get(name)
        if c is None:
            return None
        script = self.health_script.get(c["Config"]["Image"])
        if c["State"]["Running"] and script:
            status = script.pop(0) if len(script) > 1 else script[0]
            # "unhealthy-slow": unhealthy because the probes ran out of time (a busy host), as
            # Docker words it; any other status is a probe that failed at once.
            output = "Health check exceeded timeout (10s)" if status.endswith("-slow") else f"probe said {status}"
            c["State"]["Health"] = {"Status": status.removesuffix("-slow"), "Log": [{"Output": output}]}
        return json.loads(json.dumps(c))

    def image_id(self, image: str) -> str | None:
        return self.images.get(image)

    def create(self, kwargs: dict[str, Any], extra_networks: list[dict[str, Any]]) -> None:
        self.calls.append(("create", kwargs["name"]))
        assert kwargs["name"] not in self.containers, "create over an existing container"
        self.created.append(kwargs)
        self.containers[kwargs["name"]] = {
            "Name": "/" + kwargs["name"], "Image": self.images.get(kwargs["image"]), "Created": "t0",
            "Mounts": [{"Type": "volume", "Name": v.split(":")[0]} for v in kwargs.get("volumes") or []
                       if not v.startswith("/")],
            "Config": {"Image": kwargs["image"], "Labels": kwargs["labels"]},
            "HostConfig": {"PortBindings": dict(kwargs.get("ports") or {}),
                           "RestartPolicy": kwargs.get("restart_policy")},
            "State": {"Running": False, "Health": {"Status": "healthy", "Log": []}},
            "NetworkSettings": {"Networks": {net: {"IPAddress": "172.18.0.9"} for net in
                                             [kwargs.get("network", "bridge")] + [n["name"] for n in extra_networks]}},
        }

    def start(self, name: str) -> None:
        self.calls.append(("start", name))
        self.containers[name]["State"]["Running"] = True

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        del self.containers[name]

    def stop_and_rename(self, name: str, new_name: str) -> None:
        self.calls.append(("stop_and_rename", name))
        c = self.containers.pop(name)
        c["State"]["Running"] = False
        self.containers[new_name] = c

    def rename(self, name: str, new_name: str) -> None:
        self.calls.append(("rename", name))
        assert new_name not in self.containers, "rename over an existing container"
        self.containers[new_name] = self.containers.pop(name)

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.containers[name]["State"]["Running"] = False

    def take_aliases(self, name: str, networks: list[dict[str, Any]]) -> None:
        self.calls.append(("take_aliases", name))
        for net in networks:
            self.containers[name]["NetworkSettings"]["Networks"][net["name"]]["Aliases"] = net["aliases"]

    def set_restart_policy(self, name: str, policy: dict[str, Any] | None) -> None:
        self.calls.append(("set_restart_policy", name))
        self.containers[name]["HostConfig"]["RestartPolicy"] = policy

    def remove_volume(self, name: str) -> bool:
        self.calls.append(("remove_volume", name))
        return True

    def logs_tail(self, name: str, lines: int) -> str:
        return "log tail"


SPEC = {
    "image": "img:1",
    "env": {"A": "1"},
    "healthcheck": {"test": ["CMD", "true"], "interval": 1},
    "networks": [{"name": "backend", "aliases": ["redis"]}],
}


def deploy(engine: FakeEngine, spec: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return ctr.run(engine, "mlstack-redis", SPEC if spec is None else spec, unit="redis", **kw)


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


def test_unhealthy_replacement_is_rolled_back_to_the_previous_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:2"] = ["starting", "unhealthy"]
    with pytest.raises(ctr.RolledBack) as err:
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


def test_container_without_healthcheck_is_not_healthy() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.containers["mlstack-redis"]["State"]["Health"] = None
    with pytest.raises(ctr.HealthError, match="no-healthcheck"):
        ctr.wait_healthy(engine, "mlstack-redis", timeout=5)


def test_health_wait_ends_at_its_time_limit() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.health_script["img:1"] = ["starting"]
    ticks = iter(range(100))
    with pytest.raises(ctr.HealthError, match="still starting after the 3s limit"):
        ctr.wait_healthy(engine, "mlstack-redis", timeout=3, clock=lambda: next(ticks), sleep=lambda _s: None)


def test_dependency_absent_then_healthy_is_awaited() -> None:
    engine = FakeEngine()
    seen: list[str] = []

    def inspect(name: str, _orig: Any = engine.inspect) -> dict[str, Any] | None:
        seen.append(name)
        if name == "mlstack-postgresql" and seen.count(name) == 3:
            engine.create({"name": name, "image": "img:1", "labels": {}}, [])
            engine.start(name)
        return _orig(name)

    engine.inspect = inspect  # type: ignore[method-assign]
    waited = ctr.wait_dependencies(engine, ["mlstack-postgresql"], timeout=5)
    assert waited["mlstack-postgresql"]["state"] == "healthy"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"image": "x", "volume": []}, "unknown container spec field"),
        ({"env": {}}, "'image' is required"),
        ({"image": "x", "networks": [{"aliases": []}]}, "must be a name or a dict with 'name'"),
    ],
)
def test_bad_spec_is_refused_with_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ctr.SpecError, match=message):
        ctr.normalize_spec(spec)


def test_missing_image_names_the_unit_and_the_fix() -> None:
    with pytest.raises(ctr.SpecError, match="unit redis.*aiops.mlstack.images"):
        deploy(FakeEngine(), {**SPEC, "image": "absent:1"})


def test_env_values_never_reach_labels_or_diff() -> None:
    engine = FakeEngine()
    result = deploy(engine, {**SPEC, "env": {"TOKEN": "s3cr3t-value"}})
    labels = engine.containers["mlstack-redis"]["Config"]["Labels"]
    assert "s3cr3t-value" not in json.dumps(labels)
    assert "s3cr3t-value" not in json.dumps(result["diff"])


def test_create_kwargs_translate_durations_limits_and_networks() -> None:
    spec = ctr.normalize_spec({**SPEC, "cpus": 1.5, "memory": "512m", "healthcheck": {
        "test": ["CMD", "true"], "interval": "500ms", "timeout": 2, "retries": 5}})
    kwargs = ctr.create_kwargs("n", spec, {"l": "v"})
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["mem_limit"] == "512m"
    assert kwargs["healthcheck"]["interval"] == 500_000_000
    assert kwargs["healthcheck"]["timeout"] == 2_000_000_000
    assert kwargs["network"] == "backend"
    assert kwargs["networking_config"] == {"backend": {"Aliases": ["redis"]}}
    assert kwargs["labels"] == {"l": "v"}


def test_gpu_request_becomes_an_nvidia_device_request_in_declared_order() -> None:
    spec = ctr.normalize_spec({**SPEC, "gpus": ["GPU-b", 0]})
    kwargs = ctr.create_kwargs("n", spec, {})
    assert kwargs["device_requests"] == [{"driver": "nvidia", "device_ids": ["GPU-b", "0"],
                                          "capabilities": [["gpu"]]}]
    assert "device_requests" not in ctr.create_kwargs("n", ctr.normalize_spec(SPEC), {})


def test_published_port_becomes_an_address_port_tuple() -> None:
    spec = ctr.normalize_spec({**SPEC, "ports": {"8006/tcp": ["127.0.0.1", 8006]}})
    assert ctr.create_kwargs("n", spec, {})["ports"] == {"8006/tcp": ("127.0.0.1", 8006)}


def test_start_first_candidate_that_fails_never_stops_the_serving_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine, {**SPEC, "ports": {"6379/tcp": ["127.0.0.1", 6379]}})
    engine.calls.clear()
    engine.health_script["img:2"] = ["starting", "unhealthy"]
    with pytest.raises(ctr.RolledBack) as err:
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
    with pytest.raises(ctr.RolledBack) as err:
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
    result = ctr.run(engine, "mlstack-memory", SPEC, unit="memory", depends_on=["mlstack-postgresql"],
                     timeout=0.3, critical=False)
    assert result["degraded"] is True and result["action"] == "none"
    assert "mlstack-memory" not in engine.containers
    assert result["failure"]["dependency"] == "mlstack-postgresql"


def test_restore_previous_swaps_and_a_second_restore_rolls_forward() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    listed = ctr.states(engine, "mlstack-redis")
    assert [(s["slot"], s["image"]) for s in listed] == [("current", "img:2"), ("previous", "img:1")]
    result = ctr.restore_previous(engine, "mlstack-redis", unit="redis")
    assert result["restored"]["image"] == "img:1" and result["health"]["state"] == "healthy"
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:2"
    ctr.restore_previous(engine, "mlstack-redis", unit="redis")
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"


def test_restore_without_a_host_port_starts_the_kept_container_before_the_serving_one_stops() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"}, update_order="start-first")
    engine.calls.clear()
    result = ctr.restore_previous(engine, "mlstack-redis", unit="redis")
    assert result["not_serving_s"] == 0.0 and result["switched"].startswith("restored beside")
    assert engine.calls[:2] == [("start", "mlstack-redis_previous"), ("stop_and_rename", "mlstack-redis")]


def test_restore_with_a_host_port_stops_the_serving_container_first() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    ports = {"6379/tcp": ["127.0.0.1", 6379]}
    deploy(engine, {**SPEC, "ports": ports})
    deploy(engine, {**SPEC, "image": "img:2", "ports": ports})
    engine.calls.clear()
    result = ctr.restore_previous(engine, "mlstack-redis", unit="redis")
    assert "switched" not in result and engine.calls[0] == ("stop_and_rename", "mlstack-redis")
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"


def test_restore_previous_that_fails_puts_the_replaced_container_back() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    engine.health_script["img:1"] = ["unhealthy"]
    engine.calls.clear()
    with pytest.raises(ctr.RolledBack) as err:
        ctr.restore_previous(engine, "mlstack-redis", unit="redis")
    assert err.value.result["not_serving_s"] == 0.0
    assert ("stop_and_rename", "mlstack-redis") not in engine.calls
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"
    assert engine.containers["mlstack-redis"]["State"]["Running"] is True
    assert engine.containers["mlstack-redis_previous"]["State"]["Running"] is False
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:1"


def test_restore_without_previous_state_names_the_unit() -> None:
    engine = FakeEngine()
    deploy(engine)
    with pytest.raises(ctr.SpecError, match="unit redis has no previous state"):
        ctr.restore_previous(engine, "mlstack-redis", unit="redis")


def test_restore_in_check_mode_touches_nothing() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    engine.calls.clear()
    result = ctr.restore_previous(engine, "mlstack-redis", unit="redis", check_mode=True)
    assert result["changed"] is True and engine.calls == []


@pytest.mark.parametrize("purge", [False, True])
def test_absent_removes_every_container_of_the_unit_and_volumes_only_with_purge(purge: bool) -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine, {**SPEC, "volumes": ["mlstack-redis-data:/data"]})
    deploy(engine, {**SPEC, "image": "img:2", "volumes": ["mlstack-redis-data:/data"]})
    result = ctr.run(engine, "mlstack-redis", {}, unit="redis", state="absent", purge=purge)
    assert result["removed_containers"] == ["mlstack-redis", "mlstack-redis_previous"]
    assert engine.containers == {}
    assert result["removed_volumes"] == (["mlstack-redis-data"] if purge else [])
    assert result["kept_volumes"] == ([] if purge else ["mlstack-redis-data"])
    assert (("remove_volume", "mlstack-redis-data") in engine.calls) is purge


def test_failed_upgrade_keeps_the_previous_state_of_an_earlier_upgrade() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb", "img:3": "sha256:ccc"})
    deploy(engine)
    deploy(engine, {**SPEC, "image": "img:2"})
    engine.health_script["img:3"] = ["unhealthy"]
    with pytest.raises(ctr.RolledBack):
        deploy(engine, {**SPEC, "image": "img:3"})
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:2"
    assert engine.containers["mlstack-redis_previous"]["Config"]["Image"] == "img:1"
    assert set(engine.containers) == {"mlstack-redis", "mlstack-redis_previous"}


def test_an_unhealthy_serving_container_is_not_called_last_good() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    engine.health_script["img:1"] = ["unhealthy"]
    engine.health_script["img:2"] = ["unhealthy"]
    with pytest.raises(ctr.HealthError):
        deploy(engine)
    with pytest.raises(ctr.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2"}, update_order="start-first")
    assert err.value.result["last_good"] is None
    assert "not healthy either" in err.value.result["failure"]["kept"]


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


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
def test_a_serving_container_read_unhealthy_by_a_busy_host_is_still_the_last_good(order: str) -> None:
    """The fresh-machine CI failure: v1 served throughout, but its probes timed out at the moment
    of the plan, and the failed upgrade's record said last_good None."""
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:1"] = ["unhealthy-slow", "unhealthy-slow", "healthy"]
    engine.health_script["img:2"] = ["starting", "unhealthy"]
    with pytest.raises(ctr.RolledBack) as err:
        deploy(engine, {**SPEC, "image": "img:2"}, update_order=order)
    last_good = err.value.result["last_good"]
    assert last_good is not None and last_good["image_id"] == "sha256:aaa" and last_good["state"] == "healthy"
    assert last_good["settled_s"] >= 0
    assert engine.containers["mlstack-redis"]["Config"]["Image"] == "img:1"


def test_check_mode_never_waits_for_a_slow_serving_container() -> None:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    deploy(engine)
    engine.health_script["img:1"] = ["unhealthy-slow"]
    result = deploy(engine, {**SPEC, "image": "img:2"}, check_mode=True, timeout=30)
    assert result["action"] == "recreate" and result["last_good"] is None


@pytest.mark.parametrize(("output", "slow"), [
    ("Health check exceeded timeout (10s)", True),
    ("OCI runtime exec failed: context deadline exceeded", True),
    ("curl: (7) Failed to connect: Connection refused", False),
    ("", False),
])
def test_slow_is_told_from_down_by_the_last_probe(output: str, slow: bool) -> None:
    inspect = {"State": {"Running": True, "Health": {"Status": "unhealthy", "Log": [
        {"Output": "refused"}, {"Output": output}]}}}
    assert ctr.slow_not_down(inspect) is slow


def test_a_dependency_still_building_its_image_is_waited_for_past_the_health_timeout() -> None:
    """Fresh-machine CI: chat gave up on the llm after 300 s while the llm's image was still building."""
    import threading
    import time

    engine = FakeEngine()

    def created_late() -> None:
        time.sleep(0.8)
        engine.create({"name": "mlstack-llm", "image": "img:1", "labels": {}}, [])
        engine.start("mlstack-llm")

    threading.Thread(target=created_late, daemon=True).start()
    waited = ctr.wait_dependencies(engine, ["mlstack-llm"], timeout=0.3, create_timeout=10)
    assert waited["mlstack-llm"]["state"] == "healthy"
    with pytest.raises(ctr.HealthError, match="dependency mlstack-absent was not created within 0.6s"):
        ctr.wait_dependencies(engine, ["mlstack-absent"], timeout=0.3, create_timeout=0.6)
