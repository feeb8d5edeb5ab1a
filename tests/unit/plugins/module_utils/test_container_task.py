"""The container task's result as Ansible sees it (the action plugin and the module share it)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from container_fake import SPEC, FakeEngine

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr
from ansible_collections.aiops.mlstack.plugins.module_utils import _container_task as task


def params(spec: dict[str, Any], critical: bool) -> dict[str, Any]:
    return {"name": "mlstack-reasoning", "unit": "reasoning", "spec": spec, "state": "started", "depends_on": [],
            "recreate": "if_changed", "wait": True, "timeout": 5.0, "update_order": "start-first",
            "critical": critical, "purge": False, "port_holder_image": None}


def upgrade(critical: bool) -> tuple[FakeEngine, dict[str, Any]]:
    engine = FakeEngine({"img:1": "sha256:aaa", "img:2": "sha256:bbb"})
    task.task_result(lambda: engine, params(SPEC, critical), False, False, ())
    engine.health_script["img:2"] = ["unhealthy"]
    return engine, task.task_result(lambda: engine, params({**SPEC, "image": "img:2"}, critical), False, False, ())


def test_a_degraded_unit_that_keeps_its_last_good_container_tells_the_play_its_deploy_did_not_complete() -> None:
    engine, result = upgrade(critical=False)
    assert not result.get("failed") and result["degraded"] is True
    assert result["ansible_facts"] == {"mlstack_unit_degraded": True}
    assert result["evidence"]["ok"] is False
    assert engine.containers["mlstack-reasoning"]["Config"]["Image"] == "img:1"  # v1 serves on


def test_a_successful_deploy_sets_no_fact_and_a_critical_failure_fails() -> None:
    engine = FakeEngine()
    assert "ansible_facts" not in task.task_result(lambda: engine, params(SPEC, True), False, False, ())
    _engine, result = upgrade(critical=True)
    assert result["failed"] is True and "ansible_facts" not in result


def test_the_request_has_one_field_per_unit_parameter_and_the_argument_specs_defaults() -> None:
    fields = {item.name: item for item in dataclasses.fields(ctr.Request)}
    assert set(fields) - {"check_mode"} == set(task.ARGUMENT_SPEC) - {"docker_host"}
    for name, option in task.ARGUMENT_SPEC.items():
        if name in ("docker_host", "name", "unit"):
            continue
        item = fields[name]
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        assert default == option.get("default"), name


@pytest.mark.parametrize("check_mode", [False, True])
def test_the_request_is_built_from_the_module_parameters(check_mode: bool) -> None:
    request = ctr.Request.from_params({**params(SPEC, False), "docker_host": "unix:///x.sock"}, check_mode)
    assert (request.name, request.critical, request.update_order) == ("mlstack-reasoning", False, "start-first")
    assert request.check_mode is check_mode and request.dependency_timeout is None
