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

    def inspect(self, name: str) -> dict[str, Any] | None:
        c = self.containers.get(name)
        if c is None:
            return None
        script = self.health_script.get(c["Config"]["Image"])
        if c["State"]["Running"] and script:
            status = script.pop(0) if len(script) > 1 else script[0]
            c["State"]["Health"] = {"Status": status, "Log": [{"Output": f"probe said {status}"}]}
        return json.loads(json.dumps(c))

    def image_id(self, image: str) -> str | None:
        return self.images.get(image)

    def create(self, kwargs: dict[str, Any], extra_networks: list[dict[str, Any]]) -> None:
        self.calls.append(("create", kwargs["name"]))
        assert kwargs["name"] not in self.containers, "create over an existing container"
        self.containers[kwargs["name"]] = {
            "Config": {"Image": kwargs["image"], "Labels": kwargs["labels"]},
            "State": {"Running": False, "Health": {"Status": "healthy", "Log": []}},
            "NetworkSettings": {"Networks": {kwargs.get("network", "bridge"): {"IPAddress": "172.18.0.9"}}},
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
        self.containers[new_name] = self.containers.pop(name)

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
    assert "mlstack-redis_previous" not in engine.containers  # the old one is gone after success
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
