# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence bundle: a run's summary built from its events, and the files rendered from it.

Pure and standard library only: the ``aiops.mlstack.evidence`` callback collects events
(the lines of ``events.jsonl``) and hands them here; everything that decides (unit states,
the parallelism figure, the verdict) or renders (``report.md``, ``junit.xml``,
``timeline.svg``) is a plain function that tests reach without Ansible. Controller side
only, but kept free of 3.9+ syntax like the other module_utils files.

Event shapes (one JSON object per line of ``events.jsonl``; times are epoch seconds):

- ``run_start``: run_id, time, ansible_version, bundle
- ``playbook_start``: playbook, time
- ``play_start``: play, time
- ``host_task_start``: key, host, unit, task, time (a host started a task)
- ``result``: key, host, unit, task, role, action, status, start, end, duration, changed,
  censored, and unless censored: message, evidence (list of records)
- ``stats``: time, hosts (name -> ok/changed/failures/unreachable/skipped/rescued/ignored)
- ``interrupted``: time (the process ended without Ansible's final stats)
"""

from __future__ import annotations

import datetime
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BUNDLE_SCHEMA = 1

FAILED_STATUSES = ("failed", "unreachable")
# Drawing order of the timeline's legend, and the colours a person expects from Ansible's
# own output (green ok, amber changed, red failed), toned down for a document.
STATUS_COLOURS = {
    "ok": "#43a047",
    "changed": "#f9a825",
    "failed": "#e53935",
    "unreachable": "#8e24aa",
    "rescued": "#fb8c00",
    "ignored": "#ffcc80",
    "skipped": "#b0bec5",
    "unfinished": "#42a5f5",
}
VERDICTS = ("pass", "fail", "no-evidence", "incomplete")

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- intervals and the parallelism figure -------------------------------------------------


def merge_intervals(intervals: Iterable[Sequence[float]]) -> list[list[float]]:
    """The union of closed intervals as sorted, disjoint ``[start, end]`` pairs."""
    merged: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in intervals if e >= s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def busy_seconds(intervals: Iterable[Sequence[float]]) -> float:
    """Seconds covered by at least one interval (overlaps counted once)."""
    return sum(end - start for start, end in merge_intervals(intervals))


def parallelism(intervals_by_unit: Mapping[str, Sequence[Sequence[float]]]) -> dict[str, Any]:
    """Sum of the units' busy time over the deploy's wall time.

    The wall time runs from the first task start to the last task end over all units; a
    figure of 1.0 means the units ran one after another, N means N units were busy at
    every moment on average. ``value`` is None when no unit ran a task.
    """
    spans = [iv for ivs in intervals_by_unit.values() for iv in ivs]
    if not spans:
        return {"value": None, "busy_s": 0.0, "wall_s": 0.0, "start_s": None, "end_s": None, "units": 0}
    start = min(first for first, _last in spans)
    end = max(last for _first, last in spans)
    busy = sum(busy_seconds(ivs) for ivs in intervals_by_unit.values())
    wall = end - start
    return {
        "value": round(busy / wall, 2) if wall > 0 else None,
        "busy_s": round(busy, 3),
        "wall_s": round(wall, 3),
        "start_s": round(start, 3),
        "end_s": round(end, 3),
        "units": sum(1 for ivs in intervals_by_unit.values() if ivs),
    }


# --- decisions ----------------------------------------------------------------------------


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
    degraded = sorted(u for u, crit in critical.items() if not crit and not states.get(u, {}).get("ok"))
    value = figure.get("value")
    gpu = [r for r in records if r.get("check") == "gpu_state"]
    return [
        {"name": "critical units up", "ok": not down, "blocking": True,
         "detail": "down: " + ", ".join(down) if down else f"{sum(critical.values())} critical unit(s) healthy"},
        {"name": "Redis authentication resolved", "ok": auth_ok, "blocking": True,
         "detail": "anonymous and wrong-password access refused" if auth_ok
         else "no passing auth_required and wrong_password_rejected checks for a Redis unit"},
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
    else failed; incomplete: the run did not finish; pass otherwise."""
    critical = _critical_units(records)
    failed = list(failed_units)
    critical_failed = any(critical.get(str(r["unit"])) and not r.get("ok") for r in records) or any(
        critical.get(u) for u in failed)
    if critical_failed or any(c["blocking"] and not c["ok"] for c in criteria):
        return "fail"
    if not complete:
        return "incomplete"
    others = any(not r.get("ok") for r in records) or bool(failed)
    if others or not all(c["ok"] for c in criteria):
        return "degraded"
    return "pass"


# --- the summary --------------------------------------------------------------------------


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (the records' format)."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _pair_tasks(events: Sequence[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """Results, plus starts that never got one (status unfinished, ending ``now``)."""
    pending: dict[str, Mapping[str, Any]] = {}
    tasks: list[dict[str, Any]] = []
    for ev in events:
        if ev.get("event") == "host_task_start":
            pending[ev["key"]] = ev
        elif ev.get("event") == "result":
            pending.pop(ev.get("key", ""), None)
            tasks.append(dict(ev))
    for ev in pending.values():
        tasks.append({
            "event": "result", "key": ev["key"], "host": ev["host"], "unit": ev.get("unit", False),
            "task": ev.get("task", ""), "role": ev.get("role"), "action": ev.get("action"),
            "status": "unfinished", "start": ev["time"], "end": now, "duration": round(now - ev["time"], 3),
            "changed": False, "censored": False, "evidence": [], "message": "no result before the run ended",
        })
    return tasks


def _reconcile_with_stats(tasks: list[dict[str, Any]], host_stats: Mapping[str, Mapping[str, int]]) -> None:
    """A failure on a host that Ansible's stats count no failure for was rescued by a block."""
    for task in tasks:
        stats = host_stats.get(task["host"])
        if stats is None or stats.get("failures", 0) or stats.get("unreachable", 0):
            continue
        if task["status"] == "failed":
            task["status"] = "rescued"
        elif task["status"] == "unreachable":
            task["status"] = "ignored"


def _unit_names(tasks: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Hosts flagged as units, and units named by records; every host when neither exists."""
    names: list[str] = []
    candidates = [t["host"] for t in tasks if t.get("unit")] + [str(r["unit"]) for r in records]
    if not candidates:
        candidates = [t["host"] for t in tasks]
    for name in candidates:
        if name not in names:
            names.append(name)
    return names


def _records_of(task: Mapping[str, Any], t0: float) -> list[dict[str, Any]]:
    """A task's records with where and when they came (host, task, received_s since the run
    start); the unit defaults to the host, the check to the task."""
    out = []
    for rec in task.get("evidence") or []:
        if isinstance(rec, Mapping):
            item = dict(rec)
            item["unit"] = str(item.get("unit") or task["host"])
            item["check"] = str(item.get("check") or task.get("task", ""))
            item["ok"] = bool(item.get("ok"))
            item["host"] = task["host"]
            item["task"] = task.get("task", "")
            item["received_s"] = round(task["end"] - t0, 3)
            out.append(item)
    return out


def _task_view(task: Mapping[str, Any], t0: float) -> dict[str, Any]:
    """The part of a result event that the summary keeps, times relative to the run start."""
    view = {
        "task": task.get("task", ""),
        "role": task.get("role"),
        "action": task.get("action"),
        "status": task["status"],
        "changed": bool(task.get("changed")),
        "start_s": round(task["start"] - t0, 3),
        "end_s": round(task["end"] - t0, 3),
        "duration_s": round(task["end"] - task["start"], 3),
    }
    if task.get("censored"):
        view["censored"] = True
    if task.get("message"):
        view["message"] = task["message"]
    return view


def _unit_entry(name: str, tasks: list[dict[str, Any]], records: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    statuses = [t["status"] for t in tasks]
    intervals = merge_intervals((t["start"] - t0, t["end"] - t0) for t in tasks)
    failures = [
        {"task": t.get("task", ""), "status": t["status"], "message": t.get("message") or t["status"]}
        for t in tasks
        if t["status"] in FAILED_STATUSES
    ]
    counts: dict[str, int] = {}
    for task in tasks:
        shown = shown_status(task)
        counts[shown] = counts.get(shown, 0) + 1
    return {
        "name": name,
        "host": bool(tasks),
        "state": unit_state(statuses, any(t.get("changed") for t in tasks if t["status"] == "ok")),
        "health": unit_health(records),
        "checks": {"ok": sum(1 for r in records if r["ok"]), "total": len(records)},
        "busy_s": round(sum(e - s for s, e in intervals), 3),
        "intervals": [[round(s, 3), round(e, 3)] for s, e in intervals],
        "task_counts": counts,
        "failures": failures,
        "fakes": sorted({str(r["fake"]) for r in records if r.get("fake")}),
        "evidence": records,
        "tasks": [_task_view(t, t0) for t in tasks],
    }


def _run_facts(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    facts: dict[str, Any] = {"id": None, "playbooks": [], "plays": [], "start": None, "bundle": None,
                             "ansible_version": None, "hosts": {}, "end": None}
    for ev in events:
        kind = ev.get("event")
        if kind == "run_start":
            facts.update(id=ev.get("run_id"), start=ev.get("time"), bundle=ev.get("bundle"),
                         ansible_version=ev.get("ansible_version"))
        elif kind == "playbook_start":
            facts["playbooks"].append(ev.get("playbook"))
        elif kind == "play_start":
            facts["plays"].append(ev.get("play"))
        elif kind == "stats":
            facts["hosts"] = dict(ev.get("hosts") or {})
        for key in ("time", "end"):
            if isinstance(ev.get(key), (int, float)):
                facts["end"] = max(facts["end"] or ev[key], ev[key])
    return facts


def build_summary(events: Sequence[Mapping[str, Any]], now: float | None = None) -> dict[str, Any]:
    """Everything ``evidence.json`` holds, from the run's events.

    A run is complete when its events hold Ansible's ``stats``; ``now`` ends the tasks that
    never got a result (default: the last event's time).
    """
    facts = _run_facts(events)
    complete = any(ev.get("event") == "stats" for ev in events)
    t0 = facts["start"] if facts["start"] is not None else min(
        (ev["time"] for ev in events if isinstance(ev.get("time"), (int, float))), default=0.0)
    end = now if now is not None else (facts["end"] if facts["end"] is not None else t0)
    tasks = _pair_tasks(events, end)
    _reconcile_with_stats(tasks, facts["hosts"])
    tasks.sort(key=lambda t: (t["start"], t["end"]))
    records = [rec for t in tasks for rec in _records_of(t, t0)]
    units = []
    for name in _unit_names(tasks, records):
        unit_tasks = [t for t in tasks if t["host"] == name]
        units.append(_unit_entry(name, unit_tasks, [r for r in records if str(r["unit"]) == name], t0))
    units.sort(key=lambda u: (u["intervals"][0][0] if u["intervals"] else math.inf, u["name"]))
    figure = parallelism({u["name"]: u["intervals"] for u in units})
    states = [u["state"] for u in units]
    criteria = mission_criteria(records, figure)
    failed_units = [u["name"] for u in units if u["state"] == "failed"]

    def judge(done: bool) -> str:
        if criteria:
            return mission_verdict(criteria, records, failed_units, done)
        return verdict(states, records, done)

    return {
        "schema": BUNDLE_SCHEMA,
        "verdict": judge(complete),
        # What the evidence recorded so far says, as if the run ended now: the same as the
        # verdict once the run is complete; in a snapshot taken while it runs, the
        # verdict of everything before it.
        "verdict_so_far": judge(True),
        "criteria": criteria,
        "run": {
            "id": facts["id"],
            "status": "complete" if complete else "incomplete",
            "playbook": ", ".join(p for p in facts["playbooks"] if p) or None,
            "plays": facts["plays"],
            "start": iso(t0),
            "end": iso(end),
            "wall_s": round(end - t0, 3),
            "ansible_version": facts["ansible_version"],
            "bundle": facts["bundle"],
            "hosts": facts["hosts"],
        },
        "parallelism": figure,
        "units": units,
        "checks": records,
        "other_hosts": sorted({t["host"] for t in tasks} - {u["name"] for u in units}),
    }


def compact_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The small summary (``summary.json``) a playbook hands to AWX through ``set_stats``."""
    run = summary["run"]
    return {
        "verdict": summary["verdict"],
        "verdict_so_far": summary["verdict_so_far"],
        "status": run["status"],
        "as_of": run["end"],
        "run_id": run["id"],
        "bundle": run["bundle"],
        "wall_s": run["wall_s"],
        "parallelism": summary["parallelism"]["value"],
        "units": {
            u["name"]: {"state": u["state"], "health": u["health"], "checks_ok": u["checks"]["ok"],
                        "checks_total": u["checks"]["total"], "busy_s": u["busy_s"]}
            for u in summary["units"]
        },
        "failed_checks": [
            {"unit": r["unit"], "check": r["check"], "message": r.get("message", "")}
            for r in summary["checks"] if not r["ok"]
        ],
        "fakes": [
            {"unit": r["unit"], "check": r["check"], "fake": r["fake"]} for r in summary["checks"] if r.get("fake")
        ],
    }


# --- report.md ----------------------------------------------------------------------------

_VERDICT_HEADLINES = {
    "pass": "PASS: every evidence check passed",
    "fail": "FAIL",
    "no-evidence": "NO EVIDENCE: the run produced no evidence record",
    "incomplete": "INCOMPLETE: the run ended before Ansible's final stats",
    "degraded": "DEGRADED: the critical units serve; something else failed or is missing",
}


def _cell(value: Any) -> str:
    """A value fit for one Markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip() or "-"


def _inline(text: Any, limit: int = 400) -> str:
    """A message on one line, shortened to ``limit`` characters."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _fail_reasons(summary: Mapping[str, Any]) -> list[str]:
    lines = []
    for rec in summary["checks"]:
        if not rec["ok"]:
            why = _inline(rec.get("message")) or "(no message)"
            lines.append(f"- **{rec['unit']}** · check `{rec['check']}` failed: {why}")
    for unit in summary["units"]:
        for failure in unit["failures"]:
            lines.append(f"- **{unit['name']}** · task '{_inline(failure['task'], 120)}' {failure['status']}: "
                         f"{_inline(failure['message'])}")
    return lines


def _headline(summary: Mapping[str, Any]) -> str:
    verdict_ = summary["verdict"]
    if verdict_ == "degraded":
        unmet = [c["name"] for c in summary.get("criteria") or [] if not c["ok"]]
        return _VERDICT_HEADLINES[verdict_] + (f" (unmet: {', '.join(unmet)})" if unmet else "")
    if verdict_ != "fail":
        return _VERDICT_HEADLINES[verdict_]
    blocking = [c["name"] for c in summary.get("criteria") or [] if c["blocking"] and not c["ok"]]
    if blocking:
        return "FAIL: " + "; ".join(f"{c['name']}: {c['detail']}" for c in summary["criteria"]
                                    if c["blocking"] and not c["ok"])
    failed_checks = sum(1 for r in summary["checks"] if not r["ok"])
    failed_units = sum(1 for u in summary["units"] if u["state"] == "failed")
    parts = [_deploy_failure(r) for r in summary["checks"]
             if r["check"] == "deploy" and not r["ok"] and not (r.get("observed") or {}).get("degraded")]
    if failed_checks:
        parts.append(f"{failed_checks} of {len(summary['checks'])} checks failed")
    if failed_units:
        parts.append(f"tasks failed on {failed_units} unit{'s' if failed_units != 1 else ''}")
    return "FAIL: " + "; ".join(parts)


def _deploy_failure(record: Mapping[str, Any]) -> str:
    """A failed deploy as the headline names it: the unit, and what serves instead."""
    observed = record.get("observed") or {}
    if observed.get("rolled_back"):
        return f"deploy of {record['unit']} failed and was rolled back (the last good container serves)"
    return f"deploy of {record['unit']} failed"


def _parallelism_line(figure: Mapping[str, Any]) -> str:
    if figure["value"] is None:
        return "**Parallelism** - (no unit ran a task over a measurable time)"
    return (f"**Parallelism {figure['value']:.2f}**: the units were busy {figure['busy_s']:.1f} s in all "
            f"during a deploy wall time of {figure['wall_s']:.1f} s (first unit task start to last unit task end)")


def _units_table(units: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| Unit | State | Health | Checks passed | Checks failed | Busy | Tasks |",
             "|---|---|---|---:|---:|---:|---|"]
    for u in units:
        checks = u["checks"]
        counts = ", ".join(f"{n} {s}" for s, n in sorted(u["task_counts"].items())) or "-"
        fakes = sum(1 for r in u["evidence"] if r.get("fake"))
        passed = f"{checks['ok']}" + (f" ({fakes} fake)" if fakes else "")
        busy = _fmt_s(u["busy_s"]) if u["host"] else "-"
        lines.append(f"| {_cell(u['name'])} | {_cell(u['state'])} | {_cell(u['health'])} | {passed} | "
                     f"{checks['total'] - checks['ok']} | {busy} | {_cell(counts)} |")
    return lines


def _checks_table(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| Unit | Check | Result | Message |", "|---|---|---|---|"]
    for rec in checks:
        result = ("ok" if rec["ok"] else "**FAILED**") + (f" (fake: {rec['fake']})" if rec.get("fake") else "")
        message = _cell(_inline(rec.get("message"), 200))
        lines.append(f"| {_cell(rec['unit'])} | {_cell(rec['check'])} | {result} | {message} |")
    return lines


def render_report(summary: Mapping[str, Any]) -> str:
    """``report.md``: what a person reads first. Verdict at the top, then why."""
    run = summary["run"]
    out = [f"# Evidence: {_headline(summary)}", ""]
    status = "complete" if run["status"] == "complete" else "**incomplete** (no final stats: interrupted or crashed)"
    out.append(f"Run `{run['id']}` of `{run['playbook'] or '?'}`, {status}. "
               f"Wall time **{_fmt_s(run['wall_s'])}** ({run['start']} to {run['end']}), "
               f"ansible-core {run['ansible_version'] or '?'}.")
    out += ["", _parallelism_line(summary["parallelism"]), ""]
    if summary.get("criteria"):
        out += ["## Mission criteria", "", "| Criterion | Met | Detail |", "|---|---|---|"]
        out += [f"| {_cell(c['name'])}{' (blocking)' if c['blocking'] else ''} | {'yes' if c['ok'] else '**no**'} "
                f"| {_cell(c['detail'])} |" for c in summary["criteria"]] + [""]
    reasons = _fail_reasons(summary)
    if reasons:
        out += ["## What failed", ""] + reasons + [""]
    fakes = [r for r in summary["checks"] if r.get("fake")]
    if fakes:
        out += ["## Fakes", "", "These checks ran against a stand-in, not the real thing:", ""]
        out += [f"- **{r['unit']}** · `{r['check']}` ran against **{r['fake']}**" for r in fakes] + [""]
    out += ["## Units", ""] + _units_table(summary["units"]) + [""]
    if summary["checks"]:
        out += ["## Checks", ""] + _checks_table(summary["checks"]) + [""]
    if summary.get("other_hosts"):
        out += [f"Other hosts in the run (not units): {', '.join(summary['other_hosts'])}.", ""]
    out += ["## Files", "",
            "`evidence.json` (everything, machine-readable), `junit.xml` (one test case per check), "
            "`timeline.svg` (what ran in parallel), `events.jsonl` (the raw events, as they arrived), "
            "`summary.json` (the short form handed to AWX).", ""]
    return "\n".join(out)


# --- junit.xml ----------------------------------------------------------------------------


def _xml_text(value: Any) -> str:
    return _XML_INVALID.sub("\ufffd", "" if value is None else str(value))


def _testcase(suite: ET.Element, classname: str, name: str, time_s: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=_xml_text(classname), name=_xml_text(name),
                         time=f"{max(time_s, 0.0):.3f}")


def _record_case(suite: ET.Element, rec: Mapping[str, Any]) -> None:
    case = _testcase(suite, str(rec["unit"]), str(rec["check"]))
    if rec.get("fake"):
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="fake", value=_xml_text(rec["fake"]))
    if not rec["ok"]:
        failure = ET.SubElement(case, "failure", message=_xml_text(_inline(rec.get("message"), 1000) or "check failed"),
                                type="evidence")
        failure.text = _xml_text(rec.get("observed"))
    out = ET.SubElement(case, "system-out")
    out.text = _xml_text(f"observed: {rec.get('observed')}" + (f"\nFAKE: {rec['fake']}" if rec.get("fake") else ""))


def render_junit(summary: Mapping[str, Any]) -> str:
    """``junit.xml``: one test case per evidence record (classname = unit, name = check),
    plus one per failed unit task and one error when the run is incomplete, so that CI
    goes red whenever the verdict is fail or incomplete."""
    run = summary["run"]
    suite = ET.Element("testsuite", name=_xml_text(f"mlstack evidence: {run['playbook'] or run['id']}"),
                       timestamp=_xml_text(run["start"]), time=f"{run['wall_s']:.3f}")
    for rec in summary["checks"]:
        _record_case(suite, rec)
    for unit in summary["units"]:
        for failure in unit["failures"]:
            case = _testcase(suite, unit["name"], f"task: {failure['task']}")
            ET.SubElement(case, "failure", message=_xml_text(_inline(failure["message"], 1000)), type=failure["status"])
    if run["status"] != "complete":
        case = _testcase(suite, "run", "complete")
        ET.SubElement(case, "error", message="the run ended before Ansible's final stats", type="incomplete")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")
    root = ET.Element("testsuites", name="mlstack evidence")
    for key in ("tests", "failures", "errors", "time"):
        root.set(key, suite.get(key, "0"))
    root.append(suite)
    indent = getattr(ET, "indent", None)
    if indent is not None:
        indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- timeline.svg -------------------------------------------------------------------------

_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_PROMINENT = ("failed", "unreachable", "unfinished")
_STATE_DOT = {"failed": "failed", "unfinished": "unfinished", "skipped": "skipped", "none": "skipped"}
_W = 1200
_ROW_H = 26
_BAR_H = 14
_TOP = 92


def nice_step(span: float, target_ticks: int = 10) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about ``target_ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _esc(text: Any) -> str:
    return (_xml_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _tick_label(value: float, step: float) -> str:
    return f"{value:.0f} s" if step >= 1 else f"{value:.{max(0, -math.floor(math.log10(step)))}f} s"


def _svg_axis(x0: float, scale: float, step: float, ticks: int, y_top: float, y_bottom: float) -> list[str]:
    out = []
    for i in range(ticks + 1):
        value = i * step
        x = x0 + value * scale
        out.append(f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_bottom}" class="grid"/>')
        out.append(f'<line x1="{x:.1f}" y1="{y_bottom}" x2="{x:.1f}" y2="{y_bottom + 5}" class="tick"/>')
        out.append(f'<text x="{x:.1f}" y="{y_bottom + 18}" text-anchor="middle" class="axis">'
                   f"{_esc(_tick_label(value, step))}</text>")
    return out


def _svg_row(unit: Mapping[str, Any], index: int, origin: float, x0: float, scale: float, width: float) -> list[str]:
    y = _TOP + index * _ROW_H
    bar_y = y + (_ROW_H - _BAR_H) / 2
    state_colour = STATUS_COLOURS.get(_STATE_DOT.get(unit["state"], "ok"), "#43a047")
    out = [f'<g class="row" data-unit="{_esc(unit["name"])}">']
    out.append(f'<circle cx="16" cy="{y + _ROW_H / 2}" r="4.5" fill="{state_colour}">'
               f'<title>{_esc(unit["state"])}</title></circle>')
    out.append(f'<text x="28" y="{y + _ROW_H / 2 + 4}" class="label">{_esc(_shorten(unit["name"], x0 - 36))}'
               f'<title>{_esc(unit["name"])}</title></text>')
    # Problems last, and never thinner than 3 px, so that a short failure is not lost among long bars.
    for task in sorted(unit["tasks"], key=lambda t: shown_status(t) in _PROMINENT):
        status = shown_status(task)
        x = x0 + (task["start_s"] - origin) * scale
        w = max((task["end_s"] - task["start_s"]) * scale, 3.0 if status in _PROMINENT else 1.5)
        colour = STATUS_COLOURS.get(status, "#90a4ae")
        tip = f"{task['task']} - {status}, {task['duration_s']:.2f} s"
        out.append(f'<rect x="{x:.2f}" y="{bar_y}" width="{w:.2f}" height="{_BAR_H}" fill="{colour}" class="bar">'
                   f"<title>{_esc(tip)}</title></rect>")
    for rec_time, ok in _record_marks(unit):
        x = x0 + (rec_time - origin) * scale
        fill = "#1b5e20" if ok else "#b71c1c"
        out.append(f'<path d="M{x:.2f},{bar_y - 4} l4,4 l-4,4 l-4,-4 z" fill="{fill}" class="mark"/>')
    busy = f"{unit['busy_s']:.1f} s" if unit["host"] else "no task"
    out.append(f'<text x="{x0 + width + 12}" y="{y + _ROW_H / 2 + 4}" class="busy">{_esc(busy)}</text>')
    out.append("</g>")
    return out


def _shorten(text: str, pixels: float) -> str:
    """``text`` cut with an ellipsis to fit about ``pixels`` at the label font size."""
    limit = max(int(pixels / 7.0), 4)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record_marks(unit: Mapping[str, Any]) -> list[tuple[float, bool]]:
    """(time, ok) of each evidence check this unit's host returned: when its task ended."""
    return [(r["received_s"], bool(r["ok"])) for r in unit["evidence"] if r.get("host") == unit["name"]]


def _svg_legend(y: float, statuses: Sequence[str]) -> list[str]:
    out = []
    x = 28.0
    for status in statuses:
        out.append(f'<rect x="{x}" y="{y - 10}" width="14" height="12" rx="2" fill="{STATUS_COLOURS[status]}"/>')
        out.append(f'<text x="{x + 20}" y="{y}" class="legend">{_esc(status)}</text>')
        x += 44 + 6.9 * len(status)
    for fill, text in (("#1b5e20", "check passed"), ("#b71c1c", "check failed")):
        out.append(f'<path d="M{x + 6},{y - 10} l5,5 l-5,5 l-5,-5 z" fill="{fill}"/>')
        out.append(f'<text x="{x + 18}" y="{y}" class="legend">{_esc(text)}</text>')
        x += 44 + 6.9 * len(text)
    return out


_SVG_STYLE = (
    "<style>"
    f"text{{font-family:{_FONT};fill:#263238}}"
    ".title{font-size:17px;font-weight:bold}.subtitle{font-size:12.5px;fill:#546e7a}"
    ".label{font-size:12.5px}.busy{font-size:12px;fill:#546e7a}.axis{font-size:11px;fill:#546e7a}"
    ".legend{font-size:12px}.head{font-size:11px;fill:#78909c;font-weight:bold}"
    ".grid{stroke:#e0e6ea;stroke-width:1}.tick{stroke:#90a4ae}.stripe{fill:#f5f7f8}"
    ".bar{stroke:#ffffff;stroke-width:0.6}.frame{fill:none;stroke:#b0bec5}"
    "</style>"
)


def render_timeline(summary: Mapping[str, Any]) -> str:
    """``timeline.svg``: a Gantt chart, one row per unit host, one bar per task, coloured
    by status; the time axis is seconds since the first unit task started."""
    units = [u for u in summary["units"] if u["host"]]
    figure = summary["parallelism"]
    run = summary["run"]
    label_w = min(max([len(u["name"]) for u in units] + [8]) * 7.6 + 40, 260)
    x0, width = label_w, _W - label_w - 90
    origin = figure["start_s"] or 0.0
    span = max(figure["wall_s"] or 0.0, 1e-3)
    step = nice_step(span)
    ticks = max(math.ceil(span / step - 1e-9), 1)
    scale = width / (step * ticks)
    plot_bottom = _TOP + max(len(units), 1) * _ROW_H
    height = plot_bottom + 70
    value = "-" if figure["value"] is None else f"{figure['value']:.2f}"
    started = (run["start"] or "")[:19].replace("T", " ")
    subtitle = (f"run {run['id']} · started {started} UTC · deploy wall {figure['wall_s']:.1f} s · units busy "
                f"{figure['busy_s']:.1f} s · parallelism {value} · verdict {summary['verdict'].upper()}"
                + ("" if run["status"] == "complete" else " · INCOMPLETE RUN"))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" '
           f'role="img" aria-label="Deploy timeline">', _SVG_STYLE,
           f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>',
           f'<text x="16" y="30" class="title">{_esc("Deploy timeline: " + (run["playbook"] or "run"))}</text>',
           f'<text x="16" y="52" class="subtitle">{_esc(subtitle)}</text>',
           f'<text x="28" y="{_TOP - 8}" class="head">UNIT</text>',
           f'<text x="{x0 + width + 12}" y="{_TOP - 8}" class="head">BUSY</text>']
    out += [f'<rect x="0" y="{_TOP + i * _ROW_H}" width="{_W}" height="{_ROW_H}" class="stripe"/>'
            for i in range(1, len(units), 2)]
    out += _svg_axis(x0, scale, step, ticks, _TOP, plot_bottom)
    if not units:
        out.append(f'<text x="{x0 + 10}" y="{_TOP + 17}" class="label">no unit ran a task</text>')
    for index, unit in enumerate(units):
        out += _svg_row(unit, index, origin, x0, scale, width)
    out.append(f'<rect x="{x0}" y="{_TOP}" width="{width}" height="{plot_bottom - _TOP}" class="frame"/>')
    out.append(f'<text x="{x0 + width}" y="{plot_bottom + 34}" text-anchor="end" class="axis">'
               "seconds since the first unit task started</text>")
    present = {shown_status(t) for u in units for t in u["tasks"]}
    legend = [s for s in STATUS_COLOURS if s in present or s in ("ok", "changed", "failed", "skipped")]
    out += _svg_legend(plot_bottom + 58, legend)
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- the console ---------------------------------------------------------------------------


def render_console(summary: Mapping[str, Any]) -> list[str]:
    """The short table the callback prints at the end of the run."""
    units = summary["units"]
    width = max([len(u["name"]) for u in units] + [4])
    figure = summary["parallelism"]["value"]
    lines = [f"{'unit':<{width}}  {'state':<10}  {'checks':>6}  {'busy s':>7}"]
    for u in units:
        checks = f"{u['checks']['ok']}/{u['checks']['total']}"
        busy = f"{u['busy_s']:.1f}" if u["host"] else "-"
        lines.append(f"{u['name']:<{width}}  {u['state']:<10}  {checks:>6}  {busy:>7}")
    lines.append(f"verdict: {summary['verdict']} · parallelism {'-' if figure is None else f'{figure:.2f}'}"
                 f" · wall {summary['run']['wall_s']:.1f} s · run {summary['run']['status']}")
    return lines
