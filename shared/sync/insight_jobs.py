"""Insights off the critical path: the record first, its sentiment and suggested actions after.

The local sentence model costs ≈ 45 ms of CPU per mail (docs/performance.md), so a round that waits
for it delivers records at the model's pace (≈ 20 mails/s on one core), not at the pace of Graph,
storage and Pega. With `INSIGHTS_DEFERRED=auto` (the default) a round computes a new record's
insights itself while the model is idle (they ride in the create: a quiet host writes complete
records at once) and, while the model is busy, writes the record without them and queues an
`insights.write` message per page on `insight-work`; the insight worker computes the fields and
writes them onto the records. `always` defers every new record's insights, `never` none.

- The message carries what the analysis reads (subject, body, sender, headers, association ids),
  so no second Graph read per item: the body as Graph sent it when it is small, else the plain text
  the round already made of it. Attachments, which the message cannot carry, are read by the worker
  (as the round read them). A page's jobs are packed into as few messages as the 64 KB queue limit
  allows.
- Jobs are queued after the Pega writes and before the page's links: a round that fails before its
  links are written is replayed, finds the records by external id, and queues their jobs again. A
  job that runs twice writes the same fields twice (idempotent).
- The worker writes only the insight fields, and only onto a record that still exists (a record
  removed in Pega meanwhile is not re-created). Insights stay an enrichment: a job whose analysis
  fails writes nothing and is not retried; a Pega or storage outage retries the message.
- Dead letters of this queue keep the job ids and the cause, never the carried text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import PermanentError
from shared.pega.models import Association, RecordKind
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.sync.records import EventRecord, Item, MessageRecord

log = logging.getLogger(__name__)

MESSAGE_TYPE = "insights.write"
# base64 makes 48 KB of text 64 KB, the queue's limit; the envelope's own fields need a little
MESSAGE_BUDGET = 44_000
# bytes in the message's JSON (so a page's jobs pack densely and one job always fits)
RAW_BODY_MAX = 12_000  # a larger body travels as the plain text the round made of it
TEXT_MAX = 8_000  # the analysis reads the new text of a mail, which sits at its top
SUBJECT_MAX = 512  # characters
HEADERS_MAX = 2_000
REDACTED = "redacted"  # a dead letter's body: the carried text was removed
JOB_CONCURRENCY = 8  # analyses of one message at once (the model's worker processes queue the rest)


class InvalidInsightMessage(PermanentError):
    """The message's body is not a valid insights batch: dead-lettered at once, with the field."""


class InsightJob(BaseModel):
    """One record's analysis input and where its fields go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["email", "appointment"]
    graph_id: str = Field(min_length=1, max_length=512)
    pega_id: str = Field(min_length=1, max_length=512)
    subject: str = Field(default="", max_length=SUBJECT_MAX)
    body: str = Field(default="", max_length=RAW_BODY_MAX)
    body_type: Literal["html", "text"] = "text"
    sender: str = Field(default="", max_length=320)
    received_at: dt.datetime | None = None
    conversation_id: str | None = Field(default=None, max_length=512)
    headers: tuple[tuple[str, str], ...] = ()
    has_attachments: bool = False
    own_domain: str = Field(default="", max_length=255)  # appointments: the rep's domain (an organizer outside it is external)
    organizer: str = Field(default="", max_length=320)
    start: dt.datetime | None = None
    contact_id: str | None = Field(default=None, max_length=512)
    lead_id: str | None = Field(default=None, max_length=512)
    organization_id: str | None = Field(default=None, max_length=512)
    opportunity_id: str | None = Field(default=None, max_length=512)

    @property
    def association(self) -> Association:
        return Association(contact_id=self.contact_id, lead_id=self.lead_id, organization_id=self.organization_id,
                           opportunity_id=self.opportunity_id)


class InsightBatch(BaseModel):
    """The body of an `insights.write` message: one mailbox's jobs of one page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mailbox: str = Field(min_length=1, max_length=256)
    jobs: tuple[InsightJob, ...] = Field(min_length=1, max_length=512)


def insight_kind(it: Item, folder: str) -> Literal["email", "appointment"] | None:
    """Which analysis a new item gets: received mail (not Sent Items) and appointments, never
    private items (nothing of their content goes beyond what policy allows)."""
    if isinstance(it, MessageRecord) and folder != "sentitems" and not it.is_private:
        return "email"
    if isinstance(it, EventRecord) and not it.is_private:
        return "appointment"
    return None


def json_size(text: str) -> int:
    """Bytes of `text` in the message's JSON (escapes and UTF-8 included: a control character takes 6)."""
    return len(json.dumps(text, ensure_ascii=False).encode())


def fit(text: str, limit: int) -> str:
    """The longest prefix (to within a few percent) whose JSON takes at most `limit` bytes."""
    size = json_size(text)
    while size > limit:
        text = text[: max(0, int(len(text) * limit / size * 0.95) - 1)]
        size = json_size(text)
    return text


def _headers(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    size = 0
    for name, value in pairs:
        size += json_size(name) + json_size(value) + 4
        if size > HEADERS_MAX:
            break
        out.append((name, value))
    return tuple(out)


def _subject(subject: str | None) -> str:
    return fit((subject or "")[:SUBJECT_MAX], 2 * SUBJECT_MAX)


def _body(raw: str | None, body_type: str | None, text: str) -> tuple[str, Literal["html", "text"]]:
    raw = raw or ""
    kind: Literal["html", "text"] = "html" if (body_type or "").lower() == "html" else "text"
    if json_size(raw) <= RAW_BODY_MAX:
        return raw, kind
    return fit(text or raw, TEXT_MAX), "text"


def job_for(it: Item, folder: str, pega_id: str, association: Association | None, *,
            own_domain: str) -> InsightJob | None:
    """The job of a new record, or None when the item gets no insights."""
    kind = insight_kind(it, folder)
    assoc = association or Association()
    ids = {"contact_id": assoc.contact_id, "lead_id": assoc.lead_id, "organization_id": assoc.organization_id,
           "opportunity_id": assoc.opportunity_id}
    if kind == "email" and isinstance(it, MessageRecord):
        body, body_type = _body(it.body, it.body_type, it.body_text)
        return InsightJob(kind="email", graph_id=it.id, pega_id=pega_id, subject=_subject(it.subject),
                          body=body, body_type=body_type, sender=it.sender.address if it.sender else "",
                          received_at=it.received_at, conversation_id=it.conversation_id,
                          headers=_headers(it.headers), has_attachments=it.has_attachments, **ids)
    if kind == "appointment" and isinstance(it, EventRecord):
        body, body_type = _body(it.body, it.body_type, it.body_text)
        return InsightJob(kind="appointment", graph_id=it.id, pega_id=pega_id,
                          subject=_subject(it.subject), body=body, body_type=body_type,
                          organizer=it.organizer.address.lower() if it.organizer else "",
                          own_domain=own_domain.lower(), start=it.start, **ids)
    return None


def pack(mailbox: str, jobs: Sequence[InsightJob], *, budget: int = MESSAGE_BUDGET) -> list[Envelope]:
    """The jobs as envelopes, each within the queue's size limit (a job alone always fits)."""
    out: list[Envelope] = []
    batch: list[InsightJob] = []
    size = 0
    for job in jobs:
        n = len(job.model_dump_json().encode())
        if batch and size + n > budget:
            out.append(_envelope(mailbox, batch))
            batch, size = [], 0
        batch.append(job)
        size += n + 1
    if batch:
        out.append(_envelope(mailbox, batch))
    return out


def _envelope(mailbox: str, jobs: list[InsightJob]) -> Envelope:
    return Envelope(type=MESSAGE_TYPE, body=json.loads(InsightBatch(mailbox=mailbox, jobs=tuple(jobs))
                                                       .model_dump_json()))


async def enqueue(services: Any, mailbox: str, jobs: Sequence[InsightJob]) -> int:
    """Queue the jobs (a storage failure raises: the round retries the page and queues them again)."""
    sent = 0
    for env in pack(mailbox, jobs):
        await services.queues.send(names.INSIGHT_WORK, env)
        sent += 1
    return sent


def parse(envelope: Envelope) -> InsightBatch:
    if envelope.body.get(REDACTED):
        raise InvalidInsightMessage("a dead letter of insight-work keeps no mail text: replaying it cannot "
                                    "write insights")
    try:
        return InsightBatch.model_validate(envelope.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInsightMessage(f"invalid insights message field '{where}': {first.get('msg')}") from None


def redact(text: str) -> str:
    """What a dead letter of this queue keeps: the envelope and the jobs' ids, not the carried text."""
    try:
        raw = json.loads(text)
        body = raw.get("body") if isinstance(raw, dict) else None
        if isinstance(body, dict) and isinstance(body.get("jobs"), list):
            body["jobs"] = [{k: j.get(k) for k in ("kind", "graph_id", "pega_id")}
                            for j in body["jobs"] if isinstance(j, dict)]
            body[REDACTED] = True
            return json.dumps(raw)
    except (ValueError, TypeError, AttributeError):
        pass
    return "(not an insights message; its text is not kept)"


@dataclass(frozen=True)
class JobsOutcome:
    written: int = 0
    gone: int = 0  # the record was removed in Pega meanwhile
    empty: int = 0  # the analysis gave nothing to write (or failed: an enrichment, logged)
    rejected: int = 0  # Pega refused the fields (4xx): logged, not retried


async def compute(job: InsightJob, *, settings: Any, fields: dict[str, Any], reader: Any | None) -> dict[str, Any]:
    """The Pega fields of one job ({} when there is nothing to write). Never raises for the analysis
    itself (the hooks log and give {}); an attachment read that fails leaves the attachments out."""
    from shared.sync.context import default_appointment_insights, default_email_insights

    if job.kind == "email":
        attachments: tuple[Any, ...] = ()
        if job.has_attachments and reader is not None:
            try:
                attachments = await reader.attachments(job.graph_id, settings)
            except PermanentError as exc:  # the mail is gone or unreadable: analyse what the job carries
                log.info("attachments of a deferred insight left out: %s", type(exc).__name__)
        return await default_email_insights(_Carried(job), job.association, fields=fields,
                                            attachments=attachments, settings=settings)
    return await default_appointment_insights(_Carried(job), job.association, fields=fields,
                                              own_domains=(job.own_domain,) if job.own_domain else (),
                                              settings=settings)


class _Carried:
    """A job in the shape the insight hooks read (a MessageRecord or EventRecord's attributes)."""

    def __init__(self, job: InsightJob) -> None:
        self.subject = job.subject
        self.body = job.body
        self.body_type = job.body_type
        self.sender = _Addr(job.sender) if job.sender else None
        self.received_at = job.received_at
        self.conversation_id = job.conversation_id
        self.headers = job.headers
        self.organizer = _Addr(job.organizer) if job.organizer else None
        self.start = job.start


@dataclass(frozen=True)
class _Addr:
    address: str


async def run_batch(batch: InsightBatch, *, settings: Any, fields: dict[str, Any], records: Any,
                    reader: Any | None) -> JobsOutcome:
    """Compute every job of the batch, then write the fields: one call per kind on the sync-service
    adapter (batched), one action per record on DX API v2. Pega or storage outages raise (the queue
    retries the message; jobs already written are written again, unchanged)."""
    sem = asyncio.Semaphore(JOB_CONCURRENCY)

    async def one(job: InsightJob) -> dict[str, Any]:
        async with sem:
            return await compute(job, settings=settings, fields=fields, reader=reader)

    computed = await asyncio.gather(*(one(j) for j in batch.jobs))
    empty = sum(1 for c in computed if not c)
    by_kind: dict[RecordKind, list[tuple[str, str, dict[str, Any]]]] = {}
    for job, values in zip(batch.jobs, computed, strict=True):
        if values:
            kind = RecordKind.EMAIL if job.kind == "email" else RecordKind.APPOINTMENT
            by_kind.setdefault(kind, []).append((job.pega_id, job.graph_id, values))
    written = gone = rejected = 0
    for kind, writes in by_kind.items():
        for outcome in await records.write_fields(kind, writes):
            if outcome == "written":
                written += 1
            elif outcome == "gone":
                gone += 1
            else:
                rejected += 1
    return JobsOutcome(written=written, gone=gone, empty=empty, rejected=rejected)


async def handle(services: Any, envelope: Envelope, *, context: Any = None) -> JobsOutcome:
    """The `insights.write` handler: the batch's fields onto its records."""
    from shared.sync.backends import reader_for
    from shared.sync.context import sync_context

    batch = parse(envelope)
    settings = services.settings.insights
    if not settings.enabled:
        log.info("insights were turned off: %s queued jobs dropped", len(batch.jobs))
        return JobsOutcome(empty=len(batch.jobs))
    ctx = context or await sync_context(services)
    reader = None
    if any(j.has_attachments for j in batch.jobs):
        mb = await services.state.mailboxes.get(batch.mailbox)
        if mb is not None:
            reader = reader_for(services, ctx, mb)
    outcome = await run_batch(batch, settings=settings, fields=ctx.mapping.insights.model_dump(),
                              records=ctx.records, reader=reader)
    log.info("deferred insights: %s written, %s records gone, %s without insights, %s refused by Pega",
             outcome.written, outcome.gone, outcome.empty, outcome.rejected)
    return outcome


def handlers(services: Any, *, context: Any = None) -> dict[str, Any]:
    """The handlers of `insight-work` (shared.queues.worker.run_message)."""

    async def write(env: Envelope) -> None:
        await handle(services, env, context=context)

    return {MESSAGE_TYPE: write}
