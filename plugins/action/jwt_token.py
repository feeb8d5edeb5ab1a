# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: tokens are signed with the private key, which never leaves the controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._vault import vault_of


def _audience(value: Any) -> str | list[str]:
    """One unit as it is; a YAML list as a list of names, which becomes a JSON list claim."""
    if isinstance(value, (list, tuple)):
        return [str(unit) for unit in value]
    return str(value)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("vault_password_file", "dir", "subject", "audience", "scopes", "ttl", "forged"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [key for key in ("dir", "subject", "audience") if not args.get(key)]
        if missing:
            return {**result, "failed": True, "msg": f"aiops.mlstack.jwt_token: missing required argument(s) {missing}"}
        scopes = args.get("scopes") or []
        if isinstance(scopes, str):
            scopes = scopes.split()
        try:
            private, kid = _jwt.signing_key(Path(str(args["dir"])).expanduser(),
                                            vault_of(args.get("vault_password_file")), _jwt.injected_key())
            if args.get("forged"):
                # Same kid, another key: what a forger who read the public key id would send.
                private = _jwt.throwaway_private_pem()
            token, exp = _jwt.mint(private, str(args["subject"]), _audience(args["audience"]),
                                   [str(s) for s in scopes], int(args.get("ttl", 300)), kid=kid)
        except (SecretError, OSError, ValueError) as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.jwt_token: {exc}"}
        # The token is a credential: the task must carry no_log (see the module's documentation).
        return {**result, "changed": False, "token": token, "kid": kid, "expires_at": exp,
                "forged": bool(args.get("forged"))}
