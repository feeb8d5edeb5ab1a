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

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import HARDENING

# Tokens every /v1 endpoint must refuse with 401, and the one it must let through auth.
ATTACKS = ("no_token", "expired", "forged", "wrong_audience")
_ATTACK_WORDS = {"no_token": "request without a token", "expired": "expired token", "forged": "forged token",
                 "wrong_audience": "token for another audience"}

# Runtime settings of a hardened unit, as Docker reports them; a unit that needs an
# exception names it in its catalog entry (mlstack_hardening_exceptions).
HARDENING_RULES = ("non_root", "cap_drop_all", "read_only_root", "not_privileged", "no_new_privileges",
                   "pids_limit", "memory_limit", "cpu_limit", "no_docker_socket", "healthcheck",
                   "published_ports", "no_host_network", "log_rotation")

# A signed JWT (header.claims.signature, base64url, JSON header and claims): the stack's
# bearer credential. None belongs in a log or an evidence bundle, expired or not.
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
JWT_LEAK = "a signed JWT (bearer token)"


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


def published_host_ports(inspect: Mapping[str, Any]) -> list[int]:
    """The host ports a container publishes, as Docker reports its port bindings."""
    bindings = (inspect.get("HostConfig") or {}).get("PortBindings") or {}
    return sorted({int(b["HostPort"]) for spec in bindings.values() for b in spec or [] if b.get("HostPort")})


def _baseline_checks(host: Mapping[str, Any]) -> dict[str, tuple[bool, str]]:
    """The hardening baseline every container is created with (``_unit.HARDENING``), as Docker reports it."""
    options = [o.replace("=", ":") for o in host.get("SecurityOpt") or []]
    log = (host.get("LogConfig") or {}).get("Config") or {}
    return {
        "cap_drop_all": (set(HARDENING["cap_drop"]) <= set(host.get("CapDrop") or []),
                         f"CapDrop={host.get('CapDrop')}"),
        "read_only_root": (host.get("ReadonlyRootfs") is HARDENING["read_only"],
                           f"ReadonlyRootfs={host.get('ReadonlyRootfs')}"),
        "no_new_privileges": (all(o in options for o in HARDENING["security_opt"]),
                              f"SecurityOpt={host.get('SecurityOpt')}"),
        "log_rotation": (all(str(log.get(k)) == str(v) for k, v in HARDENING["log_options"].items()),
                         f"LogConfig.Config={log}"),
    }


def hardening_findings(inspect: Mapping[str, Any], exceptions: Iterable[str] = (),
                       host_ports: Iterable[int | str | None] | None = None) -> dict[str, str]:
    """Rule -> what Docker reports that breaks it; rules the unit declared as exceptions are skipped.

    ``host_ports`` are the ports the unit's catalog entry publishes (``mlstack_host_port``);
    given, the container must publish exactly those (a database none) and no others.
    """
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    user = str(config.get("User") or "")
    mounts = [str(m.get("Source", "")) + " " + str(m.get("Destination", "")) for m in inspect.get("Mounts") or []]
    checks = {
        "non_root": (user not in ("", "0", "root") and not user.startswith(("0:", "root:")), f"User={user!r}"),
        **_baseline_checks(host),
        "not_privileged": (host.get("Privileged") is False, f"Privileged={host.get('Privileged')}"),
        "pids_limit": ((host.get("PidsLimit") or 0) > 0, f"PidsLimit={host.get('PidsLimit')}"),
        "memory_limit": ((host.get("Memory") or 0) > 0, f"Memory={host.get('Memory')}"),
        "cpu_limit": ((host.get("NanoCpus") or 0) > 0 or (host.get("CpuQuota") or 0) > 0,
                      f"NanoCpus={host.get('NanoCpus')}"),
        "no_docker_socket": (not any("docker.sock" in m for m in mounts), "a mount of the Docker socket"),
        "healthcheck": (bool((config.get("Healthcheck") or {}).get("Test")), "no healthcheck"),
        "no_host_network": (host.get("NetworkMode") != "host", "NetworkMode=host (every port of the unit on the host)"),
    }
    if host_ports is not None:
        declared = sorted({int(p) for p in host_ports if p not in (None, "")})
        published = published_host_ports(inspect)
        publish_all = " (PublishAllPorts)" if host.get("PublishAllPorts") else ""
        checks["published_ports"] = (published == declared and not publish_all,
                                     f"published {published}{publish_all}, declared {declared}")
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


def leaks(secrets: Mapping[str, list[str]], texts: Mapping[str, str], tokens: bool = True) -> dict[str, list[str]]:
    """Text name -> names (never values) of the secrets found in it; with ``tokens``, any signed JWT too."""
    found: dict[str, list[str]] = {}
    for text_name, text in texts.items():
        names = [name for name, pieces in secrets.items() if any(piece in text for piece in pieces)]
        if tokens and JWT_RE.search(text):
            names.append(JWT_LEAK)
        if names:
            found[text_name] = names
    return found
