# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The update strategies: how a serving container is replaced by one with a new spec.

``start-first`` proves the new spec in a candidate beside the serving container (no host
ports, no network aliases, so it takes no traffic) and touches the serving container only
once the candidate is healthy; ``stop-first`` (units whose data volume one process must
own) stops it first. Either way a failed recreate puts the last good container back, data
volumes untouched, and a successful one keeps it stopped as ``<name>_previous`` for an
on-demand rollback. Each step returns an ``Outcome``; the caller merges it into the result.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._container_health import (
    Engine,
    HealthError,
    container_state,
    health_now,
    slow_not_down,
    wait_healthy,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import next_name, previous_name, side_name


@dataclass(frozen=True)
class Outcome:
    """What one step did to a unit's containers, as result entries.

    A field left at None is not reported: the task's result carries only what a step did
    (``switched`` only after a promotion, ``failure`` only after a failure).
    """

    health: dict[str, Any] | None = None
    not_serving_s: float | None = None
    candidate: dict[str, Any] | None = None
    switched: str | None = None
    switch_s: float | None = None
    rolled_back: bool | None = None
    failure: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def entries(self) -> dict[str, Any]:
        """The result entries this step reports."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        return {key: value for key, value in values.items() if value is not None}


class RolledBack(RuntimeError):
    """A recreate failed and the last good container serves again; ``result`` says how."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["failure"]["message"])
        self.result = result


def last_good(engine: Engine, name: str, current: dict[str, Any] | None, settle: float,
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


def recreate(engine: Engine, name: str, kwargs: dict[str, Any], desired: dict[str, Any], *, timeout: float,
             update_order: str, served: dict[str, Any] | None) -> Outcome:
    """Replace the serving container by one created from ``kwargs`` in the unit's update order.

    ``served`` is the last good state: a failed candidate's record says whether it served on.
    """
    extra = desired["networks"][1:]
    if update_order != "start-first":
        return replace(engine, name, kwargs, extra, timeout)
    # Without a host port the proven candidate itself takes over: no gap. A host port can be
    # bound by one container only, so there the final container is created anew.
    promoting = not desired["ports"]
    proven = prove_candidate(engine, name, kwargs, extra, timeout, served, keep=promoting)
    if proven.failed:
        return proven
    if promoting:
        switched = promote(engine, name, kwargs, desired["networks"], served)
    else:
        switched = replace(engine, name, kwargs, extra, timeout)
    return dataclasses.replace(switched, candidate=proven.candidate)


def candidate_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The new spec as a candidate: same image, env, volumes and limits; no host ports and no
    network aliases, so that nothing routes to it; no restart policy, so a crash shows as exited."""
    out = {key: value for key, value in kwargs.items() if key not in ("ports", "networking_config")}
    out["name"] = next_name(kwargs["name"])
    out["restart_policy"] = None
    return out


def prove_candidate(engine: Engine, name: str, kwargs: dict[str, Any], extra: list[dict[str, Any]],
                    timeout: float, served: dict[str, Any] | None, keep: bool = False) -> Outcome:
    """Run the new spec beside the serving container; a candidate that fails never touches it.

    A healthy candidate is removed, or with ``keep`` left running for ``promote``.
    """
    candidate = next_name(name)
    if engine.inspect(candidate) is not None:
        engine.remove(candidate)
    proven = False
    try:
        engine.create(candidate_kwargs(kwargs), [{**net, "aliases": []} for net in extra])
        engine.start(candidate)
        outcome = Outcome(candidate=wait_healthy(engine, candidate, timeout))
        proven = True
    except Exception as exc:
        outcome = _candidate_failed(engine, name, served, exc)
    finally:
        if not (proven and keep) and engine.inspect(candidate) is not None:
            engine.remove(candidate)
    return outcome


def _candidate_failed(engine: Engine, name: str, served: dict[str, Any] | None, exc: Exception) -> Outcome:
    detail = getattr(exc, "detail", {"error": str(exc)})
    kept = ("the last good container served throughout" if served
            else "the existing container left as it was (it was not healthy either)")
    return Outcome(rolled_back=True, not_serving_s=0.0, health=health_now(engine, name),
                   failure={"message": f"candidate {next_name(name)}: {exc}", **detail, "kept": kept})


def promote(engine: Engine, name: str, kwargs: dict[str, Any], networks: list[dict[str, Any]],
            served: dict[str, Any] | None, clock: Any = time.monotonic) -> Outcome:
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
        return _candidate_failed(engine, name, served, exc)
    if engine.inspect(old) is not None:
        engine.remove(old)
    started = clock()
    engine.stop_and_rename(name, old)
    engine.rename(candidate, name)
    outcome = Outcome(health=health_now(engine, name), not_serving_s=0.0, switched="candidate promoted",
                      switch_s=round(clock() - started, 3))
    _keep_as_previous(engine, name, old)
    return outcome


def replace(engine: Engine, name: str, kwargs: dict[str, Any], extra: list[dict[str, Any]],
            timeout: float, clock: Any = time.monotonic) -> Outcome:
    """Stop the serving container, start the new one; put the old one back if the new one fails."""
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
        health = wait_healthy(engine, name, timeout)
    except Exception as exc:
        return _put_back(engine, name, old, exc, timeout, stopped_at, clock)
    not_serving_s = round(clock() - stopped_at, 3)
    _keep_as_previous(engine, name, old)
    return Outcome(health=health, not_serving_s=not_serving_s)


def _put_back(engine: Engine, name: str, old: str, exc: Exception, timeout: float, stopped_at: float,
              clock: Any) -> Outcome:
    """The new container failed: remove it and start the one it replaced again."""
    detail = getattr(exc, "detail", {"error": str(exc)})
    if engine.inspect(name) is not None:
        engine.remove(name)
    engine.rename(old, name)
    engine.start(name)
    failure = {"message": str(exc), **detail}
    health = None
    try:
        health = wait_healthy(engine, name, timeout)
    except HealthError as again:
        failure["rollback_error"] = str(again)
    return Outcome(health=health, rolled_back=True, failure=failure, not_serving_s=round(clock() - stopped_at, 3))


def _keep_as_previous(engine: Engine, name: str, old: str) -> None:
    """The replaced container becomes the restorable previous state (one is kept)."""
    if engine.inspect(previous_name(name)) is not None:
        engine.remove(previous_name(name))
    engine.rename(old, previous_name(name))
