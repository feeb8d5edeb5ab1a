# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: secrets live on the controller, whatever host the task targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.module_utils._secrets import SecretError, ensure, ensure_keypair


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "unit", "names", "length", "keypairs"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [key for key in ("dir", "unit") if not args.get(key)]
        if not args.get("names") and not args.get("keypairs"):
            missing.append("names or keypairs")
        if missing:
            return {**result, "failed": True, "msg": f"aiops.mlstack.secret: missing required argument(s) {missing}"}
        base = Path(str(args["dir"])).expanduser()
        values: dict[str, str] = {}
        created: list[str] = []
        public_keys: dict[str, str] = {}
        try:
            for name in args.get("keypairs") or []:
                public_keys[str(name)], new = ensure_keypair(base, str(args["unit"]), str(name), self._task.check_mode)
                if new:
                    created.append(f"{name}.pem")
            for name in args.get("names") or []:
                value, new = ensure(base, str(args["unit"]), str(name), int(args.get("length", 40)),
                                    self._task.check_mode)
                values[str(name)] = value
                if new:
                    created.append(str(name))
        except (SecretError, OSError) as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.secret: {exc}"}
        # The values go back to the play only; the task must carry no_log (the role does).
        return {**result, "changed": bool(created), "created": created, "secrets": values, "public_keys": public_keys,
                "dir": str(base / str(args["unit"]))}
