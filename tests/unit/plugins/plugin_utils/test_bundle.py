# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence bundle's pure core: intervals, parallelism, states, verdict, and the renderers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.plugin_utils import (
    _bundle,
    _bundle_console,
    _bundle_junit,
    _bundle_markdown,
    _bundle_svg,
    _bundle_text,
    _bundle_verdict,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_800_000_000.0


def rec(unit: str, check: str, ok: bool = True, message: str = "", fake: str | None = None, **observed: Any) -> dict:
    out = {"schema": 1, "unit": unit, "check": check, "ok": ok, "observed": observed, "message": message,
           "timestamp": "2027-01-15T08:00:00.000+00:00"}
    if fake:
        out["fake"] = fake
    return out


def result(host: str, task: str, start: float, end: float, status: str = "ok", unit: bool = True,
           evidence: list | None = None, changed: bool = False, message: str = "") -> dict:
    return {"event": "result", "key": f"{task}/{host}", "host": host, "unit": unit, "task": task, "role": None,
            "action": "ansible.builtin.command", "status": status, "start": T0 + start, "end": T0 + end,
            "duration": end - start, "changed": changed, "censored": False, "message": message,
            "evidence": evidence or []}


def run(*events: dict, stats: dict | None = None, end: float | None = None) -> list[dict]:
    out = [{"event": "run_start", "run_id": "0123abcd", "time": T0, "ansible_version": "2.19.14", "bundle": "/b"},
           {"event": "playbook_start", "playbook": "phase5.yml", "time": T0}]
    out += list(events)
    if stats is not None:
        out.append({"event": "stats", "time": T0 + (end if end is not None else 100.0), "hosts": stats})
    return out


def clean_stats(*hosts: str) -> dict:
    return {h: {"ok": 1, "changed": 0, "failures": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 0}
            for h in hosts}


# --- intervals ----------------------------------------------------------------------------


@pytest.mark.parametrize(("intervals", "merged"), [
    ([], []),
    ([(0, 1)], [[0, 1]]),
    ([(2, 3), (0, 1)], [[0, 1], [2, 3]]),
    ([(0, 2), (1, 3)], [[0, 3]]),
    ([(0, 5), (1, 2)], [[0, 5]]),
    ([(0, 1), (1, 2)], [[0, 2]]),
    ([(3, 2)], []),
])
def test_merge_intervals(intervals, merged):
    assert _bundle.merge_intervals(intervals) == merged


@pytest.mark.parametrize(("by_unit", "value", "busy", "wall"), [
    ({"a": [(0, 10)], "b": [(0, 10)]}, 2.0, 20.0, 10.0),          # two units side by side
    ({"a": [(0, 10)], "b": [(10, 20)]}, 1.0, 20.0, 20.0),         # one after the other
    ({"a": [(0, 4), (2, 6)], "b": [(1, 3)]}, 1.33, 8.0, 6.0),     # a unit's own overlaps count once
    ({"a": [(0, 2), (8, 10)]}, 0.4, 4.0, 10.0),                   # idle gaps lower the figure
    ({"a": [(5, 5)]}, None, 0.0, 0.0),                            # no measurable time
    ({}, None, 0.0, 0.0),
])
def test_parallelism(by_unit, value, busy, wall):
    figure = _bundle.parallelism(by_unit)
    assert figure["value"] == value
    assert figure["busy_s"] == busy
    assert figure["wall_s"] == wall


# --- decisions ----------------------------------------------------------------------------


@pytest.mark.parametrize(("statuses", "changed", "state"), [
    ([], False, "none"),
    (["ok", "ok"], False, "ok"),
    (["ok", "skipped"], True, "changed"),
    (["skipped", "skipped"], False, "skipped"),
    (["ok", "failed"], True, "failed"),
    (["unreachable"], False, "failed"),
    (["ok", "unfinished"], False, "unfinished"),
    (["ok", "ignored", "rescued"], False, "ok"),
])
def test_unit_state(statuses, changed, state):
    assert _bundle_verdict.unit_state(statuses, changed) == state


@pytest.mark.parametrize(("states", "oks", "complete", "expected"), [
    (["ok", "changed"], [True, True], True, "pass"),
    (["ok"], [True, False], True, "fail"),
    (["failed", "ok"], [True], True, "fail"),
    (["ok"], [], True, "no-evidence"),
    (["failed"], [], True, "fail"),
    (["ok"], [True], False, "incomplete"),
    (["ok"], [False], False, "fail"),          # a failure is known even when the run did not finish
    ([], [], False, "incomplete"),
])
def test_verdict(states, oks, complete, expected):
    records = [rec("u", f"c{i}", ok) for i, ok in enumerate(oks)]
    assert _bundle_verdict.verdict(states, records, complete) == expected


def test_unit_health_is_the_latest_observed_health():
    records = [rec("u", "deploy", health="starting"), rec("u", "ping"), rec("u", "deploy", health="healthy")]
    assert _bundle_verdict.unit_health(records) == "healthy"
    assert _bundle_verdict.unit_health([rec("u", "ping")]) is None


@pytest.mark.parametrize(("span", "step"), [
    (0, 1.0), (3.7, 0.5), (10, 1), (42, 5), (95, 10), (0.05, 0.005), (600, 100),
])
def test_nice_step(span, step):
    assert _bundle_svg.nice_step(span) == pytest.approx(step)


# --- the summary --------------------------------------------------------------------------


def test_summary_per_unit_intervals_records_and_figure():
    events = run(
        result("redis", "Run the container", 1, 5, evidence=[rec("redis", "deploy", health="healthy")], changed=True),
        result("postgresql", "Run the container", 2, 7, evidence=[rec("postgresql", "deploy")]),
        result("redis", "Check Redis", 5, 6, evidence=[rec("redis", "ping"), rec("redis", "auth_refused")]),
        result("localhost", "Preflight", 0, 1, unit=False),
        stats=clean_stats("redis", "postgresql", "localhost"), end=8)
    s = _bundle.build_summary(events)
    assert s["verdict"] == "pass"
    assert s["run"]["status"] == "complete"
    assert s["run"]["playbook"] == "phase5.yml"
    assert s["run"]["wall_s"] == 8.0
    assert [u["name"] for u in s["units"]] == ["redis", "postgresql"]      # in order of first start
    redis = s["units"][0]
    assert redis["state"] == "changed"
    assert redis["health"] == "healthy"
    assert redis["checks"] == {"ok": 3, "total": 3}
    assert redis["intervals"] == [[1.0, 6.0]]
    assert s["other_hosts"] == ["localhost"]
    assert s["parallelism"] == {"value": 1.67, "busy_s": 10.0, "wall_s": 6.0, "start_s": 1.0, "end_s": 7.0, "units": 2}
    assert [c["check"] for c in s["checks"]] == ["deploy", "deploy", "ping", "auth_refused"]
    assert s["checks"][2]["host"] == "redis" and s["checks"][2]["task"] == "Check Redis"
    assert s["checks"][2]["received_s"] == 6.0


def test_a_failure_that_stats_do_not_count_was_rescued():
    events = run(result("redis", "Pull the image", 0, 1, status="failed", message="pull access denied"),
                 result("redis", "Build the image", 1, 3),
                 stats=clean_stats("redis"))
    s = _bundle.build_summary(events)
    assert s["units"][0]["tasks"][0]["status"] == "rescued"
    assert s["units"][0]["state"] == "ok"
    assert s["verdict"] == "no-evidence"


def test_a_failure_that_stats_count_fails_the_unit_and_the_run():
    stats = clean_stats("chat")
    stats["chat"]["failures"] = 1
    events = run(result("chat", "Run the container", 0, 2, status="failed", message="unhealthy after 30 s"),
                 stats=stats)
    s = _bundle.build_summary(events)
    assert s["units"][0]["state"] == "failed"
    assert s["units"][0]["failures"] == [{"task": "Run the container", "status": "failed",
                                          "message": "unhealthy after 30 s"}]
    assert s["verdict"] == "fail"


def test_ignored_failures_do_not_fail_a_unit():
    events = run(result("chat", "Probe", 0, 1, status="ignored", message="nope"), stats=clean_stats("chat"))
    assert _bundle.build_summary(events)["units"][0]["state"] == "ok"


def test_without_stats_the_run_is_incomplete_and_open_tasks_unfinished():
    events = run(result("redis", "Check Redis", 0, 1, evidence=[rec("redis", "ping")]),
                 {"event": "host_task_start", "key": "k2", "host": "chat", "unit": True, "task": "Wait for health",
                  "time": T0 + 1})
    s = _bundle.build_summary(events, now=T0 + 9)
    assert s["run"]["status"] == "incomplete"
    assert s["verdict"] == "incomplete"
    assert s["verdict_so_far"] == "pass"
    assert _bundle.compact_summary(s)["verdict_so_far"] == "pass"
    chat = next(u for u in s["units"] if u["name"] == "chat")
    assert chat["state"] == "unfinished"
    assert chat["tasks"][0]["status"] == "unfinished"
    assert chat["tasks"][0]["end_s"] == 9.0


def test_without_unit_hosts_every_host_is_a_unit():
    s = _bundle.build_summary(run(result("a", "t", 0, 1, unit=False), result("b", "t", 0, 1, unit=False),
                                  stats=clean_stats("a", "b")))
    assert [u["name"] for u in s["units"]] == ["a", "b"]
    assert s["parallelism"]["value"] == 2.0


def test_a_record_naming_another_unit_belongs_to_that_unit():
    s = _bundle.build_summary(run(result("localhost", "Preflight", 0, 1, unit=False,
                                         evidence=[rec("catalog", "dependencies")]), stats=clean_stats("localhost")))
    assert [u["name"] for u in s["units"]] == ["catalog"]
    assert s["units"][0]["host"] is False
    assert s["units"][0]["checks"] == {"ok": 1, "total": 1}
    assert s["other_hosts"] == ["localhost"]


def test_records_get_defaults_from_their_task():
    s = _bundle.build_summary(run(result("redis", "Ping", 0, 1, evidence=[{"ok": 1}]), stats=clean_stats("redis")))
    assert s["checks"][0]["unit"] == "redis" and s["checks"][0]["check"] == "Ping" and s["checks"][0]["ok"] is True


def test_summary_is_json():
    s = _bundle.build_summary(run(result("redis", "Ping", 0, 1, evidence=[rec("redis", "ping")]),
                                  stats=clean_stats("redis")))
    assert json.loads(json.dumps(s)) == s


def test_compact_summary_names_failures_and_fakes():
    s = _bundle.build_summary(run(result("redis", "Ping", 0, 1, evidence=[rec("redis", "ping", False, "refused"),
                                                                          rec("redis", "gpu", fake="mocked NVML")]),
                                  stats=clean_stats("redis")))
    c = _bundle.compact_summary(s)
    assert c["verdict"] == "fail"
    assert c["units"]["redis"] == {"state": "ok", "health": None, "checks_ok": 1, "checks_total": 2, "busy_s": 1.0}
    assert c["failed_checks"] == [{"unit": "redis", "check": "ping", "message": "refused"}]
    assert c["fakes"] == [{"unit": "redis", "check": "gpu", "fake": "mocked NVML"}]


# --- renderers ----------------------------------------------------------------------------


def sample_summary() -> dict:
    """A phase5-like run: ten units under strategy free, one failing check, one fake, one failed task."""
    plan = {
        "redis": [("Supply the image", 0.2, 2.0, "ok"), ("Write redis.conf", 2.0, 2.6, "changed"),
                  ("Run the container", 2.6, 9.0, "changed"), ("Check Redis", 9.0, 10.1, "ok")],
        "postgresql": [("Supply the image", 0.3, 2.5, "ok"), ("Provision roles", 2.5, 4.0, "changed"),
                       ("Run the container", 4.0, 14.2, "changed"), ("Check PostgreSQL", 14.2, 15.0, "ok")],
    }
    services = ["voice-interaction", "chat", "coordination", "memory", "learning", "perception",
                "sequential-thinking", "reasoning"]
    for i, name in enumerate(services):
        start = 10.5 + i * 0.4
        deploy_status = "failed" if name == "chat" else "changed"
        plan[name] = [("Wait for dependencies", start, 15.2, "ok"),
                      ("Run the container", 15.2, 21.0 + i * 0.5, deploy_status),
                      ("Skip GPU placement", 21.0 + i * 0.5, 21.1 + i * 0.5, "skipped")]
    events = []
    for host, tasks in plan.items():
        for task, start, end, status in tasks:
            evidence = []
            if task.startswith("Check"):
                evidence = [rec(host, "connect", latency_ms=1.2), rec(host, "anonymous_refused"),
                            rec(host, "wrong_password_refused", ok=host != "postgresql",
                                message="password authentication accepted a wrong password | 28P01")]
            if task == "Run the container":
                bad = status == "failed"
                evidence = [rec(host, "deploy", ok=not bad, health="unhealthy" if bad else "healthy",
                                message="health gate: unhealthy after 6 s" if bad else "")]
            if host == "perception" and task == "Run the container":
                evidence.append(rec(host, "gpu_visible", fake="mocked NVML (no GPU on this machine)"))
            events.append(result(host, task, start, end, status="changed" if status == "changed" else status,
                                 changed=status == "changed", evidence=evidence,
                                 message="container exited with code 1" if status == "failed" else ""))
    for ev in events:
        if ev["status"] == "changed":
            ev["status"] = "ok"
    stats = clean_stats(*plan)
    stats["chat"]["failures"] = 1
    return _bundle.build_summary(run(*events, stats=stats, end=25.0))


def test_report_puts_the_verdict_first_and_says_what_failed():
    s = sample_summary()
    report = _bundle_markdown.render_report(s)
    first = report.splitlines()[0]
    assert first.startswith("# Evidence: FAIL: deploy of chat failed; 2 of ")
    assert "tasks failed on 1 unit" in first
    assert "**postgresql** · check `wrong_password_refused` failed: password authentication accepted" in report
    assert "**chat** · task 'Run the container' failed: container exited with code 1" in report
    assert "**perception** · `gpu_visible` ran against **mocked NVML (no GPU on this machine)**" in report
    assert "| perception | changed | healthy | 2 (1 fake) | 0 | 11.1 s | 1 changed, 1 ok, 1 skipped |" in report
    assert "**Parallelism 4.60**" in report and "Wall time **25.0 s**" in report
    # a pipe in a message does not break the table
    assert "wrong password \\| 28P01" in report


def test_report_of_an_incomplete_run_says_so():
    s = _bundle.build_summary(run(result("redis", "Ping", 0, 1)))
    report = _bundle_markdown.render_report(s)
    assert report.startswith("# Evidence: INCOMPLETE")
    assert "**incomplete**" in report


def test_junit_one_case_per_record_and_failures():
    s = sample_summary()
    root = ET.fromstring(_bundle_junit.render_junit(s))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(s["checks"]) + 1            # plus the failed task on chat
    assert int(suite.get("tests")) == len(cases)
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("postgresql", "wrong_password_refused"), ("chat", "deploy"), ("chat", "task: Run the container")}
    assert int(suite.get("failures")) == 3
    pg = next(c for c in cases if c.get("name") == "wrong_password_refused" and c.get("classname") == "postgresql")
    assert "accepted a wrong password" in pg.find("failure").get("message")
    fake = next(c for c in cases if c.get("name") == "gpu_visible")
    assert fake.find("properties/property").get("value").startswith("mocked NVML")


def test_junit_of_an_incomplete_run_has_an_error():
    root = ET.fromstring(_bundle_junit.render_junit(_bundle.build_summary(run(result("redis", "Ping", 0, 1)))))
    assert root.find("testsuite").get("errors") == "1"
    assert root.find("testsuite/testcase[@classname='run']/error") is not None


def test_junit_survives_control_characters():
    bad = rec("redis", "ping", False, "bad\x00byte\x1b")
    s = _bundle.build_summary(run(result("redis", "Ping", 0, 1, evidence=[bad]), stats=clean_stats("redis")))
    assert ET.fromstring(_bundle_junit.render_junit(s)).find(".//failure") is not None


def test_timeline_is_svg_with_one_row_per_unit_host():
    s = sample_summary()
    svg = ET.fromstring(_bundle_svg.render_timeline(s))
    assert svg.tag == f"{SVG}svg"
    rows = svg.findall(f".//{SVG}g[@class='row']")
    assert [r.get("data-unit") for r in rows] == [u["name"] for u in s["units"]]
    assert len(rows) == 10
    chat = next(r for r in rows if r.get("data-unit") == "chat")
    bars = chat.findall(f"{SVG}rect[@class='bar']")
    assert len(bars) == 3
    # the failed bar is drawn last, on top
    assert [rect.get("fill") for rect in bars] == [_bundle_svg.STATUS_COLOURS[s] for s in ("ok", "skipped", "failed")]
    assert float(bars[2].get("width")) >= 3.0
    redis = next(r for r in rows if r.get("data-unit") == "redis")
    assert [rect.get("fill") for rect in redis.findall(f"{SVG}rect[@class='bar']")] == \
        [_bundle_svg.STATUS_COLOURS[s] for s in ("ok", "changed", "changed", "ok")]
    assert "Run the container - failed" in bars[2].find(f"{SVG}title").text
    texts = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    assert "parallelism" in texts and "0 s" in texts and "seconds since the first unit task started" in texts


def test_timeline_bars_stay_inside_the_plot():
    s = sample_summary()
    svg = ET.fromstring(_bundle_svg.render_timeline(s))
    frame = svg.find(f"{SVG}rect[@class='frame']")
    left, right = float(frame.get("x")), float(frame.get("x")) + float(frame.get("width"))
    for rect in svg.iter(f"{SVG}rect"):
        if rect.get("class") == "bar":
            x, width = float(rect.get("x")), float(rect.get("width"))
            assert left - 0.01 <= x and x + width <= right + 0.01


def test_timeline_without_units_still_renders():
    svg = ET.fromstring(_bundle_svg.render_timeline(_bundle.build_summary(run(stats={}))))
    assert svg.findall(f".//{SVG}g[@class='row']") == []


def test_timeline_shortens_long_unit_names_but_keeps_them_whole_in_the_tooltip():
    name = "a-unit-with-a-name-much-longer-than-any-label-column-could-ever-hold"
    s = _bundle.build_summary(run(result(name, "t", 0, 1), stats=clean_stats(name)))
    label = ET.fromstring(_bundle_svg.render_timeline(s)).find(f".//{SVG}text[@class='label']")
    assert label.text.endswith("…") and len(label.text) < len(name)
    assert label.find(f"{SVG}title").text == name


def test_timeline_escapes_names():
    s = _bundle.build_summary(run(result("a<&>b", "t \"x\" <y>", 0, 1), stats=clean_stats("a<&>b")))
    svg = ET.fromstring(_bundle_svg.render_timeline(s))
    assert svg.find(f".//{SVG}g[@class='row']").get("data-unit") == "a<&>b"


def test_console_table():
    lines = _bundle_console.render_console(sample_summary())
    assert lines[0].split() == ["unit", "state", "checks", "busy", "s"]
    assert any(line.split()[:3] == ["postgresql", "changed", "3/4"] for line in lines)
    assert lines[-1].startswith("verdict: fail · parallelism ")


@pytest.mark.parametrize(("value", "limit", "flat"), [
    (None, 400, ""),
    ("a\n  b\tc ", 400, "a b c"),
    ("abcdef", 4, "abc…"),
    ("abcd", 4, "abcd"),
])
def test_inline_puts_a_message_on_one_bounded_line(value, limit, flat):
    assert _bundle_text.inline(value, limit) == flat


@pytest.mark.parametrize(("value", "safe"), [
    (None, ""),
    ("ok <&>", "ok <&>"),  # escaping is the renderer's job; only characters XML cannot hold are replaced
    ("bad\x00byte\x1b\ufffe", "bad\ufffdbyte\ufffd\ufffd"),
    ("tab\tnewline\n", "tab\tnewline\n"),
    (42, "42"),
])
def test_xml_text_replaces_what_xml_cannot_hold(value, safe):
    assert _bundle_text.xml_text(value) == safe

# --- the mission's criteria ---------------------------------------------------------------


def _rec(unit, check, ok, **observed: object):
    return {"unit": unit, "check": check, "ok": ok, "observed": observed, "message": ""}


MISSION = [
    _rec("redis", "unit_state", True, critical=True, role="redis"),
    _rec("redis", "auth_required", True),
    _rec("redis", "wrong_password_rejected", True),
    _rec("chat", "unit_state", True, critical=True, role="ml_service"),
    _rec("memory", "unit_state", True, critical=False, role="ml_service"),
    _rec("localhost", "gpu_state", True, gpu_count=0),
]


@pytest.mark.parametrize(
    ("change", "parallel", "expected"),
    [
        ({}, 2.0, "pass"),
        ({}, 1.0, "degraded"),  # no parallelism observed
        ({"memory": False}, 2.0, "degraded"),  # a non-critical unit down
        ({"chat": False}, 2.0, "fail"),  # a critical unit down
        ({"auth": False}, 2.0, "fail"),  # Redis accepts anonymous access
    ],
)
def test_mission_verdict(change, parallel, expected):
    records = [dict(r) for r in MISSION]
    for r in records:
        if r["check"] == "unit_state" and r["unit"] in change:
            r["ok"] = change[r["unit"]]
        if r["check"] == "auth_required" and "auth" in change:
            r["ok"] = change["auth"]
    criteria = _bundle_verdict.mission_criteria(records, {"value": parallel})
    assert _bundle_verdict.mission_verdict(criteria, records, [], True) == expected


def test_mission_criteria_absent_without_unit_state_records():
    assert _bundle_verdict.mission_criteria([_rec("redis", "connect", True)], {"value": 2.0}) == []


def test_critical_unit_that_never_reached_verify_is_down():
    records = [r for r in MISSION if r["unit"] != "chat"] + [_rec("chat", "catalog", True, critical=True)]
    criteria = _bundle_verdict.mission_criteria(records, {"value": 2.0})
    assert criteria[0]["detail"] == "down: chat"
    assert _bundle_verdict.mission_verdict(criteria, records, ["chat"], True) == "fail"


def test_failed_task_on_a_critical_unit_fails_the_mission():
    criteria = _bundle_verdict.mission_criteria(MISSION, {"value": 2.0})
    assert _bundle_verdict.mission_verdict(criteria, MISSION, ["chat"], True) == "fail"
    assert _bundle_verdict.mission_verdict(criteria, MISSION, ["memory"], True) == "degraded"


def test_headline_says_a_failed_deploy_was_rolled_back_and_ignores_degraded_units():
    checks = [rec("voice-interaction", "deploy", ok=False, rolled_back=True),
              rec("reasoning", "deploy", ok=False, rolled_back=True, degraded=True)]
    summary = {"verdict": "fail", "criteria": [], "checks": checks, "units": []}
    assert _bundle_markdown._headline(summary) == ("FAIL: deploy of voice-interaction failed and was rolled back "
                                                   "(the last good container serves); 2 of 2 checks failed")


@pytest.mark.parametrize(("records", "ok", "detail"), [
    # An imported compose stack: no Redis unit in the catalog, nothing to resolve.
    ([_rec("web", "catalog", True, critical=False, role="app"), _rec("web", "unit_state", True, critical=False)],
     True, "not applicable: the catalog has no Redis unit"),
    # A Redis unit in the catalog that never reached verify: still unresolved.
    ([_rec("redis", "catalog", True, critical=True, role="redis"), _rec("web", "unit_state", True, critical=False)],
     False, "no passing auth_required and wrong_password_rejected checks for a Redis unit"),
])
def test_redis_authentication_is_judged_only_where_the_catalog_has_redis(records, ok, detail):
    criterion = _bundle_verdict.mission_criteria(records, {"value": 2.0})[1]
    assert (criterion["name"], criterion["ok"], criterion["detail"]) == ("Redis authentication resolved", ok, detail)


PREFLIGHT_ONLY = [_rec("redis", "catalog", True, critical=True, role="redis"),
                  _rec("chat", "catalog", True, critical=True, role="ml_service"),
                  _rec("memory", "catalog", True, critical=False, role="ml_service")]


@pytest.mark.parametrize(("records", "failed_units", "expected"), [
    (PREFLIGHT_ONLY, [], "incomplete"),  # nothing deployed: nothing to judge, not a failure
    (PREFLIGHT_ONLY, ["memory"], "incomplete"),  # a non-critical unit failed before any verify
    (PREFLIGHT_ONLY, ["chat"], "fail"),  # a critical unit failed: fail, verified or not
    ([*PREFLIGHT_ONLY[:2], _rec("memory", "catalog", False, critical=False)], [], "incomplete"),
    ([*PREFLIGHT_ONLY[1:], _rec("redis", "catalog", False, critical=True, role="redis")], [], "fail"),
])
def test_a_complete_run_that_verified_no_unit_is_incomplete(records, failed_units, expected):
    criteria = _bundle_verdict.mission_criteria(records, {"value": None})
    assert _bundle_verdict.mission_verdict(criteria, records, failed_units, True) == expected


def test_report_of_a_preflight_only_run_says_no_unit_was_verified():
    summary = {"verdict": "incomplete", "criteria": [], "checks": [], "units": [], "run": {"status": "complete"}}
    assert _bundle_markdown._headline(summary).startswith("INCOMPLETE: no unit reached the verify stream")
