# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The JWT attacks on a unit's /v1 endpoints, as functions: M(aiops.mlstack.jwt_check) and
M(aiops.mlstack.unit_verify) run the same code.

Controller-side: attack tokens are minted with the key that never leaves the controller and
sent from there, or from the unit's Docker host when only it reaches the unit's address
(module_utils/_jwt_probe.py); only the answers (status codes) are kept.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.module_utils._jwt_probe import probe
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


# Sends the tokens to every /v1 endpoint at a base URL: (endpoints, answers per token).
Sender = Callable[[str, Mapping[str, "str | None"], float], tuple[list[tuple[str, str]], dict[str, dict[str, int]]]]


def attack(unit: str, url: str, secrets_dir: str, vault_password_file: str | None = None,
           other_audience: str | None = None, timeout: float = 10, send: Sender = probe) -> JwtOutcome:
    """Send missing, expired, forged and wrong-audience tokens (and a valid one) to every /v1 endpoint.

    ``send``: where the requests go from (default: this process; the unit's Docker host when the
    controller cannot reach the unit's address).
    """
    base = url.rstrip("/")
    try:
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
        endpoints, answers = send(base, tokens, timeout)
    except (OSError, ValueError, SecretError, http.client.HTTPException) as exc:
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
