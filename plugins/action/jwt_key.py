# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: the JWT key set lives with the other secrets, on the controller."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._vault import vault_of

STATES = ("present", "staged", "promoted")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("vault_password_file", "dir", "state", "overlap"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        state = str(args.get("state", "present"))
        if not args.get("dir"):
            return {**result, "failed": True, "msg": "aiops.mlstack.jwt_key: missing required argument 'dir'"}
        if state not in STATES:
            return {**result, "failed": True, "msg": f"aiops.mlstack.jwt_key: state={state!r}: use one of {STATES}"}
        base = Path(str(args["dir"])).expanduser()
        check = bool(self._task.check_mode)
        changed: list[str] = []
        try:
            overlap = int(args.get("overlap", 3600))
            if overlap < 0:
                raise SecretError(f"overlap={overlap}: seconds a former key stays accepted, 0 or more")
            vault = vault_of(args.get("vault_password_file"))
            injected = _jwt.injected_key()
            if injected is not None and state != "present":
                raise SecretError(f"the signing key is kept outside {base} ({_jwt.SIGNING_KEY_ENV}, e.g. an AWX "
                                  "credential): rotate it there, not with state=" + state)
            if _jwt.ensure_current(base, check, vault, injected)[1]:
                changed.append("signing key published" if injected is not None else "signing key created")
            if state in ("staged", "promoted") and _jwt.stage(base, check, vault)[1]:
                changed.append("next key staged")
            if state == "promoted":
                changed.append(f"key {_jwt.promote(base, overlap, check_mode=check)} retired for {overlap} s")
            keys = _jwt.published(base, prune=not check)
        except (SecretError, OSError, ValueError) as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.jwt_key: {exc}"}
        now = int(time.time())
        return {**result, "changed": bool(changed), "actions": changed,
                "kid": next((k["kid"] for k in keys if k["role"] == "signing"), None),
                "next_kid": next((k["kid"] for k in keys if k["role"] == "next"), None),
                "retired": [{"kid": k["kid"], "until": k["until"], "left_s": k["until"] - now}
                            for k in keys if k["role"] == "retired"],
                "public_bundle": _jwt.bundle(keys)}
