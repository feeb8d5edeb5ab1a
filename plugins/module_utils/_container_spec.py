# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A unit's managed container spec: its fields, its hash, the plan, and the SDK arguments.

The managed spec is hashed into a label (USER-ASKS 1 and 2): a re-run compares that
hash, never Docker's normalised view of the container, so defaults Docker fills in can
never cause a needless recreation, and removing a declared key recreates exactly once.
Pure functions on plain dicts, stdlib only. The normalisation and the hash must stay
stable across releases: a changed hash recreates every unit on upgrade.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import HARDENING

LABEL_HASH = "io.mlstack.spec-hash"
LABEL_SPEC = "io.mlstack.spec"
LABEL_UNIT = "io.mlstack.unit"
LABEL_MANAGED = "io.mlstack.managed"

# Keys of the managed spec and their empty values; anything else is refused, so a typo
# in a role cannot silently be ignored.
SPEC_DEFAULTS: dict[str, Any] = {
    "image": "",
    "command": None,
    "entrypoint": None,
    "env": {},
    "labels": {},
    "volumes": [],
    "mounts": [],
    "networks": [],
    "ports": {},
    "healthcheck": None,
    "user": None,
    "read_only": False,
    "tmpfs": {},
    "cap_drop": [],
    "cap_add": [],
    "security_opt": [],
    "restart_policy": "unless-stopped",
    "memory": None,
    "cpus": None,
    "pids_limit": None,
    "log_options": {},
    "stop_timeout": None,
    # GPU device ids (UUIDs or indexes) handed to the NVIDIA runtime; empty means no GPU.
    "gpus": [],
    # Size of /dev/shm (Docker's shm_size, e.g. "1g"); unset: Docker's 64m.
    "shm_size": None,
}

# Keys added to SPEC_DEFAULTS after units were deployed with the hash: each is left out of
# the hash while it holds its default, so that adding a key recreates no deployed unit
# (every key in the hash changes every unit's hash). Name every key added from now on here.
HASH_OMITS_DEFAULT: frozenset[str] = frozenset({"shm_size"})


class SpecError(ValueError):
    """A spec the reconciler refuses: the message names the field and the fix."""


def normalize_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, refuse unknown keys, and put lists in a stable order."""
    unknown = sorted(set(spec) - set(SPEC_DEFAULTS))
    if unknown:
        raise SpecError(f"unknown container spec field(s) {unknown}; allowed: {sorted(SPEC_DEFAULTS)}")
    if not spec.get("image"):
        raise SpecError("container spec field 'image' is required: name the image to run")
    out = {key: spec.get(key, default) for key, default in SPEC_DEFAULTS.items()}
    out["env"] = {str(k): str(v) for k, v in (out["env"] or {}).items()}
    out["labels"] = {str(k): str(v) for k, v in (out["labels"] or {}).items()}
    out["ports"] = {str(k): v for k, v in (out["ports"] or {}).items()}
    out["gpus"] = [str(g) for g in out["gpus"] or []]
    for key in ("volumes", "cap_drop", "cap_add", "security_opt"):
        out[key] = sorted(str(v) for v in out[key] or [])
    # Templating may turn "5432" into 5432; Docker wants strings in argv-like fields.
    for key in ("command", "entrypoint"):
        if isinstance(out[key], list):
            out[key] = [str(v) for v in out[key]]
    if out["healthcheck"]:
        out["healthcheck"] = {**out["healthcheck"], "test": [str(v) for v in out["healthcheck"]["test"]]}
    out["networks"] = sorted((_network_entry(n) for n in out["networks"] or []), key=lambda n: n["name"])
    return out


def _network_entry(net: Any) -> dict[str, Any]:
    if isinstance(net, str):
        return {"name": net, "aliases": []}
    if not isinstance(net, dict) or "name" not in net:
        raise SpecError(f"container spec field 'networks' entry {net!r} must be a name or a dict with 'name'")
    return {"name": str(net["name"]), "aliases": sorted(str(a) for a in net.get("aliases") or [])}


def spec_hash(spec: dict[str, Any], image_id: str) -> str:
    """Hash of the normalised spec plus the image id: a new image build recreates too.

    A key named in ``HASH_OMITS_DEFAULT`` counts only once a unit sets it.
    """
    hashed = {key: value for key, value in spec.items()
              if key not in HASH_OMITS_DEFAULT or value != SPEC_DEFAULTS[key]}
    payload = json.dumps({"spec": hashed, "image_id": image_id}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def redacted_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as stored in a label and shown in diffs: env values replaced by a digest."""
    shown = dict(spec)
    shown["env"] = {k: "sha256:" + hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in spec["env"].items()}
    return shown


@dataclass
class Plan:
    """What reconciliation will do, and why (the evidence records the reason)."""

    action: str  # create | recreate | start | none
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    changed_fields: list[str] = field(default_factory=list)


def plan(current: dict[str, Any] | None, desired: dict[str, Any], desired_hash: str, recreate: str) -> Plan:
    """Decide the action from the current container (``docker inspect`` dict) or None.

    ``recreate``: ``if_changed`` (default), ``always``, or ``never`` (adopt and report drift).
    """
    after = redacted_spec(desired)
    if current is None:
        return Plan("create", "container absent", None, after, sorted(after))
    labels = (current.get("Config") or {}).get("Labels") or {}
    before = _stored_spec(labels)
    running = bool((current.get("State") or {}).get("Running"))
    if recreate == "always":
        return Plan("recreate", "recreation requested (recreate=always)", before, after, _changed(before, after))
    if labels.get(LABEL_HASH) != desired_hash:
        changed = _changed(before, after)
        if LABEL_HASH not in labels:
            reason = "container not created by mlstack (no spec hash label)"
        elif changed:
            reason = "declared spec changed: " + ", ".join(changed)
        else:
            reason = "image changed"
        if recreate == "never":
            return Plan("start" if not running else "none", "drift not corrected (recreate=never): " + reason,
                        before, before, changed)
        return Plan("recreate", reason, before, after, changed)
    if not running:
        return Plan("start", "container exists but is not running", before, after, [])
    # The hash cannot see a network disconnected behind the module's back (a removed and
    # re-created network): the unit would stay healthy inside and unreachable outside.
    attached = set((current.get("NetworkSettings") or {}).get("Networks") or {})
    detached = sorted(net["name"] for net in desired["networks"] if net["name"] not in attached)
    if detached and recreate != "never":
        return Plan("recreate", f"declared network(s) {detached} no longer attached", before, after, ["networks"])
    return Plan("none", "container matches its declared spec", before, after, [])


def _stored_spec(labels: dict[str, str]) -> dict[str, Any] | None:
    try:
        return json.loads(labels[LABEL_SPEC])
    except (KeyError, ValueError):
        return None


def _changed(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    if before is None:
        return sorted(after)
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def managed_labels(desired: dict[str, Any], digest: str, unit: str) -> dict[str, str]:
    """The labels a managed container carries: its hash, its redacted spec (for the next diff), its unit."""
    return {LABEL_HASH: digest, LABEL_SPEC: json.dumps(redacted_spec(desired), sort_keys=True),
            LABEL_UNIT: unit, LABEL_MANAGED: "true"}


def _duration_ns(value: Any) -> int:
    """Accept seconds (number) or a Go-style '10s' / '500ms' string."""
    if isinstance(value, (int, float)):
        return int(value * 1e9)
    text = str(value).strip()
    for suffix, factor in (("ms", 1e6), ("s", 1e9), ("m", 60e9)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text) * 1e9)


def create_kwargs(name: str, spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Translate a normalised spec into Docker SDK ``containers.create`` keyword arguments.

    Only the first network is attached at create time; the others are connected after,
    because the Engine API attaches one network per create call.
    """
    kwargs: dict[str, Any] = {
        "name": name,
        "image": spec["image"],
        "detach": True,
        "environment": spec["env"],
        "labels": {**spec["labels"], **labels},
        "read_only": spec["read_only"],
        "restart_policy": {"Name": spec["restart_policy"]} if spec["restart_policy"] != "no" else None,
    }
    optional = {
        "command": spec["command"],
        "entrypoint": spec["entrypoint"],
        "user": spec["user"],
        "tmpfs": spec["tmpfs"] or None,
        "cap_drop": spec["cap_drop"] or None,
        "cap_add": spec["cap_add"] or None,
        "security_opt": spec["security_opt"] or None,
        "mem_limit": spec["memory"],
        "nano_cpus": int(float(spec["cpus"]) * 1e9) if spec["cpus"] else None,
        "pids_limit": spec["pids_limit"],
        "shm_size": spec["shm_size"],
        "volumes": spec["volumes"] or None,
        # The SDK takes (address, port) tuples; YAML and JSON give lists.
        "ports": {k: tuple(v) if isinstance(v, list) else v for k, v in spec["ports"].items()} or None,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if spec["log_options"]:
        kwargs["log_config"] = {"Type": "json-file", "Config": {k: str(v) for k, v in spec["log_options"].items()}}
    if spec["healthcheck"]:
        hc = spec["healthcheck"]
        kwargs["healthcheck"] = {
            "test": hc["test"],
            "interval": _duration_ns(hc.get("interval", 1)),
            "timeout": _duration_ns(hc.get("timeout", 3)),
            "retries": int(hc.get("retries", 30)),
            "start_period": _duration_ns(hc.get("start_period", 0)),
        }
    if spec["gpus"]:
        kwargs["device_requests"] = [{"driver": "nvidia", "device_ids": spec["gpus"], "capabilities": [["gpu"]]}]
    if spec["stop_timeout"] is not None:
        kwargs["stop_timeout"] = int(spec["stop_timeout"])
    if spec["networks"]:
        first = spec["networks"][0]
        kwargs["network"] = first["name"]
        if first["aliases"]:
            kwargs["networking_config"] = {first["name"]: {"Aliases": first["aliases"]}}
    return kwargs


def holder_spec(spec: dict[str, Any], image: str) -> dict[str, Any]:
    """The port holder's spec: the unit's host port bindings, forwarded to the unit by its alias.

    The unit itself then binds no host port, so its proven candidate can take over with no
    gap (``promote``); the holder changes only with its own image or the unit's ports.
    """
    desired = normalize_spec(spec)
    # The first network as declared (the normalised spec sorts them): the role lists the
    # published unit's frontend network first, and the holder joins only that one.
    first = _network_entry(spec["networks"][0]) if spec.get("networks") else None
    if first is None or not first["aliases"]:
        raise SpecError("a unit published through a port holder needs a network alias on its first network "
                        "(the holder reaches it by that name)")
    alias = first["aliases"][0]
    container_ports = sorted(int(str(key).split("/", maxsplit=1)[0]) for key in desired["ports"])
    return {
        "image": image,
        "env": {"MLSTACK_FORWARD": " ".join(f"{port}>{alias}:{port}" for port in container_ports)},
        "ports": desired["ports"],
        "networks": [{"name": first["name"], "aliases": []}],
        "user": "65534:65534",
        **HARDENING,
        "memory": "64m",
        # Half a core: at a quarter, the forwarding of a request loop starved the holder's own
        # healthcheck (three "exceeded timeout" in a row on a loaded host).
        "cpus": 0.5,
        "pids_limit": 64,
        "restart_policy": "unless-stopped",
        # Bash's /dev/tcp, not a Python start under the holder's CPU quota: every listening
        # port accepts a connection. A probe that times out is slow, not down (``wait_healthy``).
        "healthcheck": {
            "test": ["CMD", "bash", "-c", " && ".join(
                f"exec 3<>/dev/tcp/127.0.0.1/{port} && exec 3>&-" for port in container_ports)],
            "interval": 2, "timeout": 10, "retries": 5, "start_period": 30,
        },
        "stop_timeout": 5,
    }
