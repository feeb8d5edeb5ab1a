# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts from NVML (nvidia-ml-py's ``pynvml``), for the gpu_facts module.

One I/O seam: ``collect(nvml)`` takes the pynvml module (or a stand-in with the same
functions), so unit tests pass a mock and the integration test lets the real pynvml load
a fake libnvidia-ml.so.1. Everything else here is plain data shaping.

A host without a driver is not an error: the facts say ``gpu_count: 0`` and why, and the
stack runs on the CPU. Only per-device values a board does not support (NVML answers
"Not Supported", common on older GeForce/TITAN boards for power or utilisation) become
None; they never fail the whole read.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

MIB = 1024 * 1024

# What an operator should read for the NVML errors that mean "no usable GPU here".
_INIT_REASONS = {
    "LibraryNotFound": "no NVIDIA driver: libnvidia-ml.so.1 (NVML) was not found on this host",
    "DriverNotLoaded": "the NVIDIA driver is installed but its kernel module is not loaded "
                       "(modprobe nvidia, or reboot after the driver install)",
    "NoPermission": "NVML refused access to the GPUs (no permission on /dev/nvidia*)",
    "LibRmVersionMismatch": "the NVML library and the loaded kernel module are from different driver "
                            "versions: reboot (or reload the nvidia modules) after the driver upgrade",
}


def load_pynvml() -> tuple[Any | None, str]:
    """The pynvml module, or None and why it cannot be imported."""
    try:
        import pynvml  # noqa: PLC0415 - optional dependency, imported only when facts are asked for
    except ImportError:
        return None, ("nvidia-ml-py is not installed in the Python that runs the module: "
                      "pip install nvidia-ml-py (requirements.txt pins it)")
    return pynvml, ""


def _error_name(err: BaseException) -> str:
    """pynvml's error class name without its prefix: NVMLError_LibraryNotFound -> LibraryNotFound."""
    return type(err).__name__.removeprefix("NVMLError_")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(nvml: Any, call: Callable[[], Any]) -> Any:
    """A per-device value, or None when this board or driver does not report it."""
    try:
        return call()
    except nvml.NVMLError:
        return None


def cuda_version_text(version: int | None) -> str | None:
    """NVML's CUDA driver version integer (12090) as text ("12.9")."""
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def driver_branch(version: str | None) -> int | None:
    """The driver branch of a version string: "580.95.05" -> 580."""
    try:
        return int(str(version).split(".", 1)[0])
    except (TypeError, ValueError):
        return None


def _processes(nvml: Any, handle: Any) -> list[dict[str, Any]]:
    procs = _optional(nvml, lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []
    out = []
    for proc in procs:
        used = getattr(proc, "usedGpuMemory", None)
        out.append({"pid": int(proc.pid), "used_memory_mb": None if used is None else int(used) // MIB})
    return sorted(out, key=lambda p: p["pid"])


def _device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    capability = _optional(nvml, lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
    utilization = _optional(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    power_mw = _optional(nvml, lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    limit_mw = _optional(nvml, lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    persistence = _optional(nvml, lambda: nvml.nvmlDeviceGetPersistenceMode(handle))
    return {
        "index": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "memory_total_mb": int(memory.total) // MIB,
        "memory_used_mb": int(memory.used) // MIB,
        "memory_free_mb": int(memory.free) // MIB,
        "utilization_gpu_pct": None if utilization is None else int(utilization.gpu),
        "utilization_memory_pct": None if utilization is None else int(utilization.memory),
        "temperature_c": _optional(nvml, lambda: int(nvml.nvmlDeviceGetTemperature(handle,
                                                                                   nvml.NVML_TEMPERATURE_GPU))),
        "power_w": None if power_mw is None else round(power_mw / 1000.0, 1),
        "power_limit_w": None if limit_mw is None else round(limit_mw / 1000.0, 1),
        "persistence_mode": None if persistence is None else bool(persistence),
        "processes": _processes(nvml, handle),
    }


def empty(reason: str) -> dict[str, Any]:
    """The facts of a host with no usable GPU: not a failure, a statement."""
    return {"available": False, "reason": reason, "driver_version": None, "driver_branch": None,
            "cuda_driver_version": None, "gpu_count": 0, "devices": [], "collected_at": _now()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def collect(nvml: Any | None) -> dict[str, Any]:
    """Read the driver, CUDA and every device's state; ``nvml`` None means pynvml is absent.

    Raises nothing for a host without GPUs; an NVML error in the middle of a read (a GPU
    that fell off the bus) is reported in ``reason`` with the devices read so far.
    """
    if nvml is None:
        return empty(load_pynvml()[1] or "nvidia-ml-py is not available")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        name = _error_name(err)
        return empty(_INIT_REASONS.get(name, f"NVML could not be initialised: {name}: {err}"))
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = _optional(nvml, nvml.nvmlSystemGetCudaDriverVersion)
        count = int(nvml.nvmlDeviceGetCount())
        devices: list[dict[str, Any]] = []
        reason = ""
        for index in range(count):
            try:
                devices.append(_device(nvml, index))
            except nvml.NVMLError as err:
                reason = f"device {index} could not be read: {_error_name(err)}: {err}"
                break
        if not count:
            reason = "the NVIDIA driver is loaded but reports no GPU"
        return {"available": bool(devices), "reason": reason, "driver_version": driver,
                "driver_branch": driver_branch(driver), "cuda_driver_version": cuda_version_text(cuda),
                "gpu_count": len(devices), "devices": devices, "collected_at": _now()}
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def summary(facts: dict[str, Any]) -> str:
    """One line for an operator: what this host has, or honestly that it has no GPU."""
    if not facts.get("gpu_count"):
        return f"no GPU here: {facts.get('reason') or 'none found'}; units run on the CPU"
    names = ", ".join(f"{d['index']}: {d['name']} (CC {d['compute_capability']}, "
                      f"{d['memory_free_mb']}/{d['memory_total_mb']} MiB free)" for d in facts["devices"])
    return (f"{facts['gpu_count']} GPU(s), driver {facts['driver_version']}, CUDA {facts['cuda_driver_version']}: "
            f"{names}")


def evidence_observed(facts: dict[str, Any]) -> dict[str, Any]:
    """The per-device figures that go into an evidence record (no process list: pids are noise)."""
    return {
        "gpu_count": facts.get("gpu_count", 0),
        "driver_version": facts.get("driver_version"),
        "cuda_driver_version": facts.get("cuda_driver_version"),
        "reason": facts.get("reason") or "",
        "devices": [{k: d.get(k) for k in ("index", "name", "uuid", "compute_capability", "memory_total_mb",
                                           "memory_used_mb", "memory_free_mb", "utilization_gpu_pct",
                                           "temperature_c", "power_w")}
                    for d in facts.get("devices", [])],
    }


def sample(nvml: Any | None, seconds: float, interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Each GPU's load over a window: utilisation mean and max, memory used max, per device.

    Reads NVML every ``interval`` seconds for ``seconds``. A host without a GPU returns []
    at once: there is nothing to wait for.
    """
    reads: list[dict[str, Any]] = []
    deadline = clock() + max(0.0, seconds)
    while True:
        facts = collect(nvml)
        if not facts["gpu_count"]:
            break
        reads.append(facts)
        if clock() + interval > deadline:
            break
        sleep(interval)
    out = []
    for index in sorted({d["index"] for f in reads for d in f["devices"]}):
        rows = [d for f in reads for d in f["devices"] if d["index"] == index]
        utils = [d["utilization_gpu_pct"] for d in rows if d["utilization_gpu_pct"] is not None]
        out.append({"index": index, "uuid": rows[0]["uuid"], "samples": len(rows),
                    "utilization_gpu_pct_mean": round(sum(utils) / len(utils), 1) if utils else None,
                    "utilization_gpu_pct_max": max(utils) if utils else None,
                    "memory_used_mb_max": max(d["memory_used_mb"] for d in rows)})
    return out
