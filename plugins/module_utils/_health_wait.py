# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for a unit to answer, measuring its latency, and the result of a health check.

Pure: :func:`wait_until_healthy` and :func:`measure` take the probe (any kind that returns an
:class:`Attempt`), the sleep and the clock as arguments, so unit tests run them without a
network and without waiting; :func:`report` turns them into the module's result and one
evidence record.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record, scrub
from ansible_collections.aiops.mlstack.plugins.module_utils._health import Attempt


@dataclass
class WaitResult:
    """What :func:`wait_until_healthy` saw: the outcome, the attempts and the sleeps taken."""

    ok: bool
    attempts: int
    waited_s: float
    reason: str
    last: Attempt | None = None
    delays: list[float] = field(default_factory=list)


@dataclass
class Measurement:
    """Latency probes taken after the first success: how many, how many ok, their latencies."""

    total: int
    ok: int
    latencies_ms: list[float] = field(default_factory=list)
    last_failure: str = ""
    # Probes that timed out: slow, not down. Their latency is at least the timeout.
    slow: int = 0
    last_slow: str = ""


# --- waiting and measuring -------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile by the nearest-rank method; None for no values.

    Nearest rank: sort the values and take the one at rank ``ceil(p / 100 * n)`` (at
    least 1). The result is always one of the measured values, never an interpolation;
    with 5 values p50 is the 3rd and p95 the 5th (the maximum).
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: list[float]) -> dict[str, float | None]:
    """``min``, ``p50``, ``p95`` and ``max`` of latencies in ms (all None for no values)."""
    return {
        "min": min(values) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def backoff_delay(attempt: int, delay: float, backoff: float, max_delay: float) -> float:
    """Seconds to sleep after failed attempt number ``attempt`` (1-based), capped at ``max_delay``."""
    try:
        pause = delay * backoff ** (attempt - 1)
    except OverflowError:
        pause = max_delay
    return min(pause, max_delay)


def validate_wait(
    retries: int, delay: float, backoff: float, max_delay: float, timeout: float, probes: int
) -> list[str]:
    """Problems with the wait parameters, as messages naming the option."""
    problems = []
    if retries < 0:
        problems.append(f"retries must be 0 or more, got {retries}")
    if delay < 0:
        problems.append(f"delay must be 0 or more seconds, got {delay}")
    if backoff < 1:
        problems.append(f"backoff must be 1 or more (1 keeps the delay constant), got {backoff}")
    if max_delay < 0:
        problems.append(f"max_delay must be 0 or more seconds, got {max_delay}")
    if timeout <= 0:
        problems.append(f"timeout must be more than 0 seconds, got {timeout}")
    if probes < 0:
        problems.append(f"probes must be 0 or more, got {probes}")
    return problems


def wait_until_healthy(
    probe_fn: Any,
    retries: int = 60,
    delay: float = 0.5,
    backoff: float = 1.5,
    max_delay: float = 5.0,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
    deadline: float | None = None,
) -> WaitResult:
    """Call ``probe_fn()`` (returning an :class:`Attempt`) until it is ok.

    The first attempt is immediate; after failed attempt ``n`` it sleeps
    ``min(delay * backoff ** (n - 1), max_delay)`` and tries again, at most ``retries``
    times (``retries + 1`` attempts in all, as Ansible's ``until``/``retries`` counts).
    ``deadline`` (seconds since the start, by ``clock``) bounds the whole wait: a sleep is
    cut short to end at the deadline, and no attempt starts after it. A fatal attempt
    (see :class:`ProbeError`) ends the wait at once. A failed wait's reason is the last
    attempt's reason and how the wait ended.
    """
    start = clock()
    delays: list[float] = []
    attempts = 0
    while True:
        attempts += 1
        result = probe_fn()
        elapsed = round(clock() - start, 3)
        if result.ok:
            return WaitResult(True, attempts, elapsed, result.reason, result, delays)
        if result.fatal:
            reason = f"{result.reason} (not retried: waiting cannot fix this)"
            return WaitResult(False, attempts, elapsed, reason, result, delays)
        if attempts > retries:
            reason = f"{result.reason} (gave up after {attempts} attempt(s) in {elapsed:.1f} s)"
            return WaitResult(False, attempts, elapsed, reason, result, delays)
        pause = backoff_delay(attempts, delay, backoff, max_delay)
        if deadline is not None:
            remaining = deadline - (clock() - start)
            if remaining <= 0:
                reason = (
                    f"{result.reason} (gave up at the {deadline:g} s deadline after "
                    f"{attempts} attempt(s) in {elapsed:.1f} s)"
                )
                return WaitResult(False, attempts, elapsed, reason, result, delays)
            pause = min(pause, remaining)
        delays.append(pause)
        sleep(pause)


def measure(probe_fn: Any, count: int, timeout: float | None = None) -> Measurement:
    """Take ``count`` probes back to back; keep the latencies of the ok ones and the last failure.

    A probe that timed out is counted as slow, not failed, and its latency as ``timeout``
    (a lower bound), so that the percentiles show the slowness instead of hiding it.
    """
    result = Measurement(total=count, ok=0)
    for _probe in range(count):
        attempt = probe_fn()
        if attempt.ok:
            result.ok += 1
            if attempt.latency_ms is not None:
                result.latencies_ms.append(attempt.latency_ms)
        elif attempt.slow:
            result.slow += 1
            result.last_slow = attempt.reason
            if timeout is not None:
                result.latencies_ms.append(round(timeout * 1000.0, 3))
        else:
            result.last_failure = attempt.reason
    return result


# --- the result (pure) -----------------------------------------------------------------


def report(
    unit: str,
    check: str,
    target: str,
    wait: WaitResult,
    measurement: Measurement | None,
    secrets: list[str | None] | tuple[str | None, ...] = (),
    latency_bound_ms: float | None = None,
) -> dict[str, Any]:
    """The module's result: verdict, reason, latency summary and one evidence record.

    Healthy means the wait succeeded and no latency probe after it failed: a service that
    answers once and then fails is not healthy. Slow is not down: a latency probe that timed
    out is evidence (counted, and its timeout taken as its latency), not a failure, unless
    the p95 latency passes ``latency_bound_ms``, the unit's declared bound. With no latency
    probes the latency of the successful attempt is the only sample. ``target`` must already
    be redacted; every string in ``secrets`` is masked in the reason.
    """
    measurement = measurement or Measurement(total=0, ok=0)
    if measurement.total:
        samples = list(measurement.latencies_ms)
    elif wait.ok and wait.last is not None and wait.last.latency_ms is not None:
        samples = [wait.last.latency_ms]
    else:
        samples = []
    latency = latency_summary(samples)
    flaky = measurement.total - measurement.ok - measurement.slow
    over_bound = latency_bound_ms is not None and latency["p95"] is not None and latency["p95"] > latency_bound_ms
    ok = wait.ok and flaky == 0 and not over_bound
    if not wait.ok:
        reason = wait.reason
    elif flaky:
        reason = (
            f"{wait.reason} after {wait.attempts} attempt(s), but {flaky} of {measurement.total} "
            f"latency probes failed, the last: {measurement.last_failure}"
        )
    elif over_bound:
        reason = (
            f"{wait.reason} after {wait.attempts} attempt(s), but too slow: p95 latency {latency['p95']:g} ms "
            f"is over the declared bound of {latency_bound_ms:g} ms"
        )
    else:
        reason = f"{wait.reason} after {wait.attempts} attempt(s) in {wait.waited_s:.1f} s"
        if measurement.slow:
            reason += (f"; slow, not down: {measurement.slow} of {measurement.total} latency probes "
                       f"timed out ({measurement.last_slow})")
    reason = scrub(reason, list(secrets))
    status = wait.last.status if wait.last is not None else None
    observed = {
        "url": target,
        "status": status,
        "attempts": wait.attempts,
        "waited_s": wait.waited_s,
        "latency_p50_ms": latency["p50"],
        "latency_p95_ms": latency["p95"],
        "probes_ok": measurement.ok,
        "probes_slow": measurement.slow,
        "probes_total": measurement.total,
        "latency_bound_ms": latency_bound_ms,
    }
    return {
        "ok": ok,
        "status": status,
        "attempts": wait.attempts,
        "waited_s": wait.waited_s,
        "latency_ms": latency,
        "reason": reason,
        "evidence": [record(unit, check, ok, observed, reason)],
        "msg": f"{unit}: {check} {'ok' if ok else 'failed'}: {reason}",
    }
