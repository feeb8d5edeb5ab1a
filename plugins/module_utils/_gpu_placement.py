# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Place units that ask for GPU memory onto the GPUs of their Docker host.

Catalog fields of a unit (its host vars):

- ``mlstack_gpu``: ``none`` (default: CPU), ``preferred`` (a GPU when one fits, else the
  CPU, and the evidence says so) or ``required`` (no GPU that fits stops the run before
  anything changes).
- ``mlstack_gpu_memory_mb``: GPU memory the unit needs (model weights + KV cache + CUDA
  context); required unless ``mlstack_gpu`` is ``none``.
- ``mlstack_gpu_device``: optional pin, a device index (``0``) or UUID (``GPU-...``).

The rule: pinned units first; then the others, largest request first, each onto the
device with the fewest units already placed (spread: three GPUs each running one model
run three models at once), and among those the one the request fits most tightly (best
fit: the big holes stay free for the big requests). Free memory is what NVML said was
free, less a per-device reserve, less what was placed before. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("none", "preferred", "required")
FIELDS = ("mlstack_gpu", "mlstack_gpu_memory_mb", "mlstack_gpu_device", "mlstack_docker_host")


class PlacementError(ValueError):
    """A unit that needs a GPU cannot have one; the message names every such unit and the fix."""


@dataclass(frozen=True)
class Request:
    unit: str
    mode: str
    memory_mb: int
    pin: str | None


def request_errors(unit: str, entry: Mapping[str, Any]) -> list[str]:
    """What is wrong with a unit's GPU fields, as preflight messages (empty: fine)."""
    errors: list[str] = []
    mode = entry.get("mlstack_gpu") or "none"
    if mode not in MODES:
        errors.append(f"unit {unit}: mlstack_gpu={mode!r}: set one of {list(MODES)}")
        return errors
    memory = entry.get("mlstack_gpu_memory_mb")
    if mode != "none":
        try:
            ok = int(memory) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append(f"unit {unit}: mlstack_gpu={mode} needs mlstack_gpu_memory_mb, the GPU memory the unit "
                          f"uses in MiB (got {memory!r}): set a positive integer")
    elif entry.get("mlstack_gpu_device") is not None:
        errors.append(f"unit {unit}: mlstack_gpu_device is set but mlstack_gpu is none: set mlstack_gpu to "
                      "preferred or required, or remove the pin")
    return errors


def _request(unit: str, entry: Mapping[str, Any]) -> Request:
    mode = entry.get("mlstack_gpu") or "none"
    pin = entry.get("mlstack_gpu_device")
    memory = int(entry.get("mlstack_gpu_memory_mb") or 0) if mode != "none" else 0
    return Request(unit, mode, memory, None if pin is None else str(pin))


def _device_label(dev: Mapping[str, Any]) -> str:
    return f"{dev['index']} ({dev.get('name', 'GPU')}, {dev['uuid']})"


def _cpu(req: Request, host: str, reason: str) -> dict[str, Any]:
    return {"unit": req.unit, "docker_host": host, "mode": req.mode, "memory_mb": req.memory_mb,
            "placement": "cpu", "device_index": None, "device_uuid": None, "device_name": None,
            "gpus": [], "cuda_visible_devices": "", "reason": reason}


def place(units: Mapping[str, Mapping[str, Any]], docker_host: str, facts: Mapping[str, Any] | None,
          reserve_mb: int = 0) -> dict[str, Any]:
    """Assign each of ``units`` (name -> catalog entry, all on ``docker_host``) a GPU or the CPU.

    ``facts``: the host's gpu_facts (``devices`` with index, uuid, name, memory_free_mb).
    Returns ``units`` (name -> assignment), ``devices`` (what each GPU got) and ``table``
    (rows for a report). Raises PlacementError naming every unit that needs a GPU and
    cannot have one, and why; bad catalog fields are raised the same way.
    """
    errors = [e for name in sorted(units) for e in request_errors(name, units[name])]
    if errors:
        raise PlacementError("GPU placement refused the catalog, nothing was changed:\n- " + "\n- ".join(errors))
    facts = facts or {}
    devices = sorted(facts.get("devices") or [], key=lambda d: d["index"])
    free = {d["index"]: int(d["memory_free_mb"]) - int(reserve_mb) for d in devices}
    placed: dict[int, list[str]] = {d["index"]: [] for d in devices}
    by_pin = {str(d["index"]): d for d in devices} | {str(d["uuid"]): d for d in devices}
    requests = [_request(name, units[name]) for name in sorted(units)]
    # Pinned first (they have no choice), then the largest requests while the most room is left.
    order = sorted(requests, key=lambda r: (r.pin is None, -r.memory_mb, r.unit))
    out: dict[str, dict[str, Any]] = {}
    no_gpu = facts.get("reason") or "gpu_facts found no GPU"

    for req in order:
        if req.mode == "none":
            out[req.unit] = _cpu(req, docker_host, "runs on the CPU (mlstack_gpu: none)")
            continue
        why = ""
        chosen: dict[str, Any] | None = None
        if not devices:
            why = f"docker host {docker_host} has no GPU ({no_gpu})"
        elif req.pin is not None:
            dev = by_pin.get(req.pin)
            if dev is None:
                errors.append(f"unit {req.unit}: mlstack_gpu_device={req.pin!r} is not a GPU of docker host "
                              f"{docker_host} (it has {', '.join(_device_label(d) for d in devices)}): pin one of "
                              "them by index or UUID, or remove the pin")
                continue
            if free[dev["index"]] >= req.memory_mb:
                chosen = dev
            else:
                why = (f"pinned GPU {_device_label(dev)} has {free[dev['index']]} MiB free (after the reserve and "
                       f"the units placed before), the unit asks for {req.memory_mb} MiB")
        else:
            fits = [d for d in devices if free[d["index"]] >= req.memory_mb]
            if fits:
                chosen = min(fits, key=lambda d: (len(placed[d["index"]]), free[d["index"]] - req.memory_mb,
                                                  d["index"]))
            else:
                room = ", ".join(f"GPU {d['index']}: {free[d['index']]} MiB" for d in devices)
                why = f"no GPU of docker host {docker_host} has {req.memory_mb} MiB free ({room})"
        if chosen is not None:
            idx = chosen["index"]
            free[idx] -= req.memory_mb
            placed[idx].append(req.unit)
            out[req.unit] = {"unit": req.unit, "docker_host": docker_host, "mode": req.mode,
                             "memory_mb": req.memory_mb, "placement": "gpu", "device_index": idx,
                             "device_uuid": chosen["uuid"], "device_name": chosen.get("name"),
                             "gpus": [chosen["uuid"]], "cuda_visible_devices": chosen["uuid"],
                             "reason": "pinned" if req.pin is not None else "best fit, spread across GPUs"}
        elif req.mode == "required":
            errors.append(f"unit {req.unit}: mlstack_gpu=required but {why}: free GPU memory on {docker_host}, "
                          "lower mlstack_gpu_memory_mb, set the unit's mlstack_docker_host to a Docker host whose "
                          "GPUs can hold it (each host places only its own units, on its own GPUs), or set "
                          "mlstack_gpu: preferred to let it run on the CPU")
        else:
            out[req.unit] = _cpu(req, docker_host, f"falls back to the CPU: {why}")

    if errors:
        raise PlacementError("GPU placement failed, nothing was changed:\n- " + "\n- ".join(errors))
    device_rows = [{"index": d["index"], "uuid": d["uuid"], "name": d.get("name"),
                    "memory_free_mb": int(d["memory_free_mb"]), "units": sorted(placed[d["index"]]),
                    "placed_mb": sum(out[u]["memory_mb"] for u in placed[d["index"]]),
                    "left_mb": free[d["index"]]} for d in devices]
    return {"docker_host": docker_host, "units": out, "devices": device_rows, "table": table(out.values())}


def table(assignments: Iterable[Mapping[str, Any]]) -> list[str]:
    """Markdown rows of a placement, one per unit that asked for a GPU, for the report and the test output."""
    rows = ["| unit | mode | MiB | placement | device | reason |", "|---|---|---|---|---|---|"]
    for a in sorted(assignments, key=lambda a: (a["device_index"] is None, a["device_index"] or 0, a["unit"])):
        if a["mode"] == "none":
            continue
        device = "-" if a["device_index"] is None else f"{a['device_index']} {a['device_uuid']}"
        rows.append(f"| {a['unit']} | {a['mode']} | {a['memory_mb']} | {a['placement']} | {device} | "
                    f"{a['reason']} |")
    return rows


def units_on(catalog: Mapping[str, Mapping[str, Any]], docker_host: str) -> dict[str, Mapping[str, Any]]:
    """The catalog entries of the units whose container runs on ``docker_host``."""
    return {name: entry for name, entry in catalog.items() if entry.get("mlstack_docker_host") == docker_host}
