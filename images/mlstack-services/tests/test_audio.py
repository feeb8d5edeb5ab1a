"""WAV decoding and resampling to 16 kHz mono 16-bit, without the service."""

from __future__ import annotations

import random

import pytest
from mlstack_services.audio import AudioError, audioop, decode_wav, wav_bytes


def tone(rate: int, seconds: float, width: int = 2, channels: int = 1) -> bytes:
    """A 440 Hz-ish square-free ramp pattern, good enough to carry energy through the converters."""
    mono = b"".join(int(8000 * ((i * 440 / rate) % 1.0 - 0.5)).to_bytes(2, "little", signed=True)
                    for i in range(int(rate * seconds)))
    if width != 2:
        mono = audioop.lin2lin(mono, 2, width)
        if width == 1:
            mono = audioop.bias(mono, 1, 128)
    if channels == 2:
        mono = audioop.tostereo(mono, width, 1.0, 1.0)
    return wav_bytes(mono, rate, width, channels)


@pytest.mark.parametrize(("rate", "width", "channels"), [
    (16000, 2, 1), (22050, 2, 1), (44100, 2, 2), (48000, 3, 2), (8000, 1, 1), (11025, 4, 1),
])
def test_any_integer_pcm_becomes_16k_mono_16bit(rate: int, width: int, channels: int) -> None:
    pcm = decode_wav(tone(rate, 0.5, width, channels))
    assert pcm.duration_s == pytest.approx(0.5, abs=0.001)
    assert len(pcm.data) == pytest.approx(16000, abs=4)  # 0.5 s x 16000 Hz x 2 bytes
    assert (pcm.source_rate, pcm.source_width, pcm.source_channels) == (rate, width, channels)
    assert audioop.rms(pcm.data, 2) > 1000  # the signal survived (8-bit bias removed, not silence)


def test_limits() -> None:
    with pytest.raises(AudioError) as too_long:
        decode_wav(wav_bytes(b"\x00\x00" * 8000 * 61, 8000))
    assert too_long.value.status == 413
    with pytest.raises(AudioError) as too_big:
        decode_wav(b"RIFF" + b"\x00" * 100, max_bytes=50)
    assert too_big.value.status == 413


def test_mangled_wavs_only_ever_raise_audio_error() -> None:
    rng = random.Random(5)
    good = tone(22050, 0.2)
    for _ in range(400):
        data = bytearray(good[: rng.randrange(12, len(good))])
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data[:4], data[8:12] = b"RIFF", b"WAVE"
        try:
            decode_wav(bytes(data))
        except AudioError as exc:
            assert 400 <= exc.status < 500
