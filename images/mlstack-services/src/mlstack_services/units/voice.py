"""voice-interaction: POST /v1/tts (Piper or espeak-ng), POST /v1/stt (Whisper or pocketsphinx),
the OpenAI-compatible /v1/audio/* (voice_openai.py), sessions in Redis."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from .. import redis_store
from ..audio import MAX_BYTES, AudioError, decode_wav
from ..auth import Principal, require_scope
from ..errors import ServiceError
from ..metrics import Registry
from ..openapi import answers, binary
from ..redis_store import RedisLike, SessionStore
from ..requests import SpokenText, media_type, require_json
from ..settings import Settings
from ..stt import SttError, parse_phrases
from ..stt_worker import SttWorker
from ..tts import Espeak, Piper, Speech, TtsError, streaming_wav_header
from ..unit import Unit
from ..whisper import Cancelled, Whisper, WhisperError, WhisperTranscript, check_language

log = logging.getLogger("mlstack_services.voice")

T = TypeVar("T")
WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}
MULTIPART_SLACK = 64 * 1024
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
MAX_TEXT = 4096  # characters, as OpenAI's /v1/audio/speech
TtsEngine = Literal["piper", "espeak-ng"]

# POST /v1/stt reads its body and query itself (raw WAV or a multipart form): declared here.
_WAV_BODY = {"schema": {"type": "string", "format": "binary"}}
_STT_FIELDS = {
    "mode": {"type": "string", "enum": ["command", "free"], "default": "command"},
    "engine": {"type": "string", "enum": ["whisper", "pocketsphinx"],
               "description": "free mode: whisper (default) or pocketsphinx' full LM; command mode: pocketsphinx"},
    "language": {"type": "string", "description": "Whisper: ISO 639-1 code; absent: detected"},
    "phrases": {"type": "string", "description": "command mode: comma-separated phrases to listen for"},
}
STT_OPENAPI = {
    "parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in _STT_FIELDS.items()],
    "requestBody": {"required": True, "content": {
        **{kind: _WAV_BODY for kind in ("audio/wav", "audio/x-wav", "audio/wave", "application/octet-stream")},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, **_STT_FIELDS}}},
    }},
}
TTS_OK = binary("audio/wav", "The speech, as 16-bit mono PCM WAV (stream: sizes unknown, 0xFFFFFFFF).")
TTS_OK["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in (
    ("X-Duration-Ms", "Length of the speech in ms (not when streamed)."),
    ("X-Synthesis-Ms", "The engine's wall time in ms (not when streamed)."),
    ("X-Sample-Rate", "Samples per second of the WAV."), ("X-Engine", "piper or espeak-ng."))}


class TtsRequest(BaseModel):
    text: SpokenText = Field(min_length=1, max_length=MAX_TEXT)
    engine: TtsEngine = Field(default="piper",
                              description="piper (neural, natural) or espeak-ng (fast, many languages)")
    voice: str | None = Field(default=None, min_length=1, max_length=80,
                              description="piper: en_US-joe-medium (default); espeak-ng: en-us (default), de, ...")
    rate: int = Field(default=160, ge=80, le=450, description="words per minute (Piper: 160 is its own pace)")
    stream: bool = Field(default=False, description="chunked WAV, one sentence at a time (Piper)")


class SessionRequest(BaseModel):
    metadata: dict[str, Any] = Field(default_factory=dict)


# The answers' shapes, for the OpenAPI document only (the routes return plain dicts).
class SttSegment(BaseModel):
    start: float
    end: float
    text: str


class SttAnswer(BaseModel):
    text: str
    mode: str
    engine: str
    duration_s: float
    rtf: float
    confidence: float | None = Field(default=None, description="free mode only")
    phrases: int | None = Field(default=None, description="command mode: how many phrases were listened for")
    language: str | None = Field(default=None, description="Whisper: given or detected")
    language_probability: float | None = Field(default=None, description="Whisper: of the detected language")
    segments: list[SttSegment] | None = Field(default=None, description="Whisper: timed segments (s)")
    device: str | None = Field(default=None, description="Whisper: where it ran (cpu int8, cuda float16)")


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


async def _stt_input(request: Request) -> tuple[bytes, dict[str, str]]:
    """The WAV bytes and the fields (mode, engine, language, phrases) from a raw audio/wav body or a
    multipart form with 'file'; form fields win over query parameters."""
    kind = media_type(request)
    fields = {name: request.query_params.get(name, "") for name in _STT_FIELDS}
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(422, "file: the multipart body needs a 'file' part holding the WAV")
        data = await upload.read(MAX_BYTES + 1)
        await form.close()
        for name in _STT_FIELDS:
            value = form.get(name)
            if isinstance(value, str) and value:
                fields[name] = value
    elif kind in WAV_TYPES or kind == "application/octet-stream":
        data = await request.body()
    else:
        raise ServiceError(415, f"content type {kind or 'none'!r}: send audio/wav, or multipart/form-data with 'file'")
    return data, fields


async def while_connected(request: Request, work: Callable[[threading.Event], Awaitable[T]]) -> T:
    """Runs ``work(stop)``; ``stop`` is set when the client goes away, and the engines check it
    between segments or sentences, so a cancelled request leaves nothing running."""
    stop = threading.Event()
    done = anyio.Event()

    async def watch() -> None:
        while not done.is_set():
            if await request.is_disconnected():
                stop.set()
                return
            with anyio.move_on_after(0.25):
                await done.wait()

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            result = await work(stop)
        except Exception as exc:  # raised outside the group, not wrapped in an ExceptionGroup
            failure = exc
        finally:
            done.set()
    if failure is not None:
        raise failure
    return result


async def recognize(whisper: Whisper, request: Request, data: bytes, language: str | None,
                    prompt: str | None = None, temperature: float = 0.0) -> WhisperTranscript:
    """A WAV upload through Whisper; bad input and a cancelled request as ServiceError."""
    try:
        code = check_language(language)
        pcm = await anyio.to_thread.run_sync(decode_wav, data)

        async def work(stop: threading.Event) -> WhisperTranscript:
            return await anyio.to_thread.run_sync(
                lambda: whisper.transcribe(pcm.data, pcm.duration_s, code, prompt, temperature, stop))

        return await while_connected(request, work)
    except AudioError as exc:
        raise ServiceError(exc.status, f"file: {exc}") from None
    except WhisperError as exc:
        raise ServiceError(exc.status, str(exc)) from None
    except Cancelled:
        raise ServiceError(400, "the client went away: recognition stopped") from None


def whisper_answer(result: WhisperTranscript, whisper: Whisper) -> dict[str, Any]:
    return {"text": result.text, "mode": "free", "engine": "whisper", "duration_s": round(result.duration_s, 3),
            "rtf": round(result.rtf, 4), "confidence": result.confidence, "language": result.language,
            "language_probability": result.language_probability,
            "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in result.segments],
            "device": f"{whisper.device} {whisper.compute_type}"}


class Speaker:
    """Both TTS engines behind one call: a whole WAV, or a stream of one sentence at a time."""

    def __init__(self, espeak: Espeak, piper: Piper, metrics: VoiceMetrics) -> None:
        self.espeak, self.piper, self.metrics = espeak, piper, metrics

    async def speak(self, request: Request, text: str, engine: str, voice: str | None, rate: int) -> Speech:
        try:
            if engine == "espeak-ng":
                speech = await self.espeak.synthesize(text, voice or "en-us", rate)
            else:
                speech = await while_connected(request, lambda stop: self.piper.synthesize(text, voice, rate, stop))
        except TtsError as exc:
            self.metrics.tts.inc(outcome="error")
            raise ServiceError(exc.status, str(exc)) from None
        self.metrics.tts.inc(outcome="ok")
        self.metrics.tts_audio.inc(speech.duration_ms / 1000)
        self.metrics.tts_time.observe(speech.synthesis_ms / 1000)
        return speech

    def answer(self, speech: Speech, engine: str) -> Response:
        return Response(speech.wav, media_type="audio/wav", headers={
            "X-Duration-Ms": str(speech.duration_ms), "X-Synthesis-Ms": f"{speech.synthesis_ms:.1f}",
            "X-Sample-Rate": str(speech.sample_rate), "X-Engine": engine})

    async def stream(self, request: Request, text: str, engine: str, voice: str | None, rate: int) -> Response:
        """Chunked WAV: the header first, then each sentence's PCM as Piper finishes it."""
        if engine == "espeak-ng":  # a few ms for any text: one piece
            return self.answer(await self.speak(request, text, engine, voice, rate), engine)
        try:
            name = self.piper.resolve(voice)
            rate_hz = await anyio.to_thread.run_sync(self.piper.sample_rate, name)
        except TtsError as exc:
            self.metrics.tts.inc(outcome="error")
            raise ServiceError(exc.status, str(exc)) from None

        async def body() -> AsyncIterator[bytes]:
            yield streaming_wav_header(rate_hz)
            seconds = 0.0
            async for pcm in self.piper.stream(text, name, rate):
                seconds += len(pcm) / 2 / rate_hz
                yield pcm
            self.metrics.tts.inc(outcome="ok")
            self.metrics.tts_audio.inc(seconds)

        return StreamingResponse(body(), media_type="audio/wav",
                                 headers={"X-Sample-Rate": str(rate_hz), "X-Engine": engine})


def build(settings: Settings, registry: Registry, redis: RedisLike | None = None,
          espeak: Espeak | None = None, engine: SttWorker | None = None, whisper: Whisper | None = None,
          piper: Piper | None = None) -> Unit:
    client: RedisLike = redis if redis is not None else redis_store.connect(settings)
    sessions = SessionStore(client, settings.redis_prefix, settings.session_ttl_s)
    espeak = espeak or Espeak()
    piper = piper or Piper(settings.piper_voice_dir)
    whisper = whisper or Whisper(settings.whisper_model_dir, settings.placement, settings.whisper_beam_size)
    owns_engine = engine is None
    stt_engine = engine if engine is not None else SttWorker()
    metrics = VoiceMetrics(registry)
    speaker = Speaker(espeak, piper, metrics)
    router = APIRouter(prefix="/v1", tags=["voice-interaction"])

    @router.post("/tts", dependencies=[Depends(require_scope("voice:tts")), Depends(require_json)],
                 response_class=Response, responses=answers(504, ok=TTS_OK))
    async def tts(request: Request, body: TtsRequest) -> Response:
        if body.stream:
            return await speaker.stream(request, body.text, body.engine, body.voice, body.rate)
        return speaker.answer(await speaker.speak(request, body.text, body.engine, body.voice, body.rate),
                              body.engine)

    async def pocketsphinx(data: bytes, mode: str, raw_phrases: str) -> dict[str, Any]:
        phrases = parse_phrases(raw_phrases or None) if mode == "command" else ()
        pcm = await anyio.to_thread.run_sync(decode_wav, data)
        result = await stt_engine.transcribe(pcm.data, pcm.duration_s, mode, phrases)
        answer: dict[str, Any] = {"text": result.text, "mode": mode, "engine": "pocketsphinx",
                                  "duration_s": round(result.duration_s, 3), "rtf": round(result.rtf, 4)}
        if result.confidence is not None:
            answer["confidence"] = result.confidence
        if mode == "command":
            answer["phrases"] = len(phrases)
        return answer

    @router.post("/stt", dependencies=[Depends(require_scope("voice:stt"))], openapi_extra=STT_OPENAPI,
                 responses=answers(504, ok={"model": SttAnswer, "description": "The transcript."}))
    async def stt(request: Request) -> dict[str, Any]:
        data, fields = await _stt_input(request)
        mode = (fields["mode"] or "command").strip().lower()
        label = mode if mode in ("command", "free") else "invalid"
        chosen = (fields["engine"] or ("whisper" if mode == "free" else "pocketsphinx")).strip().lower()
        try:
            if mode not in ("command", "free"):
                raise SttError(422, f"mode {mode!r}: use 'command' or 'free'")
            if chosen not in ("whisper", "pocketsphinx") or (mode == "command" and chosen != "pocketsphinx"):
                raise SttError(422, f"engine {chosen!r}: free mode takes whisper or pocketsphinx, "
                                    "command mode pocketsphinx")
            if chosen == "whisper":
                answer = whisper_answer(await recognize(whisper, request, data, fields["language"]), whisper)
            else:
                answer = await pocketsphinx(data, mode, fields["phrases"])
        except (AudioError, SttError) as exc:
            metrics.stt.inc(mode=label, outcome="rejected")
            raise ServiceError(exc.status, str(exc)) from None
        except ServiceError:
            metrics.stt.inc(mode=label, outcome="rejected")
            raise
        metrics.stt.inc(mode=mode, outcome="ok")
        metrics.stt_audio.inc(answer["duration_s"], mode=mode)
        metrics.stt_rtf.observe(answer["rtf"], mode=mode)
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

    async def whisper_check() -> tuple[bool, str]:
        return whisper.check()

    async def warm() -> None:
        # Both models load before the first request (about 3 s), off the event loop.
        await anyio.to_thread.run_sync(whisper.load)
        await anyio.to_thread.run_sync(piper.load)

    from .voice_openai import add_openai_routes  # the OpenAI-compatible /v1/audio/*, on the same engines

    add_openai_routes(router, whisper, speaker, metrics)

    async def close() -> None:
        await client.aclose()
        if owns_engine:
            await anyio.to_thread.run_sync(stt_engine.close)

    return Unit(
        name="voice-interaction", router=router,
        checks={"redis": redis_check, "espeak-ng": espeak.check, "pocketsphinx": stt_check,
                "whisper": whisper_check, "piper": piper.check},
        body_limits={"/v1/stt": MAX_BYTES + MULTIPART_SLACK, "/v1/audio/transcriptions": MAX_BYTES + MULTIPART_SLACK},
        # Synthesis and recognition share the unit's CPU.
        admission={"/v1/tts": "speech", "/v1/stt": "speech", "/v1/audio/transcriptions": "speech",
                   "/v1/audio/speech": "speech"},
        on_startup=[stt_engine.warm, warm], on_shutdown=[close],
    )
