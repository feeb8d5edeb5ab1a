# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One unit's verification in one task, in the controller's process (plugin_utils/_verify.py).

The role verify wrote a unit's evidence in 7 to 15 tasks; each costs templating and a worker
fork, most a module start, which on 2 cores was a large part of a no-op run. Here the
container and its port holder are inspected through the Docker API, the hardening judged,
and the kind's probes (health, ready, backends, the JWT attacks) run at once in threads:
they wait on the units, not on the CPU. The records are the ones the tasks wrote.

Where the unit's tasks do not run locally (another connection, or no Docker SDK here) the
inspection and the probes run as the modules the tasks ran, one after the other, on the
unit's host - the units' addresses are on its backend network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.action.container import runs_here
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine, DockerException
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _verify
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import execute_module, validated
from ansible_collections.aiops.mlstack.plugins.plugin_utils._jwt_check import attack

ARGUMENT_SPEC: dict[str, Any] = {
    "unit": {"type": "dict", "required": True},
    "stage": {"type": "str", "default": "all", "choices": ["all", "inspect", "state"]},
    "checks_available": {"type": "list", "elements": "str",
                         "default": ["redis", "postgresql", "neo4j", "qdrant", "ml_service", "app", "monitoring"]},
    "probe_timeout": {"type": "float", "default": 10},
    "deploy_completed": {"type": "bool", "default": True},
    "container": {"type": "dict"},
    "checks": {"type": "list", "elements": "dict", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, error = validated(self._task.args, ARGUMENT_SPEC)
        if error:
            return {**result, "failed": True, "msg": f"aiops.mlstack.unit_verify: {error}"}
        self._vars = task_vars or {}
        unit: dict[str, Any] = params["unit"]
        role = str(unit.get("role") or "")
        missing = [k for k in ("name", "container", "holder", "docker_url") if not unit.get(k)]
        if missing:
            return {**result, "failed": True, "msg": f"aiops.mlstack.unit_verify: unit lacks {missing}"}
        if params["stage"] == "all" and role in params["checks_available"] and role not in _verify.IN_PROCESS:
            # Their checks are tasks (tasks/checks/<role>.yml) between stage inspect and stage state.
            return {**result, "failed": True,
                    "msg": f"aiops.mlstack.unit_verify: the checks of role {role} run as tasks: stage inspect, "
                           "the tasks, then stage state"}
        local = runs_here(self)
        evidence: list[dict[str, Any]] = []
        try:
            if params["stage"] == "state":
                container = params["container"]
                common: list[_verify.Check] = []
            else:
                container, common = self._common(unit, local, evidence)
            if params["stage"] == "inspect":
                probe = (role in params["checks_available"] and container is not None
                         and bool(container["State"]["Running"]))
                return {**result, "changed": False, "failed": False, "evidence": evidence, "container": container,
                        "probe": probe, "checks": [{"ok": c.ok, "msg": c.msg} for c in common],
                        "msg": f"{unit['name']}: inspected, {len(evidence)} record(s)"}
            kind: list[_verify.Check] = [_verify.Check(bool(c.get("ok")), str(c.get("msg"))) for c in params["checks"]]
            if (params["stage"] == "all" and role in params["checks_available"] and role in _verify.IN_PROCESS
                    and container is not None and container["State"]["Running"]):
                probes = _verify.kind_probes(unit, container, role, params["probe_timeout"],
                                             lambda base: attack(unit["name"], base, unit["secrets_dir"],
                                                                 unit.get("vault_password_file") or None))
                answers = (_verify.run_concurrently(probes, _verify.FIRST.get(role, ())) if local else
                           {name: self._remote(name, fn, unit, container, params["probe_timeout"])
                            for name, fn in probes.items()})
                records, kind = _verify.kind_records(unit, container, role, answers)
                evidence.extend(records)
        except (DockerException, KeyError, TypeError, ValueError, OSError) as exc:
            return {**result, "failed": True, "evidence": evidence,
                    "msg": f"aiops.mlstack.unit_verify: {unit['name']}: {type(exc).__name__}: {exc}"}
        state, fail_on_error = _verify.unit_state_record(unit, role, container, kind + common)
        evidence.append(state)
        failed, msg = False, _verify.record_msg(state)
        if not state["ok"] and fail_on_error:
            failed = True
        elif (bool(unit.get("critical")) or bool(unit.get("strict"))) and role and not params["deploy_completed"]:
            # After recording what it serves: a critical unit whose deploy failed (strict mode: any unit).
            failed, msg = True, _verify.deploy_failed_message(unit)
        return {**result, "changed": False, "evidence": evidence, "ok": state["ok"], "failed": failed, "msg": msg}

    # --- the common part: the container, its port holder, their hardening ---------------

    def _common(self, unit: dict[str, Any], local: bool,
                evidence: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[_verify.Check]]:
        if local:
            engine = DockerEngine(str(unit["docker_url"]))
            container, holder = engine.inspect(unit["container"]), engine.inspect(unit["holder"])
        else:
            container = self._inspect_remote(unit, unit["container"])
            holder = self._inspect_remote(unit, unit["holder"])
        checks: list[_verify.Check] = []
        if container is not None:
            rec = _verify.hardening_record(unit, container, holder is not None)
            evidence.append(rec)
            checks.append(_verify.Check(rec["ok"], _verify.record_msg(rec)))
        if holder is not None:
            rec = _verify.holder_record(unit, holder)
            evidence.insert(0, rec)  # the role recorded the port holder first
            checks.append(_verify.Check(rec["ok"], _verify.record_msg(rec)))
        return container, checks

    # --- elsewhere: the modules the role's tasks ran, on the unit's host ------------------

    def _module(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return execute_module(self, name, args, self._vars)

    def _inspect_remote(self, unit: dict[str, Any], name: str) -> dict[str, Any] | None:
        answer = self._module("community.docker.docker_container_info",
                              {"name": name, "docker_host": unit["docker_url"]})
        if answer.get("failed"):
            raise DockerException(answer.get("msg", f"docker_container_info {name} failed"))
        return answer.get("container") if answer.get("exists") else None

    def _send_remote(self, base: str, tokens: Mapping[str, str | None],
                     timeout: float) -> tuple[list[tuple[str, str]], dict[str, dict[str, int]]]:
        answer = self._module("aiops.mlstack.jwt_probe", {"url": base, "tokens": dict(tokens), "timeout": timeout})
        if answer.get("failed"):
            raise OSError(answer.get("msg", f"jwt_probe {base} failed"))
        return [(str(m), str(p)) for m, p in answer["endpoints"]], answer["answers"]

    def _remote(self, name: str, fn: Callable[[], Any], unit: dict[str, Any], container: dict[str, Any],
                timeout: float) -> Any:
        if name == "jwt":
            # Minted here, where the key stays; sent from the unit's host, which reaches its address.
            return attack(unit["name"], f"http://{_verify.container_address(unit, container)}:{unit['port']}",
                          unit["secrets_dir"], unit.get("vault_password_file") or None, timeout=timeout,
                          send=self._send_remote)
        if name == "cross_host":
            args = {"dependencies": _verify.cross_host_dependencies(unit), "ca_pem": _verify.ca_bundle(unit),
                    "timeout": timeout}
            answer = self._module("aiops.mlstack.tls_probe", args)
            if answer.get("failed"):
                raise OSError(answer.get("msg", "tls_probe failed"))
            return answer["dependencies"]
        if name == "tcp":
            host = _verify.container_address(unit, container, first=True)
            answer = self._module("ansible.builtin.wait_for", {"host": host, "port": unit["port"],
                                                               "timeout": int(timeout)})
            return answer.get("msg") if answer.get("failed") else None
        base = f"http://{_verify.container_address(unit, container)}:{unit['port']}"
        path = {"health": unit["health_path"], "ready": "/ready", "metrics": unit.get("metrics_path")}[name]
        args = {"unit": unit["name"], "check": name, "url": base + str(path), "retries": 5, "timeout": timeout,
                "fail_on_error": False}
        if name == "health" and unit.get("role") == "ml_service" and unit.get("latency_bound_ms"):
            args["latency_bound_ms"] = unit["latency_bound_ms"]
        health = self._module("aiops.mlstack.service_health", args)
        if name != "ready":
            return health
        answer = self._module("ansible.builtin.uri", {"url": base + "/ready", "status_code": [200, 503],
                                                      "timeout": int(timeout)})
        return health, (ValueError(answer.get("msg", "could not read /ready")) if answer.get("failed")
                        else answer.get("json"))
