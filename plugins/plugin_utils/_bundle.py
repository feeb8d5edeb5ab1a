# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence bundle: a run's summary built from its events.

Pure and standard library only: the ``aiops.mlstack.evidence`` callback collects events
(the lines of ``events.jsonl``) and hands them here. This file builds the summary
(``evidence.json``) and its short form (``summary.json``); ``_bundle_verdict`` decides unit
states and the verdict, and one file per format renders the summary: ``_bundle_markdown``
(``report.md``), ``_bundle_junit`` (``junit.xml``), ``_bundle_svg`` (``timeline.svg``) and
``_bundle_console`` (the table printed at the end of the run).

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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_verdict import (
    FAILED_STATUSES,
    mission_criteria,
    mission_verdict,
    shown_status,
    unit_health,
    unit_state,
    verdict,
)

BUNDLE_SCHEMA = 1


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
