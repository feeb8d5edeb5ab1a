# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security stream's judgements: which requests a service must refuse, which container
settings a unit must run with, which files must not hold a generated secret.

Pure functions over plain data (an OpenAPI document, answers, ``docker inspect`` output,
texts), so that unit tests reach every rule; the plugins only fetch and report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Tokens every /v1 endpoint must refuse with 401, and the one it must let through auth.
ATTACKS = ("no_token", "expired", "forged", "wrong_audience")
_ATTACK_WORDS = {"no_token": "request without a token", "expired": "expired token", "forged": "forged token",
                 "wrong_audience": "token for another audience"}
METHODS = ("get", "post", "put", "patch", "delete")

# Runtime settings of a hardened unit, as Docker reports them; a unit that needs an
# exception names it in its catalog entry (mlstack_hardening_exceptions).
HARDENING_RULES = ("non_root", "cap_drop_all", "read_only_root", "not_privileged", "no_new_privileges",
                   "pids_limit", "memory_limit", "cpu_limit", "no_docker_socket", "healthcheck")


def v1_endpoints(openapi: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(METHOD, path) of every /v1 operation, path parameters filled with a harmless value."""
    out = []
    for path, operations in sorted((openapi.get("paths") or {}).items()):
        if not (path == "/v1" or path.startswith("/v1/")):
            continue
        concrete = re.sub(r"\{[^}]+\}", "probe0", path)
        out += [(method.upper(), concrete) for method in METHODS if method in (operations or {})]
    return out


def judge_attack(attack: str, answers: Mapping[str, int]) -> tuple[bool, str]:
    """An attack is answered when every endpoint said 401; a valid token when none did."""
    if not answers:
        return False, "no /v1 endpoint found in the service's OpenAPI document"
    if attack == "valid":
        let_in = [e for e, status in answers.items() if status != 401]
        ok = len(let_in) == len(answers)
        return ok, (f"a valid token passed authentication on all {len(answers)} endpoint(s)" if ok
                    else f"a valid token was refused (401) by {sorted(set(answers) - set(let_in))}")
    leaked = sorted(e for e, status in answers.items() if status != 401)
    if leaked:
        return False, f"{_ATTACK_WORDS[attack]} not refused by {leaked} (answers {dict(answers)})"
    return True, f"{_ATTACK_WORDS[attack]} refused with 401 by all {len(answers)} endpoint(s)"


def hardening_findings(inspect: Mapping[str, Any], exceptions: Iterable[str] = ()) -> dict[str, str]:
    """Rule -> what Docker reports that breaks it; rules the unit declared as exceptions are skipped."""
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    user = str(config.get("User") or "")
    mounts = [str(m.get("Source", "")) + " " + str(m.get("Destination", "")) for m in inspect.get("Mounts") or []]
    checks = {
        "non_root": (user not in ("", "0", "root") and not user.startswith(("0:", "root:")), f"User={user!r}"),
        "cap_drop_all": ("ALL" in (host.get("CapDrop") or []), f"CapDrop={host.get('CapDrop')}"),
        "read_only_root": (host.get("ReadonlyRootfs") is True, f"ReadonlyRootfs={host.get('ReadonlyRootfs')}"),
        "not_privileged": (host.get("Privileged") is False, f"Privileged={host.get('Privileged')}"),
        "no_new_privileges": (any(o.replace("=", ":").startswith("no-new-privileges")
                                  and not o.endswith("false") for o in host.get("SecurityOpt") or []),
                              f"SecurityOpt={host.get('SecurityOpt')}"),
        "pids_limit": ((host.get("PidsLimit") or 0) > 0, f"PidsLimit={host.get('PidsLimit')}"),
        "memory_limit": ((host.get("Memory") or 0) > 0, f"Memory={host.get('Memory')}"),
        "cpu_limit": ((host.get("NanoCpus") or 0) > 0 or (host.get("CpuQuota") or 0) > 0,
                      f"NanoCpus={host.get('NanoCpus')}"),
        "no_docker_socket": (not any("docker.sock" in m for m in mounts), "a mount of the Docker socket"),
        "healthcheck": (bool((config.get("Healthcheck") or {}).get("Test")), "no healthcheck"),
    }
    allowed = set(exceptions)
    return {rule: detail for rule, (ok, detail) in checks.items() if not ok and rule not in allowed}


def secret_values(secrets_dir: Path) -> dict[str, list[str]]:
    """Each generated secret file (relative name) and the pieces whose presence anywhere is a leak.

    Public keys and the retirement times of rotated keys are not secret; a PEM private key
    leaks by any line of its base64 body.
    """
    out: dict[str, list[str]] = {}
    for path in sorted(p for p in secrets_dir.rglob("*") if p.is_file()):
        if path.name.endswith((".pub.pem", ".until")):
            continue
        value = path.read_text(encoding="utf-8", errors="replace").strip()
        pieces = [line for line in value.splitlines() if "-----" not in line] if "-----" in value else [value]
        out[str(path.relative_to(secrets_dir))] = [piece for piece in pieces if len(piece) >= 16]
    return out


def leaks(secrets: Mapping[str, list[str]], texts: Mapping[str, str]) -> dict[str, list[str]]:
    """Text name -> names (never values) of the secrets found in it."""
    found: dict[str, list[str]] = {}
    for text_name, text in texts.items():
        names = [name for name, pieces in secrets.items() if any(piece in text for piece in pieces)]
        if names:
            found[text_name] = names
    return found
