"""Dead letters for operators: list, inspect and replay (one, per mailbox, or all).

Replay must neither lose nor duplicate anything:
- it re-enqueues the EXACT message text on its original queue (same envelope id, so failure notes,
  idempotency keys and downstream dedupe still recognise it);
- it is claimed first with a conditional write on the dead letter's ETag (`replaying_at`), so two
  operators replaying at once send it once; a claim older than CLAIM_TTL (a crash between claim
  and send) is taken over, so a letter can never get stuck as "being replayed";
- it is marked replayed only AFTER the send succeeded (a failed send leaves it pending: nothing
  lost), and only if the record is unchanged since the claim — if the replayed message already
  failed again and was dead-lettered anew (the worker's upsert replaces the record with the new
  cause), that new dead letter stands and is listed again;
- a crash between the send and the mark can at worst enqueue it twice on the next replay, which
  downstream processing absorbs (idempotent by design: cursors, links, operation keys).
Replayed letters stay in the table (with `replayed_at`) as an audit trail; listing hides them
unless asked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidMessageError
from shared.ops import telemetry
from shared.ops.privacy import sanitize_error
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.deadletters import DEAD, DeadLetter
from shared.storage.errors import ConcurrencyError
from shared.storage.keys import encode_key
from shared.storage.tables import Table

log = logging.getLogger(__name__)

CLAIM_TTL = dt.timedelta(minutes=5)
CONTENT_KEYS = frozenset({"subject", "body", "content", "bodypreview", "uniquebody", "notes", "description",
                          "text", "html", "comment", "attachments", "contentbytes"})


@dataclass(frozen=True)
class LetterView:
    queue: str
    id: str
    type: str
    mailbox: str
    kind: str
    cause: str
    attempts: int
    dead_at: dt.datetime | None
    replayed_at: dt.datetime | None
    replaying_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "id": self.id, "type": self.type, "mailbox": self.mailbox, "kind": self.kind,
                "cause": self.cause, "attempts": self.attempts, "dead_at": _iso(self.dead_at),
                "replayed_at": _iso(self.replayed_at), "replaying_at": _iso(self.replaying_at)}


@dataclass
class ReplayReport:
    replayed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # already replayed / being replayed
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "skipped": self.skipped, "failed": self.failed,
                "counts": {"replayed": len(self.replayed), "skipped": len(self.skipped), "failed": len(self.failed)}}


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def _table(services: Services) -> Table:
    ts = services.state.tables
    return ts.table(ts.names.deadletters)


def _envelope_facts(text: str) -> tuple[str, str, str]:
    try:
        env = Envelope.loads(text)
    except InvalidMessageError:
        return "(malformed)", "", ""
    body = env.body or {}
    mailbox = body.get("mailbox") if isinstance(body.get("mailbox"), str) else ""
    kind = body.get("kind") if isinstance(body.get("kind"), str) else ""
    return env.type, str(mailbox).lower(), str(kind)


def _view(e: dict[str, Any]) -> LetterView:
    letter = DeadLetter.from_entity(e)
    typ, mailbox, kind = _envelope_facts(letter.message)
    return LetterView(queue=letter.queue, id=letter.message_id, type=typ, mailbox=mailbox, kind=kind,
                      cause=sanitize_error(letter.cause, limit=1000), attempts=letter.attempts,
                      dead_at=letter.dead_at, replayed_at=letter.replayed_at, replaying_at=e.get("replaying_at"))


async def _entities(services: Services, queue: str | None) -> list[dict[str, Any]]:
    t = _table(services)
    if queue:
        return [e async for e in t.partition(DEAD + encode_key(queue))]
    out = []
    async for e in t.query("PartitionKey ge @lo and PartitionKey lt @hi", parameters={"lo": DEAD, "hi": "dead}"}):
        out.append(e)
    return out


async def list_letters(services: Services, *, queue: str | None = None, mailbox: str | None = None,
                       include_replayed: bool = False) -> list[LetterView]:
    """Dead letters, newest first; by default only those not replayed yet."""
    views = [_view(e) for e in await _entities(services, queue)]
    if mailbox:
        # named by UPN or by key: its letters carry the mailbox's key (its object id), older ones the UPN
        found = await services.state.mailboxes.get(mailbox)
        names = {mailbox.lower()} | ({found.key, found.upn.lower()} if found is not None else set())
        views = [v for v in views if v.mailbox in names]
    if not include_replayed:
        views = [v for v in views if v.replayed_at is None]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(views, key=lambda v: v.dead_at or epoch, reverse=True)


def redact_message(text: str) -> Any:
    """The envelope for an operator's eyes: structure and ids kept, content fields elided."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {"unparsed": f"<{len(text)} characters, not JSON>"}

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (f"<redacted {len(json.dumps(x, default=str))} characters>"
                        if k.lower().replace("_", "") in CONTENT_KEYS else walk(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    if isinstance(doc, dict) and isinstance(doc.get("body"), dict):  # an envelope: its body is the payload
        return {**doc, "body": walk(doc["body"])}
    return walk(doc)


async def inspect(services: Services, queue: str, message_id: str, *, redact: bool = True) -> dict[str, Any] | None:
    e = await _table(services).get(DEAD + encode_key(queue), encode_key(message_id))
    if e is None:
        return None
    view = _view(e)
    letter = DeadLetter.from_entity(e)
    out = view.as_dict()
    out["cause_full"] = letter.cause if not redact else sanitize_error(letter.cause, limit=2000)
    out["message"] = redact_message(letter.message) if redact else letter.message
    out["message_chars"] = len(letter.message)
    return out


async def replay_one(services: Services, queue: str, message_id: str, *, now: dt.datetime | None = None,
                     report: ReplayReport | None = None) -> ReplayReport:
    report = report or ReplayReport()
    now = now or dt.datetime.now(dt.UTC)
    t = _table(services)
    pk, rk = DEAD + encode_key(queue), encode_key(message_id)
    ref = {"queue": queue, "id": message_id}
    e = await t.get(pk, rk)
    if e is None:
        report.failed.append({**ref, "reason": "no such dead letter"})
        return report
    if e.get("replayed_at") is not None:
        report.skipped.append({**ref, "reason": "already replayed"})
        return report
    claimed = e.get("replaying_at")
    if claimed is not None and now - claimed < CLAIM_TTL:
        report.skipped.append({**ref, "reason": "being replayed"})
        return report
    try:
        etag = await t.merge({"PartitionKey": pk, "RowKey": rk, "replaying_at": now}, etag=e["_etag"])
    except ConcurrencyError:
        report.skipped.append({**ref, "reason": "changed meanwhile (replayed or dead-lettered again)"})
        return report
    try:
        await services.queues.send_raw(queue, str(e["message"]))
    except Exception as exc:
        log.warning("replay of %s on %s failed to enqueue: %s", message_id, queue, type(exc).__name__)
        unclaimed = {k: v for k, v in e.items() if not k.startswith("_") and k not in ("replaying_at", "Timestamp")}
        try:
            await t.replace(unclaimed, etag=etag)  # release the claim: a later replay may try again
        except ConcurrencyError:
            log.info("dead letter %s on %s changed while its replay failed", message_id, queue)
        report.failed.append({**ref, "reason": f"enqueue failed: {type(exc).__name__}"})
        return report
    try:
        await t.merge({"PartitionKey": pk, "RowKey": rk, "replayed_at": now}, etag=etag)
    except ConcurrencyError:
        log.info("dead letter %s on %s changed after its replay was sent (failed again?): left as is",
                 message_id, queue)
    report.replayed.append(ref)
    log.info("replayed dead letter %s on %s", message_id, queue)
    return report


async def replay(services: Services, *, queue: str | None = None, message_id: str | None = None,
                 mailbox: str | None = None, all_letters: bool = False) -> ReplayReport:
    """Replay one (queue + message_id), every pending letter of a mailbox, or all pending letters."""
    if message_id:
        if not queue:
            raise InvalidMessageError("queue: required to replay one dead letter")
        return await replay_one(services, queue, message_id)
    if not mailbox and not all_letters:
        raise InvalidMessageError("say what to replay: queue and id, a mailbox, or all")
    report = ReplayReport()
    letters = await list_letters(services, queue=queue, mailbox=mailbox)
    for v in sorted(letters, key=lambda v: v.dead_at or dt.datetime.min.replace(tzinfo=dt.UTC)):
        await replay_one(services, v.queue, v.id, report=report)
    return report


GAVE_UP = "GaveUpError"


async def resume_given_up(services: Services, mailbox: str, kind: str) -> ReplayReport:
    """Replay the dead letters that the notification-frequency guard made for this mailbox and health
    kind (`kind`: email/calendar/contacts), oldest first — called when its incident closes. Those
    messages failed only because a dependency was down for longer than the frequency; once the
    mailbox syncs again their work is simply due, so nothing waits for a person to replay it. Letters
    with any other cause (a permanent refusal, a malformed message) stay for a person to read."""
    from shared.ops.incidents import health_kind

    report = ReplayReport()
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    letters = [v for v in await list_letters(services, mailbox=mailbox) if v.cause.startswith(GAVE_UP)]
    for v in sorted(letters, key=lambda v: v.dead_at or epoch):
        direction = telemetry.OUTBOUND if v.queue == names.OUTBOUND_OPS else telemetry.INBOUND
        if v.kind and health_kind(v.kind, direction) == kind:
            await replay_one(services, v.queue, v.id, report=report)
    return report


async def counts(services: Services) -> dict[str, dict[str, int]]:
    """Pending dead letters per queue and per mailbox|health kind (for the health summary)."""
    from shared.ops.incidents import health_kind

    per_queue: dict[str, int] = {}
    per_mailbox: dict[str, int] = {}
    for v in await list_letters(services):
        per_queue[v.queue] = per_queue.get(v.queue, 0) + 1
        if v.mailbox and v.kind:
            direction = telemetry.OUTBOUND if v.queue == names.OUTBOUND_OPS else telemetry.INBOUND
            key = f"{v.mailbox}|{health_kind(v.kind, direction)}"
            per_mailbox[key] = per_mailbox.get(key, 0) + 1
    return {"per_queue": per_queue, "per_mailbox_kind": per_mailbox}

