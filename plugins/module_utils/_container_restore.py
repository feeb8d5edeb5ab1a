# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A unit's kept states: listing them, restoring the previous one, removing them all."""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._container_health import (
    Engine,
    HealthError,
    container_state,
    wait_healthy,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import SpecError
from ansible_collections.aiops.mlstack.plugins.module_utils._container_update import Outcome, RolledBack
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import (
    holder_name,
    next_name,
    previous_name,
    side_name,
)


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
    planned: dict[str, Any] = {"changed": True, "action": "rollback", "rolled_back": False,
                               "restored": container_state(previous, "previous"),
                               "replaced": container_state(current, "current"), "health": None}
    if check_mode:
        return planned
    aside = side_name(name)
    if engine.inspect(aside) is not None:
        engine.remove(aside)
    if current is not None and not _binds_host_ports(previous):
        outcome = _restore_beside(engine, name, timeout)
    else:
        outcome = _restore_stopping_first(engine, name, timeout, current is not None, clock)
    result = {**planned, **outcome.entries()}
    if outcome.failed:
        raise RolledBack(result)
    return result


def _binds_host_ports(inspect: dict[str, Any]) -> bool:
    return any((inspect.get("HostConfig") or {}).get("PortBindings") or {})


def _restore_beside(engine: Engine, name: str, timeout: float) -> Outcome:
    """The kept container starts while the serving one still serves (it binds no host port, and
    kept its aliases): only once it is healthy does the serving one stop. No gap."""
    kept, aside = previous_name(name), side_name(name)
    engine.start(kept)
    try:
        health = wait_healthy(engine, kept, timeout)
    except HealthError as exc:
        engine.stop(kept)
        return Outcome(not_serving_s=0.0, failure={"message": str(exc), **exc.detail,
                                                   "kept": "the serving container served throughout"})
    engine.stop_and_rename(name, aside)
    engine.rename(kept, name)
    engine.rename(aside, kept)
    return Outcome(health=health, not_serving_s=0.0, switched="restored beside the serving container")


def _restore_stopping_first(engine: Engine, name: str, timeout: float, serving: bool, clock: Any) -> Outcome:
    """The kept container binds a host port (or nothing serves): the serving one stops first."""
    aside = side_name(name)
    started = clock()
    if serving:
        engine.stop_and_rename(name, aside)
    engine.rename(previous_name(name), name)
    engine.start(name)
    try:
        health = wait_healthy(engine, name, timeout)
    except HealthError as exc:
        engine.stop_and_rename(name, previous_name(name))
        if serving:
            engine.rename(aside, name)
            engine.start(name)
        return Outcome(not_serving_s=round(clock() - started, 3), failure={"message": str(exc), **exc.detail})
    if serving:
        engine.rename(aside, previous_name(name))
    return Outcome(health=health, not_serving_s=round(clock() - started, 3))


def remove_unit(engine: Engine, name: str, *, purge: bool = False, check_mode: bool = False) -> dict[str, Any]:
    """Remove the unit's and its port holder's containers (serving, previous, candidate);
    its named volumes only with ``purge``."""
    removed: list[str] = []
    volumes: set[str] = set()
    # The port holder is updated like a unit, so it may leave its own previous/candidate/side containers.
    for container in (n for unit in (name, holder_name(name))
                      for n in (unit, previous_name(unit), next_name(unit), side_name(unit))):
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
