# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: attack tokens are minted with the key that never leaves the controller,
and sent from there; only the answers (status codes) are kept (plugin_utils/_jwt_check.py,
which aiops.mlstack.unit_verify runs too)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.plugin_utils._jwt_check import attack


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("vault_password_file", "unit", "url", "dir", "other_audience", "timeout", "fail_on_error"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [key for key in ("unit", "url", "dir") if not args.get(key)]
        if missing:
            return {**result, "failed": True, "msg": f"aiops.mlstack.jwt_check: missing required argument(s) {missing}"}
        fail_on_error = bool(args.get("fail_on_error", True))
        outcome = attack(str(args["unit"]), str(args["url"]), str(args["dir"]), args.get("vault_password_file"),
                         args.get("other_audience"), float(args.get("timeout", 10)))
        if outcome.error:
            return {**result, "failed": fail_on_error, "evidence": outcome.evidence, "msg": outcome.msg}
        return {**result, "changed": False, "evidence": outcome.evidence, "endpoints": outcome.endpoints,
                "failed": not outcome.ok and fail_on_error, "msg": outcome.msg}
