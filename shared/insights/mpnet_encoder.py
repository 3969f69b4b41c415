"""Sentence embeddings from a fine-tuned all-mpnet-base-v2, run in plain numpy (no torch).

Why a second architecture: the sentiment model fine-tuned from all-MiniLM-L6-v2 (``encoder.py``)
stopped at 0.66 macro-F1 on real held-out text; the 12-layer, 768-wide MPNet sentence model, fine-tuned
the same way (``bench/insights_finetune_mpnet.py``), reads polarity better (docs/insights.md,
"Evaluation"). It costs about eight times the MiniLM's CPU per sentence and ~110 MB of int8 weights,
so it runs only in the insight worker process (``model_workers.py``), off the sync's critical path.

MPNet differs from BERT in three places, all reproduced here op for op with the transformers code the
model was trained with: positions count from 2 (``padding_idx + 1``) over the non-padding tokens; no
token-type embedding; and a relative-position bias (32 buckets, one value per head) added to every
layer's attention scores. LayerNorm uses eps 1e-5. The weights ship in the repository as int8 with one
scale per output row (``model/sentiment_mpnet_*.npz``, split in two files so that none exceeds the
100 MB a Git host accepts per file); the tokenizer is MPNet's own (``model/mpnet_tokenizer.json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.insights.encoder import ModelUnavailable, _dense, _gelu, _layer_norm, _one_blas_thread, int8_layers

MAX_TOKENS = 128
_HIDDEN = 768
_HEADS = 12
_EPS = 1e-5
_BUCKETS = 32
_MAX_DISTANCE = 128
_PAD = 1  # <pad>; positions start after it


def relative_buckets(length: int) -> Any:
    """[length, length] bucket of (key position - query position), bidirectional, as MPNet (T5) buckets it:
    exact below 8 tokens apart, logarithmic up to 128, one bucket beyond; the sign picks the half."""
    import numpy as np

    pos = np.arange(length)
    n = -(pos[None, :] - pos[:, None])
    half = _BUCKETS // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    exact = half // 2
    scaled = np.log(np.maximum(n, 1) / exact) / math.log(_MAX_DISTANCE / exact) * (half - exact)
    large = np.minimum(exact + scaled.astype(np.int64), half - 1)  # truncation toward zero, as torch's .long()
    return ret + np.where(n < exact, n, large)


class MPNetEncoder:
    """Mean-pooled, L2-normalised last hidden state of the (fine-tuned) MPNet, 768 dimensions."""

    dim = _HIDDEN

    def __init__(self, weights: Sequence[Path], tokenizer: Path) -> None:
        import numpy as np

        try:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(str(tokenizer))
            w: dict[str, Any] = {}
            for part in weights:
                raw = np.load(part)
                w.update({k: raw[k] for k in raw.files})
            f32 = np.float32
            self._word_q = w["word_q"]  # int8 [vocab, 768]; rows dequantised on lookup
            self._word_s = w["word_s"].astype(f32)
            self._pos = w["pos"].astype(f32)
            self._emb_ln = (w["emb_ln_w"].astype(f32), w["emb_ln_b"].astype(f32))
            self._rel = w["rel_bias"].astype(f32)  # [buckets, heads]
            self._layers = int8_layers(w, int(w["n_layers"]))  # int8 in memory: 85 MB, not 340
        except Exception as exc:  # a missing or truncated file, a wrong format
            raise ModelUnavailable(f"MPNet sentiment model not loadable ({type(exc).__name__})") from exc
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.no_padding()

    def token_count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def encode(self, texts: Sequence[str], *, batch_size: int = 16, layers: Sequence[int] = (),
               pooling: Sequence[str] = ("mean",)) -> Any:
        """float32 [len(texts), 768]: the sentence embedding. ``layers``/``pooling`` exist for the
        MiniLM encoder's signature; only the last layer's mean is offered (what the head reads)."""
        import numpy as np

        if tuple(pooling) != ("mean",) or any(n != len(self._layers) for n in layers):
            raise ValueError("the MPNet encoder offers the last layer's mean only")
        out = np.zeros((len(texts), _HIDDEN), dtype=np.float32)
        if not texts:
            return out
        encs = self._tok.encode_batch([t or "" for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        with _one_blas_thread():  # see encoder.py: one BLAS thread on a shared worker
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self._forward([encs[i].ids for i in idx])
        return out

    def _forward(self, batch: list[list[int]]) -> Any:
        import numpy as np

        n, t = len(batch), max(len(ids) for ids in batch)
        ids = np.full((n, t), _PAD, dtype=np.int64)
        mask = np.zeros((n, t), dtype=np.float32)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1.0
        positions = (np.cumsum(mask, axis=1) * mask).astype(np.int64) + _PAD
        x = self._word_q[ids].astype(np.float32) * self._word_s[ids][..., None] + self._pos[positions]
        x = _layer_norm(x, *self._emb_ln, eps=_EPS)
        bias = self._rel[relative_buckets(t)].transpose(2, 0, 1)[None]  # [1, heads, t, t]
        bias = bias + ((1.0 - mask) * -1e4)[:, None, None, :]
        hd = _HIDDEN // _HEADS
        scale = 1.0 / np.sqrt(hd)
        for L in self._layers:
            def heads(y: Any) -> Any:
                return y.reshape(n, t, _HEADS, hd).transpose(0, 2, 1, 3)

            q, k, v = heads(_dense(x, L, "q")), heads(_dense(x, L, "k")), heads(_dense(x, L, "v"))
            att = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, t, _HIDDEN)
            (w1, b1), (w2, b2) = L["ln1"], L["ln2"]
            x = _layer_norm(x + _dense(ctx, L, "o"), w1, b1, eps=_EPS)
            x = _layer_norm(x + _dense(_gelu(_dense(x, L, "fi")), L, "fo"), w2, b2, eps=_EPS)
        p = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        return p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
