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

from shared.insights.attachments import AttachmentExtractor, ExtractionLimits
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
from shared.insights.sentiment import SentimentAnalyzer

log = logging.getLogger(__name__)

_lock = threading.Lock()
_default_analyzer: ModelAnalyzer | None = None
_default_extractor: AttachmentExtractor | None = None
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|wg|tr|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MAX_TEXT_CHARS = 50_000
_INLINE_BODY_CHARS = 100_000


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


async def _score(texts: Sequence[str], analyzer: SentimentAnalyzer) -> list[SentimentResult]:
    try:
        results = await analyzer.analyze(texts)
        if len(results) != len(texts):
            raise ValueError(f"analyzer returned {len(results)} results for {len(texts)} texts")
        return results
    except Exception as exc:
        local = default_analyzer()
        if analyzer is local:
            raise
        log.warning("insights: analyzer %s failed (%s); using the local analyzer", analyzer.name, type(exc).__name__)
        fallback = await local.analyze(texts)
        note = f"{analyzer.name} failed: {type(exc).__name__}"
        return [
            SentimentResult(
                r.label, r.scores, r.drivers, r.sentences, f"{r.analyzer} (fallback)", r.raw_label, r.error, note,
                r.confidence,
            )
            for r in fallback
        ]


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
) -> Insight:
    analyzer = analyzer or default_analyzer()
    extracted = await _extract(attachments, extractor or default_extractor()) if attachments else []
    subject_clean = _REPLY_PREFIX.sub("", subject or "").strip()
    main_text = text if text.strip() else subject_clean
    readable = [e for e in extracted if e.ok]
    scores = await _score([main_text, *(e.text for e in readable)], analyzer)
    item_sentiment, att_scores = scores[0], dict(zip((id(e) for e in readable), scores[1:], strict=True))
    att_insights = tuple(
        AttachmentInsight(e.name, e.kind, att_scores.get(id(e)), e.skipped, e.detail, e.truncated) for e in extracted
    )
    facts = RuleFacts(
        kind=kind,
        context=context,
        direction=direction,
        subject=subject_clean,
        body=text,
        attachments=tuple((e.name, e.text) for e in readable),
        sentiment=item_sentiment,
        attachment_sentiments=tuple((e.name, att_scores[id(e)]) for e in readable),
        headers=headers,
        embed=await asyncio.to_thread(sentence_embedder),  # first call loads the model: off the event loop
    )
    # intent conditions run the sentence model: off the event loop like the sentiment itself
    actions = await asyncio.to_thread(suggest_actions, facts, rules)
    return Insight(kind=kind, text=text, sentiment=item_sentiment, attachments=att_insights, actions=actions)


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
) -> Insight:
    """Sentiment of the email's new text and attachments, plus suggested actions with reasons."""
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
    )


async def analyze_appointment(
    appointment: AppointmentInput,
    context: CrmContext,
    *,
    analyzer: SentimentAnalyzer | None = None,
    rules: RuleSet | None = None,
    extractor: AttachmentExtractor | None = None,
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
    )


def suggest_follow_ups(context: CrmContext, *, rules: RuleSet | None = None) -> tuple[SuggestedAction, ...]:
    """Rules for a thread with no new item (a timer asks: has our last email gone unanswered?)."""
    facts = RuleFacts(kind=ItemKind.FOLLOW_UP, context=context, direction=Direction.OUTBOUND, embed=sentence_embedder())
    return suggest_actions(facts, rules)
