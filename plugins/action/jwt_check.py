# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: attack tokens are minted with the key that never leaves the controller,
and sent from there; only the answers (status codes) are kept."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

from ansible.module_utils.urls import open_url
from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt, _security
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._vault import vault_of


def _status(method: str, url: str, token: str | None, timeout: float) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    try:
        with open_url(url, data=body, headers=headers, method=method, timeout=timeout,
                      follow_redirects="none") as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


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
        unit, base = str(args["unit"]), str(args["url"]).rstrip("/")
        timeout = float(args.get("timeout", 10))
        try:
            with open_url(base + "/openapi.json", timeout=timeout) as response:
                endpoints = _security.v1_endpoints(json.load(response))
            private, kid = _jwt.signing_key(Path(str(args["dir"])).expanduser(),
                                            vault_of(args.get("vault_password_file")), _jwt.injected_key())
            tokens = {
                "valid": _jwt.mint(private, "mlstack-security-check", unit, [], 120, kid=kid)[0],
                "no_token": None,
                "expired": _jwt.mint(private, "mlstack-security-check", unit, [], -120, kid=kid)[0],
                "forged": _jwt.mint(_jwt.throwaway_private_pem(), "mlstack-security-check", unit, [], 120,
                                    kid=kid)[0],
                "wrong_audience": _jwt.mint(private, "mlstack-security-check",
                                            str(args.get("other_audience") or f"not-{unit}"), [], 120, kid=kid)[0],
            }
            answers = {name: {f"{m} {p}": _status(m, base + p, tok, timeout) for m, p in endpoints}
                       for name, tok in tokens.items()}
        except (OSError, ValueError, SecretError) as exc:
            rec = record(unit, "jwt_enforced", False, {"url": base}, f"could not run the JWT checks: {exc}")
            return {**result, "failed": bool(args.get("fail_on_error", True)), "evidence": [rec], "msg": rec["message"]}
        evidence = []
        for name in (*_security.ATTACKS, "valid"):
            ok, message = _security.judge_attack(name, answers[name])
            check = "jwt_valid_token_accepted" if name == "valid" else f"jwt_{name}_refused"
            evidence.append(record(unit, check, ok, {"endpoints": len(endpoints), "answers": answers[name]}, message))
        failed = [r["check"] for r in evidence if not r["ok"]]
        return {**result, "changed": False, "evidence": evidence, "endpoints": [f"{m} {p}" for m, p in endpoints],
                "failed": bool(failed) and bool(args.get("fail_on_error", True)),
                "msg": f"{unit}: JWT checks failed: {failed}" if failed else
                f"{unit}: {len(endpoints)} /v1 endpoint(s) refused every attack token and let a valid one in"}
