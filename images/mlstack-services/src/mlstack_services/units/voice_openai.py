"""OpenAI-compatible audio endpoints of voice-interaction, so the official ``openai`` client works.

``POST /v1/audio/transcriptions`` (multipart: file, model, language, prompt, response_format,
temperature) runs Whisper; ``POST /v1/audio/speech`` (JSON: model, input, voice,
response_format, speed) runs Piper or espeak-ng and streams WAV one sentence at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from ..audio import MAX_BYTES
from ..auth import require_scope
from ..errors import ServiceError
from ..openapi import answers, binary
from ..requests import SpokenText, media_type, require_json
from ..tts import DEFAULT_PIPER_VOICE

if TYPE_CHECKING:
    from ..whisper import Whisper
    from .voice import Speaker, VoiceMetrics

# Model names a client may send: OpenAI's map onto this unit's engines.
STT_MODELS = ("whisper-1", "whisper-base")
TTS_MODELS = {"tts-1": "piper", "tts-1-hd": "piper", "gpt-4o-mini-tts": "piper", "piper": "piper",
              "espeak-ng": "espeak-ng"}
# OpenAI's voice names: this unit has one Piper voice, and each of them speaks with it.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
FORMATS = ("json", "text", "verbose_json")
_FIELD_DOCS = {
    "file": {"type": "string", "format": "binary", "description": "PCM WAV, at most 10 MiB and 60 s"},
    "model": {"type": "string", "enum": list(STT_MODELS), "default": "whisper-1"},
    "language": {"type": "string", "description": "ISO 639-1; absent: detected"},
    "prompt": {"type": "string", "maxLength": 1000, "description": "Whisper's initial prompt"},
    "response_format": {"type": "string", "enum": list(FORMATS), "default": "json"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
}
TRANSCRIBE_OPENAPI = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": _FIELD_DOCS}}}}}


class Transcription(BaseModel):
    text: str


class VerboseSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseTranscription(BaseModel):
    task: str
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment]


class SpeechRequest(BaseModel):
    model: str = Field(default="tts-1", max_length=60, description="tts-1, tts-1-hd, piper: Piper; espeak-ng")
    input: SpokenText = Field(min_length=1, max_length=4096)
    voice: str = Field(default="alloy", min_length=1, max_length=80,
                       description=f"Piper: {DEFAULT_PIPER_VOICE} or an OpenAI voice name (all speak with it); "
                                   "espeak-ng: an espeak-ng voice (en-us, de, ...)")
    response_format: Literal["wav"] = "wav"
    speed: float = Field(default=1.0, ge=0.5, le=2.8, description="1.0 is the voice's own pace")
    instructions: str | None = Field(default=None, max_length=4096, description="accepted, not used")


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServiceError(422, f"{name}: a text field, not a file")
    return value


def _temperature(raw: str | None) -> float:
    try:
        value = float(raw) if raw not in (None, "") else 0.0
    except ValueError:
        raise ServiceError(422, f"temperature {raw!r}: a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0:
        raise ServiceError(422, f"temperature {value:g}: a number from 0 to 1")
    return value


async def _transcription_form(request: Request) -> tuple[bytes, dict[str, str | None]]:
    if media_type(request) != "multipart/form-data":
        raise ServiceError(415, "content type: send multipart/form-data with the audio in 'file'")
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(422, "file: the multipart body needs a 'file' part holding the WAV")
        data = await upload.read(MAX_BYTES + 1)
        fields = {name: _field(form, name) for name in _FIELD_DOCS if name != "file"}
    finally:
        await form.close()
    return data, fields


def add_openai_routes(router: APIRouter, whisper: Whisper, speaker: Speaker, metrics: VoiceMetrics) -> None:
    """/audio/transcriptions and /audio/speech on the unit's /v1 router."""
    from .voice import recognize  # voice.py imports this module inside build()
    verbose_ok = {"description": "json: {text}; verbose_json: language, duration, segments; text: plain text.",
                  "content": {"application/json": {"schema": {"oneOf": [
                      {"$ref": "#/components/schemas/Transcription"},
                      {"$ref": "#/components/schemas/VerboseTranscription"}]}},
                      "text/plain": {"schema": {"type": "string"}}}}

    @router.post("/audio/transcriptions", tags=["openai"], dependencies=[Depends(require_scope("voice:stt"))],
                 openapi_extra=TRANSCRIBE_OPENAPI, response_model=None,
                 responses={**answers(504), 200: verbose_ok})
    async def transcriptions(request: Request) -> Any:
        data, fields = await _transcription_form(request)
        model = fields["model"] or "whisper-1"
        if model not in STT_MODELS:
            raise ServiceError(422, f"model {model!r}: use {' or '.join(STT_MODELS)} (Whisper base)")
        fmt = fields["response_format"] or "json"
        if fmt not in FORMATS:
            raise ServiceError(422, f"response_format {fmt!r}: use json, text or verbose_json")
        prompt = fields["prompt"]
        if prompt is not None and len(prompt) > 1000:
            raise ServiceError(422, "prompt: at most 1000 characters")
        try:
            result = await recognize(whisper, request, data, fields["language"], prompt,
                                     _temperature(fields["temperature"]))
        except ServiceError:
            metrics.stt.inc(mode="free", outcome="rejected")
            raise
        metrics.stt.inc(mode="free", outcome="ok")
        metrics.stt_audio.inc(result.duration_s, mode="free")
        metrics.stt_rtf.observe(result.rtf, mode="free")
        if fmt == "text":
            return PlainTextResponse(result.text + "\n")
        if fmt == "json":
            return {"text": result.text}
        return VerboseTranscription(
            task="transcribe", language=result.language, duration=round(result.duration_s, 3), text=result.text,
            segments=[VerboseSegment(id=s.id, seek=0, start=s.start, end=s.end, text=s.text, tokens=list(s.tokens),
                                     temperature=s.temperature, avg_logprob=s.avg_logprob,
                                     compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob)
                      for s in result.segments]).model_dump()

    @router.post("/audio/speech", tags=["openai"],
                 dependencies=[Depends(require_scope("voice:tts")), Depends(require_json)], response_class=Response,
                 responses=answers(504, ok=binary("audio/wav", "The speech, streamed.")))
    async def speech(request: Request, body: SpeechRequest) -> Response:
        engine = TTS_MODELS.get(body.model)
        if engine is None:
            raise ServiceError(422, f"model {body.model!r}: use {', '.join(TTS_MODELS)}")
        voice: str | None = body.voice
        if engine == "piper" and body.voice in OPENAI_VOICES:
            voice = None  # the unit's default Piper voice
        rate = max(80, min(450, round(160 * body.speed)))
        return await speaker.stream(request, body.input, engine, voice, rate)
