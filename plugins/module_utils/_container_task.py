# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container task as one function, so that the module and the controller-side action
plugin run exactly the same code: arguments, reconciliation, evidence, the result's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DOCKER_HOST_ARG
from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import UPDATE_ORDERS

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "unit": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["started", "absent"], "default": "started"},
    "spec": {"type": "dict", "default": {}},
    "depends_on": {"type": "list", "elements": "str", "default": []},
    "remote_depends_on": {"type": "list", "elements": "dict", "default": [], "options": {
        "unit": {"type": "str", "required": True},
        "docker_host": {"type": "str", "required": True},
        "address": {"type": "str", "required": True},
        "port": {"type": "int", "required": True},
    }},
    "recreate": {"type": "str", "choices": ["if_changed", "always", "never"], "default": "if_changed"},
    "wait": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 120},
    "dependency_timeout": {"type": "float"},
    **DOCKER_HOST_ARG,
    "update_order": {"type": "str", "choices": list(UPDATE_ORDERS), "default": "stop-first"},
    "critical": {"type": "bool", "default": True},
    "purge": {"type": "bool", "default": False},
    "port_holder_image": {"type": "str"},
}
REQUIRED_IF = [("state", "started", ["spec"])]


def task_result(connect: Callable[[], ctr.Engine], p: dict[str, Any], check_mode: bool, diff: bool,
                docker_errors: tuple[type[Exception], ...]) -> dict[str, Any]:
    """The task's whole result; ``failed`` and ``msg`` are set when the task must fail."""
    request = ctr.Request.from_params(p, check_mode)
    unit = request.unit
    try:
        result = ctr.run(connect(), request)
    except ctr.RolledBack as exc:
        result = exc.result
        result.pop("diff", None)
        result["evidence"] = record(unit, "deploy", False, ctr.evidence_observed(result), str(exc))
        return {**result, "failed": True,
                "msg": f"unit {unit}: new container failed ({exc}); the last good container serves"}
    except ctr.HealthError as exc:
        return {"failed": True, "msg": f"unit {unit}: {exc}", "failure": exc.detail, "rolled_back": False,
                "evidence": record(unit, "deploy", False, ctr.failure_observed(exc.detail), str(exc))}
    except (ctr.SpecError, *docker_errors) as exc:
        return {"failed": True, "msg": f"unit {unit}: {exc}", "rolled_back": False}
    if result.get("degraded"):
        message = f"degraded (non-critical): {result['failure']['message']}"
        result["evidence"] = record(unit, "deploy", False, ctr.evidence_observed(result), message)
        result["warnings"] = [f"unit {unit}: {message}"]
        # For the play: a degraded deploy did not complete, even where the last good container
        # serves on (playbooks/units.yml; verify fails it in strict mode).
        result["ansible_facts"] = {"mlstack_unit_degraded": True}
    else:
        result["evidence"] = record(unit, "deploy", True, ctr.evidence_observed(result), result["reason"])
    shown = result.pop("diff")
    if diff:
        result["diff"] = shown
    return result
