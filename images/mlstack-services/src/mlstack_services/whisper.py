"""Free-form speech to text with faster-whisper (CTranslate2) and the Whisper base model.

The model directory is written at build time (whisper_export.py): nothing is downloaded at run
time. A GPU placement (MLSTACK_PLACEMENT=gpu, set by the ml_service role with the unit's GPU in
CUDA_VISIBLE_DEVICES) runs it on CUDA (float16, or int8/float32 on GPUs without tensor cores);
anything else, or a CUDA that does not load, on the CPU in int8, and ``describe()`` (shown in
/ready) says which and why.

CTranslate2 releases the GIL while it computes, so decoding runs in a worker thread of the
unit's own process; segments are decoded lazily, and a cancelled request stops at the next
segment (``stop``), so nothing keeps running for a client that went away.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL_DIR = "/opt/models/whisper-base"
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")


def _silence() -> Any:
    """One second of silence at 16 kHz (numpy is imported with the model, not at import time)."""
    import numpy as np

    return np.zeros(16000, dtype=np.float32)


class WhisperError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Cancelled(RuntimeError):
    """The request went away: decoding stopped between two segments."""


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    tokens: tuple[int, ...]
    temperature: float


@dataclass(frozen=True)
class WhisperTranscript:
    text: str
    language: str
    language_probability: float
    duration_s: float
    processing_s: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)

    @property
    def rtf(self) -> float:
        return self.processing_s / self.duration_s if self.duration_s else 0.0

    @property
    def confidence(self) -> float | None:
        """exp of the mean token log-probability over the segments: 1.0 is certain."""
        if not self.segments:
            return None
        mean = sum(s.avg_logprob for s in self.segments) / len(self.segments)
        return round(min(1.0, math.exp(mean)), 4)


def cpu_budget(cgroup_cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 quota (docker --cpus)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path(cgroup_cpu_max).read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return max(1, cpus)
    if quota != "max":
        cpus = min(cpus, math.ceil(int(quota) / int(period)))
    return max(1, cpus)


# Best first. CTranslate2 offers float16 only with tensor cores (compute capability 7.0+) and
# int8 from 6.1: the mission's TITAN X GPUs (Maxwell 5.2, Pascal 6.1) get int8 or float32.
CUDA_COMPUTE_TYPES = ("float16", "int8_float16", "int8", "float32")


def cuda_compute_type(supported: set[str] | frozenset[str]) -> str:
    """The fastest compute type the GPU supports (``ctranslate2.get_supported_compute_types``)."""
    for candidate in CUDA_COMPUTE_TYPES:
        if candidate in supported:
            return candidate
    return "float32"


def one_encode_model(base: type) -> type:
    """``base`` (faster-whisper's WhisperModel) with language detection and the first window's
    decode sharing one encoder pass.

    Without a given language, faster-whisper encodes the first 30 s window twice: once to detect
    the language, once to decode it. The encoder is most of the cost of a short command (Whisper
    pads every window to 30 s), so on two CPUs this doubled the real-time factor (0.74 against
    0.40 with the language given, measured on this unit). Detection leaves out the last feature
    frame, as the decode loop does, so both passes see the same window; the memo only answers for
    an identical window, so a mismatch costs a second pass, never a wrong transcript.
    """
    import numpy as np

    class OneEncodeWhisperModel(base):  # type: ignore[misc, valid-type]
        _memo: tuple[Any, Any] | None = None

        def encode(self, features: Any) -> Any:
            memo, self._memo = self._memo, None
            if memo is not None and memo[0].shape == features.shape and np.array_equal(memo[0], features):
                return memo[1]
            output = super().encode(features)
            self._memo = (features, output)
            return output

        def detect_language(self, audio: Any = None, features: Any = None, **options: Any) -> Any:
            if features is not None and features.shape[-1] > 1:
                features = features[..., :-1]
            return super().detect_language(audio=audio, features=features, **options)

    return OneEncodeWhisperModel


def languages() -> tuple[str, ...]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


def check_language(language: str | None) -> str | None:
    """None or blank: detect it; else an ISO 639-1 code Whisper knows (422 naming the field)."""
    if language is None or not language.strip():
        return None
    code = language.strip().lower()
    if code not in languages():
        raise WhisperError(422, f"language {language!r}: not a language Whisper knows (ISO 639-1, e.g. en, de, fr)")
    return code


class Whisper:
    def __init__(self, model_dir: str = DEFAULT_MODEL_DIR, placement: str = "cpu", beam_size: int = 1,
                 threads: int | None = None) -> None:
        self.model_dir, self.placement, self.beam_size = model_dir, placement, beam_size
        self.threads = threads or cpu_budget()
        self.device, self.compute_type, self.note = "cpu", "int8", ""
        self._model: Any = None
        self._error = ""
        self._load_lock = threading.Lock()
        # One decode at a time: the unit's CPU (or GPU) is the limit, and a cancelled decode
        # must finish its segment before the next one starts.
        self._lock = threading.Lock()

    def missing(self) -> list[str]:
        return [f for f in MODEL_FILES if not (Path(self.model_dir) / f).is_file()]

    def load(self) -> None:
        """Loads the model once: CUDA (the best compute type the GPU has) on a GPU placement when
        CUDA works, else CPU int8."""
        with self._load_lock:
            if self._model is not None:
                return
            missing = self.missing()
            if missing:
                self._error = f"Whisper model incomplete under {self.model_dir}: missing {', '.join(missing)}"
                raise WhisperError(503, self._error)
            from faster_whisper import WhisperModel as BaseModel

            WhisperModel = one_encode_model(BaseModel)
            if self.placement == "gpu":
                try:
                    import ctranslate2

                    compute_type = cuda_compute_type(ctranslate2.get_supported_compute_types("cuda"))
                    model = WhisperModel(self.model_dir, device="cuda", compute_type=compute_type)
                    # cuBLAS and cuDNN load on first use: one decode proves CUDA works, not just the device.
                    list(model.transcribe(_silence(), language="en", beam_size=1, vad_filter=False)[0])
                    self._model = model
                    self.device, self.compute_type, self.note = "cuda", compute_type, "GPU placement"
                    return
                except Exception as exc:  # no driver, no cuBLAS, no device: the CPU still answers
                    self.note = f"GPU placement, but CUDA is not usable ({type(exc).__name__}: {exc}); on the CPU"
            self._model = WhisperModel(self.model_dir, device="cpu", compute_type="int8", cpu_threads=self.threads)
            self.device, self.compute_type = "cpu", "int8"
            self.note = self.note or "CPU placement"

    def describe(self) -> str:
        where = f"{self.device} {self.compute_type}"
        if self.device == "cpu":
            where += f", {self.threads} threads"
        return f"Whisper base on {where} ({self.note}), beam {self.beam_size}, VAD filter on"

    def check(self) -> tuple[bool, str]:
        if self._model is not None:
            return True, self.describe()
        if self._error:
            return False, self._error
        missing = self.missing()
        if missing:
            return False, f"Whisper model incomplete under {self.model_dir}: missing {', '.join(missing)}"
        return True, f"Whisper model present under {self.model_dir}; loads with the first request"

    def transcribe(self, pcm: bytes, duration_s: float, language: str | None = None, prompt: str | None = None,
                   temperature: float = 0.0, stop: threading.Event | None = None) -> WhisperTranscript:
        """16 kHz mono 16-bit PCM in; raises Cancelled when ``stop`` is set between segments."""
        import numpy as np

        self.load()
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        with self._lock:
            start = time.perf_counter()
            pieces, info = self._model.transcribe(
                audio, language=language, beam_size=self.beam_size, vad_filter=True,
                initial_prompt=prompt or None, temperature=[temperature] if temperature else
                [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], condition_on_previous_text=False)
            segments = []
            for piece in pieces:  # a generator: each step decodes one more window
                if stop is not None and stop.is_set():
                    raise Cancelled("the request was cancelled")
                # Whisper predicts timestamps in 0.02 s steps and may place the last end past the audio.
                end = round(min(piece.end, duration_s), 3)
                segments.append(Segment(len(segments), round(min(piece.start, end), 3), end, piece.text.strip(),
                                        piece.avg_logprob, piece.no_speech_prob, piece.compression_ratio,
                                        tuple(piece.tokens), piece.temperature))
            elapsed = time.perf_counter() - start
        text = " ".join(s.text for s in segments if s.text)
        return WhisperTranscript(text, info.language, round(info.language_probability, 4), duration_s, elapsed,
                                 tuple(segments))
