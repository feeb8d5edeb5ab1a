# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: secrets live on the controller, whatever host the task targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import (
    SecretError,
    drop_previous,
    ensure,
    ensure_keypair,
    given,
    previous,
    rotate,
    rotation_started,
)

ROTATIONS = ("none", "begin", "end")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "unit", "names", "length", "keypairs", "rotation", "rotation_names", "given"))
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
            rotation = str(args.get("rotation", "none"))
            if rotation not in ROTATIONS:
                raise SecretError(f"rotation={rotation!r}: use one of {ROTATIONS}")
            unit, length, check = str(args["unit"]), int(args.get("length", 40)), self._task.check_mode
            # Only the named secrets rotate (the calling role names its users, admin included);
            # a rotation already begun keeps its new value, an interrupted one is completed.
            rotating = {str(n) for n in args.get("rotation_names") or []}
            for name in [str(n) for n in args.get("names") or []]:
                if boolean(args.get("given", False)):
                    values[name] = given(base, unit, name)
                    continue
                if rotation == "begin" and name in rotating and not rotation_started(base, unit, name):
                    values[name] = rotate(base, unit, name, length, check)
                    created.append(f"{name} (rotated)")
                    continue
                values[name], new = ensure(base, unit, name, length, check)
                if new:
                    created.append(name)
                if rotation == "end" and drop_previous(base, unit, name, check):
                    created.append(f"{name} (former value dropped)")
            former = {name: value for name in values if (value := previous(base, unit, name)) is not None}
        except (SecretError, OSError) as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.secret: {exc}"}
        # The values go back to the play only; the task must carry no_log (the role does).
        return {**result, "changed": bool(created), "created": created, "secrets": values, "public_keys": public_keys,
                "previous": former,
                "dir": str(base / str(args["unit"]))}
