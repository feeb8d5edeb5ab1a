"""chat: OpenAI-compatible /v1/chat/completions over the llm unit, history in Redis, transcripts in PostgreSQL."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from redis.exceptions import RedisError

from .. import redis_store
from ..auth import require_scope
from ..errors import ServiceError, error_body
from ..llm import LearningClient, LlmClient, PerceptionClient, ReasoningClient, UpstreamError
from ..metrics import Registry
from ..openapi import answers
from ..redis_store import ConversationStore, RedisLike
from ..requests import StoredText, require_json
from ..settings import Settings
from ..transcripts import PgTranscripts, TranscriptError, TranscriptStore
from ..unit import Unit

log = logging.getLogger("mlstack_services.chat")

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
class ChatCompletion(BaseModel):
    """The answer's shape, for the OpenAPI document only: the llm unit's completion, passed on with mlstack's
    extension (other keys of the llm's answer are kept)."""

    object: str
    created: int
    choices: list[dict[str, Any]]
    mlstack: dict[str, Any] = Field(description="conversation_id, history, reasoning, transcript, ...")


COMPLETION_OK = {"description": "The completion: JSON, or with stream=true server-sent events (data: <chunk>, "
                                 "then data: [DONE]).",
                 "model": ChatCompletion,
                 # Each server-sent event: data holds a JSON chunk, an error, or [DONE].
                 "content": {"text/event-stream": {"schema": {
                     "type": "object", "required": ["data"],
                     "properties": {"data": {"type": "string"}, "event": {"type": "string"},
                                    "id": {"type": "string"}}}}}}


class Model(BaseModel):
    id: str = Field(description="The model name to send as `model` (the llm unit's LLM_MODEL).")
    object: Literal["model"]
    created: int = Field(description="When this chat unit started, seconds since the epoch.")
    owned_by: str


class ModelList(BaseModel):
    """OpenAI's model list: what the `openai` client's models.list() reads."""

    object: Literal["list"]
    data: list[Model]


class TextPart(BaseModel):
    type: Literal["text"]
    text: StoredText  # the turn is kept in PostgreSQL (transcripts), which cannot hold a NUL


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: StoredText | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(BaseModel):
    model: str | None = Field(default=None, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    reasoning: bool = Field(default=False, description="mlstack extension: ask the reasoning unit first")
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
                             description="OpenAI's end-user id; with a learning unit, its preferred style is used")
    conversation_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                                        description="mlstack extension: keep history under this id")

    @field_validator("messages")
    @classmethod
    def user_text(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        users = [m for m in messages if m.role == "user"]
        if not users:
            raise ValueError("needs at least one message with role 'user'")
        if any(not m.text().strip() for m in users):
            raise ValueError("a user message has empty content")
        return messages

    @model_validator(mode="after")
    def bounded(self) -> ChatRequest:
        if sum(len(m.text()) for m in self.messages) > 200_000:
            raise ValueError("messages hold more than 200000 characters")
        return self


class ChatMetrics:
    def __init__(self, registry: Registry) -> None:
        self.completions = registry.counter("mlstack_chat_completions_total", "Chat completions by mode and outcome.",
                                            ("stream", "outcome"))
        self.reasoning = registry.counter("mlstack_chat_reasoning_total", "Reasoning requests by outcome.",
                                          ("outcome",))
        self.tokens = registry.counter("mlstack_chat_completion_tokens_total",
                                       "Completion tokens reported by the llm unit (stream: chunks).")
        self.ttft = registry.histogram("mlstack_chat_time_to_first_token_seconds",
                                       "Streamed completions: time to the first content chunk.", (), TTFT_BUCKETS)
        self.persist_failures = registry.counter("mlstack_chat_persist_failures_total",
                                                 "History or transcript writes that failed.", ("store",))


# The learning unit's styles, as instructions to the llm.
STYLE_HINTS = {
    "concise": "Answer concisely, in one or two sentences.",
    "detailed": "Answer in detail, with explanations and examples.",
    "step_by_step": "Answer step by step, as a numbered list.",
}


def _reasoning_note(result: dict[str, Any]) -> dict[str, str]:
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(result["steps"], 1))
    return {"role": "system", "content": (
        "A reasoning engine worked on the user's last question.\n"
        f"Steps:\n{steps or '(none given)'}\nIts answer: {result['answer']}\n"
        "Use this when it helps; answer the user directly.")}


def _context_note(context: dict[str, Any]) -> dict[str, str]:
    intent = context["intent"] if context["intent"] != "unknown" else "not one the perception unit knows"
    return {"role": "system", "content": (
        f"Context of the user's last message (perception unit): intent {intent}, sentiment {context['sentiment']}, "
        f"language {context['language']}. Answer in the user's language; be considerate if the sentiment is negative.")}


def recent(history: list[dict[str, str]], max_chars: int) -> list[dict[str, str]]:
    """The latest turns whose text fits in ``max_chars`` (the llm's context is small: 2048 tokens)."""
    kept: list[dict[str, str]] = []
    used = 0
    for message in reversed(history):
        used += len(message.get("content", ""))
        if used > max_chars:
            break
        kept.append(message)
    kept.reverse()
    # Start on a user turn, as chat templates expect alternation from the user.
    while kept and kept[0].get("role") != "user":
        kept.pop(0)
    return kept


def build(settings: Settings, registry: Registry, redis: RedisLike | None = None,
          transcripts: TranscriptStore | None = None, llm_transport: httpx.AsyncBaseTransport | None = None,
          reasoning_transport: httpx.AsyncBaseTransport | None = None) -> Unit:
    client: RedisLike = redis if redis is not None else redis_store.connect(settings)
    conversations = ConversationStore(client, settings.redis_prefix, settings.conversation_ttl_s,
                                      settings.conversation_max_messages)
    store: TranscriptStore = transcripts if transcripts is not None else PgTranscripts(settings)
    llm = LlmClient(settings.llm_url, settings.llm_timeout_s, llm_transport)
    reasoner = ReasoningClient(settings.reasoning_url, settings.reasoning_timeout_s, reasoning_transport)
    learner = LearningClient(settings.learning_url)
    perceiver = PerceptionClient(settings.perception_url)
    metrics = ChatMetrics(registry)
    router = APIRouter(prefix="/v1", tags=["chat"])

    started = int(time.time())

    @router.get("/models", dependencies=[Depends(require_scope("chat:complete"))],
                responses=answers(ok={"model": ModelList, "description": "The model chat completes with."}))
    async def models() -> ModelList:
        return ModelList(object="list", data=[Model(id=settings.llm_model, object="model", created=started,
                                                    owned_by="mlstack")])

    async def persist(conversation_id: str, turn: list[dict[str, str]], ext: dict[str, Any]) -> None:
        try:
            await conversations.append(conversation_id, turn)
            ext["history"] = "saved"
        except RedisError as exc:
            metrics.persist_failures.inc(store="redis")
            ext["history"] = f"not saved: {type(exc).__name__}: {exc}"
            log.warning("history not saved", extra={"conversation_id": conversation_id, "error": str(exc)})
        try:
            await store.add(conversation_id, turn)
            ext["transcript"] = "saved"
        except TranscriptError as exc:
            metrics.persist_failures.inc(store="postgresql")
            ext["transcript"] = f"not saved: {exc}"
            log.warning("transcript not saved", extra={"conversation_id": conversation_id, "error": str(exc)})

    @router.post("/chat/completions", dependencies=[Depends(require_scope("chat:complete")), Depends(require_json)],
                 response_model=None, responses=answers(502, 504, ok=COMPLETION_OK))
    async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        conversation_id = body.conversation_id or uuid.uuid4().hex
        ext: dict[str, Any] = {"conversation_id": conversation_id, "reasoning": "off"}
        history: list[dict[str, str]] = []
        if body.conversation_id:
            try:
                history = recent(await conversations.load(conversation_id), settings.history_max_chars)
            except RedisError as exc:
                ext["history"] = f"unavailable: {type(exc).__name__}: {exc}"
        ext["history_messages"] = len(history)
        system = [{"role": m.role, "content": m.text()} for m in body.messages if m.role == "system"]
        turn = [{"role": m.role, "content": m.text()} for m in body.messages if m.role != "system"]
        if body.reasoning:
            question = next(m["content"] for m in reversed(turn) if m["role"] == "user")
            result, status = await reasoner.reason(question, request.headers.get("authorization"))
            ext["reasoning"] = status
            metrics.reasoning.inc(outcome="used" if result else "unavailable")
            if result:
                ext["reasoning_steps"] = result["steps"]
                system.append(_reasoning_note(result))
        principal = getattr(request.state, "principal", None)
        if settings.perception_url and principal is not None and "perception:analyze" in principal.scopes:
            # Only for a caller whose token may use the perception unit (it is forwarded as it is).
            question = next(m["content"] for m in reversed(turn) if m["role"] == "user")
            context, ext["perception"] = await perceiver.analyze(question, request.headers.get("authorization"))
            if context:
                ext["context"] = context
                system.append(_context_note(context))
        if body.user and settings.learning_url:
            style, ext["style_source"] = await learner.preferred_style(body.user, request.headers.get("authorization"))
            if style:
                ext["style"] = style
                system.append({"role": "system", "content": STYLE_HINTS.get(style, f"Answer in a {style} style.")})
        payload: dict[str, Any] = {"model": body.model or settings.llm_model, "messages": system + history + turn}
        for name in ("max_tokens", "temperature", "top_p", "stop", "seed"):
            value = getattr(body, name)
            if value is not None:
                payload[name] = value
        label = "true" if body.stream else "false"
        if body.stream:
            return await _stream(payload, conversation_id, turn, ext, label)
        try:
            answer = await llm.complete(payload)
        except UpstreamError as exc:
            metrics.completions.inc(stream=label, outcome="error")
            raise ServiceError(exc.status, str(exc)) from None
        message = (answer["choices"][0].get("message") or {}) if isinstance(answer["choices"][0], dict) else {}
        content = message.get("content") or ""
        await persist(conversation_id, turn + [{"role": "assistant", "content": content}], ext)
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        metrics.tokens.inc(float(usage.get("completion_tokens") or 0))
        metrics.completions.inc(stream=label, outcome="ok")
        answer.setdefault("object", "chat.completion")
        answer.setdefault("created", int(time.time()))
        answer["mlstack"] = ext
        return JSONResponse(answer)

    async def _stream(payload: dict[str, Any], conversation_id: str, turn: list[dict[str, str]],
                      ext: dict[str, Any], label: str) -> StreamingResponse:
        stack = AsyncExitStack()
        start = time.perf_counter()
        try:
            chunks = await stack.enter_async_context(llm.stream(payload))
        except UpstreamError as exc:
            await stack.aclose()
            metrics.completions.inc(stream=label, outcome="error")
            raise ServiceError(exc.status, str(exc)) from None

        async def events() -> AsyncIterator[str]:
            parts: list[str] = []
            first, outcome, stream_id = True, "ok", f"chatcmpl-{uuid.uuid4().hex}"
            try:
                async for chunk in chunks:
                    stream_id = str(chunk.get("id") or stream_id)
                    choices = chunk.get("choices") or [{}]
                    delta = (choices[0].get("delta") or {}) if isinstance(choices[0], dict) else {}
                    text = delta.get("content")
                    if isinstance(text, str) and text:
                        if not parts:
                            metrics.ttft.observe(time.perf_counter() - start)
                        parts.append(text)
                        metrics.tokens.inc()
                    if first:
                        chunk["mlstack"], first = dict(ext), False
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
            except (UpstreamError, httpx.HTTPError) as exc:
                outcome = "error"
                status = exc.status if isinstance(exc, UpstreamError) else 502
                yield f"data: {json.dumps(error_body(status, f'llm stream broke: {exc}'))}\n\n"
            finally:
                await stack.aclose()
            if outcome == "ok":
                await persist(conversation_id, turn + [{"role": "assistant", "content": "".join(parts)}], ext)
            metrics.completions.inc(stream=label, outcome=outcome)
            tail = {"id": stream_id, "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": payload["model"], "choices": [], "mlstack": ext}
            yield f"data: {json.dumps(tail, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def redis_check() -> tuple[bool, str]:
        try:
            return await redis_store.check(client, settings.redis_prefix)
        except RedisError as exc:
            return False, f"{type(exc).__name__}: {exc}"

    async def prepare() -> None:
        await store.ensure_schema()

    async def close() -> None:
        await llm.aclose()
        await reasoner.aclose()
        await learner.aclose()
        await perceiver.aclose()
        await store.close()
        await client.aclose()

    return Unit(
        name="chat", router=router,
        checks={"redis": redis_check, "postgresql": store.check, "llm": llm.check},
        optional_checks={**({"reasoning": reasoner.check} if settings.reasoning_url else {}),
                         **({"learning": learner.check} if settings.learning_url else {}),
                         **({"perception": perceiver.check} if settings.perception_url else {})},
        # Streams hold their slot to the last chunk: the llm serves one completion at a time.
        admission={"/v1/chat/completions": "completions"},
        on_startup=[prepare], on_shutdown=[close],
    )
