# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence bundle callback: collects every task result and evidence record of a run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: evidence
type: aggregate
short_description: Write an evidence bundle (JSON, report, JUnit, timeline) for every run
version_added: 0.1.0
description:
  - Collects, for every task result on every host, the task, role, action, status, the host's own start and end
    times and any C(evidence) record(s) the result carries, and writes one bundle per run in
    O(output_dir)/C(<UTC timestamp>-<run id>)/ with a C(latest) link to the newest.
  - Events are appended to C(events.jsonl) as they arrive, so that a crashed or interrupted run still leaves
    evidence; the C(status) in C(evidence.json) is C(incomplete) until Ansible's final stats arrive.
  - At the end of the run it writes C(evidence.json), C(summary.json), C(report.md), C(junit.xml),
    C(timeline.svg) and, unless O(sample_interval) is 0, the utilization files; it prints a short table of the units.
  - State is keyed by task and host uuid and each host's start time comes from C(v2_runner_on_start), so the
    times are right under the C(free) strategy. Results with C(no_log) are recorded as censored (task, host, status
    and times only); module arguments (C(invocation)) are never recorded.
  - The callback never fails a run; its own errors become warnings.
  - While the run goes on, the absolute path of its bundle is in the environment variable
    C(MLSTACK_EVIDENCE_BUNDLE), so that a final play can hand C(summary.json) to AWX with C(set_stats).
    See docs/evidence.md in the collection.
requirements:
  - enable in configuration (C(callbacks_enabled = aiops.mlstack.evidence) in ansible.cfg, or
    C(ANSIBLE_CALLBACKS_ENABLED=aiops.mlstack.evidence))
options:
  output_dir:
    description:
      - Directory that holds the bundles, one sub-directory per run. Relative paths are taken from the working
        directory of C(ansible-playbook).
    type: path
    default: ./evidence
    env:
      - name: MLSTACK_EVIDENCE_DIR
    ini:
      - section: callback_evidence
        key: output_dir
  keep:
    description:
      - How many bundles to keep in O(output_dir), the new one included; older ones are removed.
      - C(0) keeps every bundle.
    type: int
    default: 20
    env:
      - name: MLSTACK_EVIDENCE_KEEP
    ini:
      - section: callback_evidence
        key: keep
  sample_interval:
    description:
      - Seconds between samples of the units' CPU and memory (Docker's stats API, containers labelled
        C(io.mlstack.unit)) and each GPU's load (NVML), taken in a thread from the first play to the end of the
        run, for C(utilization.json), C(utilization.md), C(utilization/<unit>.svg) and C(dashboard.html).
      - C(0) turns the sampler off. See docs/utilization.md in the collection.
    type: float
    default: 1.0
    env:
      - name: MLSTACK_EVIDENCE_SAMPLE_INTERVAL
    ini:
      - section: callback_evidence
        key: sample_interval
  unit_group:
    description:
      - Inventory group whose hosts are units. The units' tasks make the timeline and the parallelism figure;
        other hosts (the controller's preflight, the Docker hosts) are listed but not counted.
      - Hosts that evidence records name as their unit count as units too. When no host is a unit, every host is.
    type: str
    default: mlstack_units
    env:
      - name: MLSTACK_EVIDENCE_UNIT_GROUP
    ini:
      - section: callback_evidence
        key: unit_group
"""

import atexit
import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version

from ansible_collections.aiops.mlstack.plugins.plugin_utils import (
    _bundle,
    _bundle_console,
    _bundle_junit,
    _bundle_markdown,
    _bundle_svg,
    _bundle_util,
    _sampler,
)
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_files import point_latest as _point_latest
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_files import prune as _prune
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_files import utc_stamp as _utc_stamp
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_files import write_atomic as _write_atomic

BUNDLE_ENV = "MLSTACK_EVIDENCE_BUNDLE"
_MESSAGE_LIMIT = 2000

_F = TypeVar("_F", bound=Callable[..., None])


def _guarded(method: _F) -> _F:
    """Run a callback method; turn any exception into a warning so the run goes on."""

    @functools.wraps(method)
    def wrapper(self: CallbackModule, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:  # the callback must never break or hide a run
            self._warn(method.__name__, exc)

    return wrapper  # type: ignore[return-value]


def _result_parts(result: Any) -> tuple[Any, Any, Mapping[str, Any]]:
    """(task, host, result dict) of a task result (``task`` on 2.19+, ``_task`` before)."""
    task = getattr(result, "task", None) or result._task
    host = getattr(result, "host", None) or result._host
    data = getattr(result, "result", None)
    if data is None:
        data = result._result
    return task, host, data


def _is_censored(task: Any, data: Mapping[str, Any]) -> bool:
    """no_log on the task or on the result: only name, host, status and times may be kept."""
    return getattr(task, "no_log", False) is True or bool(data.get("_ansible_no_log")) or "censored" in data


def _role_name(task: Any) -> str | None:
    role = getattr(task, "_role", None)
    if role is None:
        return None
    get_name = getattr(role, "get_name", None)
    return str(get_name()) if callable(get_name) else str(role)


def _message(status: str, data: Mapping[str, Any]) -> str:
    """Why a task failed, was unreachable or skipped, on one line and shortened."""
    if status == "skipped":
        text = data.get("skip_reason") or ""
    elif status in ("failed", "unreachable", "ignored"):
        text = data.get("msg") or (f"rc={data['rc']}" if "rc" in data else "") or status
    else:
        return ""
    text = str(text)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _loop_items(data: Mapping[str, Any]) -> list[Any]:
    items = data.get("results")
    return items if isinstance(items, list) else []


def _evidence_records(raw: Mapping[str, Any], view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``evidence`` record(s) of a result and of its loop items (a dict or a list of dicts),
    taken from the censored ``view``; an item that ``raw`` marks no_log gives none."""
    found: list[dict[str, Any]] = []
    for raw_item, item in [(raw, view)] + list(zip(_loop_items(raw), _loop_items(view), strict=False)):
        if not isinstance(item, Mapping) or not isinstance(raw_item, Mapping) or _is_censored(None, raw_item):
            continue
        value = item.get("evidence")
        records = value if isinstance(value, list) else [value]
        found.extend(dict(rec) for rec in records if isinstance(rec, Mapping))
    return found


class CallbackModule(CallbackBase):
    """Collects task results and evidence records; writes the run's evidence bundle."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "aiops.mlstack.evidence"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(display=display, options=options)
        self._clock: Callable[[], float] = time.time
        self._events: list[dict[str, Any]] = []
        self._starts: dict[str, dict[str, float]] = {}  # task uuid -> host uuid -> start time
        self._bundle: Path | None = None
        self._journal: IO[str] | None = None
        self._started = False
        self._finished = False
        self._warned: set[str] = set()
        self._pid = os.getpid()
        self._sampler: _sampler.Sampler | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def _warn(self, where: str, exc: BaseException) -> None:
        """One warning per failing method: the run goes on, the bundle may lack some events."""
        if where in self._warned:
            return
        self._warned.add(where)
        self._display.warning(f"aiops.mlstack.evidence: {where} failed ({type(exc).__name__}: {exc}); "
                              "the run goes on, the evidence bundle may be incomplete")

    def _emit(self, event: dict[str, Any]) -> None:
        """Keep an event and append it to events.jsonl at once."""
        self._events.append(event)
        if self._journal is not None:
            self._journal.write(json.dumps(event, default=str, ensure_ascii=False) + "\n")
            self._journal.flush()

    def _ensure_started(self) -> None:
        """Open the run's bundle on its first event (whatever that event is)."""
        if self._started:
            return
        self._started = True
        now = self._clock()
        run_id = uuid.uuid4().hex[:8]
        try:
            self._bundle = self._open_bundle(f"{_utc_stamp(now)}-{run_id}")
        except OSError as exc:
            self._warn("opening the bundle directory", exc)
        self._emit({"event": "run_start", "run_id": run_id, "time": now, "ansible_version": ansible_version,
                    "bundle": str(self._bundle) if self._bundle else None})
        self._write_interim()
        atexit.register(self._at_exit)

    def _open_bundle(self, name: str) -> Path:
        output_dir = Path(os.path.abspath(os.path.expanduser(str(self.get_option("output_dir")))))
        bundle = output_dir / name
        bundle.mkdir(parents=True, exist_ok=False)
        self._journal = open(bundle / "events.jsonl", "a", encoding="utf-8")  # open for the whole run
        os.environ[BUNDLE_ENV] = str(bundle)
        try:
            _point_latest(output_dir, bundle)
            _prune(output_dir, int(self.get_option("keep")), bundle)
        except OSError as exc:
            self._warn("updating latest and pruning old bundles", exc)
        return bundle

    def _is_unit(self, host: Any) -> bool:
        group = self.get_option("unit_group")
        get_groups = getattr(host, "get_groups", None)
        groups = get_groups() if callable(get_groups) else getattr(host, "groups", [])
        return any(getattr(g, "name", g) == group for g in groups)

    def _safe_view(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """The result as the censoring helpers leave it: no internal keys, no invocation."""
        view = self._dump_results(data, serialize=False)
        return view if isinstance(view, Mapping) else {}

    # --- writing the bundle -----------------------------------------------------------------

    def _write_files(self, summary: dict[str, Any], final: bool) -> None:
        if self._bundle is None:
            return
        _write_atomic(self._bundle / "evidence.json", json.dumps(summary, indent=2, default=str, ensure_ascii=False))
        _write_atomic(self._bundle / "summary.json",
                      json.dumps(_bundle.compact_summary(summary), indent=2, default=str, ensure_ascii=False))
        if final:
            _write_atomic(self._bundle / "report.md", _bundle_markdown.render_report(summary))
            _write_atomic(self._bundle / "junit.xml", _bundle_junit.render_junit(summary))
            _write_atomic(self._bundle / "timeline.svg", _bundle_svg.render_timeline(summary))

    def _start_sampler(self) -> None:
        """Sample the units' and GPUs' load from the first play on (never twice, never when turned off)."""
        interval = float(self.get_option("sample_interval") or 0)
        if self._sampler is not None or interval <= 0 or self._bundle is None:
            return
        try:
            read = _sampler.combined_reader(_sampler.docker_reader(), _sampler.gpu_reader())
        except Exception as exc:  # no engine on this controller (AWX, remote hosts): no figures, no alarm
            self._display.v(f"aiops.mlstack.evidence: no utilization sampler ({type(exc).__name__}: {exc})")
            return
        self._sampler = _sampler.Sampler(read, interval=interval, clock=self._clock)
        self._sampler.start()

    def _write_utilization(self, summary: dict[str, Any]) -> None:
        try:
            if self._sampler is None or self._bundle is None:
                return
            samples = self._sampler.stop()
            util = _bundle_util.build_utilization(samples, self._sampler.overhead(), summary)
            title = f"Utilization during {summary['run']['playbook'] or 'the run'} ({summary['run']['id']})"
            _bundle_util.write_files(self._bundle, util, title, _write_atomic)
        except Exception as exc:
            self._warn("writing the utilization files", exc)

    def _write_interim(self) -> None:
        """evidence.json and summary.json as they stand, marked incomplete."""
        try:
            self._write_files(_bundle.build_summary(self._events, now=self._clock()), final=False)
        except Exception as exc:
            self._warn("writing the interim summary", exc)

    def _finish(self) -> None:
        """Render every file of the bundle once, print the summary, close the journal."""
        if self._finished or not self._started:
            return
        self._finished = True
        try:
            summary = _bundle.build_summary(self._events, now=self._clock())
            self._write_files(summary, final=True)
            self._write_utilization(summary)
            self._show(summary)
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _show(self, summary: dict[str, Any]) -> None:
        self._display.display("EVIDENCE " + "*" * 71)
        for line in _bundle_console.render_console(summary):
            self._display.display(line)
        self._display.display(f"bundle: {self._bundle or '(not written)'}")

    def _at_exit(self) -> None:
        """The process ends without final stats: keep what was collected, marked incomplete."""
        if self._finished or os.getpid() != self._pid:
            return
        try:
            self._emit({"event": "interrupted", "time": self._clock()})
            self._finish()
        except Exception as exc:
            self._warn("writing the bundle of an interrupted run", exc)

    # --- collecting -------------------------------------------------------------------------

    def _on_result(self, result: Any, status: str) -> None:
        task, host, data = _result_parts(result)
        end = self._clock()
        start = self._starts.get(task._uuid, {}).pop(host._uuid, None)
        start = end if start is None else start
        event: dict[str, Any] = {
            "event": "result", "key": f"{task._uuid}/{host._uuid}", "host": host.name, "unit": self._is_unit(host),
            "task": task.get_name().strip(), "role": _role_name(task),
            "action": getattr(task, "resolved_action", None) or task.action, "status": status,
            "start": start, "end": end, "duration": round(end - start, 3), "changed": bool(data.get("changed")),
            "censored": _is_censored(task, data),
        }
        if not event["censored"]:
            view = self._safe_view(data)
            event["message"] = _message(status, view)
            event["evidence"] = _evidence_records(data, view)
        self._emit(event)

    @_guarded
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._ensure_started()
        name = os.path.basename(playbook._file_name)
        self._emit({"event": "playbook_start", "playbook": name, "time": self._clock()})

    @_guarded
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._ensure_started()
        self._emit({"event": "play_start", "play": play.get_name().strip(), "time": self._clock()})
        self._write_interim()
        self._start_sampler()  # last: the method is guarded, a failure here loses nothing else

    @_guarded
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._ensure_started()
        now = self._clock()
        self._starts.setdefault(task._uuid, {})[host._uuid] = now
        self._emit({"event": "host_task_start", "key": f"{task._uuid}/{host._uuid}", "host": host.name,
                    "unit": self._is_unit(host), "task": task.get_name().strip(), "time": now})

    @_guarded
    def v2_runner_on_ok(self, result: Any) -> None:
        self._ensure_started()
        self._on_result(result, "ok")

    @_guarded
    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._ensure_started()
        self._on_result(result, "ignored" if ignore_errors else "failed")

    @_guarded
    def v2_runner_on_skipped(self, result: Any) -> None:
        self._ensure_started()
        self._on_result(result, "skipped")

    @_guarded
    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._ensure_started()
        self._on_result(result, "unreachable")

    @_guarded
    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._ensure_started()
        hosts = {name: dict(stats.summarize(name)) for name in sorted(stats.processed)}
        self._emit({"event": "stats", "time": self._clock(), "hosts": hosts})
        self._finish()
