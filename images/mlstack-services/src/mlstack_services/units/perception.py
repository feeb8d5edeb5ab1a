"""perception: context understanding. POST /v1/analyze (intent, entities, language, sentiment of a
text), POST /v1/audio (speech activity and loudness of a WAV), GET /v1/intents (what it knows).

No database: the engines load at start (the embedding model, the intent examples' vectors,
py3langid, VADER); until they have, /ready says which one is missing and the endpoints that
need it answer 503.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from .. import perception
from ..audio import MAX_BYTES, AudioError, decode_wav
from ..auth import require_scope
from ..embeddings import Embedder
from ..embeddings import check as model_files_check
from ..errors import ServiceError
from ..metrics import Registry
from ..openapi import answers
from ..requests import NonBlank, media_type, require_json
from ..settings import Settings
from ..unit import Unit

log = logging.getLogger("mlstack_services.perception")

Analysis = Literal["intent", "entities", "language", "sentiment"]
ALL: tuple[Analysis, ...] = ("intent", "entities", "language", "sentiment")
WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "application/octet-stream"}


class AnalyzeRequest(BaseModel):
    text: NonBlank = Field(min_length=1, max_length=5000)
    analyses: list[Analysis] = Field(default_factory=lambda: list(ALL), min_length=1, max_length=4)


# The answers' shapes, for the OpenAPI document only (the routes return plain dicts).
class TextAnalysis(BaseModel):
    text_chars: int
    intent: dict[str, Any] | None = None
    entities: list[dict[str, Any]] | None = None
    entities_method: str | None = None
    language: dict[str, Any] | None = None
    sentiment: dict[str, Any] | None = None


class Intents(BaseModel):
    intents: dict[str, int]
    floor: float
    model: str


class AudioActivity(BaseModel, extra="allow"):
    duration_s: float
    source_rate: int
    source_channels: int


class Engines:
    """Loaded once at start; each is None until it loads, with the reason kept for /ready."""

    def __init__(self) -> None:
        self.embedder: Any = None
        self.intents: perception.IntentIndex | None = None
        self.language: perception.LanguageId | None = None
        self.sentiment: perception.Sentiment | None = None
        self.errors: dict[str, str] = {}

    def load(self, model_dir: str, embedder: Any = None) -> None:
        try:
            self.embedder = embedder or Embedder(model_dir)
            self.intents = perception.IntentIndex.build(perception.load_intents(), self.embedder.embed)
        except Exception as exc:  # a missing model is a reason in /ready, not a crash
            self.errors["embedding-model"] = f"{type(exc).__name__}: {exc}"
        try:
            self.language = perception.LanguageId()
        except Exception as exc:
            self.errors["language"] = f"{type(exc).__name__}: {exc}"
        try:
            self.sentiment = perception.Sentiment()
        except Exception as exc:
            self.errors["sentiment"] = f"{type(exc).__name__}: {exc}"


def build(settings: Settings, registry: Registry, embedder: Any = None) -> Unit:
    engines = Engines()
    analysed = registry.counter("mlstack_perception_analyses_total", "Text analyses, by kind.", ("analysis",))
    intents_seen = registry.counter("mlstack_perception_intents_total", "Recognised intents, by label.", ("label",))
    audio_done = registry.counter("mlstack_perception_audio_total", "Audio analyses, by outcome.", ("outcome",))
    router = APIRouter(prefix="/v1", tags=["perception"])

    def need(engine: Any, name: str) -> Any:
        if engine is None:
            reason = engines.errors.get(name, "still loading")
            raise ServiceError(503, f"{name} engine unavailable: {reason}")
        return engine

    @router.post("/analyze", dependencies=[Depends(require_scope("perception:analyze")), Depends(require_json)],
                 responses=answers(ok={"model": TextAnalysis, "description": "The analyses asked for."}))
    async def analyze(body: AnalyzeRequest) -> dict[str, Any]:
        wanted = list(dict.fromkeys(body.analyses))
        result: dict[str, Any] = {"text_chars": len(body.text)}
        if "intent" in wanted:
            embedder, index = need(engines.embedder, "embedding-model"), need(engines.intents, "embedding-model")
            vector = (await anyio.to_thread.run_sync(embedder.embed, [body.text]))[0]
            result["intent"] = index.classify(vector)
            intents_seen.inc(label=result["intent"]["label"])
        if "language" in wanted:
            result["language"] = need(engines.language, "language").detect(body.text)
        if "sentiment" in wanted:
            result["sentiment"] = need(engines.sentiment, "sentiment").score(body.text)
        if "entities" in wanted:
            result["entities"] = perception.entities(body.text)
            result["entities_method"] = "patterns; 'name' is a capitalised-word heuristic"
        for name in wanted:
            analysed.inc(analysis=name)
        return result

    @router.get("/intents", dependencies=[Depends(require_scope("perception:analyze"))],
                responses=answers(ok={"model": Intents, "description": "The intents known, by examples."}))
    async def intents() -> dict[str, Any]:
        index = need(engines.intents, "embedding-model")
        counts: dict[str, int] = {}
        for label in index.labels:
            counts[label] = counts.get(label, 0) + 1
        return {"intents": counts, "floor": perception.INTENT_FLOOR, "model": engines.embedder.name}

    @router.post("/audio", dependencies=[Depends(require_scope("perception:analyze"))],
                 responses=answers(ok={"model": AudioActivity, "description": "Speech activity and loudness."}),
                 openapi_extra={
        "requestBody": {"required": True, "content": {kind: {"schema": {"type": "string", "format": "binary"}}
                                                      for kind in sorted(WAV_TYPES)}}})
    async def audio(request: Request) -> dict[str, Any]:
        kind = media_type(request)
        if kind not in WAV_TYPES:
            audio_done.inc(outcome="rejected")
            raise ServiceError(415, f"content type {kind or 'none'!r}: send the WAV as audio/wav")
        try:
            pcm = await anyio.to_thread.run_sync(decode_wav, await request.body())
        except AudioError as exc:
            audio_done.inc(outcome="rejected")
            raise ServiceError(exc.status, str(exc)) from None
        result = await anyio.to_thread.run_sync(perception.audio_activity, pcm.data)
        audio_done.inc(outcome="ok")
        return {"duration_s": round(pcm.duration_s, 3), "source_rate": pcm.source_rate,
                "source_channels": pcm.source_channels, **result}

    async def load() -> None:
        await anyio.to_thread.run_sync(engines.load, settings.embedding_model_dir, embedder)
        for name, reason in engines.errors.items():
            log.warning("engine did not load", extra={"engine": name, "error": reason})

    async def model_check() -> tuple[bool, str]:
        if engines.intents is None:
            if "embedding-model" in engines.errors:
                files_ok, files = model_files_check(settings.embedding_model_dir)
                return False, engines.errors["embedding-model"] if files_ok else files
            return False, "still loading"
        return True, (f"{engines.embedder.name} ({engines.embedder.dimension}-d, onnxruntime); "
                      f"{len(set(engines.intents.labels))} intents, {len(engines.intents.labels)} examples")

    def engine_check(engine_name: str, attribute: str, label: str) -> Any:
        async def check() -> tuple[bool, str]:
            if getattr(engines, attribute) is None:
                return False, engines.errors.get(engine_name, "still loading")
            return True, f"{label} loaded"

        return check

    return Unit(
        name="perception", router=router, admission={"/v1/analyze": "analysis", "/v1/audio": "analysis"},
        checks={"embedding-model": model_check,
                "language": engine_check("language", "language", "py3langid model"),
                "sentiment": engine_check("sentiment", "sentiment", "VADER lexicon")},
        body_limits={"/v1/audio": MAX_BYTES}, on_startup=[load],
    )
