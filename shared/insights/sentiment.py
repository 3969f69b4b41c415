"""Sentiment analyzers: the protocol, and the default local one (VADER, offline).

VADER (Hutto & Gilbert, 2014) is a lexicon + rules model whose lexicon ships inside the
``vaderSentiment`` package, so it runs with no network and no model download. We score each
sentence and aggregate, because business mail mixes courtesy ("Hope you are well", "Please let me
know") with the sentence that matters; plain whole-text VADER reads most such mail as positive.
The tuning (sentence weighting, courtesy down-weighting, a small business lexicon, thresholds) is
switchable so the benchmark can report the plain-VADER baseline next to it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared.insights.models import SentenceSentiment, SentimentLabel, SentimentResult, SentimentScores
from shared.insights.sentences import Sentence, split_sentences


@runtime_checkable
class SentimentAnalyzer(Protocol):
    """Anything that turns texts into SentimentResults, one per text, same order.

    Implementations never raise for one bad text: they return ``SentimentResult.empty(error=...)``
    for it. They may raise for a whole-batch failure (e.g. the service is unreachable); callers
    (``analyze_email``) then fall back to a neutral result carrying the error.
    """

    name: str

    async def analyze(self, texts: Sequence[str]) -> list[SentimentResult]: ...


# Business-mail lexicon adjustments (VADER scale -4..4). Chosen from how sales/support mail is
# written, not fitted to the benchmark set: words VADER lacks that carry clear valence in a CRM
# inbox, and politeness words VADER over-rates ("please find attached", "feel free").
BUSINESS_LEXICON: dict[str, float] = {
    "delay": -1.2, "delays": -1.2, "delayed": -1.4, "overdue": -1.4, "late": -0.8,
    "outage": -2.2, "outages": -2.2, "downtime": -1.8, "unresponsive": -1.8, "overcharged": -2.2,
    "overbilled": -2.2, "refund": -0.8, "escalate": -1.4, "escalating": -1.4, "escalation": -1.4,
    "cancel": -1.2, "cancelling": -1.2, "canceling": -1.2, "cancellation": -1.2, "terminate": -1.4,
    "issue": -0.6, "issues": -0.8, "bug": -1.2, "bugs": -1.2, "glitch": -1.2, "crash": -1.8,
    "crashes": -1.8, "crashed": -1.8, "broken": -1.8, "defect": -1.4, "defective": -1.8,
    "incorrect": -1.2, "wrong": -1.4, "missing": -1.0, "unclear": -0.8, "poor": -1.8,
    "slow": -1.0, "slower": -1.0, "frustrated": -2.0, "frustrating": -2.0, "unhappy": -2.0,
    "dissatisfied": -2.0, "disappointing": -2.0, "disappointed": -2.0, "churn": -1.2,
    "competitor": -0.4, "penalty": -1.4, "breach": -1.8, "lawyer": -1.2, "legal": -0.4,
    "smooth": 1.4, "smoothly": 1.4, "seamless": 1.8, "seamlessly": 1.8, "exceeded": 1.6,
    "impressed": 2.2, "impressive": 2.2, "delighted": 2.6, "thrilled": 2.6, "excited": 2.0,
    "renew": 0.8, "expand": 0.8, "approved": 1.4, "signed": 0.6, "recommend": 1.6,
    "please": 0.2, "free": 0.4, "kind": 0.4, "hope": 0.6, "hoping": 0.4, "sure": 0.2,
    # CRM nouns VADER scores as praise: "customer support", "security questionnaire", "shared folder"
    "support": 0.2, "supported": 0.2, "share": 0.2, "shared": 0.2, "security": 0.2, "secure": 0.4,
    "accept": 0.4, "holiday": 0.2, "holidays": 0.2, "credit": 0.2, "interest": 0.3, "limited": -0.4,
    # "we were promised …" is how complaints start, not praise
    "promised": 0.0, "promise": 0.3,
}  # fmt: skip

# Courtesy formulae: real but weak signals of sentiment; weighted down, not dropped.
_COURTESY = re.compile(
    r"^\W*(?:(?:hi|hello|hey|dear|good\s+(?:morning|afternoon|evening))\b[^.!?]{0,40}[,.!]?\s*$"
    r"|(?:many\s+)?thanks?(?:\s+you)?\b[^.!?]{0,60}[.!]*\s*$"
    r"|thank\s+you\b[^.!?]{0,60}[.!]*\s*$"
    r"|(?:i\s+)?hope\s+(?:you|this|all|everything|your)\b[^.!?]{0,50}[.!]*\s*$"
    r"|have\s+a\s+(?:great|nice|good|lovely|wonderful)\s+\w+[.!]*\s*$"
    r"|(?:i\s+am\s+|i'm\s+|we\s+are\s+|we're\s+)?looking\s+forward\s+to\b[^.!?]{0,60}[.!]*\s*$"
    r"|(?:please\s+)?(?:do\s+not\s+hesitate|don't\s+hesitate|feel\s+free)\b[^.!?]{0,80}[.!]*\s*$"
    r"|(?:please\s+)?let\s+(?:me|us)\s+know\s+if\s+you\s+have\s+(?:any\s+)?questions[.!]*\s*$"
    r"|please\s+find\s+attached\b[^.!?]{0,80}[.!]*\s*$)",
    re.IGNORECASE,
)


_INLINE_CHARS = 20_000  # below this, scoring takes a few ms: not worth a thread hop


@dataclass(frozen=True, slots=True)
class VaderConfig:
    positive_threshold: float = 0.3
    negative_threshold: float = -0.1
    sentence_weighting: bool = True
    courtesy_weight: float = 0.25
    neutral_sentence_weight: float = 0.25  # weight of a sentence with compound 0 (an opinionated one adds |compound|)
    lexicon_updates: Mapping[str, float] = field(default_factory=lambda: dict(BUSINESS_LEXICON))
    max_chars: int = 50_000
    max_sentences: int = 400
    max_drivers: int = 3
    max_sentence_words: int = 80  # VADER is quadratic in sentence length; run-on "sentences" are cut into pieces

    @staticmethod
    def plain() -> VaderConfig:
        """Stock VADER: whole-text compound, its documented ±0.05 thresholds, stock lexicon."""
        return VaderConfig(
            positive_threshold=0.05,
            negative_threshold=-0.05,
            sentence_weighting=False,
            lexicon_updates={},
        )


def _bounded(sentences: Sequence[Sentence], max_words: int) -> list[Sentence]:
    out: list[Sentence] = []
    for s in sentences:
        words = s.text.split()
        if len(words) <= max_words:
            out.append(s)
            continue
        for k in range(0, len(words), max_words):
            out.append(Sentence(" ".join(words[k : k + max_words]), s.offset))
    return out


def _label(compound: float, pos_t: float, neg_t: float) -> SentimentLabel:
    if compound >= pos_t:
        return SentimentLabel.POSITIVE
    if compound <= neg_t:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


class VaderAnalyzer:
    """Local, offline, deterministic. ~thousands of short texts per second on one core."""

    def __init__(self, config: VaderConfig | None = None, *, name: str = "vader") -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.config = config or VaderConfig()
        self.name = name
        self._vader = SentimentIntensityAnalyzer()
        # per-instance copy: the package keeps its lexicon on the instance, so updates stay local
        self._vader.lexicon = dict(self._vader.lexicon)
        self._vader.lexicon.update({k.lower(): float(v) for k, v in self.config.lexicon_updates.items()})

    async def analyze(self, texts: Sequence[str]) -> list[SentimentResult]:
        if sum(len(t or "") for t in texts) < _INLINE_CHARS:
            return [self.analyze_sync(t) for t in texts]
        # long input (attachments): keep the event loop responsive for the sync's other work
        return await asyncio.to_thread(lambda: [self.analyze_sync(t) for t in texts])

    def analyze_sync(self, text: str) -> SentimentResult:
        cfg = self.config
        text = (text or "")[: cfg.max_chars]
        if not text.strip():
            return SentimentResult.empty(self.name)
        if not cfg.sentence_weighting:
            s = self._vader.polarity_scores(text[:5000])  # stock VADER is quadratic in text length
            label = _label(s["compound"], cfg.positive_threshold, cfg.negative_threshold)
            return SentimentResult(
                label=label,
                scores=SentimentScores(s["pos"], s["neu"], s["neg"], s["compound"]),
                analyzer=self.name,
            )
        sentences: list[SentenceSentiment] = []
        weights: list[float] = []
        pos = neu = neg = comp = wsum = 0.0
        for sent in _bounded(split_sentences(text, max_sentences=cfg.max_sentences), cfg.max_sentence_words):
            s = self._vader.polarity_scores(sent.text)
            c = s["compound"]
            base = cfg.courtesy_weight if _COURTESY.match(sent.text) else 1.0
            # opinionated sentences count more than neutral logistics ("The call is at 3pm.", "Alex,"),
            # so a long mail with one angry sentence is not diluted to neutral by its logistics
            w = base * (cfg.neutral_sentence_weight + abs(c))
            sentences.append(
                SentenceSentiment(sent.text, _label(c, cfg.positive_threshold, cfg.negative_threshold), c, sent.offset)
            )
            weights.append(w)
            pos += w * s["pos"]
            neu += w * s["neu"]
            neg += w * s["neg"]
            comp += w * c
            wsum += w
        if wsum == 0:
            return SentimentResult.empty(self.name)
        compound = comp / wsum
        label = _label(compound, cfg.positive_threshold, cfg.negative_threshold)
        return SentimentResult(
            label=label,
            scores=SentimentScores(pos / wsum, neu / wsum, neg / wsum, compound),
            drivers=pick_drivers(sentences, weights, label, cfg.max_drivers),
            sentences=tuple(sentences),
            analyzer=self.name,
        )


def pick_drivers(
    sentences: Sequence[SentenceSentiment], weights: Sequence[float], label: SentimentLabel, k: int
) -> tuple[SentenceSentiment, ...]:
    """The sentences that pushed the result towards ``label``, strongest contribution first."""
    if label is SentimentLabel.NEUTRAL:
        return ()
    sign = 1.0 if label is SentimentLabel.POSITIVE else -1.0
    scored = [(w * s.compound * sign, i, s) for i, (s, w) in enumerate(zip(sentences, weights, strict=True))]
    scored = [x for x in scored if x[0] > 0]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return tuple(s for _, _, s in scored[:k])
