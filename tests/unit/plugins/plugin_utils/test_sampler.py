# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy sampler on recorded data: Docker stats answers, NVML facts, and a recorded run."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _bundle_util, _dashboard
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _sampler as sm

FIXTURES = Path(__file__).parent / "fixtures"
MIB = 1024 * 1024


def recorded_stats() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "docker_stats_chat.json").read_text())["reads"]


def recorded_run() -> dict[str, Any]:
    """utilization.json of a real no-op phase5 on the local inventory."""
    return json.loads((FIXTURES / "utilization_phase5.json").read_text())


def test_container_figures_from_a_recorded_stats_answer():
    first = recorded_stats()[0]
    figures = sm.container_figures(first)
    assert figures["cpu_ns"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
    # docker stats' figure: usage less the inactive page cache (cgroup v1 key on this engine)
    mem = first["memory_stats"]
    assert figures["mem_bytes"] == mem["usage"] - mem["stats"]["total_inactive_file"]


@pytest.mark.parametrize("stats,expected", [
    ({}, {"cpu_ns": None, "mem_bytes": None}),
    ({"cpu_stats": {"cpu_usage": {"total_usage": 5}}, "memory_stats": {"usage": 100, "stats": {"inactive_file": 40}}},
     {"cpu_ns": 5.0, "mem_bytes": 60.0}),
    ({"memory_stats": {"usage": 10, "stats": {"inactive_file": 40}}}, {"cpu_ns": None, "mem_bytes": 0.0}),
])
def test_container_figures_cgroup_v2_and_missing_values(stats, expected):
    assert sm.container_figures(stats) == expected


@pytest.mark.parametrize("prev,cur,seconds,expected", [
    (None, {"cpu_ns": 1e9}, 1.0, None),
    ({"cpu_ns": 0.0}, {"cpu_ns": 5e8}, 1.0, 50.0),
    ({"cpu_ns": 0.0}, {"cpu_ns": 4e9}, 2.0, 200.0),   # two cores busy
    ({"cpu_ns": 9e9}, {"cpu_ns": 1e9}, 1.0, None),    # the container restarted: its counter began again
    ({"cpu_ns": None}, {"cpu_ns": 1e9}, 1.0, None),
    ({"cpu_ns": 0.0}, {"cpu_ns": 1e9}, 0.0, None),
])
def test_cpu_percent(prev, cur, seconds, expected):
    assert sm.cpu_percent(prev, cur, seconds) == expected


def test_cpu_percent_between_two_recorded_reads_is_plausible():
    a, b = (sm.container_figures(r) for r in recorded_stats())
    elapsed = (datetime.datetime.fromisoformat(recorded_stats()[1]["read"][:26])
               - datetime.datetime.fromisoformat(recorded_stats()[0]["read"][:26])).total_seconds()
    value = sm.cpu_percent(a, b, elapsed)
    assert value is not None and 0.0 <= value <= 200.0  # two CPUs on the recording host


def test_per_unit_sums_a_unit_and_its_port_holder_and_skips_vanished_containers():
    out = sm.per_unit(["chat", "chat", "redis", "gone"],
                      [{"cpu_ns": 1.0, "mem_bytes": 10.0}, {"cpu_ns": 2.0, "mem_bytes": 5.0},
                       {"cpu_ns": 3.0, "mem_bytes": None}, None])
    assert out == {"chat": {"cpu_ns": 3.0, "mem_bytes": 15.0}, "redis": {"cpu_ns": 3.0, "mem_bytes": None}}


def test_gpu_figures_from_nvml_facts():
    facts = {"devices": [{"index": 0, "memory_used_mb": 512, "memory_total_mb": 24576, "utilization_gpu_pct": 37},
                         {"index": 1, "memory_used_mb": 0, "memory_total_mb": 0, "utilization_gpu_pct": None}]}
    out = sm.gpu_figures(facts)
    assert out["0"] == {"util_pct": 37.0, "mem_bytes": 512.0 * MIB, "mem_total_bytes": 24576.0 * MIB}
    assert out["1"]["util_pct"] is None


class Replay:
    """A read function replaying recorded readings; a fake clock one interval apart."""

    def __init__(self, readings: list[Any]) -> None:
        self.readings = list(readings)
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def read(self) -> sm.Reading:
        self.now += 1.0
        item = self.readings.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def unit_reading(cpu_ns: float, mem: float) -> sm.Reading:
    return {"units": {"chat": {"cpu_ns": cpu_ns, "mem_bytes": mem}}, "gpus": {}}


def test_sampler_turns_counters_into_percentages_and_counts_failed_reads():
    replay = Replay([unit_reading(0, 10), unit_reading(5e8, 20), RuntimeError("engine gone"), unit_reading(2.5e9, 30)])
    sampler = sm.Sampler(replay.read, interval=1.0, clock=replay.clock)
    for _read in range(4):
        sampler.sample_once()
    cpu = [s["units"]["chat"]["cpu_pct"] for s in sampler.samples]
    assert cpu == [None, 50.0, 100.0]  # the failed read is skipped, the next compares with the last good one
    assert sampler.errors == 1 and "engine gone" in sampler.last_error


def test_sampler_memory_is_bounded_by_halving_the_resolution():
    replay = Replay([unit_reading(i * 1e8, i) for i in range(11)])
    sampler = sm.Sampler(replay.read, interval=1.0, max_samples=4, clock=replay.clock)
    for _read in range(11):
        sampler.sample_once()
    assert len(sampler.samples) <= 5
    assert sampler.interval >= 4.0  # each halving doubles it
    assert sampler.samples[0]["t"] == 101.0  # the span still starts at the first sample


def test_sampler_thread_starts_and_stops():
    sampler = sm.Sampler(lambda: unit_reading(0, 1), interval=0.2)
    sampler.start()
    samples = sampler.stop()
    assert len(samples) >= 1
    assert sampler.overhead()["samples"] == len(samples)


def test_utilization_table_peak_mean_and_steady_state():
    samples = [{"t": t, "units": {"chat": {"cpu_pct": cpu, "mem_bytes": mem}}, "gpus": {}}
               for t, cpu, mem in [(0, None, 5), (1, 10, 10), (2, 30, 30), (3, 20, 20), (4, 2, 12), (5, 4, 14)]]
    table = sm.utilization_table(samples, 0.5, 3.0, steady_s=10)
    row = table["units"][0]
    assert row["cpu_pct"] == {"peak": 30.0, "mean": 20.0, "steady": 3.0}
    assert row["mem_bytes"] == {"peak": 30.0, "mean": 20.0, "steady": 13.0}
    assert sm.utilization_table([], None, None) == {"units": [], "gpus": []}


def test_no_steady_state_when_nothing_was_sampled_after_the_deploy():
    samples = [{"t": t, "units": {"a": {"cpu_pct": 1.0, "mem_bytes": 1.0}}} for t in (0, 1, 2)]
    assert sm.utilization_table(samples, 0, 2)["units"][0]["cpu_pct"]["steady"] is None


def test_gpus_sort_by_index_as_numbers():
    samples = [{"t": 0, "units": {}, "gpus": {str(i): {"util_pct": 1.0, "mem_bytes": 1.0} for i in (10, 2, 0)}}]
    assert [r["name"] for r in sm.utilization_table(samples, None, None)["gpus"]] == ["0", "2", "10"]


def summary_for(samples_start: float) -> dict[str, Any]:
    start = datetime.datetime.fromtimestamp(samples_start, datetime.UTC).isoformat()
    return {"run": {"start": start, "wall_s": 6.0, "playbook": "phase5.yml", "id": "abcd1234"},
            "parallelism": {"start_s": 1.0, "end_s": 3.0}}


def test_bundle_files_from_samples(tmp_path):
    samples = [{"t": 1000.0 + t, "units": {"chat": {"cpu_pct": 5.0 * t, "mem_bytes": 1e8}},
                "gpus": {"0": {"util_pct": 40.0, "mem_bytes": 2e9}}} for t in range(6)]
    util = _bundle_util.build_utilization(samples, {"interval_s": 1.0, "samples": 6}, summary_for(1000.0))
    assert util["samples"][0]["t"] == 0.0  # on the run's clock, like timeline.svg
    written = _bundle_util.write_files(tmp_path, util, "Utilization <test>", lambda p, t: p.write_text(t))
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert names == {"utilization.json", "utilization.md", "dashboard.html", "utilization/chat.svg",
                     "utilization/gpu0.svg"}
    page = (tmp_path / "dashboard.html").read_text()
    assert "Utilization &lt;test&gt;" in page and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert all(f'id="panel-{p.key}"' in page for p in _dashboard.PANELS)
    md = (tmp_path / "utilization.md").read_text()
    assert "| chat | 15.0 % | 10.0 % | 22.5 % | 95.4 MiB | 95.4 MiB | 95.4 MiB |" in md
    assert "<polyline" in (tmp_path / "utilization/chat.svg").read_text()


def test_the_recorded_run_renders_every_unit():
    util = recorded_run()
    page = _dashboard.render_html(util, "recorded")
    for row in util["table"]["units"]:
        assert row["name"] in page
    assert len(util["table"]["units"]) >= 10


def test_grafana_panels_are_the_html_panels():
    board = _dashboard.grafana_dashboard()
    assert [p["title"] for p in board["panels"]] == [p.title for p in _dashboard.PANELS]
    assert all(p["targets"][0]["expr"].count("mlstack_") >= 1 for p in board["panels"])
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
