"""Entry points the Exchange → Pega sync calls: one Insight per email or appointment.

Contract with the sync: these functions never raise for content (bodies, attachments, analyzer
output). A failing remote analyzer falls back to the local one and says so in
``SentimentResult.analyzer``/``error``; an unreadable attachment is listed with its SkipReason.
Only programming errors (wrong argument types) propagate.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from shared.insights.attachments import AttachmentExtractor, ExtractionLimits
from shared.insights.core import BACKLOG, CoreJob, CoreResult, run_core
from shared.insights.email_text import appointment_text, email_new_text
from shared.insights.encoder import sentence_embedder
from shared.insights.model_analyzer import ModelAnalyzer
from shared.insights.models import (
    AppointmentInput,
    AttachmentInput,
    AttachmentInsight,
    CrmContext,
    Direction,
    EmailInput,
    ExtractedText,
    Insight,
    ItemKind,
    SentimentResult,
    SkipReason,
    SuggestedAction,
)
from shared.insights.rules import RuleFacts, RuleSet, suggest_actions
from shared.insights.sentiment import SentimentAnalyzer, VaderAnalyzer

log = logging.getLogger(__name__)

_lock = threading.Lock()
_default_analyzer: ModelAnalyzer | None = None
_default_extractor: AttachmentExtractor | None = None
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|wg|tr|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MAX_TEXT_CHARS = 50_000
_INLINE_BODY_CHARS = 100_000


class CoreRunner(Protocol):
    """Where the model step of an item runs: a thread here (:class:`ThreadRunner`) or a worker process
    (:class:`shared.insights.model_workers.ModelWorkers`)."""

    async def run(self, job: CoreJob) -> CoreResult: ...


def default_analyzer() -> ModelAnalyzer:
    """The local analyzer (sentence model + trained head; VADER if the model files are missing).
    Creating it loads nothing: the model loads on the first text it scores."""
    global _default_analyzer
    with _lock:
        if _default_analyzer is None:
            _default_analyzer = ModelAnalyzer()
        return _default_analyzer


def default_extractor() -> AttachmentExtractor:
    """One extractor (one worker process, started on first attachment) per host process."""
    global _default_extractor
    with _lock:
        if _default_extractor is None:
            _default_extractor = AttachmentExtractor(ExtractionLimits())
            atexit.register(_default_extractor.close)
        return _default_extractor


def is_local(analyzer: SentimentAnalyzer) -> bool:
    """Scores in the calling thread (the sentence model, VADER), so a worker process can do it instead."""
    return isinstance(analyzer, (ModelAnalyzer, VaderAnalyzer))


async def _remote_scores(texts: Sequence[str], analyzer: SentimentAnalyzer) -> tuple[tuple[SentimentResult, ...] | None, str]:
    """A remote analyzer's scores, or (None, why) when it failed and the local analyzer must score."""
    try:
        results = await analyzer.analyze(texts)
        if len(results) != len(texts):
            raise ValueError(f"analyzer returned {len(results)} results for {len(texts)} texts")
        return tuple(results), ""
    except Exception as exc:
        log.warning("insights: analyzer %s failed (%s); using the local analyzer", analyzer.name, type(exc).__name__)
        return None, f"{analyzer.name} failed: {type(exc).__name__}"


class ThreadRunner:
    """Runs the model step in a thread of this process (library use, tests, INSIGHTS_WORKER_PROCESSES=0)."""

    def __init__(self, analyzer: SentimentAnalyzer | None = None, rules: RuleSet | None = None) -> None:
        self.analyzer = analyzer if analyzer is not None and is_local(analyzer) else None
        self.rules = rules
        self._pending = 0

    @property
    def busy(self) -> bool:
        """A backlog of jobs in this process's threads (see ModelWorkers.busy)."""
        return self._pending >= BACKLOG

    async def run(self, job: CoreJob) -> CoreResult:
        analyzer = self.analyzer or default_analyzer()
        self._pending += 1
        try:
            return await asyncio.to_thread(run_core, job, analyzer, self.rules)  # type: ignore[arg-type]
        finally:
            self._pending -= 1


async def _extract(atts: Sequence[AttachmentInput], extractor: AttachmentExtractor) -> list[ExtractedText]:
    out: list[ExtractedText] = []
    limits = extractor.limits
    deadline = time.monotonic() + limits.item_budget_seconds
    for n, att in enumerate(atts):  # sequential: one worker, bounded memory; the sync runs items concurrently anyway
        if n >= limits.max_attachments_per_item:
            out.append(ExtractedText(att.name, "unknown", skipped=SkipReason.ITEM_LIMIT,
                                     detail=f"more than {limits.max_attachments_per_item} attachments"))  # fmt: skip
            continue
        if time.monotonic() > deadline:
            out.append(ExtractedText(att.name, "unknown", skipped=SkipReason.ITEM_LIMIT,
                                     detail=f"item extraction budget of {limits.item_budget_seconds:g}s spent"))  # fmt: skip
            continue
        if att.is_inline and att.content_type.lower().startswith("image/"):
            out.append(ExtractedText(att.name, "image", skipped=SkipReason.UNSUPPORTED_TYPE, detail="inline image"))
            continue
        try:
            out.append(await extractor.extract(att))
        except Exception as exc:  # defensive: the extractor itself should never raise
            log.warning("insights: attachment extraction failed unexpectedly (%s)", type(exc).__name__)
            out.append(ExtractedText(att.name, "unknown", skipped=SkipReason.WORKER_FAILED, detail=type(exc).__name__))
    return out


async def _analyze(
    *,
    kind: ItemKind,
    subject: str,
    text: str,
    direction: Direction | None,
    attachments: Sequence[AttachmentInput],
    context: CrmContext,
    headers: tuple[tuple[str, str], ...] = (),
    analyzer: SentimentAnalyzer | None,
    rules: RuleSet | None,
    extractor: AttachmentExtractor | None,
    runner: CoreRunner | None,
) -> Insight:
    analyzer = analyzer or default_analyzer()
    extracted = await _extract(attachments, extractor or default_extractor()) if attachments else []
    readable = [e for e in extracted if e.ok]
    job = CoreJob(kind=kind, context=context, direction=direction, subject=_REPLY_PREFIX.sub("", subject or "").strip(),
                  body=text, attachments=tuple((e.name, e.text) for e in readable), headers=headers)
    if not is_local(analyzer):
        scores, note = await _remote_scores(job.texts, analyzer)
        job = replace(job, scores=scores, fallback_note=note)
    done = await (runner or ThreadRunner(analyzer, rules)).run(job)
    att_scores = dict(zip((id(e) for e in readable), done.attachment_sentiments, strict=True))
    att_insights = tuple(
        AttachmentInsight(e.name, e.kind, att_scores.get(id(e)), e.skipped, e.detail, e.truncated) for e in extracted
    )
    return Insight(kind=kind, text=text, sentiment=done.sentiment, attachments=att_insights, actions=done.actions)


async def _safe_text(fn, body: str, body_type) -> str:  # type: ignore[no-untyped-def]
    try:
        if len(body or "") < _INLINE_BODY_CHARS:
            return fn(body or "", body_type, max_chars=_MAX_TEXT_CHARS)
        # a large HTML body takes a while to tokenise: off the event loop
        return await asyncio.to_thread(fn, body, body_type, max_chars=_MAX_TEXT_CHARS)
    except Exception as exc:  # heuristics on hostile input must not fail the sync
        log.warning("insights: body extraction failed (%s); using raw body", type(exc).__name__)
        return (body or "")[:_MAX_TEXT_CHARS]


async def analyze_email(
    email: EmailInput,
    context: CrmContext,
    *,
    analyzer: SentimentAnalyzer | None = None,
    rules: RuleSet | None = None,
    extractor: AttachmentExtractor | None = None,
    runner: CoreRunner | None = None,
) -> Insight:
    """Sentiment of the email's new text and attachments, plus suggested actions with reasons.

    ``runner`` decides where the model step runs (default: a thread of this process, with
    ``analyzer`` and ``rules``). A :class:`~shared.insights.model_workers.ModelWorkers` runner scores
    with its own local analyzer and rules (built from settings by the engine); a remote ``analyzer``
    still scores here first."""
    return await _analyze(
        kind=ItemKind.EMAIL,
        subject=email.subject,
        text=await _safe_text(email_new_text, email.body, email.body_type),
        direction=email.direction,
        attachments=email.attachments,
        context=context,
        headers=email.headers,
        analyzer=analyzer,
        rules=rules,
        extractor=extractor,
        runner=runner,
    )


async def analyze_appointment(
    appointment: AppointmentInput,
    context: CrmContext,
    *,
    analyzer: SentimentAnalyzer | None = None,
    rules: RuleSet | None = None,
    extractor: AttachmentExtractor | None = None,
    runner: CoreRunner | None = None,
) -> Insight:
    """Sentiment of an appointment body (invitation text, without join boilerplate) and attachments."""
    return await _analyze(
        kind=ItemKind.APPOINTMENT,
        subject=appointment.subject,
        text=await _safe_text(appointment_text, appointment.body, appointment.body_type),
        direction=Direction.INBOUND if appointment.is_organizer_external else Direction.OUTBOUND,
        attachments=appointment.attachments,
        context=context,
        analyzer=analyzer,
        rules=rules,
        extractor=extractor,
        runner=runner,
    )


def suggest_follow_ups(context: CrmContext, *, rules: RuleSet | None = None) -> tuple[SuggestedAction, ...]:
    """Rules for a thread with no new item (a timer asks: has our last email gone unanswered?)."""
    facts = RuleFacts(kind=ItemKind.FOLLOW_UP, context=context, direction=Direction.OUTBOUND, embed=sentence_embedder())
    return suggest_actions(facts, rules)
