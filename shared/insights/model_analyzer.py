"""The default local analyzer: a fine-tuned sentence model + classifier head, per sentence.

Why: a lexicon (VADER) misses polite complaints and negative business facts ("we've decided not to
renew", "sales decreased by 40%") and flips on single mild words. all-MiniLM-L6-v2
(:mod:`shared.insights.encoder`) reads meaning, but it was trained for topical similarity, where
"support was great" and "support was terrible" are neighbours; a linear head on its frozen states
stopped at 0.60 macro-F1 on real held-out text. So its top three transformer layers were fine-tuned
with a 3-class head on the *training* split of real labelled text (``bench/insights_finetune.py``,
torch at build time only) and exported to the same int8 numpy format: the runtime is unchanged
numpy. The head's probabilities are temperature-calibrated on a validation slice of the training
data, so ``confidence`` means what it says. (A format-1 head, ``bench/insights_train.py``, still
works: a linear head over the stock encoder's states plus VADER's scores.)

Per sentence, then aggregated like the VADER analyzer: courtesy formulae weigh little and
opinionated sentences more, so one angry sentence is not diluted by logistics. The sentences that
drove the label are returned as drivers. If the model files are missing the analyzer degrades to
VADER and says so in ``fallback_reason`` (never an exception into the sync).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.insights.models import SentenceSentiment, SentimentLabel, SentimentResult, SentimentScores
from shared.insights.sentences import Sentence, split_sentences
from shared.insights.sentiment import _COURTESY, VaderAnalyzer, VaderConfig, _bounded

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).with_name("model")
HEAD = MODEL_DIR / "sentiment_head.json"
SENTIMENT_MODELS = ("mpnet", "minilm")  # INSIGHTS_SENTIMENT_MODEL: the accurate default, the light one


def head_path(model: str) -> Path:
    """The head file of a sentiment model: ``sentiment_head.json`` for the default MPNet, else
    ``sentiment_head_<model>.json`` (the fine-tuned MiniLM: a tenth of the CPU, 0.66 against 0.72)."""
    if model not in SENTIMENT_MODELS:
        raise ValueError(f"unknown sentiment model {model!r}")
    return HEAD if model == "mpnet" else MODEL_DIR / f"sentiment_head_{model}.json"
LABELS = (SentimentLabel.POSITIVE, SentimentLabel.NEUTRAL, SentimentLabel.NEGATIVE)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    max_sentences: int = 40  # per text; the model costs ~10-50 ms a sentence on one core
    max_chars: int = 50_000
    max_sentence_words: int = 80
    courtesy_weight: float = 0.25
    neutral_sentence_weight: float = 0.25  # weight of a sentence the head calls neutral (opinion adds up to 1)
    max_drivers: int = 3
    min_driver_probability: float = 0.34  # above a uniform guess: the sentence leans towards the label


class SentimentHead:
    """Linear head over [pooled hidden states (, stock VADER compound/pos/neg)], standardised, temperature-scaled.

    ``encoder`` names the fine-tuned transformer weights the head was trained with (format 2, see
    ``bench/insights_finetune.py``); without it (format 1) the head reads the stock sentence model.
    Format 3 adds ``architecture`` ("mpnet": ``mpnet_encoder.py``, ``bench/insights_finetune_mpnet.py``),
    a list of weight files and the model's own ``tokenizer``."""

    def __init__(self, path: Path = HEAD) -> None:
        import numpy as np

        spec = json.loads(path.read_text(encoding="utf-8"))
        self.layers: tuple[int, ...] = tuple(spec["layers"])
        self.pooling: tuple[str, ...] = tuple(spec["pooling"])
        self.classes: tuple[str, ...] = tuple(spec["classes"])
        self.use_vader: bool = bool(spec["vader_features"])
        self.architecture: str = str(spec.get("architecture") or "minilm")
        encoder = spec.get("encoder")
        self.encoder_files: tuple[str, ...] = tuple(encoder) if isinstance(encoder, list) else (encoder,) if encoder else ()
        self.encoder: str | None = self.encoder_files[0] if self.encoder_files else None
        self.tokenizer: str | None = spec.get("tokenizer")
        self.mean = np.asarray(spec["mean"], dtype=np.float32)
        self.scale = np.asarray(spec["scale"], dtype=np.float32)
        self.weights = np.asarray(spec["weights"], dtype=np.float32)  # [classes, features]
        self.bias = np.asarray(spec["bias"], dtype=np.float32)
        self.temperature = float(spec.get("temperature", 1.0))
        self.meta: dict[str, Any] = spec.get("meta", {})

    def probabilities(self, features: Any) -> Any:
        import numpy as np

        z = ((features - self.mean) / self.scale) @ self.weights.T + self.bias
        z = z / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def vader_features(vader: Any, texts: Sequence[str]) -> Any:
    import numpy as np

    rows = []
    for t in texts:
        s = vader.polarity_scores(t[:5000])
        rows.append((s["compound"], s["pos"], s["neg"]))
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), 3)


class SentenceSentimentModel:
    """Encoder + head: probabilities per sentence. Loaded lazily, once per process (see :func:`shared_model`)."""

    def __init__(self, head: Path | None = None) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        from shared.insights.encoder import SentenceEncoder, shared_encoder

        self.head = SentimentHead(head) if head is not None else SentimentHead()
        self.encoder: Any
        if self.head.architecture == "mpnet":
            from shared.insights.mpnet_encoder import MPNetEncoder

            self.encoder = MPNetEncoder([MODEL_DIR / f for f in self.head.encoder_files],
                                        MODEL_DIR / str(self.head.tokenizer))
        else:
            base = shared_encoder()  # the intents use it too; its vocabulary table is shared, not loaded twice
            self.encoder = SentenceEncoder.derived(base, MODEL_DIR / self.head.encoder) if self.head.encoder else base
        self.vader = SentimentIntensityAnalyzer()

    def _pooled(self, texts: Sequence[str]) -> Any:
        """The head's pooled hidden states. The head reads an inner layer; when the forward pass goes on
        to the last layer (issue 16: two more layers, ~1.5x the head's pass), it also yields the sentence
        embeddings the intent rules ask for next, for the same body sentences — one pass instead of two."""
        import numpy as np

        from shared.insights.encoder import _HIDDEN, _LAYERS, embedded, remember_embeddings

        head_layers = tuple(sorted(self.head.layers))
        if self.head.architecture != "minilm" or tuple(self.head.pooling) != ("mean",) or _LAYERS in head_layers \
                or not texts:
            return self.encoder.encode(texts, layers=self.head.layers, pooling=self.head.pooling)
        known = embedded(texts)  # sentences seen lately (signatures, greetings): the head's layers suffice
        fresh = [i for i, k in enumerate(known) if not k]
        out = np.zeros((len(texts), _HIDDEN * len(head_layers)), dtype=np.float32)
        if fresh:
            both = self.encoder.encode([texts[i] for i in fresh], layers=(*head_layers, _LAYERS), pooling=("mean",))
            remember_embeddings([texts[i] for i in fresh], both[:, -_HIDDEN:])
            out[fresh] = both[:, :-_HIDDEN]
        seen = [i for i, k in enumerate(known) if k]
        if seen:
            out[seen] = self.encoder.encode([texts[i] for i in seen], layers=head_layers, pooling=("mean",))
        return out

    def features(self, texts: Sequence[str]) -> Any:
        import numpy as np

        emb = self._pooled(texts)
        if self.head.use_vader:
            emb = np.hstack([emb, vader_features(self.vader, texts)])
        return emb

    def predict(self, texts: Sequence[str]) -> Any:
        """float32 [len(texts), 3] in LABELS order (positive, neutral, negative)."""
        import numpy as np

        probs = self.head.probabilities(self.features(texts))
        order = [self.head.classes.index(lbl.value) for lbl in LABELS]
        return np.asarray(probs[:, order], dtype=np.float32)


_lock = threading.Lock()
_shared: dict[str, SentenceSentimentModel] = {}
_failed: dict[str, str] = {}


def shared_model(model: str = "mpnet") -> SentenceSentimentModel:
    """The process-wide model of that name; raises ModelUnavailable (once cached) when its packaged
    files are unusable."""
    from shared.insights.encoder import ModelUnavailable

    with _lock:
        found = _shared.get(model)
        if found is not None:
            return found
        if model in _failed:
            raise ModelUnavailable(_failed[model])
        try:
            found = _shared[model] = SentenceSentimentModel(head_path(model))
        except Exception as exc:
            _failed[model] = f"sentiment model not loadable ({type(exc).__name__})"
            raise ModelUnavailable(_failed[model]) from exc
        return found


class ModelAnalyzer:
    """Local, offline, calibrated. ``name`` is the sentiment model (INSIGHTS_SENTIMENT_MODEL: "mpnet", the
    default, or "minilm"); falls back to VADER (and says so) without its files."""

    def __init__(self, config: ModelConfig | None = None, *, name: str = "mpnet") -> None:
        head_path(name)  # an unknown name fails here, not at the first text
        self.config = config or ModelConfig()
        self.name = name
        self._vader: VaderAnalyzer | None = None
        self._warned = False

    def _fallback(self) -> VaderAnalyzer:
        if self._vader is None:
            self._vader = VaderAnalyzer(VaderConfig())
        return self._vader

    async def analyze(self, texts: Sequence[str]) -> list[SentimentResult]:
        # the forward pass is numpy (releases the GIL in BLAS): off the event loop
        return await asyncio.to_thread(self.analyze_many, list(texts))

    def analyze_sync(self, text: str) -> SentimentResult:
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: Sequence[str]) -> list[SentimentResult]:
        cfg = self.config
        try:
            model = shared_model(self.name)
        except Exception as exc:
            note = str(exc)
            if not self._warned:
                self._warned = True
                log.warning("insights: %s; using VADER", note)
            return [_with_fallback(self._fallback().analyze_sync(t), note) for t in texts]
        per_text: list[list[Sentence]] = []
        flat: list[str] = []
        for text in texts:
            sents = _bounded(split_sentences((text or "")[: cfg.max_chars], max_sentences=cfg.max_sentences),
                             cfg.max_sentence_words)[: cfg.max_sentences]  # fmt: skip
            per_text.append(sents)
            flat.extend(s.text for s in sents)
        probs = model.predict(flat) if flat else None
        out: list[SentimentResult] = []
        k = 0
        for sents in per_text:
            if not sents:
                out.append(SentimentResult.empty(self.name))
                continue
            out.append(self._aggregate(sents, probs[k : k + len(sents)]))  # type: ignore[index]
            k += len(sents)
        return out

    def _aggregate(self, sents: Sequence[Sentence], probs: Any) -> SentimentResult:
        cfg = self.config
        sentences: list[SentenceSentiment] = []
        weights: list[float] = []
        agg = [0.0, 0.0, 0.0]
        wsum = 0.0
        for s, p in zip(sents, probs, strict=True):
            pos, neu, neg = (float(x) for x in p)
            base = cfg.courtesy_weight if _COURTESY.match(s.text) else 1.0
            w = base * (cfg.neutral_sentence_weight + (1.0 - neu))
            label = LABELS[int(p.argmax())]
            sentences.append(SentenceSentiment(s.text, label, pos - neg, s.offset))
            weights.append(w)
            for i, v in enumerate((pos, neu, neg)):
                agg[i] += w * v
            wsum += w
        pos, neu, neg = (v / wsum for v in agg)
        label = LABELS[max(range(3), key=lambda i: (pos, neu, neg)[i])]
        drivers: tuple[SentenceSentiment, ...] = ()
        if label is not SentimentLabel.NEUTRAL:
            col = 0 if label is SentimentLabel.POSITIVE else 2
            ranked = sorted(
                ((w * float(p[col]), i) for i, (w, p) in enumerate(zip(weights, probs, strict=True))
                 if float(p[col]) >= cfg.min_driver_probability),
                key=lambda x: (-x[0], x[1]),
            )  # fmt: skip
            drivers = tuple(sentences[i] for _, i in ranked[: cfg.max_drivers])
        return SentimentResult(
            label=label,
            scores=SentimentScores(pos, neu, neg, pos - neg),
            drivers=drivers,
            sentences=tuple(sentences),
            analyzer=self.name,
            confidence=max(pos, neu, neg),
        )


def _with_fallback(r: SentimentResult, note: str) -> SentimentResult:
    return SentimentResult(r.label, r.scores, r.drivers, r.sentences, f"{r.analyzer} (fallback)", r.raw_label,
                           r.error, note, r.confidence)  # fmt: skip
