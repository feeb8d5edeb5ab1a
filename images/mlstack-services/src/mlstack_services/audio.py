"""WAV in, 16 kHz mono 16-bit PCM out (what the pocketsphinx en-US model expects)."""

from __future__ import annotations

import io
import struct
import warnings
import wave
from dataclasses import dataclass

with warnings.catch_warnings():
    # audioop is deprecated in 3.11-3.12 and gone in 3.13 (audioop-lts then provides it).
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

TARGET_RATE = 16000
MAX_BYTES = 10 * 1024 * 1024
MAX_SECONDS = 60.0


class AudioError(ValueError):
    """The upload is not audio this service takes; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pcm:
    data: bytes  # 16 kHz, mono, signed 16-bit little-endian
    duration_s: float
    source_rate: int
    source_channels: int
    source_width: int


def is_wav(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def decode_wav(data: bytes, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS) -> Pcm:
    if not data:
        raise AudioError(400, "empty upload: send a WAV file")
    if len(data) > max_bytes:
        raise AudioError(413, f"upload of {len(data)} bytes exceeds the {max_bytes} byte limit")
    if not is_wav(data):
        raise AudioError(415, "not a WAV file (no RIFF/WAVE header): send PCM WAV audio")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            # Read to the end rather than trusting nframes: streamed WAVs (espeak-ng --stdout) carry a bogus one.
            frames = reader.readframes(2**31 - 1)
    except (wave.Error, EOFError, RuntimeError, ValueError, struct.error) as exc:
        raise AudioError(415, f"unsupported or corrupt WAV: {exc} (send 8/16/24/32-bit integer PCM)") from None
    if channels not in (1, 2):
        raise AudioError(415, f"WAV has {channels} channels: send mono or stereo")
    if not 4000 <= rate <= 192000:
        raise AudioError(415, f"WAV sample rate {rate} Hz is outside 4000..192000")
    frame_bytes = channels * width
    frames = frames[: len(frames) - len(frames) % frame_bytes]
    if not frames:
        raise AudioError(400, "WAV holds no audio frames")
    duration = len(frames) / frame_bytes / rate
    if duration > max_seconds:
        raise AudioError(413, f"audio lasts {duration:.1f} s, over the {max_seconds:g} s limit")
    return Pcm(to_16k_mono(frames, width, channels, rate), duration, rate, channels, width)


def to_16k_mono(frames: bytes, width: int, channels: int, rate: int) -> bytes:
    if width == 1:
        frames = audioop.bias(frames, 1, -128)  # 8-bit WAV is unsigned
    if width != 2:
        frames = audioop.lin2lin(frames, width, 2)
    if channels == 2:
        frames = audioop.tomono(frames, 2, 0.5, 0.5)
    if rate != TARGET_RATE:
        frames, _ = audioop.ratecv(frames, 2, 1, rate, TARGET_RATE, None)
    return frames


def wav_bytes(pcm: bytes, rate: int, width: int = 2, channels: int = 1) -> bytes:
    """A WAV file with a correct header around raw PCM."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()
