"""The resource exporter on recorded cgroup files (v2 and v1), container configs and NVML facts."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from mlstack_services import resource_exporter as rx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

CHAT = "a" * 64
LLM = "b" * 64
OTHER = "c" * 64
MIB = 1024 * 1024


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def config(root: Path, cid: str, name: str, unit: str | None, restarts: int = 0, running: bool = True) -> None:
    labels = {rx.UNIT_LABEL: unit} if unit else {}
    write(root / cid / "config.v2.json", json.dumps({
        "Name": f"/{name}", "RestartCount": restarts, "State": {"Running": running},
        "Config": {"Labels": labels, "Env": ["SECRET=hunter2"]}}))


def host(tmp_path: Path) -> tuple[Path, Path, Path]:
    cgroup, containers, proc = tmp_path / "cgroup", tmp_path / "containers", tmp_path / "proc"
    # cgroup v2, systemd driver (values as read on a Debian 12 host)
    chat = cgroup / f"system.slice/docker-{CHAT}.scope"
    write(chat / "cpu.stat", "usage_usec 27424025\nuser_usec 20000000\nsystem_usec 7424025\n")
    write(chat / "memory.current", "61771776\n")
    write(chat / "memory.stat", "anon 56758272\nfile 2605056\ninactive_file 114688\n")
    # cgroup v2, cgroupfs driver
    write(cgroup / f"docker/{LLM}/cpu.stat", "usage_usec 1500000\n")
    write(cgroup / f"docker/{LLM}/memory.current", "402956288\n")
    config(containers, CHAT, "mlstack-chat", "chat", restarts=2)
    config(containers, LLM, "mlstack-llm", "llm")
    config(containers, OTHER, "someone-else", None)
    write(proc / "4242" / "cgroup", f"0::/system.slice/docker-{CHAT}.scope\n")
    write(proc / "4343" / "cgroup", f"0::/docker/{LLM}\n")
    write(proc / "1" / "cgroup", "0::/init.scope\n")
    return cgroup, containers, proc


FACTS = {"gpu_count": 1, "devices": [{
    "index": 0, "memory_total_mb": 12288, "memory_used_mb": 3000, "utilization_gpu_pct": 37,
    "temperature_c": 61, "power_w": 120.5,
    "processes": [{"pid": 4242, "used_memory_mb": 100}, {"pid": 4343, "used_memory_mb": 2000},
                  {"pid": 1, "used_memory_mb": 5}]}]}


def scrape(collector: rx.ResourceCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert "hunter2" not in text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_containers_cpu_memory_restarts_and_gpus(tmp_path: Path) -> None:
    cgroup, containers, proc = host(tmp_path)
    got = scrape(rx.ResourceCollector(cgroup, containers, proc, gpu_facts=lambda: FACTS))
    chat = (("container", "mlstack-chat"), ("unit", "chat"))
    assert got[("mlstack_container_cpu_seconds_total", chat)] == 27.424025
    assert got[("mlstack_container_memory_bytes", chat)] == 61771776 - 114688
    assert got[("mlstack_container_restarts_total", chat)] == 2
    assert got[("mlstack_container_memory_bytes", (("container", "mlstack-llm"), ("unit", "llm")))] == 402956288
    assert not any("someone-else" in str(key) for key in got)  # only mlstack's containers
    gpu = (("gpu", "0"),)
    assert got[("mlstack_gpu_utilization_ratio", gpu)] == 0.37
    assert got[("mlstack_gpu_memory_used_bytes", gpu)] == 3000 * MIB
    assert got[("mlstack_gpu_memory_total_bytes", gpu)] == 12288 * MIB
    assert got[("mlstack_gpu_temperature_celsius", gpu)] == 61
    assert got[("mlstack_gpu_power_watts", gpu)] == 120.5
    assert got[("mlstack_container_gpu_memory_bytes", (("unit", "llm"),))] == 2000 * MIB
    assert got[("mlstack_container_gpu_memory_bytes", (("unit", "chat"),))] == 100 * MIB


def test_cgroup_v1_as_on_docker_20_10_with_cgroupfs(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root / f"cpuacct/docker/{CHAT}/cpuacct.usage", "27424025966\n")
    write(root / f"memory/docker/{CHAT}/memory.usage_in_bytes", "61771776\n")
    write(root / f"memory/docker/{CHAT}/memory.stat", "cache 2605056\ntotal_inactive_file 114688\n")
    assert rx.cgroup_figures(root, CHAT) == {"cpu_seconds": 27.424025966, "memory_bytes": 61771776.0 - 114688}


def test_a_vanished_or_stopped_container_gives_no_series(tmp_path: Path) -> None:
    cgroup, containers, proc = host(tmp_path)
    config(containers, CHAT, "mlstack-chat", "chat", running=False)
    assert rx.cgroup_figures(cgroup, "d" * 64) is None
    got = scrape(rx.ResourceCollector(cgroup, containers, proc, gpu_facts=lambda: {"devices": []}))
    assert not any("mlstack-chat" in str(key) for key in got)


def test_nvml_facts_through_a_fake_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    class NVMLError(Exception):
        pass

    def raise_(*_: Any) -> Any:
        raise NVMLError("Not Supported")

    fake = types.SimpleNamespace(
        NVMLError=NVMLError, NVML_TEMPERATURE_GPU=0, nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=12288 * MIB, used=512 * MIB),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=55),
        nvmlDeviceGetPowerUsage=raise_,  # older boards: power not supported
        nvmlDeviceGetTemperature=lambda h, kind: 58,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [types.SimpleNamespace(pid=4242, usedGpuMemory=64 * MIB)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    facts = rx.nvml_facts()
    assert facts["devices"] == [{"index": 0, "memory_total_mb": 12288, "memory_used_mb": 512,
                                 "utilization_gpu_pct": 55, "temperature_c": 58, "power_w": None,
                                 "processes": [{"pid": 4242, "used_memory_mb": 64}]}]


def test_no_driver_means_no_gpu_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert rx.nvml_facts() == {"gpu_count": 0, "devices": []}
