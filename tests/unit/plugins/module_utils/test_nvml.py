"""_nvml: GPU facts from a MOCKED NVML (a Python stand-in for pynvml; no GPU exists here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _nvml

MIB = 1024 * 1024


class MockNvmlError(Exception):
    """Stand-in for pynvml.NVMLError; subclasses carry pynvml's class names."""


def _error(name: str) -> type[MockNvmlError]:
    return type(f"NVMLError_{name}", (MockNvmlError,), {})


class MockNvml:
    """A fake pynvml: the functions _nvml calls, answering from a list of device dicts."""

    NVMLError = MockNvmlError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, devices: list[dict[str, Any]], driver: str = "580.95.05", cuda: int = 13000,
                 init_error: str | None = None, unsupported: tuple[str, ...] = (),
                 broken_index: int | None = None) -> None:
        self.devices = devices
        self.driver = driver
        self.cuda = cuda
        self.init_error = init_error
        self.unsupported = unsupported
        self.broken_index = broken_index
        self.shutdown_calls = 0

    def _maybe(self, what: str) -> None:
        if what in self.unsupported:
            raise _error("NotSupported")("Not Supported")

    def nvmlInit(self) -> None:
        if self.init_error:
            raise _error(self.init_error)(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._maybe("cuda")
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        if index == self.broken_index:
            raise _error("GpuIsLost")("GPU is lost")
        return self.devices[index]

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> bytes:
        return h["name"].encode()

    def nvmlDeviceGetUUID(self, h: dict[str, Any]) -> str:
        return h["uuid"]

    def nvmlDeviceGetCudaComputeCapability(self, h: dict[str, Any]) -> tuple[int, int]:
        return h["cc"]

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(total=h["total"] * MIB, used=h["used"] * MIB, free=(h["total"] - h["used"]) * MIB)

    def nvmlDeviceGetUtilizationRates(self, h: dict[str, Any]) -> SimpleNamespace:
        self._maybe("utilization")
        return SimpleNamespace(gpu=h["util"], memory=h["util"] // 2)

    def nvmlDeviceGetTemperature(self, h: dict[str, Any], sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 41

    def nvmlDeviceGetPowerUsage(self, h: dict[str, Any]) -> int:
        self._maybe("power")
        return 61234

    def nvmlDeviceGetEnforcedPowerLimit(self, h: dict[str, Any]) -> int:
        self._maybe("power")
        return 250000

    def nvmlDeviceGetPersistenceMode(self, h: dict[str, Any]) -> int:
        return 1

    def nvmlDeviceGetComputeRunningProcesses(self, h: dict[str, Any]) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem * MIB if mem is not None else None)
                for pid, mem in h.get("procs", [])]


TITAN_X = [
    {"name": "NVIDIA TITAN X (Pascal)", "uuid": f"GPU-0000000{i}-fake-4000-8000-000000000000", "cc": (6, 1),
     "total": 12288, "used": 100 + i, "util": 10 * i, "procs": [(4000 + i, 90)] if i == 1 else []}
    for i in range(3)
]


def test_three_titan_x_read_from_the_mocked_nvml() -> None:
    nvml = MockNvml(TITAN_X)
    facts = _nvml.collect(nvml)
    assert facts["available"] is True and facts["reason"] == ""
    assert facts["driver_version"] == "580.95.05" and facts["driver_branch"] == 580
    assert facts["cuda_driver_version"] == "13.0"
    assert facts["gpu_count"] == 3
    first, second = facts["devices"][0], facts["devices"][1]
    assert first == {
        "index": 0, "name": "NVIDIA TITAN X (Pascal)", "uuid": "GPU-00000000-fake-4000-8000-000000000000",
        "compute_capability": "6.1", "memory_total_mb": 12288, "memory_used_mb": 100, "memory_free_mb": 12188,
        "utilization_gpu_pct": 0, "utilization_memory_pct": 0, "temperature_c": 41, "power_w": 61.2,
        "power_limit_w": 250.0, "persistence_mode": True, "processes": [],
    }
    assert second["processes"] == [{"pid": 4001, "used_memory_mb": 90}]
    assert nvml.shutdown_calls == 1
    assert "3 GPU(s), driver 580.95.05, CUDA 13.0" in _nvml.summary(facts)


@pytest.mark.parametrize(("error", "expected"), [
    ("LibraryNotFound", "no NVIDIA driver: libnvidia-ml.so.1"),
    ("DriverNotLoaded", "kernel module is not loaded"),
    ("LibRmVersionMismatch", "reboot"),
    ("Unknown", "NVML could not be initialised: Unknown"),
])
def test_no_driver_is_gpu_count_zero_with_the_reason_not_a_failure(error: str, expected: str) -> None:
    facts = _nvml.collect(MockNvml(TITAN_X, init_error=error))
    assert facts["gpu_count"] == 0 and facts["devices"] == [] and facts["available"] is False
    assert expected in facts["reason"]
    assert _nvml.summary(facts).startswith("no GPU here: ")


def test_values_a_board_does_not_support_are_null() -> None:
    facts = _nvml.collect(MockNvml(TITAN_X[:1], unsupported=("power", "utilization", "cuda")))
    dev = facts["devices"][0]
    assert dev["power_w"] is None and dev["power_limit_w"] is None
    assert dev["utilization_gpu_pct"] is None and dev["utilization_memory_pct"] is None
    assert facts["cuda_driver_version"] is None and facts["gpu_count"] == 1


def test_a_lost_gpu_keeps_the_devices_read_before_it_and_says_why() -> None:
    nvml = MockNvml(TITAN_X, broken_index=2)
    facts = _nvml.collect(nvml)
    assert facts["gpu_count"] == 2
    assert "device 2 could not be read: GpuIsLost" in facts["reason"]
    assert nvml.shutdown_calls == 1


def test_driver_without_devices() -> None:
    facts = _nvml.collect(MockNvml([]))
    assert facts["gpu_count"] == 0 and facts["available"] is False
    assert "reports no GPU" in facts["reason"]


def test_missing_pynvml_is_a_reason_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pynvml":
            raise ImportError("no pynvml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    module, why = _nvml.load_pynvml()
    assert module is None and "pip install nvidia-ml-py" in why


@pytest.mark.parametrize(("version", "text"), [(12090, "12.9"), (13000, "13.0"), (11080, "11.8"), (0, None),
                                               (None, None)])
def test_cuda_version_text(version: int | None, text: str | None) -> None:
    assert _nvml.cuda_version_text(version) == text


@pytest.mark.parametrize(("version", "branch"), [("580.95.05", 580), ("535.247.01", 535), (None, None),
                                                 ("garbage", None)])
def test_driver_branch(version: str | None, branch: int | None) -> None:
    assert _nvml.driver_branch(version) == branch


def test_evidence_observed_drops_the_process_list() -> None:
    observed = _nvml.evidence_observed(_nvml.collect(MockNvml(TITAN_X)))
    assert observed["gpu_count"] == 3
    assert "processes" not in observed["devices"][1]
    assert observed["devices"][2]["utilization_gpu_pct"] == 20


def test_sampling_summarises_each_gpu_over_the_window() -> None:
    nvml = MockNvml([dict(d) for d in TITAN_X])
    now = [0.0]
    loads = iter([(90, 5000), (30, 7000), (60, 6000)])

    def fake_sleep(seconds: float) -> None:
        now[0] += seconds
        util, used = next(loads)
        nvml.devices[0].update(util=util, used=used)

    nvml.devices[0].update(util=0, used=100)
    out = _nvml.sample(nvml, seconds=3.0, interval=1.0, clock=lambda: now[0], sleep=fake_sleep)
    first = out[0]
    assert first["samples"] == 4 and first["uuid"] == TITAN_X[0]["uuid"]
    assert first["utilization_gpu_pct_max"] == 90 and first["utilization_gpu_pct_mean"] == 45.0
    assert first["memory_used_mb_max"] == 7000
    assert [d["index"] for d in out] == [0, 1, 2]


def test_sampling_without_a_gpu_returns_at_once() -> None:
    slept: list[float] = []
    assert _nvml.sample(MockNvml(TITAN_X, init_error="LibraryNotFound"), 60.0, sleep=slept.append) == []
    assert slept == []
