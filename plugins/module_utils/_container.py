# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile one unit's container: compare only what the unit declares, recreate on purpose.

The managed spec is hashed into a label (USER-ASKS 1 and 2): a re-run compares that
hash, never Docker's normalised view of the container, so defaults Docker fills in can
never cause a needless recreation, and removing a declared key recreates exactly once.
The pure functions here take plain dicts; the Docker SDK is reached only through the
``Engine`` seam so that unit tests can replace it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import (  # noqa: F401 - re-exported names
    HARDENING,
    UPDATE_ORDERS,
    holder_name,
    next_name,
    previous_name,
    side_name,
)

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
# Fields added after containers were deployed: left out of the normalised spec (so of its
# hash) while unset, so that adding an option recreates no container that does not use it.
LATE_FIELDS = ("shm_size",)


class SpecError(ValueError):
    """A spec the reconciler refuses: the message names the field and the fix."""


class HealthError(RuntimeError):
    """The container did not become healthy; ``detail`` keeps what Docker said."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


def normalize_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, refuse unknown keys, and put lists in a stable order."""
    unknown = sorted(set(spec) - set(SPEC_DEFAULTS))
    if unknown:
        raise SpecError(f"unknown container spec field(s) {unknown}; allowed: {sorted(SPEC_DEFAULTS)}")
    if not spec.get("image"):
        raise SpecError("container spec field 'image' is required: name the image to run")
    out = {key: spec.get(key, default) for key, default in SPEC_DEFAULTS.items()
           if key not in LATE_FIELDS or spec.get(key) is not None}
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
    """Hash of the normalised spec plus the image id: a new image build recreates too."""
    payload = json.dumps({"spec": spec, "image_id": image_id}, sort_keys=True, separators=(",", ":"))
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
        "shm_size": spec.get("shm_size"),
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


# What Docker writes in a health-log entry whose probe ran past the healthcheck's timeout (or
# whose exec the engine could not start in time): the unit was slow to answer, not down.
_SLOW_MARKS = ("exceeded timeout", "deadline exceeded")
# How long a serving container whose probes time out is given to answer again before an
# upgrade decides it is not the last good state (capped by the unit's own health timeout).
SETTLE_S = 60.0


def slow_not_down(inspect: dict[str, Any]) -> bool:
    """An unhealthy container whose last probe timed out is slow (a busy host), not down.

    A down unit fails its probe at once (connection refused, an error status, an exit);
    only a probe that ran out of time says the unit may still be serving.
    """
    log = ((inspect.get("State") or {}).get("Health") or {}).get("Log") or []
    last = str(log[-1].get("Output", "")).lower() if log else ""
    return any(mark in last for mark in _SLOW_MARKS)


def health_state(inspect: dict[str, Any]) -> tuple[str, list[str]]:
    """Classify a container: healthy | starting | unhealthy | no-healthcheck | exited | restarting.

    Returns the state and the last health-log lines, kept for the evidence.
    """
    state = inspect.get("State") or {}
    health = state.get("Health")
    log = [str(entry.get("Output", "")).strip()[-300:] for entry in (health or {}).get("Log", [])[-3:]]
    if state.get("Restarting"):
        return "restarting", log
    if not state.get("Running"):
        return "exited", log
    if not health:
        return "no-healthcheck", log
    return str(health.get("Status", "starting")), log


class Engine(Protocol):
    """The seam to Docker: what reconciliation needs, nothing more."""

    def inspect(self, name: str) -> dict[str, Any] | None: ...
    def image_id(self, image: str) -> str | None: ...
    def create(self, kwargs: dict[str, Any], extra_networks: list[dict[str, Any]]) -> None: ...
    def start(self, name: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def stop_and_rename(self, name: str, new_name: str) -> None: ...
    def rename(self, name: str, new_name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def take_aliases(self, name: str, networks: list[dict[str, Any]]) -> None: ...
    def set_restart_policy(self, name: str, policy: dict[str, Any] | None) -> None: ...
    def remove_volume(self, name: str) -> bool: ...
    def logs_tail(self, name: str, lines: int) -> str: ...


def wait_healthy(engine: Engine, name: str, timeout: float, poll: float = 0.1, transient_ok: bool = False,
                 clock: Any = time.monotonic, sleep: Any = time.sleep) -> dict[str, Any]:
    """Wait until the container is healthy; fail fast on unhealthy, exited or restarting.

    A container without a healthcheck is not healthy (USER-ASKS 4): it fails at once.
    ``transient_ok`` is for another unit's container, which its own deploy may be
    recreating right now: then only the time limit ends the wait. An unhealthy container
    whose last probe timed out is slow, not down (``slow_not_down``): a busy host must not
    fail a serving unit, so it is waited for within ``timeout`` too, and the result says so.
    """
    start = clock()
    slow = False
    while True:
        inspect = engine.inspect(name)
        elapsed = round(clock() - start, 3)
        if inspect is None:
            if not transient_ok or elapsed >= timeout:
                raise HealthError(f"container {name} disappeared while waiting for its health", {"state": "absent"})
            sleep(poll)
            continue
        state, log = health_state(inspect)
        if state == "healthy":
            return {"state": state, "waited_s": elapsed, **({"slow": True} if slow else {})}
        if state == "unhealthy" and slow_not_down(inspect):
            slow = True
        elif state == "no-healthcheck" or (state in ("unhealthy", "exited", "restarting") and not transient_ok):
            detail = {"state": state, "waited_s": elapsed, "health_log": log,
                      "exit_code": (inspect.get("State") or {}).get("ExitCode"),
                      "logs_tail": engine.logs_tail(name, 20)}
            raise HealthError(f"container {name} is {state} after {elapsed}s", detail)
        if elapsed >= timeout:
            slowly = " (its probes time out: slow, or hung)" if slow else ""
            raise HealthError(f"container {name} still {state} after the {timeout}s limit{slowly}",
                              {"state": state, "waited_s": elapsed, "health_log": log,
                               "logs_tail": engine.logs_tail(name, 20)})
        sleep(poll)


def holder_spec(spec: dict[str, Any], image: str) -> dict[str, Any]:
    """The port holder's spec: the unit's host port bindings, forwarded to the unit by its alias.

    The unit itself then binds no host port, so its proven candidate can take over with no
    gap (``_promote``); the holder changes only with its own image or the unit's ports.
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


def container_state(inspect: dict[str, Any] | None, slot: str) -> dict[str, Any] | None:
    """What identifies a deployed state: image id, spec hash, creation time, health (no env values)."""
    if inspect is None:
        return None
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    health, _log = health_state(inspect)
    return {"slot": slot, "container": str(inspect.get("Name", "")).lstrip("/"),
            "image": (inspect.get("Config") or {}).get("Image"), "image_id": inspect.get("Image"),
            "spec_hash": labels.get(LABEL_HASH), "created": inspect.get("Created"), "state": health}


def reconcile(engine: Engine, name: str, spec: dict[str, Any], *, unit: str, recreate: str = "if_changed",
              wait: bool = True, timeout: float = 120.0, check_mode: bool = False,
              update_order: str = "stop-first") -> dict[str, Any]:
    """Bring the container to the spec and wait for its health; roll back a failed recreate.

    The serving container is the last good state and is recorded before anything changes.
    ``start-first`` proves the new spec in a candidate beside it (no host ports, no network
    aliases, so it takes no traffic) and touches the serving container only once the
    candidate is healthy; ``stop-first`` (units whose data volume one process must own)
    stops it first. Either way a failed recreate puts the last good container back, data
    volumes untouched, and a successful one keeps it stopped as ``<name>_previous`` for an
    on-demand rollback. Returns: changed, action, reason, diff, health, rolled_back,
    last_good, not_serving_s.
    """
    if update_order not in UPDATE_ORDERS:
        raise SpecError(f"update_order {update_order!r} is not one of {list(UPDATE_ORDERS)}")
    desired = normalize_spec(spec)
    image_id = engine.image_id(desired["image"])
    if image_id is None:
        raise SpecError(f"image {desired['image']!r} of unit {unit} is not present on the Docker host: "
                        "supply it first (role aiops.mlstack.images, mlstack_image_source)")
    digest = spec_hash(desired, image_id)
    current = engine.inspect(name)
    step = plan(current, desired, digest, recreate)
    result: dict[str, Any] = {
        "changed": step.action != "none",
        "action": step.action,
        "reason": step.reason,
        "changed_fields": step.changed_fields,
        "spec_hash": digest,
        "diff": {"before": step.before or {}, "after": step.after or {}},
        "rolled_back": False,
        "health": None,
        "last_good": _last_good(engine, name, current, min(timeout, SETTLE_S), check_mode)
        if step.action == "recreate" else None,
        "update_order": update_order,
    }
    if check_mode:
        return result
    labels = {LABEL_HASH: digest, LABEL_SPEC: json.dumps(redacted_spec(desired), sort_keys=True),
              LABEL_UNIT: unit, LABEL_MANAGED: "true"}
    kwargs = create_kwargs(name, desired, labels)
    extra = desired["networks"][1:]
    if step.action == "create":
        engine.create(kwargs, extra)
        engine.start(name)
    elif step.action == "start":
        engine.start(name)
    elif step.action == "recreate":
        if update_order == "start-first":
            # Without a host port the proven candidate itself takes over: no gap. A host port
            # can be bound by one container only, so there the final container is created anew.
            promote = not desired["ports"]
            _prove_candidate(engine, name, kwargs, extra, timeout, result, keep=promote)
            if promote:
                _promote(engine, name, kwargs, desired["networks"], result)
                return result
        _replace(engine, name, kwargs, extra, timeout, result)
        return result
    if wait:
        result["health"] = wait_healthy(engine, name, timeout)
    return result


def _last_good(engine: Engine, name: str, current: dict[str, Any] | None, settle: float,
               check_mode: bool) -> dict[str, Any] | None:
    """The serving container is the last good state only when it is healthy.

    One whose probes time out (a busy host) is waited for, at most ``settle`` seconds, before
    it is judged: on a loaded machine a serving v1 read as unhealthy at the moment of the plan
    lost its rollback record although it served throughout. Check mode reads, never waits.
    """
    state = container_state(current, "current")
    if state is None or state["state"] == "healthy":
        return state
    if state["state"] != "unhealthy" or check_mode or not slow_not_down(current or {}):
        return None
    try:
        waited = wait_healthy(engine, name, settle)
    except HealthError:
        return None
    settled = container_state(engine.inspect(name), "current")
    return {**settled, "settled_s": waited["waited_s"]} if settled is not None else None


def candidate_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The new spec as a candidate: same image, env, volumes and limits; no host ports and no
    network aliases, so that nothing routes to it; no restart policy, so a crash shows as exited."""
    out = {key: value for key, value in kwargs.items() if key not in ("ports", "networking_config")}
    out["name"] = next_name(kwargs["name"])
    out["restart_policy"] = None
    return out


def _prove_candidate(engine: Engine, name: str, kwargs: dict[str, Any], extra: list[dict[str, Any]],
                     timeout: float, result: dict[str, Any], keep: bool = False) -> None:
    """Run the new spec beside the serving container; a candidate that fails never touches it.

    A healthy candidate is removed, or with ``keep`` left running for ``_promote``.
    """
    candidate = next_name(name)
    if engine.inspect(candidate) is not None:
        engine.remove(candidate)
    proven = False
    try:
        engine.create(candidate_kwargs(kwargs), [{**net, "aliases": []} for net in extra])
        engine.start(candidate)
        result["candidate"] = wait_healthy(engine, candidate, timeout)
        proven = True
    except Exception as exc:
        _candidate_failed(engine, name, result, exc)
    finally:
        if not (proven and keep) and engine.inspect(candidate) is not None:
            engine.remove(candidate)


def _candidate_failed(engine: Engine, name: str, result: dict[str, Any], exc: Exception) -> None:
    detail = getattr(exc, "detail", {"error": str(exc)})
    result.update(rolled_back=True, not_serving_s=0.0, health=_health_now(engine, name),
                  failure={"message": f"candidate {next_name(name)}: {exc}", **detail,
                           "kept": "the last good container served throughout" if result["last_good"]
                           else "the existing container left as it was (it was not healthy either)"})
    raise RolledBack(result) from exc


def _promote(engine: Engine, name: str, kwargs: dict[str, Any], networks: list[dict[str, Any]],
             result: dict[str, Any], clock: Any = time.monotonic) -> None:
    """The healthy candidate takes the serving container's aliases and name; the old one stops.

    Both answer under the aliases for a moment, then only the candidate: a client that meets
    the stopping container is refused and connects to the other address. Nothing stops
    before the candidate answers, so the unit is never without a serving container.
    """
    candidate, old = next_name(name), side_name(name)
    try:
        engine.take_aliases(candidate, [net for net in networks if net["aliases"]])
        engine.set_restart_policy(candidate, kwargs.get("restart_policy"))
    except Exception as exc:
        engine.remove(candidate)
        _candidate_failed(engine, name, result, exc)
    if engine.inspect(old) is not None:
        engine.remove(old)
    started = clock()
    engine.stop_and_rename(name, old)
    engine.rename(candidate, name)
    result.update(health=_health_now(engine, name), not_serving_s=0.0, switched="candidate promoted",
                  switch_s=round(clock() - started, 3))
    if engine.inspect(previous_name(name)) is not None:
        engine.remove(previous_name(name))
    engine.rename(old, previous_name(name))


def _health_now(engine: Engine, name: str) -> dict[str, Any]:
    state, _log = health_state(engine.inspect(name) or {})
    return {"state": state, "waited_s": 0.0}


def _replace(engine: Engine, name: str, kwargs: dict[str, Any], extra: list[dict[str, Any]],
             timeout: float, result: dict[str, Any], clock: Any = time.monotonic) -> None:
    # The serving container waits under a side name, so that the previous state kept by an
    # earlier upgrade is only replaced once this one has succeeded.
    old = side_name(name)
    if engine.inspect(old) is not None:
        engine.remove(old)
    stopped_at = clock()
    engine.stop_and_rename(name, old)
    try:
        engine.create(kwargs, extra)
        engine.start(name)
        result["health"] = wait_healthy(engine, name, timeout)
    except Exception as exc:
        detail = getattr(exc, "detail", {"error": str(exc)})
        if engine.inspect(name) is not None:
            engine.remove(name)
        engine.rename(old, name)
        engine.start(name)
        result["rolled_back"] = True
        result["failure"] = {"message": str(exc), **detail}
        try:
            result["health"] = wait_healthy(engine, name, timeout)
        except HealthError as again:
            result["failure"]["rollback_error"] = str(again)
        result["not_serving_s"] = round(clock() - stopped_at, 3)
        raise RolledBack(result) from exc
    result["not_serving_s"] = round(clock() - stopped_at, 3)
    if engine.inspect(previous_name(name)) is not None:
        engine.remove(previous_name(name))
    engine.rename(old, previous_name(name))


class RolledBack(RuntimeError):
    """A recreate failed and the last good container serves again; ``result`` says how."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["failure"]["message"])
        self.result = result


def states(engine: Engine, name: str) -> list[dict[str, Any]]:
    """The states of a unit that exist on its Docker host: the current one and the restorable one."""
    found = [container_state(engine.inspect(name), "current"),
             container_state(engine.inspect(previous_name(name)), "previous")]
    return [entry for entry in found if entry is not None]


def restore_previous(engine: Engine, name: str, *, unit: str, timeout: float = 120.0,
                     check_mode: bool = False, clock: Any = time.monotonic) -> dict[str, Any]:
    """Put the kept previous container back; the replaced one becomes the previous (roll forward again).

    If the restored container does not become healthy, the one it replaced is put back.
    """
    current, previous = engine.inspect(name), engine.inspect(previous_name(name))
    if previous is None:
        raise SpecError(f"unit {unit} has no previous state to restore ({previous_name(name)} does not exist): "
                        "a unit keeps one after its first successful recreate")
    result: dict[str, Any] = {"changed": True, "action": "rollback", "rolled_back": False,
                              "restored": container_state(previous, "previous"),
                              "replaced": container_state(current, "current"), "health": None}
    if check_mode:
        return result
    aside = side_name(name)
    if engine.inspect(aside) is not None:
        engine.remove(aside)
    if current is not None and not _binds_host_ports(previous):
        _restore_beside(engine, name, timeout, result)
        return result
    started = clock()
    if current is not None:
        engine.stop_and_rename(name, aside)
    engine.rename(previous_name(name), name)
    engine.start(name)
    try:
        result["health"] = wait_healthy(engine, name, timeout)
    except HealthError as exc:
        engine.stop_and_rename(name, previous_name(name))
        if current is not None:
            engine.rename(aside, name)
            engine.start(name)
        result["not_serving_s"] = round(clock() - started, 3)
        result["failure"] = {"message": str(exc), **exc.detail}
        raise RolledBack(result) from exc
    if current is not None:
        engine.rename(aside, previous_name(name))
    result["not_serving_s"] = round(clock() - started, 3)
    return result


def _binds_host_ports(inspect: dict[str, Any]) -> bool:
    return any((inspect.get("HostConfig") or {}).get("PortBindings") or {})


def _restore_beside(engine: Engine, name: str, timeout: float, result: dict[str, Any]) -> None:
    """The kept container starts while the serving one still serves (it binds no host port, and
    kept its aliases): only once it is healthy does the serving one stop. No gap."""
    kept, aside = previous_name(name), side_name(name)
    engine.start(kept)
    try:
        result["health"] = wait_healthy(engine, kept, timeout)
    except HealthError as exc:
        engine.stop(kept)
        result.update(not_serving_s=0.0, failure={"message": str(exc), **exc.detail,
                                                  "kept": "the serving container served throughout"})
        raise RolledBack(result) from exc
    engine.stop_and_rename(name, aside)
    engine.rename(kept, name)
    engine.rename(aside, kept)
    result.update(not_serving_s=0.0, switched="restored beside the serving container")


def remove_unit(engine: Engine, name: str, *, purge: bool = False, check_mode: bool = False) -> dict[str, Any]:
    """Remove the unit's containers (serving, previous, candidate); its named volumes only with ``purge``."""
    removed: list[str] = []
    volumes: set[str] = set()
    for container in (name, previous_name(name), next_name(name), side_name(name), holder_name(name)):
        inspect = engine.inspect(container)
        if inspect is None:
            continue
        volumes.update(m["Name"] for m in inspect.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name"))
        removed.append(container)
        if not check_mode:
            engine.remove(container)
    removed_volumes = sorted(volumes) if purge else []
    if purge and not check_mode:
        removed_volumes = [volume for volume in sorted(volumes) if engine.remove_volume(volume)]
    return {"changed": bool(removed or removed_volumes), "removed_containers": removed,
            "removed_volumes": removed_volumes, "kept_volumes": [] if purge else sorted(volumes)}


def wait_dependencies(engine: Engine, depends_on: list[str], timeout: float,
                      create_timeout: float | None = None) -> dict[str, Any]:
    """Block until every dependency container is healthy: the streams' only sync points.

    A dependency may not exist yet: under strategy free its unit may still be building its
    image (the llm's took 12 min on a fresh machine, past the 300 s health timeout that
    bounded this wait), so its creation is waited for up to ``create_timeout``, and its
    health, once it exists, up to ``timeout``.
    """
    waited: dict[str, Any] = {}
    create_limit = max(create_timeout or 0.0, timeout)
    for dep in depends_on:
        deadline = time.monotonic() + create_limit
        while engine.inspect(dep) is None:
            if time.monotonic() >= deadline:
                raise HealthError(f"dependency {dep} was not created within {create_limit}s", {
                    "state": "absent", "dependency": dep})
            time.sleep(0.5)
        try:
            waited[dep] = wait_healthy(engine, dep, timeout, transient_ok=True)
        except HealthError as exc:
            raise HealthError(f"dependency {dep}: {exc}", {**exc.detail, "dependency": dep}) from exc
    return waited


def run(engine: Engine, name: str, spec: dict[str, Any], *, unit: str, state: str = "started",
        depends_on: list[str] | None = None, recreate: str = "if_changed", wait: bool = True,
        timeout: float = 120.0, check_mode: bool = False, update_order: str = "stop-first",
        critical: bool = True, purge: bool = False, port_holder_image: str | None = None,
        dependency_timeout: float | None = None) -> dict[str, Any]:
    """The module's whole job: dependencies' health, then the unit's own container.

    A critical unit's failure raises (after its rollback). A non-critical unit degrades
    instead: it keeps its last good container, or, with none, its failed container is
    stopped (kept for its logs), and the result says ``degraded`` so the run goes on.
    With ``port_holder_image`` a unit with host ports binds none itself: its port holder
    (``<name>_port``) binds them and forwards to it.
    """
    if state == "absent":
        removed = remove_unit(engine, name, purge=purge, check_mode=check_mode)
        kept = "volumes removed (purge)" if purge else "volumes kept"
        return {**removed, "action": "remove" if removed["changed"] else "none",
                "reason": f"containers removed, {kept}" if removed["changed"] else "container absent",
                "changed_fields": [], "rolled_back": False, "dependencies": {},
                "diff": {"before": {"containers": removed["removed_containers"]}, "after": {"containers": []}}}
    deps: dict[str, Any] = {}
    holder = holder_spec(spec, port_holder_image) if port_holder_image and spec.get("ports") else None
    try:
        deps = wait_dependencies(engine, depends_on or [], timeout, dependency_timeout)
        result = reconcile(engine, name, spec if holder is None else {**spec, "ports": {}}, unit=unit,
                           recreate=recreate, wait=wait, timeout=timeout, check_mode=check_mode,
                           update_order=update_order)
        if holder is not None:
            # After the unit: on the first run with a holder the old container still binds the ports.
            result["port_holder"] = _hold_ports(engine, name, holder, unit=unit, wait=wait, timeout=timeout,
                                                check_mode=check_mode, critical=critical, result=result)
    except RolledBack as exc:
        if critical:
            raise
        result = {**exc.result, "degraded": True}
    except HealthError as exc:
        if critical:
            raise
        result = _degrade(engine, name, exc)
    result["dependencies"] = deps
    result["addresses"] = addresses(engine.inspect(name))
    return result


def _hold_ports(engine: Engine, name: str, spec: dict[str, Any], *, unit: str, wait: bool, timeout: float,
                check_mode: bool, critical: bool, result: dict[str, Any]) -> dict[str, Any]:
    """Bring the port holder to its spec; its failure never stops the unit, which serves on."""
    holder = holder_name(name)
    try:
        return _summary(reconcile(engine, holder, spec, unit=unit, wait=wait, timeout=timeout,
                                  check_mode=check_mode, update_order="stop-first"))
    except (RolledBack, HealthError) as exc:
        detail = getattr(exc, "detail", None) or {"state": (getattr(exc, "result", {}).get("health") or {})}
        if critical:
            raise HealthError(f"unit {unit} serves, but its port holder {holder} does not: {exc}", detail) from exc
        result.update(degraded=True, failure={"message": f"port holder {holder}: {exc}",
                                              "kept": "the unit serves on its networks; its host port is not bound"})
        return {"action": "failed", "reason": str(exc), "health": None, "not_serving_s": None}


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {"action": result["action"], "reason": result["reason"],
            "health": (result.get("health") or {}).get("state"), "not_serving_s": result.get("not_serving_s")}


def _degrade(engine: Engine, name: str, exc: HealthError) -> dict[str, Any]:
    """A non-critical unit with no last good state to return to: stop it, keep it for its logs."""
    inspect = engine.inspect(name)
    if inspect is not None and (inspect.get("State") or {}).get("Running"):
        engine.stop(name)
    dependency = exc.detail.get("dependency")
    return {"changed": inspect is not None, "action": "stop" if inspect is not None else "none",
            "reason": f"degraded: {exc}", "changed_fields": [], "rolled_back": False, "degraded": True,
            "health": {"state": exc.detail.get("state"), "waited_s": exc.detail.get("waited_s")},
            "failure": {"message": str(exc), **exc.detail,
                        "kept": "not started: a dependency failed" if dependency else "stopped: no last good state"},
            "diff": {"before": {}, "after": {}}}


def addresses(inspect: dict[str, Any] | None) -> dict[str, str]:
    """The container's IP address on each network: checks reach internal networks through them."""
    networks = ((inspect or {}).get("NetworkSettings") or {}).get("Networks") or {}
    return {name: conf.get("IPAddress", "") for name, conf in networks.items() if conf.get("IPAddress")}


def evidence_observed(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a reconciliation result that belongs in the evidence record."""
    observed = {key: result.get(key) for key in ("action", "reason", "changed_fields", "rolled_back",
                                                 "update_order", "not_serving_s", "switched", "switch_s",
                                                 "last_good", "port_holder")}
    observed["degraded"] = bool(result.get("degraded"))
    health = result.get("health") or {}
    observed["health"] = health.get("state")
    observed["health_wait_s"] = health.get("waited_s")
    observed["dependencies"] = sorted(result.get("dependencies") or {})
    if result.get("failure"):
        observed["failure"] = failure_observed(result["failure"])
    return observed


def failure_observed(detail: dict[str, Any]) -> dict[str, Any]:
    """What Docker said about a failed health gate, without the (possibly long) log tail."""
    return {key: detail.get(key) for key in ("state", "waited_s", "health_log", "exit_code", "dependency",
                                             "message", "rollback_error", "kept") if key in detail}
