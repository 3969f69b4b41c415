"""The CPU part of one item's insights: local sentiment scores and the suggested actions.

Why a separate step: everything before it (body text, attachment extraction, a remote analyzer's
call) is I/O or runs in its own process already; this step runs the sentence model, which is
compute-bound numpy. Keeping it a pure function of a picklable :class:`CoreJob` lets the host run it
in a worker process (:mod:`shared.insights.model_workers`), where it cannot hold the host's GIL, or in
a thread when processes are not wanted. Both give the same result for the same job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.insights.encoder import sentence_embedder
from shared.insights.models import CrmContext, Direction, ItemKind, SentimentResult, SuggestedAction
from shared.insights.rules import RuleFacts, RuleSet, suggest_actions

# jobs per model process waiting or running that count as a backlog: a new analysis would wait ≈ 0.2 s
# (ModelWorkers.busy, ThreadRunner.busy; the INSIGHTS_DEFERRED=auto rule of shared.sync.gather)
BACKLOG = 4


class LocalAnalyzer(Protocol):
    """An analyzer that scores in the calling thread (the sentence model, VADER)."""

    name: str

    def analyze_sync(self, text: str) -> SentimentResult: ...


@dataclass(frozen=True, slots=True)
class CoreJob:
    """One item's input to the model, after text extraction. ``scores`` are a remote analyzer's
    (one per text of :attr:`texts`); ``None`` means the local analyzer scores them here, marked as a
    fallback when ``fallback_note`` says why the configured analyzer did not."""

    kind: ItemKind
    context: CrmContext
    direction: Direction | None
    subject: str  # without reply prefixes
    body: str  # the item's new text
    attachments: tuple[tuple[str, str], ...] = ()  # readable attachments: (name, text)
    headers: tuple[tuple[str, str], ...] = ()
    scores: tuple[SentimentResult, ...] | None = None
    fallback_note: str = ""

    @property
    def texts(self) -> list[str]:
        """What is scored: the body (the subject when the body is empty), then each attachment."""
        return [self.body if self.body.strip() else self.subject, *(text for _, text in self.attachments)]


@dataclass(frozen=True, slots=True)
class CoreResult:
    sentiment: SentimentResult
    attachment_sentiments: tuple[SentimentResult, ...]  # in the order of CoreJob.attachments
    actions: tuple[SuggestedAction, ...]


def local_scores(analyzer: LocalAnalyzer, texts: Sequence[str]) -> list[SentimentResult]:
    many = getattr(analyzer, "analyze_many", None)  # the model batches every sentence of the item
    return list(many(texts)) if many is not None else [analyzer.analyze_sync(t) for t in texts]


def as_fallback(r: SentimentResult, note: str) -> SentimentResult:
    return SentimentResult(r.label, r.scores, r.drivers, r.sentences, f"{r.analyzer} (fallback)", r.raw_label,
                           r.error, note, r.confidence)  # fmt: skip


def run_core(job: CoreJob, analyzer: LocalAnalyzer, rules: RuleSet | None) -> CoreResult:
    if job.scores is not None:
        scores = list(job.scores)
    else:
        scores = local_scores(analyzer, job.texts)
        if job.fallback_note:
            scores = [as_fallback(r, job.fallback_note) for r in scores]
    if len(scores) != len(job.texts):
        raise ValueError(f"{len(scores)} sentiment results for {len(job.texts)} texts")
    facts = RuleFacts(
        kind=job.kind,
        context=job.context,
        direction=job.direction,
        subject=job.subject,
        body=job.body,
        attachments=job.attachments,
        sentiment=scores[0],
        attachment_sentiments=tuple((name, s) for (name, _), s in zip(job.attachments, scores[1:], strict=True)),
        headers=job.headers,
        embed=sentence_embedder(),  # the first call loads the model
    )
    return CoreResult(scores[0], tuple(scores[1:]), suggest_actions(facts, rules))
