"""Text to WAV with espeak-ng: no shell, the text on stdin, options as separate argv elements."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import time
import wave
from dataclasses import dataclass

from .audio import wav_bytes

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
