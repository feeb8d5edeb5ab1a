# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile one unit's container: compare only what the unit declares, recreate on purpose.

The entry point of the container task (``run``) and its one argument (``Request``). The
jobs it composes live in topic files, re-exported here so that callers import one name:
the spec, its hash and the plan (``_container_spec``), health gates and the ``Engine``
seam to Docker (``_container_health``), the update strategies (``_container_update``),
restore and removal (``_container_restore``) and the evidence projection
(``_container_evidence``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._container_evidence import (
    addresses,
    evidence_observed,
    failure_observed,
    summary,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_health import (
    SETTLE_S,
    Engine,
    HealthError,
    container_state,
    health_state,
    slow_not_down,
    wait_dependencies,
    wait_healthy,
    wait_remote_dependencies,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_restore import (
    remove_unit,
    restore_previous,
    states,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import (
    LABEL_HASH,
    LABEL_MANAGED,
    LABEL_SPEC,
    LABEL_UNIT,
    SPEC_DEFAULTS,
    Plan,
    SpecError,
    create_kwargs,
    holder_spec,
    managed_labels,
    normalize_spec,
    plan,
    redacted_spec,
    spec_hash,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_update import (
    Outcome,
    RolledBack,
    candidate_kwargs,
    last_good,
    recreate,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import UPDATE_ORDERS, holder_name

__all__ = [
    "LABEL_HASH", "LABEL_MANAGED", "LABEL_SPEC", "LABEL_UNIT", "SETTLE_S", "SPEC_DEFAULTS", "UPDATE_ORDERS",
    "Engine", "HealthError", "Outcome", "Plan", "Request", "RolledBack", "SpecError",
    "addresses", "candidate_kwargs", "container_state", "create_kwargs", "evidence_observed", "failure_observed",
    "health_state", "holder_spec", "normalize_spec", "plan", "reconcile", "redacted_spec", "remove_unit",
    "restore_previous", "run", "slow_not_down", "spec_hash", "states", "wait_dependencies", "wait_healthy",
    "wait_remote_dependencies",
]


@dataclass(frozen=True)
class Request:
    """One container task, as its parameters asked for it (the module's argument spec).

    Built once per task (``from_params``) and handed down whole; the defaults are the
    argument spec's (a unit test holds the two together).
    """

    name: str
    unit: str
    spec: dict[str, Any] = field(default_factory=dict)
    state: str = "started"
    depends_on: list[str] = field(default_factory=list)
    # Units on other Docker hosts: {unit, docker_host, address, port}, awaited by connecting.
    remote_depends_on: list[dict[str, Any]] = field(default_factory=list)
    recreate: str = "if_changed"
    wait: bool = True
    timeout: float = 120.0
    dependency_timeout: float | None = None
    update_order: str = "stop-first"
    critical: bool = True
    purge: bool = False
    port_holder_image: str | None = None
    check_mode: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any], check_mode: bool) -> Request:
        """The request from validated module parameters; parameters that are not about the unit
        (the Docker host) are the engine's, not the request's."""
        names = {item.name for item in dataclasses.fields(cls)} - {"check_mode"}
        return cls(**{key: value for key, value in params.items() if key in names}, check_mode=check_mode)


def run(engine: Engine, request: Request) -> dict[str, Any]:
    """The module's whole job: dependencies' health, then the unit's own container.

    A critical unit's failure raises (after its rollback). A non-critical unit degrades
    instead: it keeps its last good container, or, with none, its failed container is
    stopped (kept for its logs), and the result says ``degraded`` so the run goes on.
    With ``port_holder_image`` a unit with host ports binds none itself: its port holder
    (``<name>_port``) binds them and forwards to it. Check mode returns the plan without
    waiting for the dependencies: a dry run must neither block nor fail on another unit.
    """
    if request.state == "absent":
        return _remove(engine, request)
    deps: dict[str, Any] = {}
    publishes = bool(request.port_holder_image and request.spec.get("ports"))
    holder = holder_spec(request.spec, str(request.port_holder_image)) if publishes else None
    try:
        if not request.check_mode:
            deps = wait_dependencies(engine, request.depends_on, request.timeout, request.dependency_timeout)
            remote_limit = request.dependency_timeout or request.timeout
            deps.update(wait_remote_dependencies(request.remote_depends_on, remote_limit))
        unit_request = request if holder is None else dataclasses.replace(request, spec={**request.spec, "ports": {}})
        result = reconcile(engine, unit_request)
        if holder is not None:
            # After the unit: on the first run with a holder the old container still binds the ports.
            result.update(_hold_ports(engine, request, holder))
    except RolledBack as exc:
        if request.critical:
            raise
        result = {**exc.result, "degraded": True}
    except HealthError as exc:
        if request.critical:
            raise
        result = _degrade(engine, request.name, exc)
    return {**result, "dependencies": deps, "addresses": addresses(engine.inspect(request.name))}


def _remove(engine: Engine, request: Request) -> dict[str, Any]:
    removed = remove_unit(engine, request.name, purge=request.purge, check_mode=request.check_mode)
    kept = "volumes removed (purge)" if request.purge else "volumes kept"
    return {**removed, "action": "remove" if removed["changed"] else "none",
            "reason": f"containers removed, {kept}" if removed["changed"] else "container absent",
            "changed_fields": [], "rolled_back": False, "dependencies": {},
            "diff": {"before": {"containers": removed["removed_containers"]}, "after": {"containers": []}}}


def reconcile(engine: Engine, request: Request) -> dict[str, Any]:
    """Bring the container to the spec and wait for its health; roll back a failed recreate.

    The serving container is the last good state and is recorded before anything changes;
    a recreate goes the unit's update order (``_container_update``). Returns: changed,
    action, reason, changed_fields, spec_hash, diff, rolled_back, health, last_good,
    update_order, and what the update did (not_serving_s, candidate, switched, failure).
    """
    name, timeout = request.name, request.timeout
    if request.update_order not in UPDATE_ORDERS:
        raise SpecError(f"update_order {request.update_order!r} is not one of {list(UPDATE_ORDERS)}")
    desired = normalize_spec(request.spec)
    image_id = engine.image_id(desired["image"])
    if image_id is None:
        raise SpecError(f"image {desired['image']!r} of unit {request.unit} is not present on the Docker host: "
                        "supply it first (role aiops.mlstack.images, mlstack_image_source)")
    digest = spec_hash(desired, image_id)
    current = engine.inspect(name)
    step = plan(current, desired, digest, request.recreate)
    served = None
    if step.action == "recreate":
        served = last_good(engine, name, current, min(timeout, SETTLE_S), request.check_mode)
    planned: dict[str, Any] = {
        "changed": step.action != "none",
        "action": step.action,
        "reason": step.reason,
        "changed_fields": step.changed_fields,
        "spec_hash": digest,
        "diff": {"before": step.before or {}, "after": step.after or {}},
        "rolled_back": False,
        "health": None,
        "last_good": served,
        "update_order": request.update_order,
    }
    if request.check_mode:
        return planned
    kwargs = create_kwargs(name, desired, managed_labels(desired, digest, request.unit))
    if step.action == "recreate":
        outcome = recreate(engine, name, kwargs, desired, timeout=timeout, update_order=request.update_order,
                           served=served)
        result = {**planned, **outcome.entries()}
        if outcome.failed:
            raise RolledBack(result)
        return result
    if step.action == "create":
        engine.create(kwargs, desired["networks"][1:])
        engine.start(name)
    elif step.action == "start":
        engine.start(name)
    health = wait_healthy(engine, name, timeout) if request.wait else None
    return {**planned, "health": health}


def _hold_ports(engine: Engine, request: Request, spec: dict[str, Any]) -> dict[str, Any]:
    """Bring the port holder to its spec; its failure never stops the unit, which serves on.

    Returns the entries the unit's result gains: ``port_holder``, and ``degraded`` and
    ``failure`` when a non-critical unit's holder failed.
    """
    holder = holder_name(request.name)
    # The holder follows its own rules: recreated only when its spec changed, stop-first.
    held = dataclasses.replace(request, name=holder, spec=spec, recreate="if_changed", update_order="stop-first")
    try:
        return {"port_holder": summary(reconcile(engine, held))}
    except (RolledBack, HealthError) as exc:
        detail = getattr(exc, "detail", None) or {"state": (getattr(exc, "result", {}).get("health") or {})}
        if request.critical:
            message = f"unit {request.unit} serves, but its port holder {holder} does not: {exc}"
            raise HealthError(message, detail) from exc
        return {"degraded": True, "port_holder": {"action": "failed", "reason": str(exc), "health": None,
                                                  "not_serving_s": None},
                "failure": {"message": f"port holder {holder}: {exc}",
                            "kept": "the unit serves on its networks; its host port is not bound"}}


def _degrade(engine: Engine, name: str, exc: HealthError) -> dict[str, Any]:
    """A non-critical unit with no last good state to return to: stop it, keep it for its logs.

    When it is a dependency that failed, nothing of the unit was touched: a container that
    serves keeps serving (it reconnects by itself when the dependency - another Docker host,
    say - is back), and one that does not exist is not started.
    """
    inspect = engine.inspect(name)
    dependency = exc.detail.get("dependency")
    running = inspect is not None and bool((inspect.get("State") or {}).get("Running"))
    stop = inspect is not None and not dependency
    if stop and running:
        engine.stop(name)
    if dependency:
        kept = "serving as it was: a dependency failed" if running else "not started: a dependency failed"
    else:
        kept = "stopped: no last good state"
    return {"changed": stop, "action": "stop" if stop else "none",
            "reason": f"degraded: {exc}", "changed_fields": [], "rolled_back": False, "degraded": True,
            "health": {"state": exc.detail.get("state"), "waited_s": exc.detail.get("waited_s")},
            "failure": {"message": str(exc), **exc.detail, "kept": kept},
            "diff": {"before": {}, "after": {}}}
