# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""aiops.mlstack.gpu_facts run by Ansible against a FAKE libnvidia-ml.so.1.

No GPU exists here. tests/fake_nvml/fake_nvml.c is compiled with gcc into a shared
library named like NVIDIA's and found through LD_LIBRARY_PATH, so that the module's real
code path runs: pynvml's ctypes.CDLL("libnvidia-ml.so.1"), its struct marshalling, and
_nvml's reading of it. The fake says three TITAN X (Pascal) boards; every record the
module returns here is marked with ``fake``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".ansible" / "collections"
BIN = Path(sys.executable).parent
FAKE = "fake libnvidia-ml.so.1 (tests/fake_nvml/fake_nvml.c), 3x TITAN X, no GPU"

pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed (requirements.txt pins it)")


def run_module(args: str, lib_dir: Path | None, extra_env: dict[str, str] | None = None,
               check: bool = False) -> tuple[int, dict[str, Any]]:
    """ansible localhost -m aiops.mlstack.gpu_facts; returns (rc, the module's result)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_NVML_", "LD_LIBRARY_PATH"))}
    # No ansible.cfg (cwd is not the checkout): an ad-hoc call needs no evidence bundle.
    env.pop("ANSIBLE_CONFIG", None)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), PATH=f"{BIN}:{env.get('PATH', '')}")
    if lib_dir is not None:
        env["LD_LIBRARY_PATH"] = str(lib_dir)
    env.update(extra_env or {})
    cmd = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-o",
           "-e", f"ansible_python_interpreter={sys.executable}", "-m", "aiops.mlstack.gpu_facts", "-a", args]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=lib_dir or "/", check=False, timeout=120)
    line = next((ln for ln in proc.stdout.splitlines() if "=>" in ln), None)
    assert line, f"no module result in output:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(line.split("=>", 1)[1])


@pytest.mark.parametrize("check", [False, True], ids=["apply", "check"])
def test_three_fake_titan_x_through_the_real_loading_path(fake_nvml_dir: Path, check: bool) -> None:
    rc, result = run_module(f"unit=gpu-box evidence_fake='{FAKE}'", fake_nvml_dir, check=check)
    assert rc == 0, result
    assert result["changed"] is False
    assert result["gpu_count"] == 3 and result["available"] is True
    assert result["driver_version"] == "580.95.05" and result["driver_branch"] == 580
    assert result["cuda_driver_version"] == "13.0"
    devices = result["devices"]
    assert [d["uuid"] for d in devices] == [f"GPU-fa4e0000-0000-4000-8000-00000000000{i}" for i in range(3)]
    assert {d["name"] for d in devices} == {"NVIDIA TITAN X (Pascal)"}
    assert {d["compute_capability"] for d in devices} == {"6.1"}
    assert [d["memory_free_mb"] for d in devices] == [12188, 11188, 10188]
    assert devices[0]["processes"] == [{"pid": 4242, "used_memory_mb": 512}]
    assert devices[2]["power_w"] == 17.0 and devices[2]["temperature_c"] == 37
    assert result["ansible_facts"]["mlstack_gpu"]["gpu_count"] == 3
    (rec,) = result["evidence"]
    assert rec["check"] == "gpu_state" and rec["ok"] is True and rec["fake"] == FAKE
    assert rec["observed"]["devices"][1]["memory_free_mb"] == 11188


def test_driver_not_loaded_is_reported_not_failed(fake_nvml_dir: Path) -> None:
    rc, result = run_module("unit=gpu-box", fake_nvml_dir, {"FAKE_NVML_INIT_ERROR": "9"})
    assert rc == 0, result
    assert result["gpu_count"] == 0 and "kernel module is not loaded" in result["reason"]


def test_require_gpu_fails_when_the_driver_sees_none(fake_nvml_dir: Path) -> None:
    rc, result = run_module("unit=gpu-box require_gpu=true", fake_nvml_dir, {"FAKE_NVML_GPU_COUNT": "0"})
    assert rc != 0
    assert result["evidence"][0]["ok"] is False
    assert "reports no GPU" in result["reason"]


def test_this_machine_without_the_fake_has_no_gpu_and_says_so() -> None:
    """The real thing here: no NVIDIA driver, so NVML is not found, and that is not a failure."""
    if any(Path(p, "libnvidia-ml.so.1").exists() for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")):
        pytest.skip("this machine has a real libnvidia-ml.so.1")
    rc, result = run_module("unit=localhost", None)
    assert rc == 0, result
    assert result["gpu_count"] == 0 and result["devices"] == []
    assert "libnvidia-ml.so.1 (NVML) was not found" in result["reason"]
    assert result["msg"].startswith("no GPU here: ")
    assert "fake" not in result["evidence"][0]


def test_sampling_the_fake_gpus_load_over_a_window(fake_nvml_dir: Path) -> None:
    rc, result = run_module(f"unit=gpu-box check=gpu_load sample_seconds=1.5 sample_interval=0.5 "
                            f"evidence_fake='{FAKE}'", fake_nvml_dir)
    assert rc == 0, result
    # 1.5 s at 0.5 s: 3 or 4 reads, depending on how long each read takes on a busy machine.
    samples = [d["samples"] for d in result["load"]]
    assert len(set(samples)) == 1 and 3 <= samples[0] <= 4, samples
    assert [d["utilization_gpu_pct_max"] for d in result["load"]] == [0, 5, 10]
    assert [d["memory_used_mb_max"] for d in result["load"]] == [100, 1100, 2100]
    (rec,) = result["evidence"]
    assert rec["check"] == "gpu_load" and rec["observed"]["load"] == result["load"] and rec["fake"] == FAKE
    assert "load over 1.5 s: GPU 0 0.0% mean / 0% max, 100 MiB max" in rec["message"]
