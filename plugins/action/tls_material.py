# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: the stack's CA and its servers' certificates live with the secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import arguments
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._tls import Lifetimes, ensure_ca, ensure_server, not_after

ARGUMENT_SPEC: dict[str, Any] = {
    "secrets_dir": {"type": "path", "required": True},
    "servers": {"type": "list", "elements": "dict", "default": [], "options": {
        "unit": {"type": "str", "required": True},
        "names": {"type": "list", "elements": "str", "required": True},
    }},
    "rotate": {"type": "str", "default": "none", "choices": ["none", "ca", "servers"]},
    "ca_days": {"type": "int", "default": Lifetimes.ca_days},
    "ca_renew_days": {"type": "int", "default": Lifetimes.ca_renew_days},
    "cert_days": {"type": "int", "default": Lifetimes.cert_days},
    "cert_renew_days": {"type": "int", "default": Lifetimes.cert_renew_days},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, failed = arguments(self, result, ARGUMENT_SPEC)
        if failed:
            return failed
        if not params["servers"]:
            return {**result, "changed": False, "servers": {}, "msg": "no unit serves TLS: no CA needed"}
        life = Lifetimes(params["ca_days"], params["ca_renew_days"], params["cert_days"], params["cert_renew_days"])
        base, check = Path(params["secrets_dir"]).expanduser(), self._task.check_mode
        try:
            ca, changes = ensure_ca(base, life, rotate=params["rotate"] == "ca", check_mode=check)
            servers = {}
            for server in params["servers"]:
                names = [str(n) for n in server["names"] if str(n)]
                servers[server["unit"]] = ensure_server(base, server["unit"], names, ca, life, check_mode=check,
                                                        force=params["rotate"] in ("ca", "servers"))
        except (SecretError, OSError, ValueError) as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.tls_material: {exc}"}
        issued = [f"{unit}: {s['reason']}" for unit, s in servers.items() if s["changed"]]
        changed = bool(changes or issued)
        out = {**result, "changed": changed, "servers": servers,
               "ca": {"serial": f"{ca.cert.serial_number:x}", "not_after": f"{not_after(ca.cert):%Y-%m-%d}"}}
        if self._task.diff and changed:
            # What changed, never a key: names, serials and dates only.
            out["diff"] = [{"before_header": "stack TLS", "after_header": "stack TLS",
                            "before": "", "after": "\n".join(changes + issued) + "\n"}]
        return out
