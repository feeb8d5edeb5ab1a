"""voice-interaction with real espeak-ng and pocketsphinx (skipped, with the reason, where absent)."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Callable

import pytest
from fakes import FakeRedis
from fastapi.testclient import TestClient
from helpers import bearer, espeak_wav, needs_espeak, needs_pocketsphinx, silence_wav
from mlstack_services.audio import MAX_BYTES, wav_bytes

Mint = Callable[..., str]


@pytest.fixture
def auth(mint: Mint) -> dict[str, str]:
    return bearer(mint("voice:tts voice:stt voice:session"))


def tts(client: TestClient, auth: dict[str, str], text: str, **extra: object) -> bytes:
    response = client.post("/v1/tts", json={"text": text, "engine": "espeak-ng", **extra}, headers=auth)
    assert response.status_code == 200, response.text
    return response.content


# --- TTS -------------------------------------------------------------------------------------


@needs_espeak
def test_tts_returns_a_valid_wav(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/tts", json={"text": "turn on the lights", "engine": "espeak-ng"},
                                 headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as reader:
        frames = reader.getnframes()
        rate = reader.getframerate()
        assert reader.getnchannels() == 1 and reader.getsampwidth() == 2
        # The header is rewritten: nframes matches the data (espeak-ng's streamed header does not).
        assert len(reader.readframes(frames + 10)) == frames * 2
    duration_ms = int(response.headers["x-duration-ms"])
    assert duration_ms > 0
    assert abs(duration_ms - frames / rate * 1000) <= 1
    assert float(response.headers["x-synthesis-ms"]) > 0


@needs_espeak
def test_tts_rate_changes_the_duration(voice_client: TestClient, auth: dict[str, str]) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    slow = voice_client.post("/v1/tts", json={"text": text, "rate": 100, "engine": "espeak-ng"}, headers=auth)
    fast = voice_client.post("/v1/tts", json={"text": text, "rate": 400, "engine": "espeak-ng"}, headers=auth)
    assert int(slow.headers["x-duration-ms"]) > 1.5 * int(fast.headers["x-duration-ms"])


@needs_espeak
def test_tts_other_voice(voice_client: TestClient, auth: dict[str, str]) -> None:
    body = {"text": "guten tag", "voice": "de", "engine": "espeak-ng"}
    assert voice_client.post("/v1/tts", json=body, headers=auth).status_code == 200


@needs_espeak
def test_tts_text_is_not_parsed_as_options(voice_client: TestClient, auth: dict[str, str]) -> None:
    wav = tts(voice_client, auth, "--version; rm -rf / $(reboot) `id`")
    assert wav[:4] == b"RIFF"


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"text": ""}, 422, "text"),
    ({"text": "   "}, 422, "blank"),
    ({"text": "x" * 4097}, 422, "text"),
    ({"text": "hi\x00there"}, 422, "NUL"),
    ({"text": "hi\x00there", "engine": "espeak-ng"}, 422, "NUL"),
    ({"text": "hi", "rate": 79}, 422, "rate"),
    ({"text": "hi", "rate": 451}, 422, "rate"),
    ({}, 422, "text"),
    ({"text": "hi", "voice": "-v --help", "engine": "espeak-ng"}, 422, "voice"),
    ({"text": "hi", "voice": "-v --help"}, 422, "voice"),
    ({"text": "hi", "engine": "festival"}, 422, "engine"),
])
def test_tts_bad_input(voice_client: TestClient, auth: dict[str, str], body: dict[str, object],
                       status: int, needle: str) -> None:
    response = voice_client.post("/v1/tts", json=body, headers=auth)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


@needs_espeak
def test_tts_unknown_voice_is_422(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/tts", json={"text": "hi", "voice": "xx-nowhere", "engine": "espeak-ng"},
                                 headers=auth)
    assert response.status_code == 422
    assert "not installed" in response.json()["error"]["message"]


def test_tts_malformed_json_is_400(voice_client: TestClient, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    response = voice_client.post("/v1/tts", content=b'{"text": "hi"', headers=headers)
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]["message"]
    assert voice_client.get("/health").status_code == 200


def test_tts_wrong_content_type_is_415(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/tts", content=b"text=hi", headers={**auth, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]


def test_json_body_over_the_limit_is_413(voice_client: TestClient, auth: dict[str, str]) -> None:
    body = json.dumps({"text": "a" * (2 << 20)}).encode()
    response = voice_client.post("/v1/tts", content=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_413(voice_client: TestClient, auth: dict[str, str]) -> None:
    def chunks() -> object:
        yield b'{"text": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = voice_client.post("/v1/tts", content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 413


# --- STT -------------------------------------------------------------------------------------


@needs_espeak
@needs_pocketsphinx
@pytest.mark.parametrize("phrase", ["turn on the lights", "what time is it"])
def test_stt_command_mode_recovers_the_phrase_from_tts(voice_client: TestClient, auth: dict[str, str],
                                                       phrase: str) -> None:
    wav = tts(voice_client, auth, phrase)
    response = voice_client.post("/v1/stt", content=wav, headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == phrase
    assert body["mode"] == "command" and body["engine"] == "pocketsphinx"
    assert body["duration_s"] > 0.5 and 0 < body["rtf"] < 1


@needs_espeak
@needs_pocketsphinx
def test_stt_multipart_upload_with_form_fields(voice_client: TestClient, auth: dict[str, str]) -> None:
    wav = espeak_wav("open the window")  # espeak-ng's own streamed header, 22050 Hz
    response = voice_client.post("/v1/stt", files={"file": ("cmd.wav", wav, "audio/wav")},
                                 data={"mode": "command", "phrases": "open the window, close the window, stop"},
                                 headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "open the window"
    assert response.json()["phrases"] == 3


@needs_espeak
@needs_pocketsphinx
def test_stt_custom_phrases_in_the_query(voice_client: TestClient, auth: dict[str, str]) -> None:
    wav = espeak_wav("start the engine")
    response = voice_client.post("/v1/stt", params={"phrases": "start the engine,stop the engine,go home"},
                                 content=wav, headers={**auth, "Content-Type": "audio/x-wav"})
    assert response.json()["text"] == "start the engine"


@needs_espeak
@needs_pocketsphinx
def test_stt_stereo_48k_input_is_resampled(voice_client: TestClient, auth: dict[str, str]) -> None:
    from mlstack_services.audio import audioop

    with wave.open(io.BytesIO(espeak_wav("play some music"))) as reader:
        mono = reader.readframes(reader.getnframes())
    up, _ = audioop.ratecv(mono, 2, 1, 22050, 48000, None)
    stereo = audioop.tostereo(up, 2, 1.0, 1.0)
    response = voice_client.post("/v1/stt", content=wav_bytes(stereo, 48000, 2, 2),
                                 headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "play some music"


@needs_espeak
@needs_pocketsphinx
def test_stt_free_mode_pocketsphinx_returns_text_and_says_free(voice_client: TestClient,
                                                               auth: dict[str, str]) -> None:
    wav = tts(voice_client, auth, "i would like a cup of coffee")
    response = voice_client.post("/v1/stt?mode=free&engine=pocketsphinx", content=wav,
                                 headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "free" and body["engine"] == "pocketsphinx"
    assert body["text"].strip()
    assert 0.0 <= body["confidence"] <= 1.0


@pytest.mark.parametrize(("content", "ctype", "status", "needle"), [
    (b"", "audio/wav", 400, "empty"),
    (b"ID3\x03\x00 this is an mp3, honest", "audio/wav", 415, "not a WAV"),
    (b"RIFF\x10\x00\x00\x00WAVEjunkjunk", "audio/wav", 415, "corrupt"),
    (b"hello", "text/plain", 415, "audio/wav"),
    (wav_bytes(b"", 16000), "audio/wav", 400, "no audio"),
])
def test_stt_rejects_bad_uploads(voice_client: TestClient, auth: dict[str, str], content: bytes, ctype: str,
                                 status: int, needle: str) -> None:
    response = voice_client.post("/v1/stt", content=content, headers={**auth, "Content-Type": ctype})
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_stt_rejects_audio_over_60_seconds(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/stt", content=silence_wav(61), headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 413
    assert "60 s" in response.json()["error"]["message"]


def test_stt_rejects_uploads_over_10_mb(voice_client: TestClient, auth: dict[str, str]) -> None:
    big = wav_bytes(b"\x00\x00" * (MAX_BYTES // 2 + 1000), 96000)
    response = voice_client.post("/v1/stt", content=big, headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 413
    multipart = voice_client.post("/v1/stt", files={"file": ("big.wav", big, "audio/wav")}, headers=auth)
    assert multipart.status_code == 413
    assert voice_client.get("/health").status_code == 200


def test_stt_multipart_without_file_is_422(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/stt", data={"mode": "free"}, files={"other": ("x.txt", b"x")}, headers=auth)
    assert response.status_code == 422
    assert "'file'" in response.json()["error"]["message"]


@pytest.mark.parametrize(("query", "needle"), [
    ("mode=shouting", "mode"),
    pytest.param("phrases=turn+on+the+flibbertigibbet", "flibbertigibbet", marks=needs_pocketsphinx),
    ("phrases=rm+-rf", "letters"),
])
def test_stt_bad_parameters_are_422(voice_client: TestClient, auth: dict[str, str], query: str, needle: str) -> None:
    response = voice_client.post(f"/v1/stt?{query}", content=silence_wav(0.5, 16000, 2),
                                 headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]["message"]


# --- sessions --------------------------------------------------------------------------------


def test_sessions_live_under_the_prefix_with_a_ttl(voice_client: TestClient, auth: dict[str, str],
                                                   fake_redis: FakeRedis) -> None:
    created = voice_client.post("/v1/sessions", json={"metadata": {"device": "kitchen"}}, headers=auth)
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    key = f"voice-interaction:session:{session_id}"
    assert list(fake_redis.data) == [key]
    ttl = fake_redis.ttl_of(key)
    assert ttl is not None and 3500 < ttl <= 3600
    fetched = voice_client.get(f"/v1/sessions/{session_id}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["metadata"] == {"device": "kitchen"}
    assert fetched.json()["subject"] == "tester"


def test_unknown_session_is_404(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.get("/v1/sessions/0123abcd", headers=auth)
    assert response.status_code == 404


def test_sessions_when_redis_is_down_are_503(voice_client: TestClient, auth: dict[str, str],
                                             fake_redis: FakeRedis) -> None:
    fake_redis.down = True
    response = voice_client.post("/v1/sessions", headers=auth)
    assert response.status_code == 503
    assert "Redis" in response.json()["error"]["message"]
    assert voice_client.get("/health").status_code == 200
