# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence bundle's decisions: a unit's state, the mission's criteria, the run's verdict.

Pure and standard library only; ``_bundle.build_summary`` calls these with the run's tasks and
evidence records, and the tests reach each rule without Ansible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FAILED_STATUSES = ("failed", "unreachable")
VERDICTS = ("pass", "fail", "no-evidence", "incomplete")


def unit_state(statuses: Sequence[str], changed: bool) -> str:
    """One word for a unit's tasks: failed, unfinished, changed, ok, skipped, or none (no task)."""
    if any(s in FAILED_STATUSES for s in statuses):
        return "failed"
    if "unfinished" in statuses:
        return "unfinished"
    if not statuses:
        return "none"
    if all(s == "skipped" for s in statuses):
        return "skipped"
    return "changed" if changed else "ok"


def shown_status(task: Mapping[str, Any]) -> str:
    """The status a person sees: an ok task that changed something is 'changed'."""
    return "changed" if task["status"] == "ok" and task.get("changed") else task["status"]


def unit_health(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The health a unit's latest record observed (e.g. the container's), if any record says."""
    for rec in reversed(records):
        observed = rec.get("observed")
        if isinstance(observed, Mapping) and observed.get("health"):
            return str(observed["health"])
    return None


def verdict(unit_states: Iterable[str], records: Sequence[Mapping[str, Any]], complete: bool) -> str:
    """fail: a unit's task or any record failed; incomplete: the run did not finish;
    pass: at least one record and all ok; no-evidence: otherwise."""
    if any(state == "failed" for state in unit_states) or any(not r.get("ok") for r in records):
        return "fail"
    if not complete:
        return "incomplete"
    return "pass" if records else "no-evidence"


def _critical_units(records: Sequence[Mapping[str, Any]]) -> dict[str, bool]:
    """Unit name -> critical, from preflight's ``catalog`` and the verify stream's ``unit_state`` records.

    Preflight's records matter when a unit failed before the verify stream could see it.
    """
    return {str(r["unit"]): bool((r.get("observed") or {}).get("critical"))
            for r in records if r.get("check") in ("catalog", "unit_state")}


def mission_criteria(records: Sequence[Mapping[str, Any]], figure: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The mission's success criteria, each judged from the evidence (empty without ``unit_state`` records).

    ``blocking`` criteria decide fail; the others decide degraded.
    """
    critical = _critical_units(records)
    if not critical:
        return []
    states = {str(r["unit"]): r for r in records if r.get("check") == "unit_state"}
    # A unit is up only when the verify stream saw it so: a unit that failed its deploy
    # never reaches verify and has no unit_state record.
    down = sorted(u for u, crit in critical.items() if crit and not states.get(u, {}).get("ok"))
    redis_units = [u for u, r in states.items() if (r.get("observed") or {}).get("role") == "redis"]
    auth = [r for r in records if str(r["unit"]) in redis_units
            and r.get("check") in ("auth_required", "wrong_password_rejected")]
    auth_ok = bool(redis_units) and {r["check"] for r in auth if r.get("ok")} == {"auth_required",
                                                                                  "wrong_password_rejected"}
    # A catalog with no Redis unit at all (an imported compose stack) has nothing to resolve;
    # one whose Redis unit never reached verify still fails.
    has_redis = any(r.get("check") == "catalog" and (r.get("observed") or {}).get("role") == "redis"
                    for r in records) or bool(redis_units)
    degraded = sorted(u for u, crit in critical.items() if not crit and not states.get(u, {}).get("ok"))
    value = figure.get("value")
    gpu = [r for r in records if r.get("check") == "gpu_state"]
    return [
        {"name": "critical units up", "ok": not down, "blocking": True,
         "detail": "down: " + ", ".join(down) if down else f"{sum(critical.values())} critical unit(s) healthy"},
        {"name": "Redis authentication resolved", "ok": auth_ok or not has_redis, "blocking": True,
         "detail": "anonymous and wrong-password access refused" if auth_ok
         else ("no passing auth_required and wrong_password_rejected checks for a Redis unit" if has_redis
               else "not applicable: the catalog has no Redis unit")},
        {"name": "non-critical units up", "ok": not degraded, "blocking": False,
         "detail": "degraded: " + ", ".join(degraded) if degraded else "all healthy"},
        {"name": "parallel execution observed", "ok": value is not None and value > 1.0, "blocking": False,
         "detail": f"parallelism {value:.2f}" if value is not None else "no unit intervals"},
        {"name": "GPU state reported", "ok": bool(gpu), "blocking": False,
         "detail": "; ".join(str(r.get("message") or r["unit"]) for r in gpu) or "no gpu_state record"},
        {"name": "evidence written", "ok": bool(records), "blocking": False,
         "detail": f"{len(records)} evidence record(s)"},
    ]


def mission_verdict(criteria: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]],
                    failed_units: Iterable[str], complete: bool) -> str:
    """fail: a blocking criterion, a critical unit's check or task failed; degraded: anything
    else failed; incomplete: the run did not finish, or no unit reached the verify stream
    (a preflight-only run, or one whose tags left verify out: nothing was deployed to judge);
    pass otherwise."""
    critical = _critical_units(records)
    failed = list(failed_units)
    critical_failed = any(critical.get(str(r["unit"])) and not r.get("ok") for r in records) or any(
        critical.get(u) for u in failed)
    if critical_failed:
        return "fail"
    # Without unit_state records the blocking criteria only say that verify did not run.
    verified = any(r.get("check") == "unit_state" for r in records)
    if not verified:
        return "incomplete"
    if any(c["blocking"] and not c["ok"] for c in criteria):
        return "fail"
    if not complete:
        return "incomplete"
    others = any(not r.get("ok") for r in records) or bool(failed)
    if others or not all(c["ok"] for c in criteria):
        return "degraded"
    return "pass"
