"""voice-interaction: POST /v1/tts (espeak-ng), POST /v1/stt (pocketsphinx), sessions in Redis."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from .. import redis_store
from ..audio import MAX_BYTES, AudioError, decode_wav
from ..auth import Principal, require_scope
from ..errors import ServiceError
from ..metrics import Registry
from ..openapi import answers, binary
from ..redis_store import RedisLike, SessionStore
from ..requests import NonBlank, media_type, require_json
from ..settings import Settings
from ..stt import SttError, parse_phrases
from ..stt_worker import SttWorker
from ..tts import Espeak, TtsError
from ..unit import Unit

log = logging.getLogger("mlstack_services.voice")

WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}
MULTIPART_SLACK = 64 * 1024
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

# POST /v1/stt reads its body and query itself (raw WAV or a multipart form): declared here.
_WAV_BODY = {"schema": {"type": "string", "format": "binary"}}
STT_OPENAPI = {
    "parameters": [
        {"name": "mode", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["command", "free"], "default": "command"}},
        {"name": "phrases", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "command mode: comma-separated phrases to listen for"},
    ],
    "requestBody": {"required": True, "content": {
        **{kind: _WAV_BODY for kind in ("audio/wav", "audio/x-wav", "audio/wave", "application/octet-stream")},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, "mode": {"type": "string", "enum": ["command", "free"]},
            "phrases": {"type": "string"}}}},
    }},
}
TTS_OK = binary("audio/wav", "The speech, as 16-bit mono PCM WAV.")
TTS_OK["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in (
    ("X-Duration-Ms", "Length of the speech in ms."), ("X-Synthesis-Ms", "espeak-ng's wall time in ms."),
    ("X-Sample-Rate", "Samples per second of the WAV."))}


class TtsRequest(BaseModel):
    text: NonBlank = Field(min_length=1, max_length=1000)
    voice: str = Field(default="en-us", min_length=1, max_length=60)
    rate: int = Field(default=160, ge=80, le=450, description="words per minute")


class SessionRequest(BaseModel):
    metadata: dict[str, Any] = Field(default_factory=dict)


# The answers' shapes, for the OpenAPI document only (the routes return plain dicts).
class SttAnswer(BaseModel):
    text: str
    mode: str
    engine: str
    duration_s: float
    rtf: float
    confidence: float | None = Field(default=None, description="free mode only")
    phrases: int | None = Field(default=None, description="command mode: how many phrases were listened for")


class Session(BaseModel):
    id: str
    created_at: float
    subject: str
    metadata: dict[str, Any]
    ttl_s: int


class VoiceMetrics:
    def __init__(self, registry: Registry) -> None:
        self.tts = registry.counter("mlstack_tts_requests_total", "TTS requests by outcome.", ("outcome",))
        self.tts_audio = registry.counter("mlstack_tts_audio_seconds_total", "Seconds of speech synthesized.")
        self.tts_time = registry.histogram("mlstack_tts_synthesis_seconds", "espeak-ng wall time per request.")
        self.stt = registry.counter("mlstack_stt_requests_total", "STT requests by mode and outcome.",
                                    ("mode", "outcome"))
        self.stt_audio = registry.counter("mlstack_stt_audio_seconds_total", "Seconds of audio transcribed.",
                                          ("mode",))
        self.stt_rtf = registry.histogram("mlstack_stt_real_time_factor", "Decoding time / audio duration.",
                                          ("mode",), RTF_BUCKETS)
        self.sessions = registry.counter("mlstack_sessions_created_total", "Sessions created in Redis.")


async def _stt_input(request: Request) -> tuple[bytes, str, str | None]:
    """The WAV bytes, mode and phrases from a raw audio/wav body or a multipart form with 'file'."""
    kind = media_type(request)
    mode = request.query_params.get("mode")
    phrases = request.query_params.get("phrases")
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(422, "multipart body needs a 'file' part holding the WAV")
        data = await upload.read(MAX_BYTES + 1)
        await form.close()
        field_mode, field_phrases = form.get("mode"), form.get("phrases")
        mode = field_mode if isinstance(field_mode, str) and field_mode else mode
        phrases = field_phrases if isinstance(field_phrases, str) and field_phrases else phrases
    elif kind in WAV_TYPES or kind == "application/octet-stream":
        data = await request.body()
    else:
        raise ServiceError(415, f"content type {kind or 'none'!r}: send audio/wav, or multipart/form-data with 'file'")
    return data, (mode or "command").strip().lower(), phrases


def build(settings: Settings, registry: Registry, redis: RedisLike | None = None,
          espeak: Espeak | None = None, engine: SttWorker | None = None) -> Unit:
    client: RedisLike = redis if redis is not None else redis_store.connect(settings)
    sessions = SessionStore(client, settings.redis_prefix, settings.session_ttl_s)
    espeak = espeak or Espeak()
    owns_engine = engine is None
    stt_engine = engine if engine is not None else SttWorker()
    metrics = VoiceMetrics(registry)
    router = APIRouter(prefix="/v1", tags=["voice-interaction"])

    @router.post("/tts", dependencies=[Depends(require_scope("voice:tts")), Depends(require_json)],
                 response_class=Response, responses=answers(504, ok=TTS_OK))
    async def tts(body: TtsRequest) -> Response:
        try:
            speech = await espeak.synthesize(body.text, body.voice, body.rate)
        except TtsError as exc:
            metrics.tts.inc(outcome="error")
            raise ServiceError(exc.status, str(exc)) from None
        metrics.tts.inc(outcome="ok")
        metrics.tts_audio.inc(speech.duration_ms / 1000)
        metrics.tts_time.observe(speech.synthesis_ms / 1000)
        return Response(speech.wav, media_type="audio/wav", headers={
            "X-Duration-Ms": str(speech.duration_ms), "X-Synthesis-Ms": f"{speech.synthesis_ms:.1f}",
            "X-Sample-Rate": str(speech.sample_rate),
        })

    @router.post("/stt", dependencies=[Depends(require_scope("voice:stt"))], openapi_extra=STT_OPENAPI,
                 responses=answers(504, ok={"model": SttAnswer, "description": "The transcript."}))
    async def stt(request: Request) -> dict[str, Any]:
        data, mode, raw_phrases = await _stt_input(request)
        label = mode if mode in ("command", "free") else "invalid"
        try:
            if mode not in ("command", "free"):
                raise SttError(422, f"mode {mode!r}: use 'command' or 'free'")
            phrases = parse_phrases(raw_phrases) if mode == "command" else ()
            pcm = await anyio.to_thread.run_sync(decode_wav, data)
            result = await stt_engine.transcribe(pcm.data, pcm.duration_s, mode, phrases)
        except (AudioError, SttError) as exc:
            metrics.stt.inc(mode=label, outcome="rejected")
            raise ServiceError(exc.status, str(exc)) from None
        metrics.stt.inc(mode=mode, outcome="ok")
        metrics.stt_audio.inc(result.duration_s, mode=mode)
        metrics.stt_rtf.observe(result.rtf, mode=mode)
        answer: dict[str, Any] = {"text": result.text, "mode": mode, "engine": "pocketsphinx",
                                  "duration_s": round(result.duration_s, 3), "rtf": round(result.rtf, 4)}
        if result.confidence is not None:
            answer["confidence"] = result.confidence
        if mode == "command":
            answer["phrases"] = len(phrases)
        return answer

    @router.post("/sessions", status_code=201, dependencies=[Depends(require_scope("voice:session"))],
                 responses=answers(created={"model": Session, "description": "The session, stored in Redis."}))
    async def create_session(request: Request,
                             body: Annotated[SessionRequest | None, Body()] = None) -> dict[str, Any]:
        principal: Principal = request.state.principal
        try:
            session = await sessions.create((body or SessionRequest()).metadata, principal.subject)
        except RedisError as exc:
            raise ServiceError(503, f"session store (Redis) unavailable: {exc}") from None
        metrics.sessions.inc()
        return session

    @router.get("/sessions/{session_id}", dependencies=[Depends(require_scope("voice:session"))],
                responses=answers(404, ok={"model": Session, "description": "The session."}))
    async def get_session(session_id: str) -> dict[str, Any]:
        if not session_id.isalnum() or len(session_id) > 64:
            raise ServiceError(422, "session id: letters and digits only, at most 64")
        try:
            session = await sessions.get(session_id)
        except RedisError as exc:
            raise ServiceError(503, f"session store (Redis) unavailable: {exc}") from None
        if session is None:
            raise ServiceError(404, f"no session {session_id} (never created, or expired)")
        return session

    async def redis_check() -> tuple[bool, str]:
        try:
            return await redis_store.check(client, settings.redis_prefix)
        except RedisError as exc:
            return False, f"{type(exc).__name__}: {exc}"

    async def stt_check() -> tuple[bool, str]:
        return stt_engine.alive()

    async def close() -> None:
        await client.aclose()
        if owns_engine:
            await anyio.to_thread.run_sync(stt_engine.close)

    return Unit(
        name="voice-interaction", router=router,
        checks={"redis": redis_check, "espeak-ng": espeak.check, "pocketsphinx": stt_check},
        body_limits={"/v1/stt": MAX_BYTES + MULTIPART_SLACK},
        # Synthesis and recognition share the unit's CPU (its container has one core by default).
        admission={"/v1/tts": "speech", "/v1/stt": "speech"}, on_startup=[stt_engine.warm], on_shutdown=[close],
    )
