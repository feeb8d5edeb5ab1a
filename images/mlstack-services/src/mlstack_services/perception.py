"""What the perception unit understands: intent, entities, language and sentiment of a text;
speech activity and loudness of audio. Each analyser is plain Python over one engine:

- intent: cosine similarity of all-MiniLM-L6-v2 embeddings to labelled examples that ship
  with the unit (``data/intents.json``); the nearest example's label wins, below a floor
  the intent is ``unknown``;
- language: py3langid (langid.py's naive Bayes over byte n-grams, 97 languages);
- sentiment: VADER (lexicon and rules; compound >= 0.05 positive, <= -0.05 negative);
- entities: patterns (e-mail, URL, phone, money, percent, date, time, number) and
  capitalised word runs inside a sentence (``name``; a heuristic, said so in the answer);
- audio: 30 ms frames of 16 kHz mono PCM; a frame is speech when its level is 10 dB above
  the clip's noise floor (10th percentile) and above -50 dBFS; runs closer than 200 ms are
  joined, runs under 90 ms dropped. Loudness is RMS and peak in dBFS.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

INTENT_FLOOR = 0.3
LANGUAGE_FLOOR = 0.5


def load_intents() -> dict[str, list[str]]:
    raw = json.loads(resources.files("mlstack_services").joinpath("data/intents.json").read_text(encoding="utf-8"))
    return {label: list(examples) for label, examples in raw.items() if not label.startswith("_")}


@dataclass
class IntentIndex:
    """The examples' embeddings, computed once at start."""

    labels: list[str]
    examples: list[str]
    vectors: np.ndarray

    @classmethod
    def build(cls, intents: dict[str, list[str]], embed: Any) -> IntentIndex:
        labels = [label for label, examples in intents.items() for _ in examples]
        examples = [example for examples in intents.values() for example in examples]
        return cls(labels, examples, embed(examples))

    def classify(self, vector: np.ndarray, floor: float = INTENT_FLOOR) -> dict[str, Any]:
        scores = self.vectors @ vector
        best: dict[str, tuple[float, int]] = {}
        for index, (label, score) in enumerate(zip(self.labels, scores, strict=True)):
            if label not in best or score > best[label][0]:
                best[label] = (float(score), index)
        ranking = sorted(best.items(), key=lambda item: -item[1][0])
        top_label, (top_score, top_index) = ranking[0]
        return {
            "label": top_label if top_score >= floor else "unknown",
            "score": round(top_score, 4),
            "nearest_example": self.examples[top_index],
            "floor": floor,
            "ranking": [{"label": label, "score": round(score, 4)} for label, (score, _) in ranking[:3]],
        }


class LanguageId:
    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(self, text: str, floor: float = LANGUAGE_FLOOR) -> dict[str, Any]:
        ranked = self.identifier.rank(text)[:3]
        code, confidence = ranked[0]
        return {"code": code if confidence >= floor else "und", "confidence": round(float(confidence), 4),
                "candidates": [{"code": c, "p": round(float(p), 4)} for c, p in ranked], "engine": "py3langid"}


class Sentiment:
    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str) -> dict[str, Any]:
        s = self.analyzer.polarity_scores(text)
        label = "positive" if s["compound"] >= 0.05 else "negative" if s["compound"] <= -0.05 else "neutral"
        return {"label": label, "compound": s["compound"], "positive": s["pos"], "neutral": s["neu"],
                "negative": s["neg"], "engine": "vader"}


_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    # A URL does not end in sentence punctuation.
    ("url", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)]")),
    ("money", re.compile(r"(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?|"
                         r"\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b)", re.IGNORECASE)),
    ("percent", re.compile(r"\b\d+(?:\.\d+)?\s?%|\b\d+(?:\.\d+)?\s?percent\b", re.IGNORECASE)),
    ("date", re.compile(rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}\b|"
                        rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\b(?:\s+\d{{4}})?|"
                        rf"\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}})?|"
                        r"\b(?:today|tomorrow|yesterday|tonight|(?:next|last|this)\s+(?:week|month|year|"
                        r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
                        r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.IGNORECASE)),
    ("time", re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\s?(?:am|pm)?\b|\b\d{1,2}\s?(?:am|pm|o'clock)\b", re.IGNORECASE)),
    ("phone", re.compile(r"(?<![\w.])\+?\d[\d\s().-]{7,}\d\b")),
    ("number", re.compile(r"(?<![\w.:/-])-?\d+(?:[.,]\d+)?(?![\w%:/])")),
]
_NAME = re.compile(r"\b[A-Z][a-zA-Z'’-]+(?:\s+(?:[A-Z][a-zA-Z'’-]+|of|de|van|von|la|le))*\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)\s*$")
_NOT_NAMES = {"I", "I'm", "I've", "I'd", "I'll", "OK", "Ok"}
# Words that start sentences, capitalised only for that reason ("Email Anna Schmidt ...").
_STARTERS = set("""a an and ask book but call can could dear did do does email hello hey hi how i if is
it let meet my no our please play remind send set show so tell thanks that the then this turn we
what when where who why will would yes you""".split())


def entities(text: str) -> list[dict[str, Any]]:
    """Typed spans, longest first where two overlap (an e-mail wins over the number inside it)."""
    found: list[dict[str, Any]] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append({"type": kind, "text": text[start:end], "start": start, "end": end})

    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            add(kind, match.start(), match.end())
    for match in _NAME.finditer(text):
        start, words = match.start(), match.group().split()
        if _SENTENCE_START.search(text[:start]):
            # A capitalised first word of a sentence is no evidence of a name; a run of two or more is.
            if words[0].lower() in _STARTERS and len(words) > 1:
                start = text.index(words[1], start + len(words[0]))
                words = words[1:]
            elif len(words) == 1:
                continue
        if " ".join(words) in _NOT_NAMES or words[0].lower() in ("of", "de", "van", "von", "la", "le"):
            continue
        add("name", start, match.end())
    return sorted(found, key=lambda e: e["start"])


FRAME_S = 0.03
RATE = 16000


def _db(value: float) -> float:
    return round(20 * math.log10(value / 32768.0), 2) if value > 0 else -120.0


def audio_activity(pcm16: bytes, rate: int = RATE) -> dict[str, Any]:
    """Speech segments and loudness of 16-bit mono PCM."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    n = int(rate * FRAME_S)
    count = len(samples) // n
    frames = samples[: count * n].reshape(count, n) if count else np.zeros((0, n))
    rms = np.sqrt((frames**2).mean(axis=1)) if count else np.zeros(0)
    levels = np.array([_db(v) for v in rms])
    floor = float(np.percentile(levels, 10)) if count else -120.0
    threshold = max(floor + 10.0, -50.0)
    active = levels > threshold
    segments: list[list[int]] = []
    for i, on in enumerate(active):
        if not on:
            continue
        if segments and i - segments[-1][1] <= round(0.2 / FRAME_S):
            segments[-1][1] = i + 1
        else:
            segments.append([i, i + 1])
    segments = [s for s in segments if (s[1] - s[0]) * FRAME_S >= 0.09]
    speech_frames = sum(e - s for s, e in segments)
    overall = math.sqrt(float((samples**2).mean())) if len(samples) else 0.0
    speech = np.concatenate([frames[s:e].reshape(-1) for s, e in segments]) if segments else np.zeros(0)
    speech_rms = math.sqrt(float((speech**2).mean())) if len(speech) else 0.0
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    return {
        "speech": {
            "detected": bool(segments),
            "ratio": round(speech_frames / count, 3) if count else 0.0,
            "segments": [{"start_s": round(s * FRAME_S, 2), "end_s": round(e * FRAME_S, 2)} for s, e in segments],
            "frame_ms": int(FRAME_S * 1000),
            "threshold_dbfs": round(threshold, 2),
            "noise_floor_dbfs": round(floor, 2),
        },
        "loudness": {
            "rms_dbfs": _db(overall),
            "peak_dbfs": _db(peak),
            "speech_rms_dbfs": _db(speech_rms) if segments else None,
            "clipped_ratio": round(float((np.abs(samples) >= 32767).mean()), 5) if len(samples) else 0.0,
        },
    }
