# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health gates: how a container's health is read and waited for, and the ``Engine`` seam.

The Docker SDK is reached only through ``Engine`` (module_utils/_docker_api.py implements
it) so that unit tests can replace it with an in-memory Docker.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Protocol

from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import LABEL_HASH


class HealthError(RuntimeError):
    """The container did not become healthy; ``detail`` keeps what Docker said."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


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


HEALTH_GATE_LABEL = "io.mlstack.health-gate"


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
        # An image the collection knows nothing about may have no healthcheck at all: its unit
        # declares on the container itself that running is all it can prove (the label), and
        # the evidence says how weak that proof is. Any other container must have one.
        labels = (inspect.get("Config") or {}).get("Labels") or {}
        return ("healthy" if labels.get(HEALTH_GATE_LABEL) == "running" else "no-healthcheck"), log
    return str(health.get("Status", "starting")), log


def health_now(engine: Engine, name: str) -> dict[str, Any]:
    """The container's health as it is now, without waiting."""
    state, _log = health_state(engine.inspect(name) or {})
    return {"state": state, "waited_s": 0.0}


def container_state(inspect: dict[str, Any] | None, slot: str) -> dict[str, Any] | None:
    """What identifies a deployed state: image id, spec hash, creation time, health (no env values)."""
    if inspect is None:
        return None
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    health, _log = health_state(inspect)
    return {"slot": slot, "container": str(inspect.get("Name", "")).lstrip("/"),
            "image": (inspect.get("Config") or {}).get("Image"), "image_id": inspect.get("Image"),
            "spec_hash": labels.get(LABEL_HASH), "created": inspect.get("Created"), "state": health}


# How often a wait asks the engine. Docker's own health status changes only at a healthcheck's
# interval (2-5 s for the stack's units), while every ask is a full inspect decoded in the
# controller: with 19 units deploying at once on two cores, 0.1 s polling was ~190 inspects a
# second competing with the very containers being waited for. A unit's own health is asked
# more often than a dependency's (its answer is the deploy's critical path).
HEALTH_POLL = 0.25
DEPENDENCY_POLL = 0.5


def wait_healthy(engine: Engine, name: str, timeout: float, poll: float = HEALTH_POLL, transient_ok: bool = False,
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
            time.sleep(DEPENDENCY_POLL)
        try:
            waited[dep] = wait_healthy(engine, dep, timeout, poll=DEPENDENCY_POLL, transient_ok=True)
        except HealthError as exc:
            raise HealthError(f"dependency {dep}: {exc}", {**exc.detail, "dependency": dep}) from exc
    return waited


def _answers(address: str, port: int) -> str | None:
    """None when something accepts a connection at address:port, else why not."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def wait_remote_dependencies(remote: list[dict[str, Any]], timeout: float,
                             clock: Any = time.monotonic, sleep: Any = time.sleep) -> dict[str, Any]:
    """Block until each dependency on another Docker host accepts connections on its published address.

    Its health is its own host's to prove (its deploy waited for it); from here what matters is
    that this host reaches it. The error names the other host, so that a lost host is told apart
    from a failing unit.
    """
    waited: dict[str, Any] = {}
    for dep in remote:
        start = clock()
        while (why := _answers(dep["address"], int(dep["port"]))) is not None:
            elapsed = round(clock() - start, 3)
            if elapsed >= timeout:
                where = f"{dep['address']}:{dep['port']}"
                raise HealthError(
                    f"dependency {dep['unit']} on Docker host {dep['docker_host']} ({where}) did not answer "
                    f"within {timeout}s: {why}",
                    {"state": "unreachable", "dependency": dep["unit"], "docker_host": dep["docker_host"],
                     "address": where, "waited_s": elapsed})
            sleep(DEPENDENCY_POLL)
        waited[dep["unit"]] = {"state": "reachable", "docker_host": dep["docker_host"],
                               "waited_s": round(clock() - start, 3)}
    return waited
