"""Stand-ins for the services' neighbours in tests. Every one is a fake and says so in its name."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from redis.exceptions import ConnectionError as RedisConnectionError


class FakeRedis:
    """In-memory stand-in for the part of redis.asyncio.Redis the units use (strings, lists, TTLs)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.expiry: dict[str, float] = {}
        self.down = False
        self.commands: list[str] = []

    def _gate(self, command: str) -> None:
        self.commands.append(command)
        if self.down:
            raise RedisConnectionError("FakeRedis is down")

    def _live(self, name: str) -> bool:
        deadline = self.expiry.get(name)
        if deadline is not None and deadline <= time.monotonic():
            self.data.pop(name, None)
            self.expiry.pop(name, None)
        return name in self.data

    def ttl_of(self, name: str) -> float | None:
        deadline = self.expiry.get(name)
        return None if deadline is None else deadline - time.monotonic()

    async def ping(self) -> bool:
        self._gate("PING")
        return True

    async def exists(self, *names: str) -> int:
        self._gate("EXISTS")
        return sum(1 for n in names if self._live(n))

    async def get(self, name: str) -> str | None:
        self._gate("GET")
        return self.data.get(name) if self._live(name) else None

    async def set(self, name: str, value: str, ex: int | None = None) -> bool:
        self._gate("SET")
        self.data[name] = value
        if ex is not None:
            self.expiry[name] = time.monotonic() + ex
        else:
            self.expiry.pop(name, None)
        return True

    async def rpush(self, name: str, *values: str) -> int:
        self._gate("RPUSH")
        if not self._live(name):
            self.data[name] = []
        items = self.data[name]
        items.extend(values)
        return len(items)

    async def ltrim(self, name: str, start: int, end: int) -> bool:
        self._gate("LTRIM")
        if self._live(name):
            self.data[name] = self._slice(self.data[name], start, end)
        return True

    @staticmethod
    def _slice(items: list[str], start: int, end: int) -> list[str]:
        """Redis index semantics: inclusive end, negative indexes count from the tail."""
        n = len(items)
        start = max(n + start, 0) if start < 0 else start
        end = n + end if end < 0 else end
        return items[start:end + 1]

    async def lrange(self, name: str, start: int, end: int) -> list[str]:
        self._gate("LRANGE")
        if not self._live(name):
            return []
        return self._slice(self.data[name], start, end)

    async def expire(self, name: str, time_s: int) -> bool:
        self._gate("EXPIRE")
        if not self._live(name):
            return False
        self.expiry[name] = time.monotonic() + time_s
        return True

    async def aclose(self) -> None:
        return None


class FakeTranscriptStore:
    """In-memory stand-in for the PostgreSQL transcripts table."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.schema_ready = False
        self.down = False

    async def ensure_schema(self) -> None:
        self.schema_ready = True

    async def add(self, conversation_id: str, messages: list[dict[str, str]]) -> None:
        from mlstack_services.transcripts import TranscriptError

        if self.down:
            raise TranscriptError("FakeTranscriptStore is down")
        if any("\x00" in m["content"] for m in messages):  # as psycopg: PostgreSQL text cannot hold U+0000
            raise TranscriptError("DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes")
        for m in messages:
            self.rows.append({"id": len(self.rows) + 1, "conversation_id": conversation_id,
                              "role": m["role"], "content": m["content"], "created_at": time.time()})

    async def check(self) -> tuple[bool, str]:
        return (not self.down, "FakeTranscriptStore " + ("down" if self.down else "ok"))

    async def close(self) -> None:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(app: FastAPI, lifespan: str = "off") -> Iterator[str]:
    """Runs ``app`` with uvicorn on a free localhost port in a thread; yields its base URL.

    ``lifespan="on"`` runs the app's start and stop steps (a real unit's engines load then)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


class FakeLLM:
    """A tiny OpenAI-compatible stand-in for the llm unit: /v1/models and /v1/chat/completions
    (JSON and SSE). Its answer is derived from the prompt, so tests can see what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = FastAPI()
        self.app.get("/v1/models")(self.models)
        self.app.post("/v1/chat/completions")(self.completions)

    @staticmethod
    def answer_for(messages: list[dict[str, str]]) -> str:
        last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        prior = sum(1 for m in messages[:-1] if m["role"] in ("user", "assistant"))
        return f"FakeLLM heard '{last}' after {prior} prior turns"

    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}

    async def completions(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(body)
        text = self.answer_for(body["messages"])
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10},
            })

        async def events() -> AsyncIterator[str]:
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                    "model": body.get("model")}
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'role': 'assistant'}}]})}\n\n"
            words = text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(done)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class FakeReasoning:
    """A stand-in for the reasoning unit's POST /v1/reason and GET /health."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.app = FastAPI()
        self.app.post("/v1/reason")(self.reason)
        self.app.get("/health")(self.health)

    async def health(self) -> dict[str, str]:
        return {"status": "ok", "unit": "reasoning"}

    async def reason(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(body)
        self.authorization.append(request.headers.get("authorization"))
        return {"steps": ["read the question", "think it over"], "answer": "FakeReasoning says 42"}


class SlowFakeLLM(FakeLLM):
    """FakeLLM that answers like a small CPU llama.cpp server: one completion at a time (the
    others wait their turn, as llama-cpp-python's server makes them) and ``token_delay_s``
    per streamed word. For load tests and the load benchmark's --local mode."""

    def __init__(self, token_delay_s: float = 0.02) -> None:
        super().__init__()
        self.token_delay_s = token_delay_s
        self._turn: asyncio.Lock | None = None

    async def completions(self, request: Request) -> Any:
        if self._turn is None:
            self._turn = asyncio.Lock()  # made on the serving loop
        turn = self._turn
        body = await request.json()
        self.requests.append(body)
        words = self.answer_for(body["messages"]).split(" ")
        created = int(time.time())
        if not body.get("stream"):
            async with turn:
                await asyncio.sleep(self.token_delay_s * len(words))
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 10},
            })
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                "model": body.get("model")}

        async def events() -> AsyncIterator[str]:
            async with turn:
                for i, word in enumerate(words):
                    await asyncio.sleep(self.token_delay_s)
                    chunk = {**base, "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                                  "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class HeldFakeLLM(FakeLLM):
    """FakeLLM whose streams send their first chunk, then hold until ``release`` is set: a
    stream that is provably still running while a test looks at the chat unit."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def completions(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(body)
        base = {"id": "chatcmpl-held", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model")}

        async def events() -> AsyncIterator[str]:
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'content': 'held'}}]})}\n\n"
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class HeldFakeEspeak:
    """Stands in for tts.Espeak: each synthesis waits until ``release`` is set, then returns a
    short silent WAV. ``started`` counts the syntheses that began (were admitted)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0

    async def check(self) -> tuple[bool, str]:
        return True, "HeldFakeEspeak"

    async def synthesize(self, text: str, voice: str, rate: int) -> Any:
        from mlstack_services.audio import wav_bytes
        from mlstack_services.tts import Speech

        self.started += 1
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return Speech(wav_bytes(b"\x00\x00" * 1600, 16000, 2), 100, 1.0, 16000)
