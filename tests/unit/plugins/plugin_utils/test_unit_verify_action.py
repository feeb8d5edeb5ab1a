"""aiops.mlstack.unit_verify's glue: stages, the unit's failure, and where its tasks are not local,
the modules the role's tasks ran. The records themselves are tested in plugin_utils/test_verify.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import MagicMock

import pytest
from verify_fake import READY, serving
from verify_fake import make_inspect as _inspect
from verify_fake import make_unit as _unit

from ansible_collections.aiops.mlstack.plugins.action import unit_verify


@pytest.fixture
def port() -> Iterator[int]:
    # Every path but /ready answers 200 {"status": "ok"}.
    with serving({"/ready": (200, READY)}, default=(200, {"status": "ok"})) as (number, _service):
        yield number


def _engine(containers: dict[str, dict[str, Any] | None]) -> type:
    class Engine:
        def __init__(self, base_url: str) -> None:
            assert base_url == "unix:///var/run/docker.sock"

        def inspect(self, name: str) -> dict[str, Any] | None:
            return containers.get(name)

    return Engine


def _run(args: dict[str, Any], transport: str = "local", modules: Any = None) -> dict[str, Any]:
    task = MagicMock(args=args, async_val=0, check_mode=False, action="aiops.mlstack.unit_verify")
    connection = MagicMock(transport=transport)
    connection._shell.tmpdir = "/tmp/x"
    action = unit_verify.ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), MagicMock())
    if modules is not None:
        action._execute_module = modules  # type: ignore[method-assign]
    return action.run(task_vars={})


def test_one_task_writes_every_record_of_a_service_in_the_roles_order(port: int, monkeypatch: Any) -> None:
    monkeypatch.setattr(unit_verify, "DockerEngine", _engine({"mlstack-chat": _inspect()}))
    unit = _unit(port=port, security_exceptions={"jwt": "internal"})
    result = _run({"unit": unit, "probe_timeout": 2})
    assert not result["failed"] and result["ok"]
    assert [r["check"] for r in result["evidence"]] == ["hardening", "health", "ready", "backends", "jwt_exception",
                                                        "unit_state"]
    assert result["msg"] == "chat: unit_state ok: all checks passed"


def test_the_port_holder_comes_first_and_the_unit_then_publishes_nothing(port: int, monkeypatch: Any) -> None:
    bindings = {"8443/tcp": [{"HostIp": "", "HostPort": "8443"}]}
    monkeypatch.setattr(unit_verify, "DockerEngine", _engine({"mlstack-chat": _inspect(),
                                                              "mlstack-chat-port": _inspect(PortBindings=bindings)}))
    result = _run({"unit": _unit(port=port, host_port=8443, security_exceptions={"jwt": "x"}), "probe_timeout": 2})
    checks = [r["check"] for r in result["evidence"]]
    assert checks[:2] == ["port_holder", "hardening"] and result["ok"]
    assert result["evidence"][1]["observed"]["declared_host_ports"] == []


def test_a_critical_unhealthy_unit_fails_and_a_failed_deploy_fails_after_its_records(monkeypatch: Any) -> None:
    stopped = _inspect(running=False, health="unhealthy")
    monkeypatch.setattr(unit_verify, "DockerEngine", _engine({"mlstack-chat": stopped}))
    result = _run({"unit": _unit(), "probe_timeout": 2})
    assert result["failed"] and result["msg"] == ("chat: unit_state FAILED: container exited "
                                                  "(degraded: kept for its logs)")
    # stopped: nothing probed, but the hardening and the state recorded
    assert [r["check"] for r in result["evidence"]] == ["hardening", "unit_state"]
    assert not _run({"unit": _unit(critical=False), "probe_timeout": 2})["failed"]
    monkeypatch.setattr(unit_verify, "DockerEngine", _engine({}))
    result = _run({"unit": _unit(role="custom"), "checks_available": ["ml_service"], "deploy_completed": False})
    assert result["failed"] and result["msg"].startswith("chat: unit_state FAILED: container absent")
    monkeypatch.setattr(unit_verify, "DockerEngine", _engine({"mlstack-chat": _inspect()}))
    result = _run({"unit": _unit(role="custom"), "checks_available": ["ml_service"], "deploy_completed": False})
    assert result["evidence"][-1]["ok"] and result["failed"]
    assert result["msg"].startswith("unit chat: its deploy failed this run")


def test_checks_that_are_tasks_go_between_the_stages_inspect_and_state(monkeypatch: Any) -> None:
    monkeypatch.setattr(unit_verify, "DockerEngine", _engine({"mlstack-redis": _inspect()}))
    unit = _unit(role="redis", name="redis", container="mlstack-redis", holder="mlstack-redis-port")
    refused = _run({"unit": unit})
    assert refused["failed"] and "run as tasks" in refused["msg"]
    inspected = _run({"unit": unit, "stage": "inspect"})
    assert not inspected["failed"] and inspected["probe"] is True
    assert [r["check"] for r in inspected["evidence"]] == ["hardening"]
    assert inspected["checks"] == [{"ok": True, "msg": inspected["checks"][0]["msg"]}]
    state = _run({"unit": unit, "stage": "state", "container": inspected["container"],
                  "checks": [{"ok": False, "msg": "redis: 1 of 9 checks failed: connect"}, *inspected["checks"]]})
    assert state["failed"] and [r["check"] for r in state["evidence"]] == ["unit_state"]
    assert state["evidence"][0]["message"] == "failed checks: redis: 1 of 9 checks failed: connect"


def test_elsewhere_the_modules_of_the_roles_tasks_run_on_the_units_host() -> None:
    calls: list[str] = []

    def modules(module_name: str, module_args: dict[str, Any], task_vars: Any) -> dict[str, Any]:
        calls.append(module_name)
        if module_name == "community.docker.docker_container_info":
            found = module_args["name"] == "mlstack-chat"
            return {"exists": found, "container": _inspect() if found else None}
        if module_name == "ansible.builtin.uri":
            return {"json": READY, "status": 200}
        assert module_name == "aiops.mlstack.service_health" and module_args["retries"] == 5
        rec = {"unit": "chat", "check": module_args["check"], "ok": True, "observed": {}, "message": "200"}
        return {"ok": True, "msg": f"chat: {module_args['check']} ok", "evidence": [rec]}

    result = _run({"unit": _unit(security_exceptions={"jwt": "x"})}, transport="ssh", modules=modules)
    assert not result["failed"], result["msg"]
    assert [r["check"] for r in result["evidence"]] == ["hardening", "health", "ready", "backends", "jwt_exception",
                                                        "unit_state"]
    assert calls == ["community.docker.docker_container_info"] * 2 + ["aiops.mlstack.service_health"] * 2 + [
        "ansible.builtin.uri"]
