# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: put one evidence record, built from the play's own facts, into the evidence."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("unit", "check", "ok", "observed", "message", "fake", "fail_on_error"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [key for key in ("unit", "check", "ok") if key not in args]
        if missing:
            return {**result, "failed": True, "msg": f"aiops.mlstack.record: missing required argument(s) {missing}"}
        try:
            rec = record(str(args["unit"]), str(args["check"]), boolean(args["ok"]), args.get("observed") or {},
                         str(args.get("message") or ""), args.get("fake"))
        except ValueError as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.record: {exc}"}
        failed = not rec["ok"] and boolean(args.get("fail_on_error", False))
        return {**result, "changed": False, "evidence": rec, "failed": failed,
                "msg": f"{rec['unit']}: {rec['check']} {'ok' if rec['ok'] else 'FAILED'}: {rec['message']}"}
