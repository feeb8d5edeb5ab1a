"""Text to WAV: Piper (neural, en_US-joe-medium by default) or espeak-ng (fast, many languages).

espeak-ng runs without a shell, the text on stdin, options as separate argv elements. Piper runs
its ONNX voice in a worker thread, one sentence at a time: ``Piper.stream`` yields each
sentence's PCM as soon as it is ready (chunked streaming of long text), and a client that goes
away stops it at the next sentence.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import struct
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .audio import wav_bytes

DEFAULT_PIPER_VOICE = "en_US-joe-medium"
PIPER_VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")

VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-/]{0,39}(\+[A-Za-z0-9_\-]{1,20})?$")


class TtsError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Speech:
    wav: bytes
    duration_ms: int
    synthesis_ms: float
    sample_rate: int


class Espeak:
    def __init__(self, binary: str = "espeak-ng", timeout_s: float = 20.0) -> None:
        self.binary, self.timeout_s = binary, timeout_s

    def path(self) -> str | None:
        return shutil.which(self.binary)

    async def check(self) -> tuple[bool, str]:
        path = self.path()
        if path is None:
            return False, f"{self.binary} is not installed (Debian package espeak-ng)"
        return True, f"{path} present"

    async def synthesize(self, text: str, voice: str, rate: int) -> Speech:
        if not VOICE_RE.match(voice):
            raise TtsError(422, f"voice {voice!r} is not a voice name (e.g. en-us, en-gb, de, en-us+f3)")
        path = self.path()
        if path is None:
            raise TtsError(503, f"{self.binary} is not installed on this unit")
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            path, "--stdout", "-v", voice, "-s", str(rate),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), self.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TtsError(504, f"espeak-ng took longer than {self.timeout_s:g} s") from None
        elapsed_ms = (time.perf_counter() - start) * 1000
        message = err.decode("utf-8", "replace").strip()
        if proc.returncode != 0 or not out:
            if "voice does not exist" in message:
                raise TtsError(422, f"voice {voice!r} is not installed: {message}")
            raise TtsError(500, f"espeak-ng failed (exit {proc.returncode}): {message[:200]}")
        # espeak-ng --stdout streams a WAV whose header has a placeholder length: rewrite it.
        with wave.open(io.BytesIO(out), "rb") as reader:
            rate_hz, width, channels = reader.getframerate(), reader.getsampwidth(), reader.getnchannels()
            frames = reader.readframes(2**31 - 1)
        frames = frames[: len(frames) - len(frames) % (width * channels)]
        duration_ms = round(len(frames) / (width * channels) / rate_hz * 1000)
        return Speech(wav_bytes(frames, rate_hz, width, channels), duration_ms, elapsed_ms, rate_hz)


def streaming_wav_header(rate: int, width: int = 2, channels: int = 1) -> bytes:
    """A WAV header for audio of unknown length (sizes 0xFFFFFFFF): readers take frames to the end."""
    unknown = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * width * channels, width * channels, width * 8)
        + b"data" + struct.pack("<I", unknown))


def length_scale(rate: int) -> float:
    """espeak-ng's words per minute as Piper's phoneme length scale: 160 wpm is the voice's own pace."""
    return round(160 / rate, 3)


class Piper:
    """Piper voices from ``voice_dir`` (NAME.onnx and NAME.onnx.json), loaded on first use."""

    def __init__(self, voice_dir: str, default_voice: str = DEFAULT_PIPER_VOICE) -> None:
        self.voice_dir, self.default_voice = Path(voice_dir), default_voice
        self._voices: dict[str, Any] = {}
        self._lock = threading.Lock()  # phonemizer (espeak-ng's global state) and the CPU: one at a time

    def names(self) -> list[str]:
        if not self.voice_dir.is_dir():
            return []
        return sorted(p.name[: -len(".onnx")] for p in self.voice_dir.glob("*.onnx")
                      if p.with_name(p.name + ".json").is_file())

    def resolve(self, voice: str | None) -> str:
        name = voice or self.default_voice
        if not PIPER_VOICE_RE.match(name) or name not in self.names():
            raise TtsError(422, f"voice {name!r} is not a Piper voice of this unit (have: {', '.join(self.names())})")
        return name

    def load(self, voice: str | None = None) -> Any:
        name = self.resolve(voice)
        with self._lock:
            if name not in self._voices:
                from piper import PiperVoice

                model = self.voice_dir / f"{name}.onnx"
                self._voices[name] = PiperVoice.load(model, config_path=model.with_name(model.name + ".json"))
            return self._voices[name]

    async def check(self) -> tuple[bool, str]:
        names = self.names()
        if self.default_voice not in names:
            return False, f"Piper voice {self.default_voice} missing under {self.voice_dir}"
        state = "loaded" if self.default_voice in self._voices else "present"
        return True, f"Piper voice {self.default_voice} {state} ({len(names)} voice(s))"

    def _sentences(self, text: str, voice: str, rate: int) -> Iterator[bytes]:
        from piper import SynthesisConfig

        model = self.load(voice)
        config = SynthesisConfig(length_scale=length_scale(rate))
        chunks = iter(model.synthesize(text, config))
        while True:
            with self._lock:  # per sentence, so that two requests interleave rather than queue whole
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk.audio_int16_bytes

    def sample_rate(self, voice: str | None = None) -> int:
        return int(self.load(voice).config.sample_rate)

    async def stream(self, text: str, voice: str | None, rate: int,
                     stop: threading.Event | None = None) -> AsyncIterator[bytes]:
        """PCM (16-bit mono at ``sample_rate``) one sentence at a time; stops when the consumer does,
        or at the next sentence once ``stop`` is set."""
        sentences = self._sentences(text, self.resolve(voice), rate)
        try:
            while stop is None or not stop.is_set():
                pcm = await anyio.to_thread.run_sync(next, sentences, None)
                if pcm is None:
                    return
                yield pcm
        finally:
            sentences.close()

    async def synthesize(self, text: str, voice: str | None, rate: int,
                         stop: threading.Event | None = None) -> Speech:
        name = self.resolve(voice)
        start = time.perf_counter()
        rate_hz = await anyio.to_thread.run_sync(self.sample_rate, name)
        pcm = b"".join([piece async for piece in self.stream(text, name, rate, stop)])
        elapsed_ms = (time.perf_counter() - start) * 1000
        if stop is not None and stop.is_set():
            raise TtsError(400, "the client went away: synthesis stopped")
        if not pcm:
            raise TtsError(422, "text: nothing to speak in it (no letters or digits Piper can read)")
        return Speech(wav_bytes(pcm, rate_hz), round(len(pcm) / 2 / rate_hz * 1000), elapsed_ms, rate_hz)
