"""Clients of the llm unit (OpenAI-compatible llama.cpp server) and of the optional reasoning unit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx


class UpstreamError(RuntimeError):
    """The llm unit did not answer usefully; ``status`` is what the client gets (502/503/504)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _describe(exc: httpx.HTTPError) -> tuple[int, str]:
    if isinstance(exc, httpx.TimeoutException):
        return 504, f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return 503, f"cannot connect: {exc}"
    return 502, f"{type(exc).__name__}: {exc}"


class LlmClient:
    def __init__(self, base_url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url or "http://llm.invalid", transport=transport,
                                      timeout=httpx.Timeout(timeout_s, connect=3.0))

    def _require_url(self) -> None:
        if not self.base_url:
            raise UpstreamError(503, "LLM_URL is not set: this chat unit has no llm unit to ask")

    async def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._require_url()
        try:
            response = await self.http.post("/v1/chat/completions", json={**payload, "stream": False})
        except httpx.HTTPError as exc:
            status, reason = _describe(exc)
            raise UpstreamError(status, f"llm unit at {self.base_url}: {reason}") from None
        if response.status_code != 200:
            raise UpstreamError(502, f"llm unit answered {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
        except ValueError:
            raise UpstreamError(502, "llm unit answered with a body that is not JSON") from None
        if not isinstance(body, dict) or not body.get("choices"):
            raise UpstreamError(502, "llm unit answered without choices")
        return body

    @asynccontextmanager
    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Opens the upstream stream (errors here are UpstreamError) and yields its parsed chunks."""
        self._require_url()
        request = self.http.build_request("POST", "/v1/chat/completions", json={**payload, "stream": True},
                                          headers={"Accept": "text/event-stream"})
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            status, reason = _describe(exc)
            raise UpstreamError(status, f"llm unit at {self.base_url}: {reason}") from None
        try:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                raise UpstreamError(502, f"llm unit answered {response.status_code}: {text[:300]}")
            yield _chunks(response)
        finally:
            await response.aclose()

    async def check(self) -> tuple[bool, str]:
        if not self.base_url:
            return False, "LLM_URL is not set"
        last = ""
        # /health first: the llm unit answers it without waiting for the model lock; another
        # OpenAI-compatible server may have only /v1/models.
        for path in ("/health", "/v1/models"):
            try:
                response = await self.http.get(path, timeout=3.0)
            except httpx.HTTPError as exc:
                return False, f"{self.base_url}{path}: {_describe(exc)[1]}"
            if response.status_code == 200:
                return True, f"{self.base_url}{path} answered 200"
            last = f"{self.base_url}{path} answered {response.status_code}"
        return False, last

    async def aclose(self) -> None:
        await self.http.aclose()


async def _chunks(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parsed ``data:`` events of an OpenAI-style SSE stream, up to ``data: [DONE]``."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # comments, event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError(502, "llm unit streamed a data line that is not JSON") from None
        if isinstance(chunk, dict):
            yield chunk


class UnitClient:
    """Another service unit, used when it is there: /health for /ready, and a reason string for any failure."""

    unit = ""
    env = ""

    def __init__(self, base_url: str, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url or f"http://{self.unit}.invalid", transport=transport,
                                      timeout=httpx.Timeout(timeout_s, connect=2.0))

    async def check(self) -> tuple[bool, str]:
        """For /ready, as an optional dependency: is the unit there and live?"""
        if not self.base_url:
            return False, f"{self.env} is not set"
        try:
            response = await self.http.get("/health")
        except httpx.HTTPError as exc:
            return False, f"unavailable: {_describe(exc)[1]}"
        if response.status_code != 200:
            return False, f"unavailable: {self.unit} unit answered {response.status_code} on /health"
        return True, f"{self.unit} unit live"

    async def _request(self, method: str, path: str, authorization: str | None,
                       **kwargs: Any) -> tuple[httpx.Response | None, str]:
        """The unit's 200 answer, or None and why (not configured, unreachable, another status)."""
        if not self.base_url:
            return None, f"unavailable: {self.env} is not set"
        headers = {"Authorization": authorization} if authorization else {}
        try:
            response = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            return None, f"unavailable: {_describe(exc)[1]}"
        if response.status_code != 200:
            return None, f"unavailable: {self.unit} unit answered {response.status_code}"
        return response, "used"

    async def aclose(self) -> None:
        await self.http.aclose()


class ReasoningClient(UnitClient):
    """POST REASONING_URL/v1/reason {question} -> {steps, answer}; any failure is a reason string."""

    unit, env = "reasoning", "REASONING_URL"

    async def reason(self, question: str, authorization: str | None) -> tuple[dict[str, Any] | None, str]:
        response, reason = await self._request("POST", "/v1/reason", authorization, json={"question": question})
        if response is None:
            return None, reason
        try:
            body = response.json()
        except ValueError:
            return None, "unavailable: reasoning unit answered with a body that is not JSON"
        if not isinstance(body, dict) or not isinstance(body.get("answer"), str):
            return None, "unavailable: reasoning unit answered without an 'answer'"
        steps = body.get("steps") if isinstance(body.get("steps"), list) else []
        return {"steps": [str(s) for s in steps][:20], "answer": body["answer"]}, "used"


class LearningClient(UnitClient):
    """GET LEARNING_URL/v1/profile/<user> -> the style the user prefers; any failure is a reason string."""

    unit, env = "learning", "LEARNING_URL"

    async def preferred_style(self, user: str, authorization: str | None) -> tuple[str | None, str]:
        response, reason = await self._request("GET", f"/v1/profile/{user}", authorization)
        if response is None:
            return None, reason
        try:
            style = response.json().get("preferred")
        except (ValueError, AttributeError):
            return None, "unavailable: learning unit answered with a body that is not a profile"
        return (str(style), "used") if isinstance(style, str) and style else (None, "unavailable: no preferred style")


class PerceptionClient(UnitClient):
    """POST PERCEPTION_URL/v1/analyze {text} -> intent, sentiment, language; any failure is a reason string."""

    unit, env = "perception", "PERCEPTION_URL"

    async def analyze(self, text: str, authorization: str | None) -> tuple[dict[str, Any] | None, str]:
        body = {"text": text[:5000], "analyses": ["intent", "language", "sentiment"]}
        response, reason = await self._request("POST", "/v1/analyze", authorization, json=body)
        if response is None:
            return None, reason
        try:
            found = response.json()
            context = {"intent": str(found["intent"]["label"]), "intent_score": float(found["intent"]["score"]),
                       "language": str(found["language"]["code"]), "sentiment": str(found["sentiment"]["label"])}
        except (ValueError, KeyError, TypeError):
            return None, "unavailable: perception unit answered without intent, language and sentiment"
        return context, "used"


