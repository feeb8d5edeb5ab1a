# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``report.md``: the evidence bundle as a person reads it first, verdict at the top, then why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_text import inline

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


def _fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _fail_reasons(summary: Mapping[str, Any]) -> list[str]:
    lines = []
    for rec in summary["checks"]:
        if not rec["ok"]:
            why = inline(rec.get("message")) or "(no message)"
            lines.append(f"- **{rec['unit']}** · check `{rec['check']}` failed: {why}")
    for unit in summary["units"]:
        for failure in unit["failures"]:
            lines.append(f"- **{unit['name']}** · task '{inline(failure['task'], 120)}' {failure['status']}: "
                         f"{inline(failure['message'])}")
    return lines


def _headline(summary: Mapping[str, Any]) -> str:
    verdict_ = summary["verdict"]
    if verdict_ == "degraded":
        unmet = [c["name"] for c in summary.get("criteria") or [] if not c["ok"]]
        return _VERDICT_HEADLINES[verdict_] + (f" (unmet: {', '.join(unmet)})" if unmet else "")
    if verdict_ == "incomplete" and (summary.get("run") or {}).get("status") == "complete":
        return "INCOMPLETE: no unit reached the verify stream (preflight only, or verify left out by tags)"
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
        message = _cell(inline(rec.get("message"), 200))
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
