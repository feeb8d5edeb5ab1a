"""The resource exporter reads GPU facts in the shape of the collection's NVML wrapper (_nvml.collect)."""

from __future__ import annotations

import re
import types
from pathlib import Path

from ansible_collections.aiops.mlstack.plugins.module_utils import _nvml

EXPORTER = Path(__file__).resolve().parents[3] / "images/mlstack-services/src/mlstack_services/resource_exporter.py"
MIB = 1024 * 1024


def fake_nvml() -> types.SimpleNamespace:
    class NVMLError(Exception):
        pass

    ns = types.SimpleNamespace
    return ns(
        NVMLError=NVMLError, NVML_TEMPERATURE_GPU=0, nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "535.0", nvmlSystemGetCudaDriverVersion=lambda: 12020,
        nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: "TITAN X", nvmlDeviceGetUUID=lambda h: "GPU-1",
        nvmlDeviceGetMemoryInfo=lambda h: ns(total=12288 * MIB, used=512 * MIB, free=11776 * MIB),
        nvmlDeviceGetCudaComputeCapability=lambda h: (6, 1),
        nvmlDeviceGetUtilizationRates=lambda h: ns(gpu=55, memory=10),
        nvmlDeviceGetPowerUsage=lambda h: 120000, nvmlDeviceGetEnforcedPowerLimit=lambda h: 250000,
        nvmlDeviceGetPersistenceMode=lambda h: 1, nvmlDeviceGetTemperature=lambda h, kind: 58,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [ns(pid=4242, usedGpuMemory=64 * MIB)])


def test_every_device_key_the_exporter_reads_is_one_the_wrapper_returns():
    device = _nvml.collect(fake_nvml())["devices"][0]
    source = EXPORTER.read_text()
    read = set(re.findall(r'dev(?:\.get\(|\[)"(\w+)"', source)) | set(re.findall(r'\("\w+", "[^"]+", "(\w+)"', source))
    assert read and read <= set(device), read - set(device)
    assert set(device["processes"][0]) == {"pid", "used_memory_mb"}
