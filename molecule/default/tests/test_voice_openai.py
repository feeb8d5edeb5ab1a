"""End to end, after phase5: the official ``openai`` client against the deployed voice unit (8006).

Real speech both ways: Piper speaks held-out sentences through /v1/audio/speech and Whisper
hears them back through /v1/audio/transcriptions; tokens are minted as in test_services.py.
"""

from __future__ import annotations

import io
import re
import time
import uuid
import wave
from pathlib import Path

import jwt
import openai
import pytest
import requests
from test_services import SECRETS

VOICE = "http://127.0.0.1:8006"


def client(scopes: str = "voice:tts voice:stt") -> openai.OpenAI:
    now = int(time.time())
    claims = {"iss": "mlstack", "sub": "molecule-openai", "aud": "voice-interaction", "scope": scopes,
              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    key = jwt.encode(claims, (SECRETS / "jwt" / "signing.pem").read_bytes(), algorithm="EdDSA")
    return openai.OpenAI(base_url=VOICE + "/v1", api_key=key, timeout=120, max_retries=0)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def speak(text: str, voice: str = "alloy", model: str = "tts-1") -> bytes:
    audio = client().audio.speech.create(model=model, voice=voice, input=text, response_format="wav")
    return audio.read()


def test_ready_says_where_whisper_runs() -> None:
    body = requests.get(VOICE + "/ready", timeout=10).json()
    assert body["ready"], body
    assert "Whisper base on cpu int8" in body["checks"]["whisper"]["reason"]
    assert "en_US-joe-medium" in body["checks"]["piper"]["reason"]


@pytest.mark.parametrize("sentence", [
    "Could you switch off the heating in the bedroom tonight",
    "Remind me to water the tomatoes tomorrow morning",
])
def test_speech_then_transcription_through_the_openai_client(sentence: str, tmp_path: Path) -> None:
    wav = speak(sentence)
    with wave.open(io.BytesIO(wav)) as reader:
        assert reader.getframerate() == 22050 and reader.getnchannels() == 1
        assert len(reader.readframes(10**7)) / 2 / 22050 > 1.0
    path = tmp_path / "speech.wav"
    path.write_bytes(wav)
    with path.open("rb") as upload:
        result = client().audio.transcriptions.create(model="whisper-1", file=upload, language="en")
    assert words(result.text) == words(sentence), result.text


def test_verbose_json_has_timed_segments_and_the_detected_language(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    path.write_bytes(speak("The library closes early on Sundays. Bring the books back before noon."))
    with path.open("rb") as upload:
        result = client().audio.transcriptions.create(model="whisper-1", file=upload,
                                                      response_format="verbose_json")
    assert result.language == "en"
    assert result.segments and result.segments[0].start >= 0 and result.segments[-1].end <= result.duration + 0.1
    assert "library" in result.text.lower()


def test_text_format_and_espeak_voice(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    path.write_bytes(speak("please open the garage door", voice="en-us", model="espeak-ng"))
    with path.open("rb") as upload:
        text = client().audio.transcriptions.create(model="whisper-1", file=upload, response_format="text")
    assert "garage door" in str(text).lower()


def test_bad_input_is_a_4xx_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not audio")
    with path.open("rb") as upload, pytest.raises(openai.APIStatusError) as refused:
        client().audio.transcriptions.create(model="whisper-1", file=upload)
    assert refused.value.status_code == 415 and "file" in str(refused.value)
    with pytest.raises(openai.UnprocessableEntityError) as bad_voice:
        client().audio.speech.create(model="tts-1", voice="nobody-here", input="hello")
    assert "voice" in str(bad_voice.value)
    with pytest.raises(openai.UnprocessableEntityError) as empty:
        client().audio.speech.create(model="tts-1", voice="alloy", input="   ")
    assert "input" in str(empty.value)


def test_a_token_without_the_scope_is_refused() -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client("voice:stt").audio.speech.create(model="tts-1", voice="alloy", input="hello")
