"""Admission control: what a unit does past saturation.

A unit's expensive operations (speech synthesis and recognition, chat completions and their
streams, the gateway's voice-chat pipeline, embeddings) pass a gate. At most ``concurrency``
of them run at a time; up to ``queue`` more wait, each at most ``wait_s`` (shorter than any
client's timeout); anything past that is refused at once with 429, a ``Retry-After`` header
and the usual error body. Without a gate an overloaded unit takes every request, runs them
all slower and slower, and its callers time out after having paid for nothing; with it the
work in progress keeps its speed and the rest learn at once when to come back.

429 and not 503: the unit is up and ready, it is this request that comes at a busy moment.
503 stays the answer of a unit that cannot do the work at all (a dependency down), and
carries a ``Retry-After`` too (``ObserveMiddleware``).

Only the paths a unit names are gated; ``/health``, ``/ready`` and ``/metrics`` never wait
behind work, so an overloaded unit stays healthy in Docker's eyes and its figures readable.
The gate lives on the unit's one event loop: no locks, and the counts are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body
from .metrics import Registry

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RETRY_AFTER_MAX_S = 60


class Refused(Exception):
    """The gate is full (``queue_full``) or the wait ran out (``wait_timeout``)."""

    def __init__(self, gate: str, reason: str, retry_after_s: int) -> None:
        super().__init__(f"{gate}: {reason}")
        self.gate, self.reason, self.retry_after_s = gate, reason, retry_after_s


class AdmissionMetrics:
    def __init__(self, registry: Registry) -> None:
        self.in_flight = registry.gauge("mlstack_admission_in_flight", "Gated requests running now.", ("gate",))
        self.queued = registry.gauge("mlstack_admission_queued", "Gated requests waiting for a slot now.", ("gate",))
        self.capacity = registry.gauge("mlstack_admission_capacity",
                                       "The gate's limits: concurrency (slots) and queue (waiting places).",
                                       ("gate", "kind"))
        self.admitted = registry.counter("mlstack_admission_admitted_total", "Gated requests given a slot.",
                                         ("gate",))
        self.refused = registry.counter("mlstack_admission_refused_total",
                                        "Gated requests refused with 429, by reason (queue_full, wait_timeout).",
                                        ("gate", "reason"))
        self.wait = registry.histogram("mlstack_admission_wait_seconds", "Time admitted requests waited for a slot.",
                                       ("gate",), WAIT_BUCKETS)


class Gate:
    """At most ``concurrency`` holders; ``queue`` waiters in arrival order, each for ``wait_s`` at most."""

    def __init__(self, name: str, concurrency: int, queue: int, wait_s: float,
                 metrics: AdmissionMetrics | None = None) -> None:
        if concurrency < 1 or queue < 0 or wait_s <= 0:
            raise ValueError("a gate needs concurrency >= 1, queue >= 0 and wait_s > 0")
        self.name, self.concurrency, self.queue, self.wait_s = name, concurrency, queue, wait_s
        self.metrics = metrics
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Mean time a request holds a slot (exponentially weighted): what Retry-After is made of.
        self._hold_s: float | None = None
        if metrics is not None:
            metrics.capacity.set(concurrency, gate=name, kind="concurrency")
            metrics.capacity.set(queue, gate=name, kind="queue")
            self._publish()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _publish(self) -> None:
        if self.metrics is not None:
            self.metrics.in_flight.set(self.in_flight, gate=self.name)
            self.metrics.queued.set(len(self._waiters), gate=self.name)

    def retry_after_s(self) -> int:
        """Seconds until the work ahead of a newcomer has likely drained (1..60)."""
        hold = self._hold_s if self._hold_s is not None else 1.0
        backlog = self.in_flight + len(self._waiters) + 1
        return max(1, min(RETRY_AFTER_MAX_S, math.ceil(hold * backlog / self.concurrency)))

    def _refuse(self, reason: str) -> Refused:
        if self.metrics is not None:
            self.metrics.refused.inc(gate=self.name, reason=reason)
        return Refused(self.name, reason, self.retry_after_s())

    async def acquire(self) -> None:
        """Takes a slot, waiting in line when all are busy; raises Refused when it may not."""
        start = time.perf_counter()
        if self.in_flight < self.concurrency and not self._waiters:
            self.in_flight += 1
        else:
            if len(self._waiters) >= self.queue:
                raise self._refuse("queue_full")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._publish()
            try:
                async with asyncio.timeout(self.wait_s):
                    await waiter
            except TimeoutError:
                if not (waiter.done() and not waiter.cancelled()):
                    self._drop(waiter)
                    raise self._refuse("wait_timeout") from None
                # The slot was handed over just as the wait ran out: it is ours, use it.
            except asyncio.CancelledError:
                # The caller went away while waiting: give back a slot handed over meanwhile.
                if waiter.done() and not waiter.cancelled():
                    self.release()
                else:
                    self._drop(waiter)
                raise
        self._publish()
        if self.metrics is not None:
            self.metrics.admitted.inc(gate=self.name)
            self.metrics.wait.observe(time.perf_counter() - start, gate=self.name)

    def _drop(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        self._publish()

    def release(self, held_s: float | None = None) -> None:
        """Frees a slot: the first live waiter gets it (in_flight unchanged), else it is given back."""
        if held_s is not None:
            self._hold_s = held_s if self._hold_s is None else 0.8 * self._hold_s + 0.2 * held_s
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._publish()
                return
        self.in_flight -= 1
        self._publish()


def build_gates(names: set[str], concurrency: int, queue: int, wait_s: float,
                registry: Registry | None = None) -> dict[str, Gate]:
    metrics = AdmissionMetrics(registry) if registry is not None and names else None
    return {name: Gate(name, concurrency, queue, wait_s, metrics) for name in sorted(names)}


class AdmissionMiddleware:
    """Passes a POST to a gated path through its gate; the slot is held until the response
    (a stream's last chunk included) has been sent."""

    def __init__(self, app: ASGIApp, gates: Mapping[str, Gate], paths: Mapping[str, str]) -> None:
        self.app = app
        self.by_path = {path: gates[name] for path, name in paths.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.by_path.get(scope.get("path", "")) if scope["type"] == "http" else None
        if gate is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            await gate.acquire()
        except Refused as exc:
            await _refusal(send, exc, gate)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            gate.release(time.perf_counter() - start)


async def _refusal(send: Send, exc: Refused, gate: Gate) -> None:
    if exc.reason == "queue_full":
        why = f"{gate.concurrency} running and {gate.queue} waiting"
    else:
        why = f"no slot came free within {gate.wait_s:g} s"
    message = f"this unit is at capacity ({why}); retry after {exc.retry_after_s} s"
    payload = json.dumps(error_body(429, message)).encode()
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"retry-after", str(exc.retry_after_s).encode())]})
    await send({"type": "http.response.body", "body": payload})
