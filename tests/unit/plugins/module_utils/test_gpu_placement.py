"""GPU placement onto FAKE GPU facts (three 12 GiB TITAN X boards that do not exist here)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.filter.gpu import gpu_placement
from ansible_collections.aiops.mlstack.plugins.module_utils._gpu_placement import (
    PlacementError,
    place,
    request_errors,
)


def fake_titan_x_facts(free: tuple[int, ...] = (12188, 12188, 12188)) -> dict[str, Any]:
    """FAKE gpu_facts: what the module returns for 3x TITAN X (Pascal), 12288 MiB, ~100 MiB used by the driver."""
    return {"available": True, "reason": "", "gpu_count": len(free), "devices": [
        {"index": i, "name": "NVIDIA TITAN X (Pascal)", "uuid": f"GPU-fa4e0000-0000-4000-8000-00000000000{i}",
         "compute_capability": "6.1", "memory_total_mb": 12288, "memory_free_mb": f} for i, f in enumerate(free)]}


NO_GPU = {"available": False, "gpu_count": 0, "devices": [],
          "reason": "no NVIDIA driver: libnvidia-ml.so.1 (NVML) was not found on this host"}

# The reference stack with the GPU requests of the production example inventory
# (inventories/production): each GPU-capable unit with the memory its model needs.
REFERENCE_STACK: dict[str, dict[str, Any]] = {
    "redis": {}, "postgresql": {}, "chat": {}, "coordination": {}, "learning": {}, "sequential-thinking": {},
    "llm": {"mlstack_gpu": "required", "mlstack_gpu_memory_mb": 8192},
    "reasoning": {"mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 6144},
    "perception": {"mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 4096},
    "voice-interaction": {"mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 3072},
    "memory": {"mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 1024},
}


def catalog(extra: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    units = {name: {"mlstack_docker_host": "gpu-box", **entry} for name, entry in REFERENCE_STACK.items()}
    for name, entry in (extra or {}).items():
        units[name] = {**units.get(name, {"mlstack_docker_host": "gpu-box"}), **entry}
    return units


def test_reference_stack_onto_three_fake_titan_x(capsys: pytest.CaptureFixture[str]) -> None:
    result = place(catalog(), "gpu-box", fake_titan_x_facts(), reserve_mb=256)
    print("\n".join(result["table"]))  # the table the report shows (pytest -s)
    where = {u: a["device_index"] for u, a in result["units"].items() if a["placement"] == "gpu"}
    # Largest first; spread (fewest units) before best fit (tightest hole).
    assert where == {"llm": 0, "reasoning": 1, "perception": 2, "voice-interaction": 0, "memory": 1}
    assert [d["units"] for d in result["devices"]] == [["llm", "voice-interaction"], ["memory", "reasoning"],
                                                       ["perception"]]
    assert [d["left_mb"] for d in result["devices"]] == [12188 - 256 - 11264, 12188 - 256 - 7168, 12188 - 256 - 4096]
    llm = result["units"]["llm"]
    assert llm["gpus"] == ["GPU-fa4e0000-0000-4000-8000-000000000000"]
    assert llm["cuda_visible_devices"] == "GPU-fa4e0000-0000-4000-8000-000000000000"
    assert result["units"]["chat"]["placement"] == "cpu" and result["units"]["chat"]["gpus"] == []
    assert len(result["table"]) == 2 + 5  # header + one row per unit that asked for a GPU
    assert result["table"][2].startswith("| llm | required | 8192 | gpu | 0 GPU-fa4e")


def test_every_gpu_gets_work_before_any_gets_a_second_unit() -> None:
    units = {f"u{i}": {"mlstack_docker_host": "h", "mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 1000}
             for i in range(3)}
    result = place(units, "h", fake_titan_x_facts())
    assert sorted(a["device_index"] for a in result["units"].values()) == [0, 1, 2]


def test_best_fit_picks_the_tightest_device_among_equally_loaded_ones() -> None:
    units = {"a": {"mlstack_gpu": "required", "mlstack_gpu_memory_mb": 4000}}
    result = place(units, "h", fake_titan_x_facts((12000, 5000, 8000)))
    assert result["units"]["a"]["device_index"] == 1


@pytest.mark.parametrize("pin", [2, "2", "GPU-fa4e0000-0000-4000-8000-000000000002"])
def test_pinning_by_index_or_uuid_is_honoured_before_the_others(pin: Any) -> None:
    result = place(catalog({"memory": {"mlstack_gpu_device": pin}}), "gpu-box", fake_titan_x_facts())
    assert result["units"]["memory"]["device_index"] == 2
    assert result["units"]["memory"]["reason"] == "pinned"


def test_pin_to_a_device_that_does_not_exist_names_the_devices() -> None:
    with pytest.raises(PlacementError, match=r"unit memory: mlstack_gpu_device='7' is not a GPU of docker host "
                                             r"gpu-box \(it has 0 \(NVIDIA TITAN X"):
        place(catalog({"memory": {"mlstack_gpu_device": 7}}), "gpu-box", fake_titan_x_facts())


def test_required_that_cannot_fit_fails_with_every_device_free_memory() -> None:
    with pytest.raises(PlacementError) as err:
        place(catalog({"llm": {"mlstack_gpu_memory_mb": 16384}}), "gpu-box", fake_titan_x_facts())
    msg = str(err.value)
    assert msg.startswith("GPU placement failed, nothing was changed:")
    assert "unit llm: mlstack_gpu=required but no GPU of docker host gpu-box has 16384 MiB free " \
           "(GPU 0: 12188 MiB, GPU 1: 12188 MiB, GPU 2: 12188 MiB)" in msg
    assert "set mlstack_gpu: preferred to let it run on the CPU" in msg


def test_preferred_that_cannot_fit_falls_back_to_the_cpu_and_says_why() -> None:
    result = place(catalog({"perception": {"mlstack_gpu_memory_mb": 13000}}), "gpu-box", fake_titan_x_facts())
    perception = result["units"]["perception"]
    assert perception["placement"] == "cpu" and perception["cuda_visible_devices"] == ""
    assert perception["reason"].startswith("falls back to the CPU: no GPU of docker host gpu-box has 13000 MiB")


def test_pinned_device_full_falls_back_for_preferred() -> None:
    result = place(catalog({"memory": {"mlstack_gpu_device": 0, "mlstack_gpu_memory_mb": 12100}}), "gpu-box",
                   fake_titan_x_facts((12188, 12188, 12188)), reserve_mb=256)
    assert result["units"]["memory"]["placement"] == "cpu"
    assert "pinned GPU 0 (NVIDIA TITAN X (Pascal), GPU-fa4e" in result["units"]["memory"]["reason"]


def test_host_without_gpus_cpu_fallback_for_preferred_and_clear_failure_for_required() -> None:
    units = catalog({"llm": {"mlstack_gpu": "preferred"}})
    result = place(units, "gpu-box", NO_GPU)
    assert {a["placement"] for a in result["units"].values()} == {"cpu"}
    assert result["units"]["llm"]["reason"] == ("falls back to the CPU: docker host gpu-box has no GPU (no NVIDIA "
                                                "driver: libnvidia-ml.so.1 (NVML) was not found on this host)")
    with pytest.raises(PlacementError, match="unit llm: mlstack_gpu=required but docker host gpu-box has no GPU "
                                             r"\(no NVIDIA driver"):
        place(catalog(), "gpu-box", NO_GPU)


@pytest.mark.parametrize(("entry", "fragment"), [
    ({"mlstack_gpu": "always"}, "mlstack_gpu='always': set one of ['none', 'preferred', 'required']"),
    ({"mlstack_gpu": "required"}, "needs mlstack_gpu_memory_mb"),
    ({"mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": "lots"}, "needs mlstack_gpu_memory_mb"),
    ({"mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 0}, "needs mlstack_gpu_memory_mb"),
    ({"mlstack_gpu_device": 1}, "mlstack_gpu_device is set but mlstack_gpu is none"),
])
def test_bad_gpu_fields_are_refused_naming_the_field(entry: dict[str, Any], fragment: str) -> None:
    assert any(fragment in e for e in request_errors("llm", entry))
    with pytest.raises(PlacementError, match="refused the catalog"):
        place({"llm": entry}, "h", fake_titan_x_facts())


def test_good_gpu_fields_pass() -> None:
    assert request_errors("llm", {"mlstack_gpu": "required", "mlstack_gpu_memory_mb": "2048"}) == []
    assert request_errors("chat", {}) == []


def test_filter_places_only_the_units_of_its_docker_host_and_raises_a_filter_error() -> None:
    hostvars = {"llm": {"mlstack_docker_host": "gpu-box", "mlstack_gpu": "required", "mlstack_gpu_memory_mb": 512},
                "chat": {"mlstack_docker_host": "other"}}
    result = gpu_placement(hostvars, ["llm", "chat"], "gpu-box", fake_titan_x_facts())
    assert list(result["units"]) == ["llm"] and result["units"]["llm"]["device_index"] == 0
    with pytest.raises(AnsibleFilterError, match="unit llm: mlstack_gpu=required but docker host gpu-box has no GPU"):
        gpu_placement(hostvars, ["llm", "chat"], "gpu-box", NO_GPU)


def test_each_docker_host_places_only_its_own_units_on_its_own_gpus() -> None:
    # Two Docker hosts as playbooks/gpu.yml sees them: the filter runs once per host with that
    # host's own gpu_facts. gpu1 has three FAKE TITAN X; gpu2 one FAKE 4 GiB board.
    small = {"available": True, "reason": "", "gpu_count": 1, "devices": [
        {"index": 0, "name": "FAKE 4 GiB board", "uuid": "GPU-fa4e0000-0000-4000-8000-0000000000b0",
         "compute_capability": "6.1", "memory_total_mb": 4096, "memory_free_mb": 3996}]}
    hostvars = {name: {"mlstack_docker_host": "gpu1", **entry} for name, entry in REFERENCE_STACK.items()}
    hostvars["voice-interaction"]["mlstack_docker_host"] = "gpu2"
    hostvars["asr"] = {"mlstack_docker_host": "gpu2", "mlstack_gpu": "preferred", "mlstack_gpu_memory_mb": 2048}
    units = sorted(hostvars)
    gpu1 = gpu_placement(hostvars, units, "gpu1", fake_titan_x_facts(), 256)
    gpu2 = gpu_placement(hostvars, units, "gpu2", small, 256)
    assert "voice-interaction" not in gpu1["units"] and "asr" not in gpu1["units"]
    assert sorted(gpu2["units"]) == ["asr", "voice-interaction"]
    gpu1_uuids = {d["uuid"] for d in fake_titan_x_facts()["devices"]}
    assert {a["device_uuid"] for a in gpu1["units"].values() if a["placement"] == "gpu"} <= gpu1_uuids
    assert {a["docker_host"] for a in gpu1["units"].values()} == {"gpu1"}
    # gpu2's 3740 MiB (after the reserve): voice-interaction (3072) first, then asr falls back to the CPU
    # there, although gpu1's boards have room: a unit never gets another host's GPU.
    assert gpu2["units"]["voice-interaction"]["device_uuid"] == "GPU-fa4e0000-0000-4000-8000-0000000000b0"
    assert gpu2["units"]["asr"]["placement"] == "cpu"
    assert gpu2["units"]["asr"]["reason"] == ("falls back to the CPU: no GPU of docker host gpu2 has 2048 MiB free "
                                              "(GPU 0: 668 MiB)")
    assert [d["units"] for d in gpu2["devices"]] == [["voice-interaction"]]
    # Without voice-interaction on gpu2, gpu1's placement is what it is alone: gpu2's units take none of gpu1's room.
    alone = gpu_placement({n: e for n, e in hostvars.items() if e["mlstack_docker_host"] == "gpu1"},
                          [n for n in units if hostvars[n]["mlstack_docker_host"] == "gpu1"], "gpu1",
                          fake_titan_x_facts(), 256)
    assert gpu1["devices"] == alone["devices"]


def test_a_required_unit_that_its_own_host_cannot_hold_fails_naming_the_unit_host_and_fields() -> None:
    small = {"available": True, "reason": "", "gpu_count": 1, "devices": [
        {"index": 0, "name": "FAKE 4 GiB board", "uuid": "GPU-fa4e0000-0000-4000-8000-0000000000b0",
         "compute_capability": "6.1", "memory_total_mb": 4096, "memory_free_mb": 3996}]}
    hostvars = {"llm": {"mlstack_docker_host": "gpu2", "mlstack_gpu": "required", "mlstack_gpu_memory_mb": 8192},
                "voice": {"mlstack_docker_host": "gpu1", "mlstack_gpu": "required", "mlstack_gpu_memory_mb": 1024}}
    # gpu1 could hold llm, but llm is gpu2's: gpu1 places voice alone and gpu2 refuses llm.
    assert sorted(gpu_placement(hostvars, ["llm", "voice"], "gpu1", fake_titan_x_facts(), 256)["units"]) == ["voice"]
    with pytest.raises(AnsibleFilterError) as err:
        gpu_placement(hostvars, ["llm", "voice"], "gpu2", small, 256)
    assert ("unit llm: mlstack_gpu=required but no GPU of docker host gpu2 has 8192 MiB free (GPU 0: 3740 MiB): "
            "free GPU memory on gpu2, lower mlstack_gpu_memory_mb, set the unit's mlstack_docker_host to a Docker "
            "host whose GPUs can hold it (each host places only its own units, on its own GPUs), or set "
            "mlstack_gpu: preferred to let it run on the CPU") in str(err.value)
    assert "voice" not in str(err.value)
