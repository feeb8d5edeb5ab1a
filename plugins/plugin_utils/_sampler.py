# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Utilization during a deploy: a background sampler of each unit's CPU and memory and each GPU's load.

The evidence callback starts one ``Sampler`` at the first play and stops it at the end of the run.
A sample is one read of every mlstack container (the Docker engine's stats API, one-shot, per
container labelled ``io.mlstack.unit``) and of every GPU (the collection's NVML wrapper). The
sampler is bounded: at most one read per ``interval`` seconds, and at most ``max_samples`` kept
(past that, every other sample is dropped and the interval doubles), so a long run costs the
same memory as a short one.

Pure core, thin shell: ``Sampler`` takes a ``read`` function, so unit tests feed it recorded
readings; ``docker_reader`` and ``gpu_reader`` are the only I/O. ``utilization_table`` turns the
samples into the bundle's table (peak and mean during the deploy, steady state after it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

UNIT_LABEL = "io.mlstack.unit"
MIB = 1024 * 1024
STEADY_WINDOW_S = 10.0

Reading = dict[str, dict[str, dict[str, float | None]]]


def container_figures(stats: Mapping[str, Any]) -> dict[str, float | None]:
    """CPU nanoseconds used so far and memory in use, from one Docker stats answer.

    Memory as ``docker stats`` shows it: usage less the page cache the kernel can drop
    (``inactive_file`` on cgroup v2, ``total_inactive_file`` on v1).
    """
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0)) or 0
    return {"cpu_ns": None if cpu is None else float(cpu),
            "mem_bytes": None if usage is None else float(max(usage - cache, 0))}


def gpu_figures(facts: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Each GPU's utilization (percent) and memory in use (bytes), keyed by index, from ``_nvml.collect``."""
    out: dict[str, dict[str, float | None]] = {}
    for dev in facts.get("devices") or []:
        used = dev.get("memory_used_mb")
        util = dev.get("utilization_gpu_pct")
        out[str(dev["index"])] = {"util_pct": None if util is None else float(util),
                                  "mem_bytes": None if used is None else float(used) * MIB,
                                  "mem_total_bytes": float(dev.get("memory_total_mb") or 0) * MIB}
    return out


def cpu_percent(prev: Mapping[str, Any] | None, cur: Mapping[str, Any], seconds: float) -> float | None:
    """CPU use between two reads in percent of one core (200 = two cores busy); None for the first read."""
    if prev is None or seconds <= 0 or prev.get("cpu_ns") is None or cur.get("cpu_ns") is None:
        return None
    delta = float(cur["cpu_ns"]) - float(prev["cpu_ns"])
    # A restarted container starts its counter again: no figure for that step.
    return None if delta < 0 else round(delta / (seconds * 1e9) * 100.0, 2)


class Sampler:
    """Calls ``read`` every ``interval`` seconds in a daemon thread until ``stop``.

    ``read`` returns ``{"units": {name: {"cpu_ns", "mem_bytes"}}, "gpus": {index: {...}}}``.
    A failing read is counted, not raised: the deploy must never notice the sampler.
    """

    def __init__(self, read: Callable[[], Reading], interval: float = 1.0, max_samples: int = 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self._read = read
        self.interval = max(float(interval), 0.2)
        self._max = max(int(max_samples), 2)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prev: dict[str, dict[str, Any]] = {}
        self.samples: list[dict[str, Any]] = []
        self.errors = 0
        self.last_error = ""
        self.read_s = 0.0  # wall time spent in reads (mostly waiting on the engine's tick)
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self) -> None:
        self.started = self._clock()
        self._thread = threading.Thread(target=self._loop, name="mlstack-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        """Stop the thread (after at most one read in progress) and return the samples."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.interval * 2, 10.0))
        self.stopped = self._clock()
        return self.samples

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.sample_once()
            self._stop.wait(max(self.interval - (time.monotonic() - began), 0.05))

    def sample_once(self) -> None:
        """One read, turned into a sample with CPU percentages against the previous read."""
        began = time.monotonic()
        try:
            reading = self._read()
        except Exception as exc:  # the engine went away mid-run: keep sampling, keep count
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self.read_s += time.monotonic() - began
        now = self._clock()
        units = {}
        for name, cur in (reading.get("units") or {}).items():
            prev = self._prev.get(name)
            units[name] = {"cpu_pct": cpu_percent(prev, cur, now - prev["t"]) if prev else None,
                           "mem_bytes": cur.get("mem_bytes")}
            self._prev[name] = {**cur, "t": now}
        self.samples.append({"t": now, "units": units, "gpus": dict(reading.get("gpus") or {})})
        if len(self.samples) > self._max:
            # Bounded memory: halve the resolution, not the time span.
            self.samples = self.samples[::2]
            self.interval *= 2

    def overhead(self) -> dict[str, Any]:
        """The sampler's own figures for the bundle: reads, failures, time spent reading."""
        span = (self.stopped or self._clock()) - (self.started or self._clock())
        return {"interval_s": self.interval, "samples": len(self.samples), "errors": self.errors,
                "last_error": self.last_error, "read_wall_s": round(self.read_s, 3),
                "span_s": round(span, 3)}


# --- the table --------------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"peak": None, "mean": None}
    return {"peak": round(max(values), 2), "mean": round(sum(values) / len(values), 2)}


def _series(samples: Sequence[Mapping[str, Any]], kind: str, name: str, key: str,
            lo: float, hi: float) -> list[float]:
    return [float(v) for s in samples if lo <= s["t"] <= hi
            for v in [((s.get(kind) or {}).get(name) or {}).get(key)] if v is not None]


def utilization_table(samples: Sequence[Mapping[str, Any]], deploy_start: float | None, deploy_end: float | None,
                      steady_s: float = STEADY_WINDOW_S) -> dict[str, list[dict[str, Any]]]:
    """Per unit (CPU %, memory) and per GPU (utilization %, memory): peak and mean during the deploy
    (first to last unit task), and the mean over the last ``steady_s`` seconds sampled after it
    (None when the run ended with the deploy)."""
    if not samples:
        return {"units": [], "gpus": []}
    first, last = samples[0]["t"], samples[-1]["t"]
    lo = first if deploy_start is None else deploy_start
    hi = last if deploy_end is None else deploy_end
    steady = [s for s in samples if s["t"] > hi and s["t"] >= last - steady_s]
    table: dict[str, list[dict[str, Any]]] = {"units": [], "gpus": []}
    for kind, keys in (("units", ("cpu_pct", "mem_bytes")), ("gpus", ("util_pct", "mem_bytes"))):
        names = sorted({n for s in samples for n in (s.get(kind) or {})}, key=_natural)
        for name in names:
            row: dict[str, Any] = {"name": name}
            for key in keys:
                during = _stats(_series(samples, kind, name, key, lo, hi))
                row[key] = {**during, "steady": _stats(_series(steady, kind, name, key, hi, last))["mean"]}
            table[kind].append(row)
    return table


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


# --- the I/O seams ------------------------------------------------------------------------------


def docker_reader(base_url: str | None = None, timeout: int = 10, workers: int = 64) -> Callable[[], Reading]:
    """A ``read`` function over the Docker engine at ``base_url`` (default: DOCKER_HOST or the local socket).

    The engine answers a one-shot stats request at its next collection tick (up to a second
    later on Docker 20.10), so the containers are asked at once, each on its own connection:
    one read costs about a second whatever the number of units, not a second per unit.
    """
    import docker  # noqa: PLC0415 - only the sampler needs the SDK on the controller

    api = docker.APIClient(base_url=base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                           timeout=timeout, max_pool_size=workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlstack-sampler-read")

    def one(container_id: str) -> dict[str, float | None] | None:
        try:
            return container_figures(api.stats(container_id, stream=False, one_shot=True))
        except docker.errors.NotFound:  # replaced between the listing and the read
            return None

    def read() -> Reading:
        listed = api.containers(filters={"label": UNIT_LABEL})
        figures = pool.map(one, [c["Id"] for c in listed])
        return {"units": per_unit([(c.get("Labels") or {}).get(UNIT_LABEL) or c["Names"][0].lstrip("/")
                                   for c in listed], figures), "gpus": {}}

    return read


def per_unit(units: Iterable[str], figures: Iterable[Mapping[str, Any] | None]) -> dict[str, dict[str, float | None]]:
    """Figures of containers summed per unit: a unit's port holder counts with the unit."""
    out: dict[str, dict[str, float | None]] = {}
    for unit, fig in zip(units, figures, strict=True):
        if fig is None:
            continue
        total = out.setdefault(unit, {"cpu_ns": 0.0, "mem_bytes": 0.0})
        for key in ("cpu_ns", "mem_bytes"):
            value = fig.get(key)
            total[key] = None if value is None or total[key] is None else total[key] + value
    return out


def gpu_reader() -> Callable[[], dict[str, dict[str, float | None]]] | None:
    """A function reading every GPU through the NVML wrapper, or None where NVML has no GPU."""
    from ansible_collections.aiops.mlstack.plugins.module_utils import _nvml  # noqa: PLC0415

    nvml, _why = _nvml.load_pynvml()
    if nvml is None or not _nvml.collect(nvml)["gpu_count"]:
        return None
    return lambda: gpu_figures(_nvml.collect(nvml))


def combined_reader(units: Callable[[], Reading], gpus: Callable[[], Any] | None) -> Callable[[], Reading]:
    """One read of the containers and, where there are GPUs, of the GPUs."""
    def read() -> Reading:
        reading = units()
        if gpus is not None:
            reading["gpus"] = gpus()
        return reading

    return read
