"""The resource exporter: per-container CPU, memory and restarts from cgroup files, per-GPU load from NVML.

Run as ``python -m mlstack_services.resource_exporter`` (port ``PORT``, default 9108). It needs no
Docker socket (which would be root on the host), only read-only views:

- ``/sys/fs/cgroup`` (``CGROUP_ROOT``): each container's ``cpu.stat`` (``usage_usec``) and
  ``memory.current`` / ``memory.stat`` on cgroup v2, or ``cpuacct.usage`` and ``memory.usage_in_bytes``
  on v1, under the systemd driver's ``system.slice/docker-<id>.scope`` or cgroupfs' ``docker/<id>``;
- ``/var/lib/docker/containers`` (``CONTAINERS_DIR``): each container's ``config.v2.json``, for its
  name, its ``io.mlstack.unit`` label and Docker's restart count. Only those three fields are kept;
  the file also holds the container's environment, which is never read into a metric;
- ``/proc`` of the host (``PROC_ROOT``, with ``pid: host``): ``/proc/<pid>/cgroup`` of the processes
  NVML reports on a GPU, to charge their GPU memory to a container.

Why not the labels through /proc: the environment of a process is readable only by its owner, and
a container's cgroup path names its id, not its unit; config.v2.json maps one to the other with
read access to one directory and no control over the engine.

GPUs: ``nvml_facts()`` reads NVML (nvidia-ml-py) into the same shape as the collection's wrapper
(plugins/module_utils/_nvml.py ``collect``): the image cannot import the collection, and the unit
tests feed the exporter that wrapper's output. In production, NVIDIA's DCGM exporter
(nvcr.io/nvidia/k8s/dcgm-exporter) is the richer alternative: docs/utilization.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

UNIT_LABEL = "io.mlstack.unit"
MIB = 1024 * 1024
_CONTAINER_ID = re.compile(r"(?:docker-|docker/)([0-9a-f]{64})(?:\.scope)?")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def container_cgroup(root: Path, container_id: str) -> tuple[Path, int] | None:
    """(cgroup directory, cgroup version) of a container, under the systemd or the cgroupfs driver."""
    for version, base in ((2, root), (1, root / "cpuacct")):
        for sub in (f"system.slice/docker-{container_id}.scope", f"docker/{container_id}"):
            if (base / sub).is_dir():
                return base / sub, version
    return None


def cgroup_figures(root: Path, container_id: str) -> dict[str, float] | None:
    """CPU seconds used and memory in use (less the inactive page cache, as ``docker stats``)."""
    found = container_cgroup(root, container_id)
    if found is None:
        return None
    path, version = found
    if version == 2:
        usec = _keyed(_read(path / "cpu.stat")).get("usage_usec")
        current = _read(path / "memory.current")
        inactive = _keyed(_read(path / "memory.stat")).get("inactive_file", 0)
        cpu = None if usec is None else usec / 1e6
    else:
        nsec = _read(path / "cpuacct.usage")
        mem_dir = root / "memory" / path.relative_to(root / "cpuacct")
        current = _read(mem_dir / "memory.usage_in_bytes")
        inactive = _keyed(_read(mem_dir / "memory.stat")).get("total_inactive_file", 0)
        cpu = None if nsec is None or not nsec.strip().isdigit() else int(nsec) / 1e9
    if cpu is None or current is None or not current.strip().isdigit():
        return None
    return {"cpu_seconds": cpu, "memory_bytes": float(max(int(current) - inactive, 0))}


def containers(containers_dir: Path) -> dict[str, dict[str, Any]]:
    """Container id -> name, unit and Docker's restart count, for the containers mlstack labelled."""
    out: dict[str, dict[str, Any]] = {}
    for config in sorted(containers_dir.glob("*/config.v2.json")):
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        labels = (data.get("Config") or {}).get("Labels") or {}
        if UNIT_LABEL not in labels or not (data.get("State") or {}).get("Running"):
            continue
        out[config.parent.name] = {"name": str(data.get("Name", "")).lstrip("/"), "unit": labels[UNIT_LABEL],
                                   "restarts": int(data.get("RestartCount") or 0)}
    return out


def pid_container(proc_root: Path, pid: int) -> str | None:
    """The container id in a process's cgroup path, or None for a process outside containers."""
    match = _CONTAINER_ID.search(_read(proc_root / str(pid) / "cgroup") or "")
    return match.group(1) if match else None


def nvml_facts() -> dict[str, Any]:
    """Every GPU's state, shaped as the collection's ``_nvml.collect`` returns it; no GPU: no devices."""
    try:
        import pynvml  # noqa: PLC0415 - optional: only hosts with a driver have GPUs to read
        pynvml.nvmlInit()
    except Exception:  # no library, no driver: a host without GPUs
        return {"gpu_count": 0, "devices": []}
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)

            def optional(call: Callable[[], Any]) -> Any:
                try:
                    return call()
                except pynvml.NVMLError:
                    return None

            util = optional(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))  # noqa: B023
            power = optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))  # noqa: B023
            procs = optional(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []  # noqa: B023
            devices.append({
                "index": index, "memory_total_mb": memory.total // MIB, "memory_used_mb": memory.used // MIB,
                "utilization_gpu_pct": None if util is None else util.gpu,
                "temperature_c": optional(lambda: pynvml.nvmlDeviceGetTemperature(  # noqa: B023
                    handle, pynvml.NVML_TEMPERATURE_GPU)),  # noqa: B023
                "power_w": None if power is None else power / 1000.0,
                "processes": [{"pid": p.pid, "used_memory_mb": (p.usedGpuMemory or 0) // MIB} for p in procs],
            })
        return {"gpu_count": len(devices), "devices": devices}
    finally:
        pynvml.nvmlShutdown()


class ResourceCollector:
    """A prometheus_client collector: every scrape reads the files and NVML once."""

    def __init__(self, cgroup_root: Path, containers_dir: Path, proc_root: Path,
                 gpu_facts: Callable[[], Mapping[str, Any]] = nvml_facts) -> None:
        self.cgroup_root, self.containers_dir, self.proc_root = cgroup_root, containers_dir, proc_root
        self.gpu_facts = gpu_facts

    def collect(self) -> Iterable[Any]:
        known = containers(self.containers_dir)
        cpu = CounterMetricFamily("mlstack_container_cpu_seconds", "CPU seconds used by a container.",
                                  labels=["unit", "container"])
        mem = GaugeMetricFamily("mlstack_container_memory_bytes", "Memory in use by a container, page cache "
                                "that can be dropped excluded.", labels=["unit", "container"])
        restarts = CounterMetricFamily("mlstack_container_restarts", "Restarts of a container by Docker's "
                                       "restart policy.", labels=["unit", "container"])
        for cid, info in sorted(known.items(), key=lambda kv: kv[1]["name"]):
            labels = [info["unit"], info["name"]]
            restarts.add_metric(labels, info["restarts"])
            figures = cgroup_figures(self.cgroup_root, cid)
            if figures is not None:
                cpu.add_metric(labels, figures["cpu_seconds"])
                mem.add_metric(labels, figures["memory_bytes"])
        yield from (cpu, mem, restarts)
        yield from self._gpus(known)

    def _gpus(self, known: Mapping[str, Mapping[str, Any]]) -> Iterable[Any]:
        facts = self.gpu_facts()
        specs = (("utilization_ratio", "GPU utilization, 0 to 1.", "utilization_gpu_pct", 0.01),
                 ("memory_used_bytes", "GPU memory in use.", "memory_used_mb", MIB),
                 ("memory_total_bytes", "GPU memory in all.", "memory_total_mb", MIB),
                 ("temperature_celsius", "GPU temperature.", "temperature_c", 1.0),
                 ("power_watts", "GPU power draw.", "power_w", 1.0))
        per_unit: dict[str, float] = {}
        families = {name: GaugeMetricFamily(f"mlstack_gpu_{name}", text, labels=["gpu"]) for name, text, _, _ in specs}
        for dev in facts.get("devices") or []:
            for name, _text, key, scale in specs:
                if dev.get(key) is not None:
                    families[name].add_metric([str(dev["index"])], float(dev[key]) * scale)
            for proc in dev.get("processes") or []:
                cid = pid_container(self.proc_root, int(proc["pid"]))
                if cid in known:
                    unit = known[cid]["unit"]
                    per_unit[unit] = per_unit.get(unit, 0.0) + float(proc.get("used_memory_mb") or 0) * MIB
        yield from families.values()
        by_unit = GaugeMetricFamily("mlstack_container_gpu_memory_bytes", "GPU memory used by a unit's processes.",
                                    labels=["unit"])
        for unit, used in sorted(per_unit.items()):
            by_unit.add_metric([unit], used)
        yield by_unit


def registry_from_env(env: Mapping[str, str] = os.environ) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResourceCollector(Path(env.get("CGROUP_ROOT", "/sys/fs/cgroup")),
                                        Path(env.get("CONTAINERS_DIR", "/var/lib/docker/containers")),
                                        Path(env.get("PROC_ROOT", "/proc"))))
    return registry


def main() -> None:
    start_http_server(int(os.environ.get("PORT", "9108")), registry=registry_from_env())
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
