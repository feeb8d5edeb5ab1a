# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The JWT attacks on a unit's /v1 endpoints, as functions: M(aiops.mlstack.jwt_check) and
M(aiops.mlstack.unit_verify) run the same code.

Controller-side: attack tokens are minted with the key that never leaves the controller,
and sent from there; only the answers (status codes) are kept.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.module_utils.urls import open_url

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt, _security
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._vault import vault_of


@dataclass
class JwtOutcome:
    """The records, the endpoints attacked, the one-line message; ``error``: the attacks could not run."""

    evidence: list[dict[str, Any]]
    msg: str
    endpoints: list[str] = field(default_factory=list)
    error: bool = False

    @property
    def ok(self) -> bool:
        return not self.error and all(rec["ok"] for rec in self.evidence)


def _status(method: str, url: str, token: str | None, timeout: float) -> int:
    """The status a request gets; a redirect is an answer, not followed."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http":
        # Plain http.client: open_url builds a TLS context (the system's CA store) for every
        # request, http or not - a fifth of the quality stream's CPU with ~100 attacks per unit.
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
        try:
            connection.request(method, urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")),
                               body=body, headers=headers)
            return int(connection.getresponse().status)
        finally:
            connection.close()
    try:
        with open_url(url, data=body, headers=headers, method=method, timeout=timeout,
                      follow_redirects="none") as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def attack(unit: str, url: str, secrets_dir: str, vault_password_file: str | None = None,
           other_audience: str | None = None, timeout: float = 10) -> JwtOutcome:
    """Send missing, expired, forged and wrong-audience tokens (and a valid one) to every /v1 endpoint."""
    base = url.rstrip("/")
    try:
        with open_url(base + "/openapi.json", timeout=timeout) as response:
            endpoints = _security.v1_endpoints(json.load(response))
        private, kid = _jwt.signing_key(Path(secrets_dir).expanduser(), vault_of(vault_password_file),
                                        _jwt.injected_key())
        tokens = {
            "valid": _jwt.mint(private, "mlstack-security-check", unit, [], 120, kid=kid)[0],
            "no_token": None,
            "expired": _jwt.mint(private, "mlstack-security-check", unit, [], -120, kid=kid)[0],
            "forged": _jwt.mint(_jwt.throwaway_private_pem(), "mlstack-security-check", unit, [], 120, kid=kid)[0],
            "wrong_audience": _jwt.mint(private, "mlstack-security-check", other_audience or f"not-{unit}", [], 120,
                                        kid=kid)[0],
        }
        answers = {name: {f"{m} {p}": _status(m, base + p, tok, timeout) for m, p in endpoints}
                   for name, tok in tokens.items()}
    except (OSError, ValueError, SecretError) as exc:
        rec = record(unit, "jwt_enforced", False, {"url": base}, f"could not run the JWT checks: {exc}")
        return JwtOutcome([rec], rec["message"], error=True)
    evidence = []
    for name in (*_security.ATTACKS, "valid"):
        ok, message = _security.judge_attack(name, answers[name])
        check = "jwt_valid_token_accepted" if name == "valid" else f"jwt_{name}_refused"
        evidence.append(record(unit, check, ok, {"endpoints": len(endpoints), "answers": answers[name]}, message))
    failed = [r["check"] for r in evidence if not r["ok"]]
    msg = (f"{unit}: JWT checks failed: {failed}" if failed else
           f"{unit}: {len(endpoints)} /v1 endpoint(s) refused every attack token and let a valid one in")
    return JwtOutcome(evidence, msg, [f"{m} {p}" for m, p in endpoints])
