# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/gpu.yml over two Docker hosts, each with its own FAKE GPUs: placement per host.

No GPU exists here. Both "hosts" are this machine (connection local), and each reads a
FAKE libnvidia-ml.so.1 (tests/fake_nvml/fake_nvml.c): gpu-a three 12 GiB boards (100 MiB
used), gpu-b one board with 8000 MiB used, set by the fake's environment in gpu-b's
``mlstack_gpu_python`` (a wrapper around this Python). The play must place each host's units
on that host's GPUs only, and stop when a required unit does not fit on its own host's GPUs,
however much room the other host has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed (requirements.txt pins it)")


def run_gpu_play(tmp_path: Path, lib_dir: Path, units: dict[str, dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """playbooks/gpu.yml on gpu-a and gpu-b, then each host's placement written to <host>.json."""
    python_b = tmp_path / "python-gpu-b"
    python_b.write_text(f"#!/bin/sh\nexport FAKE_NVML_GPU_COUNT=1 FAKE_NVML_USED_MIB=8000\n"
                        f"exec {sys.executable} \"$@\"\n")
    python_b.chmod(0o755)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"children": {
        "docker_hosts": {"hosts": {"gpu-a": dict(local), "gpu-b": {**local, "mlstack_gpu_python": str(python_b)}}},
        "mlstack_units": {"children": {"mlstack_services": {"hosts": units}}, "vars": dict(local)}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([
        {"import_playbook": str(ROOT / "playbooks" / "gpu.yml")},
        {"name": "Write each host's placement", "hosts": "docker_hosts", "gather_facts": False, "tasks": [
            {"name": "Placement", "ansible.builtin.copy": {
                "content": "{{ mlstack_gpu_placement | to_json }}",
                "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.json", "mode": "0600"}}]}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_NVML_", "LD_LIBRARY_PATH"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".ansible" / "collections"),
               MLSTACK_EVIDENCE_DIR=str(tmp_path / "evidence"), LD_LIBRARY_PATH=str(lib_dir), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN}:{env.get('PATH', '')}")
    play = [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")]
    return subprocess.run(play, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


UNITS = {
    "llm": {"mlstack_docker_host": "gpu-a", "mlstack_gpu": "required", "mlstack_gpu_memory_mb": 8192},
    "reasoning": {"mlstack_docker_host": "gpu-a", "mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 6144},
    "voice": {"mlstack_docker_host": "gpu-b", "mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 3072},
    "perception": {"mlstack_docker_host": "gpu-b", "mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 2048},
    "chat": {"mlstack_docker_host": "gpu-b"},
}


def test_each_docker_host_places_its_own_units_on_its_own_fake_gpus(tmp_path: Path, fake_nvml_dir: Path) -> None:
    done = run_gpu_play(tmp_path, fake_nvml_dir, UNITS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    a = json.loads((tmp_path / "gpu-a.json").read_text())
    b = json.loads((tmp_path / "gpu-b.json").read_text())
    assert sorted(a["units"]) == ["llm", "reasoning"] and sorted(b["units"]) == ["chat", "perception", "voice"]
    # gpu-a: the fake's boards have 12188, 11188 and 10188 MiB free: largest request first, onto the
    # tightest fit, then spread. gpu-b: one board with 12288 - 8000 - 256 (reserve) = 4032 MiB left.
    assert [d["units"] for d in a["devices"]] == [[], ["reasoning"], ["llm"]]
    assert [(d["index"], d["memory_free_mb"]) for d in b["devices"]] == [(0, 4288)]
    assert b["units"]["voice"]["placement"] == "gpu" and b["units"]["voice"]["device_index"] == 0
    # perception does not fit beside voice on gpu-b, and gpu-a's free boards are not gpu-b's to use.
    assert b["units"]["perception"]["placement"] == "cpu"
    assert b["units"]["perception"]["reason"] == ("falls back to the CPU: no GPU of docker host gpu-b has 2048 MiB "
                                                  "free (GPU 0: 960 MiB)")
    assert {u["docker_host"] for u in a["units"].values()} == {"gpu-a"}


def test_a_required_unit_its_own_host_cannot_hold_stops_the_run(tmp_path: Path, fake_nvml_dir: Path) -> None:
    units = {**UNITS, "asr": {"mlstack_docker_host": "gpu-b", "mlstack_gpu": "required", "mlstack_gpu_memory_mb": 6144}}
    done = run_gpu_play(tmp_path, fake_nvml_dir, units)
    assert done.returncode != 0
    assert ("unit asr: mlstack_gpu=required but no GPU of docker host gpu-b has 6144 MiB free (GPU 0: 4032 MiB): "
            "free GPU memory on gpu-b, lower mlstack_gpu_memory_mb, set the unit's mlstack_docker_host to a Docker "
            "host whose GPUs can hold it") in done.stdout, done.stdout[-3000:]
    assert not (tmp_path / "gpu-a.json").exists()  # any_errors_fatal: nothing goes on past the GPU preflight
