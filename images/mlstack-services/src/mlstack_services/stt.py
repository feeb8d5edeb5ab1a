"""Speech to text with pocketsphinx 5 (en-US model shipped in the wheel).

command mode: a JSGF grammar of the allowed phrases (accurate, closed set); free mode: the full
en-US trigram LM (open vocabulary, poor on synthetic speech). Decoders are not thread-safe: each
has its lock, and callers run ``transcribe`` in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

DEFAULT_COMMANDS = (
    "turn on the lights", "turn off the lights", "what time is it", "play some music", "stop",
    "call mom", "open the door", "close the door", "lock the door", "set a timer", "cancel the timer",
    "what is the weather", "volume up", "volume down", "next song", "pause", "yes", "no", "help",
    "good morning",
)
MAX_PHRASES = 100
MAX_WORDS = 12
PHRASE_RE = re.compile(r"^[a-z']+( [a-z']+)*$")
_GRAMMAR_CACHE = 16


class SttError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type[SttError], tuple[int, str]]:
        return SttError, (self.status, str(self))  # crosses the worker process boundary


@dataclass(frozen=True)
class Transcript:
    text: str
    mode: str
    duration_s: float
    processing_s: float
    confidence: float | None

    @property
    def rtf(self) -> float:
        return self.processing_s / self.duration_s if self.duration_s else 0.0


def parse_phrases(raw: str | None) -> tuple[str, ...]:
    """Comma-separated phrases, normalised to lower case and single spaces."""
    if raw is None or not raw.strip():
        return DEFAULT_COMMANDS
    phrases: list[str] = []
    for part in raw.split(","):
        phrase = " ".join(part.lower().split())
        if not phrase:
            continue
        if not PHRASE_RE.match(phrase):
            raise SttError(422, f"phrase {part.strip()!r}: use letters, apostrophes and spaces only")
        if len(phrase.split()) > MAX_WORDS:
            raise SttError(422, f"phrase {phrase!r} has more than {MAX_WORDS} words")
        if phrase not in phrases:
            phrases.append(phrase)
    if not phrases:
        raise SttError(422, "phrases is empty: give comma-separated phrases or leave it out")
    if len(phrases) > MAX_PHRASES:
        raise SttError(422, f"{len(phrases)} phrases: at most {MAX_PHRASES}")
    return tuple(phrases)


def jsgf(phrases: tuple[str, ...]) -> str:
    alternatives = " | ".join(f"( {p} )" for p in phrases)
    return f"#JSGF V1.0;\ngrammar commands;\npublic <command> = {alternatives};\n"


class Pocketsphinx:
    def __init__(self) -> None:
        self._command: Any = None
        self._free: Any = None
        self._command_lock = threading.Lock()
        self._free_lock = threading.Lock()
        self._grammars: OrderedDict[str, None] = OrderedDict()

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            from pocketsphinx import get_model_path
        except ImportError as exc:
            return False, f"pocketsphinx is not importable: {exc}"
        model = os.path.join(get_model_path(), "en-us")
        needed = ("en-us", "cmudict-en-us.dict", "en-us.lm.bin")
        missing = [f for f in needed if not os.path.exists(os.path.join(model, f))]
        if missing:
            return False, f"pocketsphinx en-US model incomplete under {model}: missing {', '.join(missing)}"
        return True, "pocketsphinx en-US model present"

    @staticmethod
    def _decoder(**config: Any) -> Any:
        from pocketsphinx import Decoder

        # dither: synthetic audio has digital silence (log of zero energy) that otherwise hurts.
        return Decoder(logfn=os.devnull, dither=True, seed=1, **config)

    def command_decoder(self) -> Any:
        if self._command is None:
            # bestpath off: the lattice rescoring drops trailing grammar words ("what time" for
            # "what time is it") on short commands; the Viterbi path through the FSG is right.
            self._command = self._decoder(lm=None, bestpath=False)
        return self._command

    def free_decoder(self) -> Any:
        if self._free is None:
            # maxhmmpf 3000 (default 30000): measured here, same WER on espeak-ng speech, RTF 0.44 -> 0.18.
            self._free = self._decoder(maxhmmpf=3000)
        return self._free

    def warm(self) -> None:
        with self._command_lock:
            self.command_decoder()
        with self._free_lock:
            self.free_decoder()

    def unknown_words(self, phrases: tuple[str, ...]) -> list[str]:
        with self._command_lock:
            decoder = self.command_decoder()
            words = sorted({w for p in phrases for w in p.split()})
            return [w for w in words if decoder.lookup_word(w) is None]

    def transcribe(self, pcm: bytes, duration_s: float, mode: str, phrases: tuple[str, ...]) -> Transcript:
        if mode == "command":
            unknown = self.unknown_words(phrases)
            if unknown:
                raise SttError(422, f"not in the pronunciation dictionary: {', '.join(unknown)}")
            with self._command_lock:
                decoder = self.command_decoder()
                self._activate_grammar(decoder, phrases)
                text, confidence, elapsed = self._run(decoder, pcm)
            # A grammar decode always lands on its closest phrase: no calibrated confidence.
            return Transcript(text, mode, duration_s, elapsed, None)
        if mode == "free":
            with self._free_lock:
                text, confidence, elapsed = self._run(self.free_decoder(), pcm)
            return Transcript(text, mode, duration_s, elapsed, confidence)
        raise SttError(422, f"mode {mode!r}: use 'command' or 'free'")

    def _activate_grammar(self, decoder: Any, phrases: tuple[str, ...]) -> None:
        """Activate the phrases' grammar, compiled once and kept in a small LRU cache."""
        name = "g" + hashlib.sha256("\n".join(phrases).encode()).hexdigest()[:16]
        if name not in self._grammars:
            decoder.add_jsgf_string(name, jsgf(phrases))
        self._grammars[name] = None
        self._grammars.move_to_end(name)
        decoder.activate_search(name)
        while len(self._grammars) > _GRAMMAR_CACHE:
            old, _ = self._grammars.popitem(last=False)
            decoder.remove_search(old)

    @staticmethod
    def _run(decoder: Any, pcm: bytes) -> tuple[str, float | None, float]:
        start = time.perf_counter()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        elapsed = time.perf_counter() - start
        if hyp is None:
            return "", None, elapsed
        prob = float(hyp.prob)
        return hyp.hypstr, (round(prob, 4) if 0.0 <= prob <= 1.0 else None), elapsed
