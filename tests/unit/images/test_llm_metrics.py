"""images/llm/llm_server.py's GET /metrics: requests, latency, queue and tokens per second, on a fake ASGI app."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

LLM = Path(__file__).resolve().parents[3] / "images" / "llm" / "llm_server.py"


@pytest.fixture(scope="module")
def llm_server() -> types.ModuleType:
    """The wrapper with llama_cpp stubbed: the middleware needs none of it."""
    names = ("llama_cpp", "llama_cpp.server", "llama_cpp.server.__main__", "llama_cpp.server.app")
    stubs = {name: types.ModuleType(name) for name in names}
    stubs["llama_cpp.server.__main__"].create_app = lambda *a, **k: None  # type: ignore[attr-defined]
    stubs["llama_cpp.server"].app = stubs["llama_cpp.server.app"]  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location("llm_server_under_test", LLM)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def fake_app(body: bytes, content_type: bytes = b"application/json", status: int = 200):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})
    return app


def call(app: Any, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "method": "POST"}, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} missing from\n{text}"
    return float(match.group(1))


def test_counts_requests_tokens_and_serves_metrics(llm_server):
    metrics = llm_server.Metrics()
    answer = json.dumps({"usage": {"completion_tokens": 12}}).encode()
    middleware = llm_server.MetricsMiddleware(fake_app(answer), metrics)
    call(middleware, "/v1/chat/completions")
    stream = b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: {\"a\":3}\n\ndata: [DONE]\n\n"
    call(llm_server.MetricsMiddleware(fake_app(stream, b"text/event-stream"), metrics), "/v1/completions")
    call(llm_server.MetricsMiddleware(fake_app(b"{}", status=404), metrics), "/wp-admin/setup.php")
    status, body = call(middleware, "/metrics")
    text = body.decode()
    assert status == 200
    assert sample(text, "mlstack_llm_completion_tokens_total") == 15.0
    assert sample(text, "mlstack_llm_generation_seconds_total") > 0
    assert sample(text, "mlstack_llm_requests_total", '{route="/v1/chat/completions",status="200"}') == 1
    assert sample(text, "mlstack_llm_requests_total", '{route="other",status="404"}') == 1  # no odd paths as labels
    assert sample(text, "mlstack_llm_request_duration_seconds_count", '{route="/v1/completions"}') == 1
    assert sample(text, "mlstack_llm_queue_depth") == 0 and sample(text, "mlstack_llm_requests_in_flight") == 0
    assert "# TYPE mlstack_llm_request_duration_seconds histogram" in text


@pytest.mark.parametrize("body,streamed,expected", [
    (b'{"usage": {"completion_tokens": 7}}', False, 7),
    (b"not json", False, None),
    (b'{"usage": null}', False, None),
    (b"data: x\n\ndata: [DONE]\n\n", True, 1),
])
def test_completion_tokens(llm_server, body, streamed, expected):
    assert llm_server.completion_tokens(body, streamed) == expected


def test_queue_depth_counts_requests_waiting_behind_the_one_generating(llm_server):
    metrics = llm_server.Metrics()
    metrics.in_flight = 3
    assert "mlstack_llm_queue_depth 2" in metrics.render()
