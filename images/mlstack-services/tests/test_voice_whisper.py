"""voice-interaction with Whisper base and Piper: real speech both ways, no canned answers.

Sentences here are the tests' own; the benchmark's held-out list (benchmarks/services.py) shares
none of them.
"""

from __future__ import annotations

import io
import json
import re
import struct
import threading
import wave
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from helpers import bearer, espeak_wav, needs_espeak, needs_piper, needs_whisper, silence_wav, wer
from mlstack_services.audio import decode_wav, wav_bytes
from mlstack_services.tts import Piper, TtsError, length_scale, streaming_wav_header
from mlstack_services.whisper import (
    Cancelled,
    Whisper,
    WhisperError,
    check_language,
    cpu_budget,
    cuda_compute_type,
    one_encode_model,
)
from mlstack_services.whisper_export import VOCABULARY_SIZE, vocabulary

Mint = Callable[..., str]


@pytest.fixture
def auth(mint: Mint) -> dict[str, str]:
    return bearer(mint("voice:tts voice:stt"))


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def piper_wav(client: TestClient, auth: dict[str, str], text: str, **extra: object) -> bytes:
    response = client.post("/v1/tts", json={"text": text, **extra}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["x-engine"] == extra.get("engine", "piper")
    return response.content


# --- pure pieces -----------------------------------------------------------------------------


def test_vocabulary_is_padded_with_the_timestamp_tokens() -> None:
    vocab = {f"t{i}": i for i in range(50257)}
    added = [{"id": 50257 + i, "content": f"<|special{i}|>"} for i in range(106)]
    added.append({"id": 50363, "content": "<|notimestamps|>"})
    tokens = vocabulary({"model": {"vocab": vocab}, "added_tokens": added})
    assert len(tokens) == VOCABULARY_SIZE
    assert tokens[50363] == "<|notimestamps|>" and tokens[50364] == "<|0.00|>" and tokens[-1] == "<|30.00|>"


def test_vocabulary_refuses_a_gap_or_a_wrong_size() -> None:
    with pytest.raises(ValueError, match="no token for ids"):
        vocabulary({"model": {"vocab": {"a": 0, "c": 2}}})
    with pytest.raises(ValueError, match="the model has 51865"):
        vocabulary({"model": {"vocab": {"a": 0, "b": 1}}, "added_tokens": [{"id": 2, "content": "<|notimestamps|>"}]})


@pytest.mark.parametrize(("cpu_max", "expected"), [("max 100000", None), ("100000 100000", 1), ("150000 100000", 2)])
def test_cpu_budget_follows_the_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    import os

    cpus = len(os.sched_getaffinity(0))
    assert cpu_budget(str(path)) == (cpus if expected is None else min(cpus, expected))


def test_language_is_checked() -> None:
    assert check_language(None) is None and check_language(" ") is None and check_language("DE") == "de"
    with pytest.raises(WhisperError, match="language 'xx'"):
        check_language("xx")


def test_streaming_header_and_pace() -> None:
    header = streaming_wav_header(22050)
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and len(header) == 44
    assert struct.unpack("<I", header[40:44])[0] == 0xFFFFFFFF
    assert decode_wav(header + b"\x01\x00" * 22050).duration_s == pytest.approx(1.0)
    assert length_scale(160) == 1.0 and length_scale(320) == 0.5


def test_a_missing_model_is_a_clear_503(tmp_path: Path) -> None:
    engine = Whisper(str(tmp_path))
    ok, reason = engine.check()
    assert not ok and "missing model.bin" in reason
    with pytest.raises(WhisperError, match="missing model.bin") as failed:
        engine.transcribe(b"\x00\x00" * 1600, 0.1)
    assert failed.value.status == 503


# --- Whisper and Piper themselves ---------------------------------------------------------------


class CountingEncoder:
    """Stands in for faster-whisper's WhisperModel: counts encoder passes, detects via encode."""

    def __init__(self) -> None:
        self.encoded: list[object] = []

    def encode(self, features: object) -> object:
        self.encoded.append(features)
        return ("encoded", len(self.encoded))

    def detect_language(self, audio: object = None, features: object = None, **options: object) -> object:
        import numpy as np

        window = np.zeros((80, 3000), dtype=np.float32)
        window[:, : features.shape[-1]] = features  # type: ignore[union-attr]
        return self.encode(window)


@pytest.mark.parametrize(("supported", "expected"), [
    ({"float32", "float16", "int8_float16", "int8", "int8_float32"}, "float16"),  # compute capability 7.0+
    ({"float32", "int8", "int8_float32"}, "int8"),  # Pascal, e.g. TITAN X (6.1)
    ({"float32"}, "float32"),  # Maxwell, e.g. GTX TITAN X (5.2)
    (set(), "float32"),
])
def test_the_gpu_gets_the_fastest_compute_type_it_supports(supported: set[str], expected: str) -> None:
    assert cuda_compute_type(supported) == expected


def test_one_encode_reuses_the_detection_pass_only_for_the_same_window() -> None:
    import numpy as np

    model = one_encode_model(CountingEncoder)()
    features = np.random.default_rng(7).random((80, 301), dtype=np.float32)
    detected = model.detect_language(features=features)
    window = np.zeros((80, 3000), dtype=np.float32)
    window[:, :300] = features[:, :300]  # the decode loop leaves out the last frame
    assert model.encode(window) is detected and len(model.encoded) == 1
    # Once only, and never for another window.
    assert model.encode(window) is not detected and len(model.encoded) == 2
    other = window.copy()
    other[0, 0] += 1.0
    assert model.encode(other) != model.encode(window) and len(model.encoded) == 4


@needs_whisper
@needs_espeak
def test_whisper_stops_when_the_request_is_cancelled(whisper: Whisper) -> None:
    pcm = decode_wav(espeak_wav("this sentence is never finished because nobody waits for it"))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        whisper.transcribe(pcm.data, pcm.duration_s, "en", stop=stop)
    # The engine is free again at once: the next request is served.
    assert whisper.transcribe(pcm.data, pcm.duration_s, "en").text


@needs_whisper
@needs_espeak
def test_detecting_the_language_costs_no_second_encoder_pass(whisper: Whisper,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from faster_whisper import WhisperModel

    passes: list[int] = []
    real_encode = WhisperModel.encode

    def counting(self: object, features: object) -> object:
        passes.append(1)
        return real_encode(self, features)

    pcm = decode_wav(espeak_wav("turn the heating down by two degrees"))
    whisper.load()
    monkeypatch.setattr(WhisperModel, "encode", counting)
    given = whisper.transcribe(pcm.data, pcm.duration_s, "en")
    assert len(passes) == 1
    detected = whisper.transcribe(pcm.data, pcm.duration_s)
    assert len(passes) == 2, "language detection encoded the window a second time"
    assert detected.language == "en" and detected.text == given.text


@needs_whisper
def test_a_gpu_placement_without_cuda_falls_back_to_the_cpu_and_says_so(whisper: Whisper) -> None:
    engine = Whisper(whisper.model_dir, placement="gpu", threads=1)
    engine.load()
    assert (engine.device, engine.compute_type) == ("cpu", "int8")  # no GPU on the test machines
    assert "CUDA is not usable" in engine.describe() and "GPU placement" in engine.describe()


@needs_piper
def test_piper_streams_sentence_by_sentence_and_stops_when_asked(piper: Piper) -> None:
    text = "The first sentence is short. The second one is a little longer than the first. Third."

    async def collect(stop: threading.Event | None) -> list[bytes]:
        return [pcm async for pcm in piper.stream(text, None, 160, stop)]

    pieces = anyio.run(collect, None)
    assert len(pieces) == 3 and all(len(p) > 2000 for p in pieces)
    stop = threading.Event()
    stop.set()
    assert anyio.run(collect, stop) == []
    with pytest.raises(TtsError, match="voice 'nobody'"):
        piper.resolve("nobody")


# --- through the HTTP API ------------------------------------------------------------------------


@needs_whisper
@needs_piper
def test_free_mode_hears_piper_speech_with_timed_segments(voice_client: TestClient, auth: dict[str, str]) -> None:
    sentence = "Please move my dentist appointment to Thursday afternoon."
    wav = piper_wav(voice_client, auth, sentence)
    response = voice_client.post("/v1/stt?mode=free", content=wav, headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["engine"] == "whisper" and body["mode"] == "free" and body["device"] == "cpu int8"
    assert body["language"] == "en" and body["language_probability"] > 0.5
    assert wer(words(sentence), words(body["text"])) <= 0.2, body["text"]
    segments = body["segments"]
    assert segments and 0 <= segments[0]["start"] < segments[-1]["end"] <= body["duration_s"] + 0.1
    assert 0 < body["confidence"] <= 1 and body["rtf"] > 0


@needs_whisper
@needs_espeak
def test_whisper_detects_another_language_or_takes_the_given_one(voice_client: TestClient,
                                                                 auth: dict[str, str]) -> None:
    wav = espeak_wav("Guten Morgen, wie geht es dir heute?", voice="de")
    headers = {**auth, "Content-Type": "audio/wav"}
    detected = voice_client.post("/v1/stt?mode=free", content=wav, headers=headers).json()
    assert detected["language"] == "de", detected
    given = voice_client.post("/v1/stt?mode=free&language=de", content=wav, headers=headers).json()
    assert given["language"] == "de" and "morgen" in given["text"].lower()


@needs_whisper
def test_silence_passes_the_voice_activity_filter_as_no_text(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/stt?mode=free", content=silence_wav(3.0, 16000, 2),
                                 headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "" and response.json()["segments"] == []


@needs_piper
@needs_espeak
def test_tts_engines_and_streaming(voice_client: TestClient, auth: dict[str, str]) -> None:
    with wave.open(io.BytesIO(piper_wav(voice_client, auth, "Natural speech, from Piper."))) as reader:
        assert reader.getframerate() == 22050 and reader.getnchannels() == 1 and reader.getnframes() > 11025
    espeak = piper_wav(voice_client, auth, "Robotic speech.", engine="espeak-ng", voice="en-gb")
    assert espeak[:4] == b"RIFF"
    text = "One sentence here. " * 6
    with voice_client.stream("POST", "/v1/tts", json={"text": text, "stream": True}, headers=auth) as response:
        assert response.status_code == 200 and "content-length" not in response.headers
        pieces = list(response.iter_bytes())
    body = b"".join(pieces)
    assert struct.unpack("<I", body[40:44])[0] == 0xFFFFFFFF
    assert decode_wav(body).duration_s > 4


# --- OpenAI-compatible endpoints -------------------------------------------------------------------


@needs_whisper
@needs_piper
def test_openai_speech_then_transcription_in_each_format(voice_client: TestClient, auth: dict[str, str]) -> None:
    sentence = "The parcel should arrive before lunch on Friday."
    speech = voice_client.post("/v1/audio/speech", headers=auth, json={
        "model": "tts-1", "voice": "alloy", "input": sentence, "response_format": "wav"})
    assert speech.status_code == 200, speech.text
    wav = speech.content
    files = {"file": ("speech.wav", wav, "audio/wav")}
    plain = voice_client.post("/v1/audio/transcriptions", headers=auth, files=files, data={"model": "whisper-1"})
    assert plain.status_code == 200, plain.text
    assert set(plain.json()) == {"text"} and wer(words(sentence), words(plain.json()["text"])) <= 0.2
    text = voice_client.post("/v1/audio/transcriptions", headers=auth, files=files,
                             data={"model": "whisper-1", "response_format": "text", "language": "en"})
    assert text.headers["content-type"].startswith("text/plain") and words(text.text) == words(plain.json()["text"])
    verbose = voice_client.post("/v1/audio/transcriptions", headers=auth, files=files,
                                data={"response_format": "verbose_json"}).json()
    assert verbose["task"] == "transcribe" and verbose["language"] == "en" and verbose["duration"] > 1
    assert verbose["segments"][0]["tokens"] and verbose["segments"][-1]["end"] <= verbose["duration"] + 0.1


@pytest.mark.parametrize(("data", "upload", "status", "needle"), [
    ({}, ("notes.txt", b"plain words, not audio", "text/plain"), 415, "file"),
    ({}, ("broken.wav", b"RIFF\x10\x00\x00\x00WAVEjunkjunk", "audio/wav"), 415, "file"),
    ({}, ("long.wav", silence_wav(61.0, 8000, 1), "audio/wav"), 413, "file: audio lasts 61.0 s"),
    ({"model": "gpt-4o-transcribe"}, None, 422, "model"),
    ({"response_format": "srt"}, None, 422, "response_format"),
    ({"language": "klingon"}, None, 422, "language"),
    ({"temperature": "hot"}, None, 422, "temperature"),
])
def test_openai_transcription_bad_input_names_the_field(voice_client: TestClient, auth: dict[str, str],
                                                        data: dict[str, str], upload: tuple[str, bytes, str] | None,
                                                        status: int, needle: str) -> None:
    upload = upload or ("short.wav", wav_bytes(b"\x00\x00" * 1600, 16000), "audio/wav")
    response = voice_client.post("/v1/audio/transcriptions", headers=auth, files={"file": upload}, data=data)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_openai_transcription_without_a_file_is_422(voice_client: TestClient, auth: dict[str, str]) -> None:
    response = voice_client.post("/v1/audio/transcriptions", headers=auth, files={"other": ("x", b"x")},
                                 data={"model": "whisper-1"})
    assert response.status_code == 422 and "file" in response.json()["error"]["message"]


@pytest.mark.parametrize(("body", "needle"), [
    ({"input": ""}, "input"),
    ({"input": "   "}, "input"),
    ({"input": "x" * 4097}, "input"),
    ({"input": "hi\x00there"}, "input"),
    ({"input": "hi", "voice": "nobody-here"}, "voice"),
    ({"input": "hi", "model": "festival"}, "model"),
    ({"input": "hi", "response_format": "mp3"}, "response_format"),
    ({"input": "hi", "speed": 9}, "speed"),
])
def test_openai_speech_bad_input_names_the_field(voice_client: TestClient, auth: dict[str, str],
                                                 body: dict[str, object], needle: str) -> None:
    response = voice_client.post("/v1/audio/speech", headers=auth, json={"model": "tts-1", "voice": "alloy", **body})
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]["message"]


def test_ready_reports_both_engines(voice_client: TestClient) -> None:
    checks = voice_client.get("/ready").json()["checks"]
    assert {"whisper", "piper", "pocketsphinx", "espeak-ng"} <= set(checks)
    if checks["whisper"]["ok"]:
        assert "Whisper base on cpu int8" in checks["whisper"]["reason"] and "VAD" in checks["whisper"]["reason"]


def test_openapi_documents_the_audio_endpoints(voice_client: TestClient) -> None:
    paths = json.loads(voice_client.get("/openapi.json").text)["paths"]
    transcriptions = paths["/v1/audio/transcriptions"]["post"]
    form = transcriptions["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and set(form["properties"]) >= {"model", "language", "response_format"}
    assert {"200", "413", "415", "422"} <= set(transcriptions["responses"])
    assert "audio/wav" in paths["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
