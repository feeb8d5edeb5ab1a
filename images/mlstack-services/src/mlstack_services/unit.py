"""What a unit gives the common app: its /v1 router, readiness checks, body limits and lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter

CheckResult = tuple[bool, str]
Check = Callable[[], Awaitable[CheckResult]]
Hook = Callable[[], Awaitable[None]]


@dataclass
class Unit:
    name: str
    router: APIRouter
    checks: dict[str, Check] = field(default_factory=dict)
    # Units this one uses when they are there (the catalog's mlstack_optional): reported in
    # /ready, never a reason to be unready, so a degraded helper never takes this unit down.
    optional_checks: dict[str, Check] = field(default_factory=dict)
    body_limits: dict[str, int] = field(default_factory=dict)
    # The expensive POST paths and the gate each passes (admission.py): path -> gate name.
    # Paths that share a gate share its slots (the same CPU or the same upstream).
    admission: dict[str, str] = field(default_factory=dict)
    # Which server or embedded engine serves each store (the memory unit): shown in /ready.
    backends: dict[str, str] = field(default_factory=dict)
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)


async def run_checks(checks: dict[str, Check], timeout_s: float = 3.0) -> dict[str, dict[str, object]]:
    """Every check at once, each bounded by ``timeout_s``; a raising check is a failed one."""

    async def one(check: Check) -> CheckResult:
        try:
            return await asyncio.wait_for(check(), timeout_s)
        except TimeoutError:
            return False, f"no answer within {timeout_s:g} s"
        except Exception as exc:  # any failure is a reason, never a crash
            return False, f"{type(exc).__name__}: {exc}"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return {name: {"ok": ok, "reason": reason} for name, (ok, reason) in zip(checks, results, strict=True)}
