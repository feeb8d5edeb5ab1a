"""Health gates: how a container's health is read and waited for, against an in-memory Docker."""

from __future__ import annotations

from typing import Any

import pytest
from container_fake import FakeEngine, deploy

from ansible_collections.aiops.mlstack.plugins.module_utils import _container_health as health


def test_container_without_healthcheck_is_not_healthy() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.containers["mlstack-redis"]["State"]["Health"] = None
    with pytest.raises(health.HealthError, match="no-healthcheck"):
        health.wait_healthy(engine, "mlstack-redis", timeout=5)


@pytest.mark.parametrize(("label", "running", "expected"), [
    ("running", True, "healthy"), ("running", False, "exited"), (None, True, "no-healthcheck"),
    ("healthcheck", True, "no-healthcheck")])
def test_only_a_container_that_declares_the_running_gate_passes_without_a_healthcheck(
        label: str | None, running: bool, expected: str) -> None:
    inspect = {"State": {"Running": running, "Health": None},
               "Config": {"Labels": {health.HEALTH_GATE_LABEL: label} if label else {}}}
    assert health.health_state(inspect)[0] == expected


def test_health_wait_ends_at_its_time_limit() -> None:
    engine = FakeEngine()
    deploy(engine)
    engine.health_script["img:1"] = ["starting"]
    ticks = iter(range(100))
    with pytest.raises(health.HealthError, match="still starting after the 3s limit"):
        health.wait_healthy(engine, "mlstack-redis", timeout=3, clock=lambda: next(ticks), sleep=lambda _s: None)


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
    waited = health.wait_dependencies(engine, ["mlstack-postgresql"], timeout=5)
    assert waited["mlstack-postgresql"]["state"] == "healthy"


@pytest.mark.parametrize(("output", "slow"), [
    ("Health check exceeded timeout (10s)", True),
    ("OCI runtime exec failed: context deadline exceeded", True),
    ("curl: (7) Failed to connect: Connection refused", False),
    ("", False),
])
def test_slow_is_told_from_down_by_the_last_probe(output: str, slow: bool) -> None:
    inspect = {"State": {"Running": True, "Health": {"Status": "unhealthy", "Log": [
        {"Output": "refused"}, {"Output": output}]}}}
    assert health.slow_not_down(inspect) is slow


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
    waited = health.wait_dependencies(engine, ["mlstack-llm"], timeout=0.3, create_timeout=10)
    assert waited["mlstack-llm"]["state"] == "healthy"
    with pytest.raises(health.HealthError, match="dependency mlstack-absent was not created within 0.6s"):
        health.wait_dependencies(engine, ["mlstack-absent"], timeout=0.3, create_timeout=0.6)


def test_a_dependency_on_another_host_is_awaited_until_it_accepts_connections() -> None:
    import socket

    from ansible_collections.aiops.mlstack.plugins.module_utils._container_health import wait_remote_dependencies

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        waited = wait_remote_dependencies(
            [{"unit": "postgresql", "docker_host": "h1", "address": "127.0.0.1", "port": port}], timeout=5)
    assert waited["postgresql"]["state"] == "reachable" and waited["postgresql"]["docker_host"] == "h1"


def test_a_lost_host_is_named_when_its_dependency_does_not_answer() -> None:
    import socket

    from ansible_collections.aiops.mlstack.plugins.module_utils._container_health import (
        HealthError,
        wait_remote_dependencies,
    )

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    # Nothing listens there any more: refused until the (fake) clock passes the limit.
    ticks = iter(range(0, 100))
    with pytest.raises(HealthError) as caught:
        wait_remote_dependencies([{"unit": "redis", "docker_host": "h1", "address": "127.0.0.1", "port": port}],
                                 timeout=3, clock=lambda: next(ticks), sleep=lambda _s: None)
    assert "on Docker host h1 (127.0.0.1:" in str(caught.value)
    assert caught.value.detail["state"] == "unreachable" and caught.value.detail["docker_host"] == "h1"
