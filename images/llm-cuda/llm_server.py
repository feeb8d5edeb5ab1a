"""llama-cpp-python's OpenAI-compatible server, plus the service contract's /health and /ready.

The server's own routes take the model lock (llama_cpp.server.app.get_llama_proxy), so a probe
of /v1/models waits for the generation in progress, and with ``interrupt_requests`` (its
default, off in llm-server.sh) cuts a stream short. These two routes never take the lock: the
model is loaded before the server listens (create_app builds the proxy and loads the default
model), so answering at all proves the unit can serve.

GET /metrics is this wrapper's too (llama-cpp-python's server has none, unlike llama.cpp's
``--metrics``): an ASGI middleware counts requests, their latency, the requests in flight and
waiting for the model lock (the queue), and the completion tokens and generation time, so that
``rate(mlstack_llm_completion_tokens_total[1m]) / rate(mlstack_llm_generation_seconds_total[1m])``
is the tokens per second. Standard library only: the image's venv holds what the server needs
and nothing else.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import llama_cpp.server.__main__ as server
from llama_cpp.server import app as server_app

_create_app = server.create_app


def _models() -> list[str]:
    # Read without the lock: the aliases are fixed once the proxy exists.
    proxy = getattr(server_app, "_llama_proxy", None)
    return list(proxy) if proxy is not None else []


_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, float("inf"))
_GENERATING = ("/v1/chat/completions", "/v1/completions")
# Routes named in the labels; anything else is "other", so that a scan of odd paths cannot grow the series.
_ROUTES = _GENERATING + ("/v1/models", "/v1/embeddings", "/health", "/ready")


class Metrics:
    """The llm's counters, rendered in Prometheus' text format (version 0.0.4)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[float]] = {}  # route -> bucket counts, then sum
        self.in_flight = 0
        self.tokens = 0
        self.generation_s = 0.0
        self.last_tps = 0.0

    def done(self, route: str, status: int, seconds: float, tokens: int | None) -> None:
        with self.lock:
            key = (route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            series = self.latency.setdefault(route, [0.0] * (len(_BUCKETS) + 1))
            for i, bound in enumerate(_BUCKETS):
                series[i] += seconds <= bound
            series[-1] += seconds
            if tokens and route in _GENERATING and status < 400:
                self.tokens += tokens
                self.generation_s += seconds
                self.last_tps = tokens / seconds if seconds > 0 else 0.0

    def render(self) -> str:
        with self.lock:
            out = ["# HELP mlstack_llm_requests_total Requests by route and status.",
                   "# TYPE mlstack_llm_requests_total counter"]
            out += [f'mlstack_llm_requests_total{{route="{r}",status="{s}"}} {n}'
                    for (r, s), n in sorted(self.requests.items())]
            out += ["# HELP mlstack_llm_request_duration_seconds Request latency by route (queue wait included).",
                    "# TYPE mlstack_llm_request_duration_seconds histogram"]
            for route, series in sorted(self.latency.items()):
                for bound, count in zip(_BUCKETS, series, strict=False):
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    out.append(f'mlstack_llm_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {count:.0f}')
                out.append(f'mlstack_llm_request_duration_seconds_sum{{route="{route}"}} {series[-1]!r}')
                out.append(f'mlstack_llm_request_duration_seconds_count{{route="{route}"}} {series[-2]:.0f}')
            gauges = (("requests_in_flight", "Generation requests being served or waiting now.", self.in_flight),
                      ("queue_depth", "Generation requests waiting for the model now.", max(self.in_flight - 1, 0)),
                      ("tokens_per_second_last", "Completion tokens per second of the last completion.",
                       self.last_tps))
            counters = (("completion_tokens_total", "Completion tokens generated.", self.tokens),
                        ("generation_seconds_total", "Seconds spent in requests that generated tokens.",
                         self.generation_s))
        for kind, rows in (("gauge", gauges), ("counter", counters)):
            for name, help_text, value in rows:
                out += [f"# HELP mlstack_llm_{name} {help_text}", f"# TYPE mlstack_llm_{name} {kind}",
                        f"mlstack_llm_{name} {value!r}"]
        return "\n".join(out) + "\n"


def completion_tokens(body: bytes, streamed: bool) -> int | None:
    """Tokens of a completion: ``usage.completion_tokens`` of a JSON answer, or one per streamed chunk."""
    if streamed:
        return sum(1 for line in body.splitlines() if line.startswith(b"data: ") and line != b"data: [DONE]")
    try:
        usage = json.loads(body).get("usage") or {}
    except (ValueError, AttributeError):
        return None
    value = usage.get("completion_tokens")
    return value if isinstance(value, int) else None


class MetricsMiddleware:
    """Serves GET /metrics and times every other HTTP request (ASGI)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/metrics":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]})
            await send({"type": "http.response.body", "body": self.metrics.render().encode()})
            return
        generating = path in _GENERATING
        state: dict[str, Any] = {"status": 500, "body": bytearray(), "streamed": False}

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = dict(message.get("headers") or [])
                state["streamed"] = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and generating and len(state["body"]) < 1 << 20:
                state["body"] += message.get("body", b"")
            await send(message)

        began = time.perf_counter()
        if generating:
            with self.metrics.lock:
                self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, watch)
        finally:
            if generating:
                with self.metrics.lock:
                    self.metrics.in_flight -= 1
            tokens = completion_tokens(bytes(state["body"]), state["streamed"]) if generating else None
            route = path if path in _ROUTES else "other"
            self.metrics.done(route, state["status"], time.perf_counter() - began, tokens)


def create_app(*args: Any, **kwargs: Any) -> Any:
    app = _create_app(*args, **kwargs)
    app.add_middleware(MetricsMiddleware, metrics=Metrics())

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "unit": "llm", "models": _models()}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> dict[str, Any]:
        models = _models()
        return {"ready": bool(models), "unit": "llm", "degraded": [],
                "checks": {"model": {"ok": bool(models), "reason": f"loaded: {', '.join(models) or 'none'}"}}}

    return app


if __name__ == "__main__":
    server.create_app = create_app
    server.main()
