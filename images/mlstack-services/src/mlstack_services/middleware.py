"""ASGI middleware: request body limits, and one log line + metrics per request."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .metrics import Registry

log = logging.getLogger("mlstack_services.request")

# Retry-After of a 503 that names none (a dependency down, the JWT key unreadable): a guess
# that keeps well-behaved clients from hammering a unit that is recovering.
UNAVAILABLE_RETRY_AFTER_S = 5


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class BodyLimitMiddleware:
    """Refuses bodies over the limit of their path with 413, by Content-Length or while reading."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app, self.default_limit, self.limits = app, default_limit, dict(limits or {})

    def limit_for(self, path: str) -> int:
        return self.limits.get(path, self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        message = f"request body exceeds the {limit} byte limit of {scope['path']}"
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, error_body(413, message))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, limited_receive, send)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class ObserveMiddleware:
    """Logs method, path, status and latency (never headers or bodies) and feeds the request metrics."""

    def __init__(self, app: ASGIApp, registry: Registry, routes: Sequence[BaseRoute] = (),
                 quiet_paths: tuple[str, ...] = ()) -> None:
        self.app, self.registry, self.routes, self.quiet_paths = app, registry, routes, quiet_paths

    def _template(self, scope: Scope) -> str:
        """The route template (bounded label values); requests refused before routing are matched here."""
        route = scope.get("route")
        if route is None:
            for candidate in self.routes:
                if not hasattr(candidate, "path"):
                    continue  # included routers: their routes are passed in one by one
                match, _ = candidate.matches(scope)
                if match != Match.NONE:
                    route = candidate
                    break
        return getattr(route, "path", None) or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        if len(request_id) > 64 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        status = 500

        async def observed_send(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                msg.setdefault("headers", [])
                msg["headers"] = list(msg["headers"]) + [(b"x-request-id", request_id.encode())]
                if status in (429, 503) and not any(k.lower() == b"retry-after" for k, _ in msg["headers"]):
                    # Every 429 and 503 says when to come back (the admission gate sets its own).
                    msg["headers"].append((b"retry-after", str(UNAVAILABLE_RETRY_AFTER_S).encode()))
            await send(msg)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, status, time.perf_counter() - start, request_id)

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        template = self._template(scope)
        method = scope.get("method", "")
        self.registry.requests.inc(route=template, method=method, status=str(status))
        self.registry.latency.observe(elapsed, route=template, method=method, status=str(status))
        quiet = scope["path"] in self.quiet_paths
        level = logging.INFO
        if status >= 500:
            level = logging.WARNING if quiet else logging.ERROR
        elif quiet:
            level = logging.DEBUG
        log.log(level, "request", extra={
            "method": method, "path": scope["path"], "route": template, "status": status,
            "latency_ms": round(elapsed * 1000, 2), "request_id": request_id,
        })
