# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence callback fed synthetic events: free-strategy interleaving, no_log, failures,
its own errors, interrupted runs, bundle housekeeping."""

from __future__ import annotations

import atexit
import json
import os
import uuid
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.callback import evidence as ev
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _bundle_markdown

SECRET = "s3cr3t-TOPSECRET-hunter2"
T0 = 1_800_000_000.0


class FakeDisplay:
    verbosity = 0

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def display(self, msg: str, **_: Any) -> None:
        self.lines.append(msg)

    def warning(self, msg: str, **_: Any) -> None:
        self.warnings.append(msg)


class FakeHost:
    def __init__(self, name: str, groups: tuple[str, ...] = ("all", "mlstack_units")) -> None:
        self.name = name
        self._uuid = f"host-{uuid.uuid4().hex[:6]}"
        self._groups = [SimpleNamespace(name=g) for g in groups]

    def get_name(self) -> str:
        return self.name

    def get_groups(self) -> list[SimpleNamespace]:
        return self._groups


class FakeTask:
    def __init__(self, name: str, action: str = "ansible.builtin.command", no_log: bool = False,
                 role: str | None = None) -> None:
        self._uuid = f"task-{uuid.uuid4().hex[:6]}"
        self._name = name
        self.action = action
        self.no_log = no_log
        self._role = SimpleNamespace(get_name=lambda: role) if role else None

    def get_name(self) -> str:
        return self._name


class FakeResult:
    """The pre-2.19 private attribute names; the callback reads the public ones first."""

    def __init__(self, host: FakeHost, task: FakeTask, result: dict[str, Any]) -> None:
        self._host = host
        self._task = task
        self._result = result


class FakeStats:
    def __init__(self, **per_host: dict[str, int]) -> None:
        self.processed = dict.fromkeys(per_host, 1)
        self._per_host = per_host

    def summarize(self, host: str) -> dict[str, int]:
        base = {"ok": 1, "changed": 0, "failures": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 0}
        return {**base, **self._per_host[host]}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Playbook:
    _file_name = "/srv/mlstack/playbooks/phase5.yml"


def record(unit: str, check: str, ok: bool = True, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"schema": 1, "unit": unit, "check": check, "ok": ok, "observed": {"latency_ms": 1.0},
            "message": message, "timestamp": "2027-01-15T08:00:00.000+00:00", **extra}


@pytest.fixture
def cb(tmp_path, monkeypatch):
    monkeypatch.delenv(ev.BUNDLE_ENV, raising=False)
    callback = ev.CallbackModule(display=FakeDisplay())
    callback._plugin_options = {"output_dir": str(tmp_path / "evidence"), "keep": 20, "unit_group": "mlstack_units",
                                "sample_interval": 0}
    callback._clock = Clock()
    yield callback
    atexit.unregister(callback._at_exit)
    if callback._journal is not None:
        callback._journal.close()


def at(cb: ev.CallbackModule, seconds: float) -> None:
    cb._clock.now = T0 + seconds


def task_run(cb, host, task, start, end, result, status="ok"):
    at(cb, start)
    cb.v2_runner_on_start(host, task)
    at(cb, end)
    getattr(cb, f"v2_runner_on_{status}")(FakeResult(host, task, result))


def bundle_files(cb) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in cb._bundle.iterdir() if p.is_file()}


def evidence_json(cb) -> dict[str, Any]:
    return json.loads((cb._bundle / "evidence.json").read_text())


def test_interleaved_hosts_under_free_get_their_own_start_times(cb):
    a, b = FakeHost("redis"), FakeHost("postgresql")
    deploy = FakeTask("Run the container", "aiops.mlstack.container", role="aiops.mlstack.redis")
    check = FakeTask("Check")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    at(cb, 1)
    cb.v2_runner_on_start(a, deploy)                       # A starts
    at(cb, 2)
    cb.v2_runner_on_start(b, deploy)                       # B starts the same task later
    at(cb, 4)
    cb.v2_runner_on_ok(FakeResult(a, deploy, {"changed": True, "evidence": record("redis", "deploy")}))
    at(cb, 6)
    cb.v2_runner_on_ok(FakeResult(b, deploy, {"changed": False, "evidence": record("postgresql", "deploy")}))
    task_run(cb, a, check, 4, 5, {"evidence": [record("redis", "ping"), record("redis", "auth")]})
    at(cb, 7)
    cb.v2_playbook_on_stats(FakeStats(redis={}, postgresql={}))

    s = evidence_json(cb)
    units = {u["name"]: u for u in s["units"]}
    assert [(t["start_s"], t["end_s"]) for t in units["redis"]["tasks"]] == [(1.0, 4.0), (4.0, 5.0)]
    assert [(t["start_s"], t["end_s"]) for t in units["postgresql"]["tasks"]] == [(2.0, 6.0)]   # not 1.0
    assert units["redis"]["tasks"][0]["role"] == "aiops.mlstack.redis"
    assert units["redis"]["tasks"][0]["action"] == "aiops.mlstack.container"
    assert units["redis"]["state"] == "changed" and units["postgresql"]["state"] == "ok"
    assert units["redis"]["busy_s"] == 4.0 and units["postgresql"]["busy_s"] == 4.0
    assert s["parallelism"]["value"] == pytest.approx(8.0 / 5.0)
    assert s["parallelism"]["value"] > 1
    assert s["verdict"] == "pass"
    assert s["run"]["status"] == "complete"
    assert s["run"]["playbook"] == "phase5.yml"
    assert len(s["checks"]) == 4
    assert s["run"]["hosts"]["redis"]["failures"] == 0


def test_no_log_results_are_censored_everywhere(cb):
    host = FakeHost("redis")
    hidden = FakeTask("Write the healthcheck password", "ansible.builtin.copy", no_log=True)
    flagged = FakeTask("Generate the secret", "aiops.mlstack.secret")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    # A task with no_log, whose (uncensored, as a buggy caller might pass it) result holds the secret.
    leaky = {"changed": True, "content": SECRET, "msg": SECRET,
             "evidence": record("redis", "password", message=SECRET),
             "invocation": {"module_args": {"content": SECRET}}}
    task_run(cb, host, hidden, 0, 1, leaky)
    # A result marked no_log by Ansible (e.g. a templated no_log), failed with the secret in its message.
    task_run(cb, host, flagged, 1, 2, {"_ansible_no_log": True, "msg": f"bad value {SECRET}", "value": SECRET},
             status="failed")
    at(cb, 3)
    cb.v2_playbook_on_stats(FakeStats(redis={"failures": 1}))

    files = bundle_files(cb)
    assert set(files) >= {"events.jsonl", "evidence.json", "summary.json", "report.md", "junit.xml", "timeline.svg"}
    for name, text in files.items():
        assert SECRET not in text, name
    tasks = evidence_json(cb)["units"][0]["tasks"]
    assert [(t["task"], t["status"], t.get("censored")) for t in tasks] == [
        ("Write the healthcheck password", "ok", True), ("Generate the secret", "failed", True)]
    assert evidence_json(cb)["checks"] == []


def test_invocation_is_never_recorded(cb):
    host, task = FakeHost("redis"), FakeTask("Check Redis", "aiops.mlstack.redis_check")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, host, task, 0, 1, {"evidence": [record("redis", "ping")],
                                    "invocation": {"module_args": {"password": "ARGS-ONLY-VALUE"}}})
    cb.v2_playbook_on_stats(FakeStats(redis={}))
    assert all("ARGS-ONLY-VALUE" not in text for text in bundle_files(cb).values())


def test_a_failed_record_fails_the_run_and_the_junit_case(cb):
    host, task = FakeHost("postgresql"), FakeTask("Check PostgreSQL", "aiops.mlstack.postgres_check")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, host, task, 0, 2, {"evidence": [record("postgresql", "connect"),
                                                 record("postgresql", "wrong_password_refused", False,
                                                        "a wrong password was accepted")]})
    cb.v2_playbook_on_stats(FakeStats(postgresql={}))

    assert evidence_json(cb)["verdict"] == "fail"
    suite = ET.parse(cb._bundle / "junit.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"connect", "wrong_password_refused"}
    assert all(c.get("classname") == "postgresql" for c in cases.values())
    assert cases["connect"].find("failure") is None
    assert cases["wrong_password_refused"].find("failure").get("message") == "a wrong password was accepted"
    report = (cb._bundle / "report.md").read_text()
    assert report.startswith("# Evidence: FAIL: 1 of 2 checks failed")
    assert "a wrong password was accepted" in report
    assert any(line.startswith("verdict: fail") for line in cb._display.lines)


def test_failed_unreachable_skipped_and_ignored_statuses(cb):
    host = FakeHost("chat")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, host, FakeTask("Skip me"), 0, 0.1, {"skip_reason": "Conditional result was False"}, "skipped")
    at(cb, 0.2)
    cb.v2_runner_on_start(host, probe := FakeTask("Probe"))
    at(cb, 0.3)
    cb.v2_runner_on_failed(FakeResult(host, probe, {"msg": "probe said no"}), ignore_errors=True)
    task_run(cb, host, FakeTask("Connect"), 1, 2, {"msg": "ssh: no route to host"}, "unreachable")
    cb.v2_playbook_on_stats(FakeStats(chat={"unreachable": 1}))
    unit = evidence_json(cb)["units"][0]
    assert [(t["status"], t["message"]) for t in unit["tasks"]] == [
        ("skipped", "Conditional result was False"),
        ("ignored", "probe said no"),
        ("unreachable", "ssh: no route to host"),
    ]
    assert unit["state"] == "failed"
    assert evidence_json(cb)["verdict"] == "fail"


def test_records_in_loop_items_are_collected(cb):
    host, task = FakeHost("redis"), FakeTask("Check each user")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, host, task, 0, 1, {"results": [{"evidence": record("redis", "user_a")},
                                                {"evidence": [record("redis", "user_b")]},
                                                {"_ansible_no_log": True, "evidence": record("redis", SECRET)}]})
    cb.v2_playbook_on_stats(FakeStats(redis={}))
    assert [c["check"] for c in evidence_json(cb)["checks"]] == ["user_a", "user_b"]


def test_hosts_outside_the_unit_group_are_not_units(cb):
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, FakeHost("localhost", groups=("all", "docker_hosts")), FakeTask("Preflight"), 0, 5, {})
    task_run(cb, FakeHost("redis"), FakeTask("Deploy"), 5, 6, {})
    cb.v2_playbook_on_stats(FakeStats(localhost={}, redis={}))
    s = evidence_json(cb)
    assert [u["name"] for u in s["units"]] == ["redis"]
    assert s["other_hosts"] == ["localhost"]
    assert s["parallelism"]["wall_s"] == 1.0


def test_an_exception_inside_the_callback_does_not_propagate(cb, monkeypatch):
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    broken = SimpleNamespace(_host=None, _task=None, _result=None)      # nothing the callback can read
    cb.v2_runner_on_ok(broken)
    cb.v2_runner_on_ok(broken)
    assert len(cb._display.warnings) == 1                                 # once per method, not per event
    assert "v2_runner_on_ok failed" in cb._display.warnings[0]

    def explode(_summary):
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(_bundle_markdown, "render_report", explode)
    cb.v2_playbook_on_stats(FakeStats())                                  # must not raise
    assert any("renderer bug" in w for w in cb._display.warnings)
    assert cb._journal is None                                            # the journal is closed all the same


def test_an_unwritable_output_dir_warns_and_the_run_goes_on(cb, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cb._plugin_options["output_dir"] = str(blocker)
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, FakeHost("redis"), FakeTask("Deploy"), 0, 1, {"evidence": record("redis", "deploy")})
    cb.v2_playbook_on_stats(FakeStats(redis={}))
    assert cb._bundle is None
    assert any("opening the bundle directory" in w for w in cb._display.warnings)
    assert any(line.startswith("verdict: pass") for line in cb._display.lines)


def test_an_interrupted_run_leaves_events_and_says_incomplete(cb):
    host = FakeHost("chat")
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    task_run(cb, host, FakeTask("Supply the image"), 0, 1, {"evidence": record("chat", "image")})
    at(cb, 1)
    cb.v2_runner_on_start(host, FakeTask("Wait until healthy"))
    # The process dies here: no stats. What is on disk already?
    lines = [json.loads(line) for line in (cb._bundle / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in lines] == [
        "run_start", "playbook_start", "host_task_start", "result", "host_task_start"]
    assert evidence_json(cb)["run"]["status"] == "incomplete"
    # Then the interpreter exits (atexit).
    at(cb, 9)
    cb._at_exit()
    s = evidence_json(cb)
    assert s["run"]["status"] == "incomplete"
    assert s["verdict"] == "incomplete"
    assert s["units"][0]["tasks"][-1]["status"] == "unfinished"
    assert s["units"][0]["tasks"][-1]["end_s"] == 9.0
    assert (cb._bundle / "report.md").read_text().startswith("# Evidence: INCOMPLETE")
    assert ET.parse(cb._bundle / "junit.xml").getroot().find(".//error") is not None
    assert json.loads((cb._bundle / "events.jsonl").read_text().splitlines()[-1])["event"] == "interrupted"
    cb._at_exit()                                                         # idempotent


def test_at_exit_after_stats_does_nothing(cb):
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    cb.v2_playbook_on_stats(FakeStats())
    before = (cb._bundle / "events.jsonl").read_text()
    cb._at_exit()
    assert (cb._bundle / "events.jsonl").read_text() == before


def test_interim_summary_at_each_play_start_and_the_bundle_env(cb):
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    assert os.environ[ev.BUNDLE_ENV] == str(cb._bundle)
    task_run(cb, FakeHost("redis"), FakeTask("Check"), 0, 1, {"evidence": record("redis", "ping")})
    cb.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Hand the summary to AWX"))
    interim = json.loads((cb._bundle / "summary.json").read_text())
    assert interim["status"] == "incomplete"
    assert interim["units"]["redis"]["checks_ok"] == 1
    assert interim["bundle"] == str(cb._bundle)


def test_timeline_has_one_row_per_unit(cb):
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    for i, name in enumerate(("redis", "postgresql", "chat")):
        task_run(cb, FakeHost(name), FakeTask("Deploy"), i, i + 2, {"evidence": record(name, "deploy")})
    cb.v2_playbook_on_stats(FakeStats(redis={}, postgresql={}, chat={}))
    svg = ET.parse(cb._bundle / "timeline.svg").getroot()
    rows = svg.findall(".//{http://www.w3.org/2000/svg}g[@class='row']")
    assert [r.get("data-unit") for r in rows] == ["redis", "postgresql", "chat"]


def test_latest_link_and_keep(cb, tmp_path):
    out = tmp_path / "evidence"
    out.mkdir()
    old = [out / f"2026010{i}T000000Z-0000000{i}" for i in range(1, 5)]
    for path in old:
        path.mkdir()
    (out / "notes").mkdir()                                               # not a bundle: left alone
    cb._plugin_options["keep"] = 3
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    assert os.readlink(out / "latest") == cb._bundle.name
    kept = sorted([old[2].name, old[3].name, cb._bundle.name, "latest", "notes"])
    assert sorted(p.name for p in out.iterdir()) == kept


def test_keep_zero_keeps_everything(tmp_path):
    for i in range(1, 4):
        (tmp_path / f"2026010{i}T000000Z-0000000{i}").mkdir()
    ev._prune(tmp_path, 0, tmp_path / "x")
    assert len(list(tmp_path.iterdir())) == 3


def test_callback_declares_itself_aggregate_and_opt_in():
    assert ev.CallbackModule.CALLBACK_TYPE == "aggregate"
    assert ev.CallbackModule.CALLBACK_NEEDS_ENABLED is True
    cb = ev.CallbackModule(display=FakeDisplay())
    cb._init_callback_methods()
    assert {"v2_runner_on_start", "v2_runner_on_ok", "v2_playbook_on_stats"} <= cb._implemented_callback_methods


def test_documentation_options_parse():
    import yaml

    doc = yaml.safe_load(ev.DOCUMENTATION)
    assert doc["type"] == "aggregate"
    assert doc["options"]["output_dir"]["default"] == "./evidence"
    assert doc["options"]["output_dir"]["env"] == [{"name": "MLSTACK_EVIDENCE_DIR"}]
    assert doc["options"]["output_dir"]["ini"] == [{"section": "callback_evidence", "key": "output_dir"}]
    assert doc["options"]["keep"]["default"] == 20


def test_the_sampler_runs_from_the_first_play_and_its_files_join_the_bundle(cb, monkeypatch):
    from ansible_collections.aiops.mlstack.plugins.plugin_utils import _sampler

    reads = iter([{"units": {"redis": {"cpu_ns": n * 1e8, "mem_bytes": 5e6}}, "gpus": {}} for n in range(1000)])
    monkeypatch.setattr(_sampler, "docker_reader", lambda: lambda: next(reads))
    monkeypatch.setattr(_sampler, "gpu_reader", lambda: None)
    cb._plugin_options["sample_interval"] = 60  # the test takes the samples itself
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    cb.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Deploy"))
    cb.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Verify"))  # still one sampler
    sampler = cb._sampler
    for second in (1, 2, 3):
        at(cb, second)
        sampler.sample_once()
    task_run(cb, FakeHost("redis"), FakeTask("Run"), 0.5, 2.5, {"changed": True})
    at(cb, 4)
    cb.v2_playbook_on_stats(FakeStats(redis={}))
    assert cb._sampler is sampler and not sampler._thread.is_alive()
    util = json.loads((cb._bundle / "utilization.json").read_text())
    assert [row["name"] for row in util["table"]["units"]] == ["redis"]
    assert (cb._bundle / "utilization" / "redis.svg").is_file()
    assert "redis" in (cb._bundle / "dashboard.html").read_text()
    assert cb._display.warnings == []


def test_sample_interval_zero_turns_the_sampler_off(cb):
    at(cb, 0)
    cb.v2_playbook_on_start(Playbook())
    cb.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Deploy"))
    cb.v2_playbook_on_stats(FakeStats())
    assert cb._sampler is None and not (cb._bundle / "dashboard.html").exists()
    assert cb._display.warnings == []


def test_the_documentation_declares_every_option_the_fixture_sets():
    import yaml

    options = yaml.safe_load(ev.DOCUMENTATION)["options"]
    assert {"output_dir", "keep", "unit_group", "sample_interval"} <= set(options)
    assert options["sample_interval"]["env"] == [{"name": "MLSTACK_EVIDENCE_SAMPLE_INTERVAL"}]
