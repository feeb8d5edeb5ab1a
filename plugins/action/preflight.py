# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: reads every unit's catalog entry from hostvars and validates the whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import catalog_of, docker_hosts_of, validate


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("units", "docker_hosts"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        hostvars = task_vars["hostvars"]
        names = list(self._task.args.get("units") or [])
        units = catalog_of(hostvars, names)
        roles_dir = Path(__file__).resolve().parents[2] / "roles"
        roles = {p.name for p in roles_dir.iterdir() if p.is_dir() and not p.name.startswith("_")}
        # The Docker hosts' own vars: their engine URL, its TLS files and the address they
        # publish cross-host dependencies on.
        docker_hosts = docker_hosts_of(hostvars, self._task.args.get("docker_hosts") or [])
        errors = validate(units, docker_hosts, roles)
        # One catalog record per unit: the evidence knows every unit and which are critical,
        # even those that fail before the verify stream reaches them.
        evidence = [record(name, "catalog", not errors, {
            "critical": bool(entry.get("mlstack_critical")), "kind": entry.get("mlstack_unit_kind"),
            "role": entry.get("mlstack_unit_role") or "none", "port": entry.get("mlstack_port"),
            "depends_on": entry.get("mlstack_depends_on") or [],
            "docker_host": entry.get("mlstack_docker_host")}, "catalog entry validated")
            for name, entry in sorted(units.items())]
        result.update(changed=False, units=units, errors=errors, evidence=evidence)
        if errors:
            result["failed"] = True
            result["msg"] = f"preflight found {len(errors)} problem(s), nothing was changed:\n- " + "\n- ".join(errors)
        return result
