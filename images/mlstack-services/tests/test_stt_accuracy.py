"""Measured STT accuracy on espeak-ng speech, through the HTTP API (run with -s to see the figures).

Command mode: how many of the built-in commands come back exactly. Free mode with pocketsphinx' full
en-US LM: WER on 3 sentences; it is poor on synthetic speech, and this test records the figure, it
does not hide it (Whisper, the free mode's default engine, is measured in test_whisper.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from helpers import bearer, needs_espeak, needs_pocketsphinx, wer
from mlstack_services.stt import DEFAULT_COMMANDS

pytestmark = [needs_espeak, needs_pocketsphinx]

FREE_SENTENCES = (
    "the weather is nice today",
    "please send me the report by friday",
    "i would like a cup of coffee",
)


def _transcribe(client: TestClient, auth: dict[str, str], text: str, voice: str, rate: int,
                mode: str, engine: str = "pocketsphinx") -> dict[str, object]:
    wav = client.post("/v1/tts", json={"text": text, "voice": voice, "rate": rate, "engine": "espeak-ng"},
                      headers=auth).content
    response = client.post(f"/v1/stt?mode={mode}&engine={engine}", content=wav,
                           headers={**auth, "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def auth(mint: Callable[..., str]) -> dict[str, str]:
    return bearer(mint("voice:tts voice:stt"))


def test_command_mode_accuracy_default_voice(voice_client: TestClient, auth: dict[str, str],
                                             record_property: Callable[[str, object], None]) -> None:
    misses = []
    for phrase in DEFAULT_COMMANDS:
        got = _transcribe(voice_client, auth, phrase, "en-us", 160, "command")["text"]
        if got != phrase:
            misses.append((phrase, got))
    exact = len(DEFAULT_COMMANDS) - len(misses)
    print(f"\ncommand mode, en-us @160 wpm: {exact}/{len(DEFAULT_COMMANDS)} exact; misses: {misses}")
    record_property("command_exact", f"{exact}/{len(DEFAULT_COMMANDS)}")
    assert exact >= 0.9 * len(DEFAULT_COMMANDS), misses


def test_command_mode_accuracy_sweep(voice_client: TestClient, auth: dict[str, str],
                                     record_property: Callable[[str, object], None]) -> None:
    """Other voices and rates: reported; the bar is lower (the female variant is the weakest)."""
    total = exact = 0
    per: dict[str, str] = {}
    for voice in ("en-us", "en", "en-us+f3"):
        for rate in (120, 220):
            hits = sum(_transcribe(voice_client, auth, p, voice, rate, "command")["text"] == p
                       for p in DEFAULT_COMMANDS)
            per[f"{voice}@{rate}"] = f"{hits}/{len(DEFAULT_COMMANDS)}"
            total, exact = total + len(DEFAULT_COMMANDS), exact + hits
    print(f"\ncommand mode sweep: {exact}/{total} exact; {per}")
    record_property("command_sweep", per)
    assert exact >= 0.8 * total


def test_free_mode_pocketsphinx_wer(voice_client: TestClient, auth: dict[str, str],
                                    record_property: Callable[[str, object], None]) -> None:
    errors = words = 0
    rtfs = []
    for sentence in FREE_SENTENCES:
        result = _transcribe(voice_client, auth, sentence, "en-us", 160, "free")
        assert result["mode"] == "free"
        n = len(sentence.split())
        errors += round(wer(sentence, str(result["text"])) * n)
        words += n
        rtfs.append(float(result["rtf"]))  # type: ignore[arg-type]
        print(f"\nfree: {sentence!r} -> {result['text']!r} (WER {wer(sentence, str(result['text'])):.0%})")
    print(f"free mode WER over {len(FREE_SENTENCES)} sentences: {errors}/{words} = {errors / words:.0%}; "
          f"RTF {min(rtfs):.2f}-{max(rtfs):.2f}")
    record_property("free_wer", round(errors / words, 3))
    assert words > 0
