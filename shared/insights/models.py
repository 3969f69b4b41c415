"""Typed inputs and outputs of the insights library.

Inputs are what the Exchange → Pega sync already holds for an item (body, attachments, the CRM
records it associated the item with); outputs are plain frozen dataclasses so the sync can write
them to Pega (see :mod:`shared.insights.pega_fields`) without knowing how they were computed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class SentimentLabel(str, enum.Enum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


class Direction(str, enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class EntityType(str, enum.Enum):
    """Which Pega record the sync associated the item with (contact, then lead, then organization)."""

    CONTACT = "contact"
    LEAD = "lead"
    ORGANIZATION = "organization"
    NONE = "none"


class ItemKind(str, enum.Enum):
    EMAIL = "email"
    APPOINTMENT = "appointment"
    FOLLOW_UP = "follow_up"  # a timer-driven check of a thread without a new item


class BodyType(str, enum.Enum):
    TEXT = "text"
    HTML = "html"


class SkipReason(str, enum.Enum):
    """Why an attachment contributed no text. Typed so the sync can count and report each kind."""

    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    ENCRYPTED = "encrypted"
    CORRUPT = "corrupt"
    TIMEOUT = "timeout"
    BOMB = "bomb"  # compression ratio / declared uncompressed size / entry count over limits
    TOO_DEEP = "too_deep"  # nesting (HTML, MIME, PDF objects) over limits
    MEMORY = "memory"  # the worker hit its address-space limit
    EMPTY = "empty"  # readable, but no text (scanned PDF, image-only document)
    WORKER_FAILED = "worker_failed"  # the isolated worker died for another reason
    ITEM_LIMIT = "item_limit"  # the item has more attachments, or took longer in total, than allowed


def _coerce(obj: object, name: str, enum_type: type[enum.Enum]) -> None:
    """Accept the plain strings a caller may have from Graph JSON ("html", "inbound") for enum fields."""
    value = getattr(obj, name)
    if not isinstance(value, enum_type):
        object.__setattr__(obj, name, enum_type(str(value).strip().lower()))


def _aware(t: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC, so naive and aware values can be compared."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _header_pairs(headers: Any) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    if isinstance(headers, dict):
        return tuple((str(k), str(v)) for k, v in headers.items())
    out: list[tuple[str, str]] = []
    for h in headers:
        if isinstance(h, dict):
            out.append((str(h.get("name", "")), str(h.get("value", ""))))
        else:
            name, value = h
            out.append((str(name), str(value)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AttachmentInput:
    name: str
    content: bytes
    content_type: str = "application/octet-stream"
    is_inline: bool = False


@dataclass(frozen=True, slots=True)
class EmailInput:
    """One email as the sync parsed it from Graph (``body.contentType`` decides ``body_type``)."""

    subject: str
    body: str
    body_type: BodyType = BodyType.HTML
    direction: Direction = Direction.INBOUND
    sender: str = ""
    attachments: tuple[AttachmentInput, ...] = ()
    received_at: datetime | None = None
    conversation_id: str | None = None
    # Graph internetMessageHeaders as (name, value) pairs (a {name: value} dict or [{name, value}] is accepted):
    # Auto-Submitted, List-Unsubscribe, Precedence … tell auto-replies and bulk mail from mail a person wrote
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, "body_type", BodyType)
        _coerce(self, "direction", Direction)
        object.__setattr__(self, "attachments", tuple(self.attachments))
        object.__setattr__(self, "headers", _header_pairs(self.headers))


@dataclass(frozen=True, slots=True)
class AppointmentInput:
    subject: str
    body: str
    body_type: BodyType = BodyType.HTML
    organizer: str = ""
    is_organizer_external: bool = True
    attachments: tuple[AttachmentInput, ...] = ()
    start: datetime | None = None

    def __post_init__(self) -> None:
        _coerce(self, "body_type", BodyType)
        object.__setattr__(self, "attachments", tuple(self.attachments))


@dataclass(frozen=True, slots=True)
class Opportunity:
    id: str
    name: str = ""
    stage: str = ""
    is_open: bool = True


@dataclass(frozen=True, slots=True)
class ThreadHistory:
    """What the sync knows about the conversation the item belongs to (from its link table)."""

    message_count: int = 0
    last_outbound_at: datetime | None = None
    last_inbound_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "last_outbound_at", _aware(self.last_outbound_at))
        object.__setattr__(self, "last_inbound_at", _aware(self.last_inbound_at))


@dataclass(frozen=True, slots=True)
class CrmContext:
    entity_type: EntityType = EntityType.NONE
    entity_id: str | None = None
    entity_name: str = ""
    account_owner: str | None = None
    opportunities: tuple[Opportunity, ...] = ()
    thread: ThreadHistory = field(default_factory=ThreadHistory)
    now: datetime | None = None  # injected for determinism; defaults to the wall clock

    def __post_init__(self) -> None:
        _coerce(self, "entity_type", EntityType)
        object.__setattr__(self, "now", _aware(self.now))
        object.__setattr__(self, "opportunities", tuple(self.opportunities))

    @property
    def open_opportunities(self) -> tuple[Opportunity, ...]:
        return tuple(o for o in self.opportunities if o.is_open)

    def current_time(self) -> datetime:
        return self.now or datetime.now(UTC)

    def days_since_last_outbound_without_reply(self) -> float | None:
        """Days since our last outbound message when nothing came back after it; None otherwise."""
        t = self.thread
        if t.last_outbound_at is None:
            return None
        if t.last_inbound_at is not None and t.last_inbound_at >= t.last_outbound_at:
            return None
        return (self.current_time() - t.last_outbound_at).total_seconds() / 86400.0


@dataclass(frozen=True, slots=True)
class SentenceSentiment:
    text: str
    label: SentimentLabel
    compound: float  # -1..1; for Azure: positive - negative confidence
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label.value, "compound": round(self.compound, 4)}


@dataclass(frozen=True, slots=True)
class SentimentScores:
    positive: float
    neutral: float
    negative: float
    compound: float

    def to_dict(self) -> dict[str, float]:
        return {
            "positive": round(self.positive, 4),
            "neutral": round(self.neutral, 4),
            "negative": round(self.negative, 4),
            "compound": round(self.compound, 4),
        }


@dataclass(frozen=True, slots=True)
class SentimentResult:
    label: SentimentLabel
    scores: SentimentScores
    drivers: tuple[SentenceSentiment, ...] = ()  # the sentences that moved the label, strongest first
    sentences: tuple[SentenceSentiment, ...] = ()
    analyzer: str = ""
    raw_label: str | None = None  # e.g. Azure's "mixed" before mapping to our three labels
    error: str | None = None  # the analyzer could not score this text (neutral result returned)
    fallback_reason: str | None = None  # the configured analyzer failed; this result is the local one
    confidence: float | None = None  # calibrated probability of ``label`` (model and Azure analyzers; None for VADER)

    @staticmethod
    def empty(analyzer: str, *, error: str | None = None) -> SentimentResult:
        return SentimentResult(
            label=SentimentLabel.NEUTRAL,
            scores=SentimentScores(0.0, 1.0, 0.0, 0.0),
            analyzer=analyzer,
            error=error,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "label": self.label.value,
            "scores": self.scores.to_dict(),
            "drivers": [s.to_dict() for s in self.drivers],
            "analyzer": self.analyzer,
        }
        if self.confidence is not None:
            d["confidence"] = round(self.confidence, 4)
        if self.raw_label:
            d["raw_label"] = self.raw_label
        if self.error:
            d["error"] = self.error
        if self.fallback_reason:
            d["fallback_reason"] = self.fallback_reason
        return d


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """Text from one attachment, or the reason there is none."""

    name: str
    kind: str  # pdf, docx, text, html, eml, or the unsupported extension
    text: str = ""
    truncated: bool = False
    skipped: SkipReason | None = None
    detail: str = ""  # human-readable reason; never contains document content

    @property
    def ok(self) -> bool:
        return self.skipped is None


@dataclass(frozen=True, slots=True)
class AttachmentInsight:
    name: str
    kind: str
    sentiment: SentimentResult | None
    skipped: SkipReason | None = None
    detail: str = ""
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.sentiment is not None:
            d["sentiment"] = self.sentiment.to_dict()
        if self.skipped is not None:
            d["skipped"] = self.skipped.value
            d["detail"] = self.detail
        if self.truncated:
            d["truncated"] = True
        return d


@dataclass(frozen=True, slots=True)
class Evidence:
    """One reason a rule matched: which condition, and the phrase/sentence/context value that satisfied it."""

    condition: str
    detail: str
    phrase: str | None = None
    sentence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"condition": self.condition, "detail": self.detail}
        if self.phrase is not None:
            d["phrase"] = self.phrase
        if self.sentence is not None:
            d["sentence"] = self.sentence
        return d


@dataclass(frozen=True, slots=True)
class SuggestedAction:
    action: str  # e.g. call_back, propose_appointment, prepare_quote, alert_account_owner, follow_up
    title: str
    rule_id: str
    priority: int  # 1 = most urgent
    reason: str
    evidence: tuple[Evidence, ...] = ()
    due_in_hours: float | None = None
    also_matched_rules: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "action": self.action,
            "title": self.title,
            "rule": self.rule_id,
            "priority": self.priority,
            "reason": self.reason,
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.due_in_hours is not None:
            d["due_in_hours"] = self.due_in_hours
        if self.also_matched_rules:
            d["also_matched_rules"] = list(self.also_matched_rules)
        return d


@dataclass(frozen=True, slots=True)
class Insight:
    kind: ItemKind
    text: str  # the analysed new text (no quoted history, no signature)
    sentiment: SentimentResult
    attachments: tuple[AttachmentInsight, ...] = ()
    actions: tuple[SuggestedAction, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "sentiment": self.sentiment.to_dict(),
            "attachments": [a.to_dict() for a in self.attachments],
            "actions": [a.to_dict() for a in self.actions],
        }

    def to_pega_fields(self, mapping: Any = None) -> dict[str, Any]:
        """Flat dict for the Pega case body; field names come from ``mapping`` (a PegaInsightFields)."""
        from shared.insights.pega_fields import to_pega_fields

        return to_pega_fields(self, mapping)
