"""Helpers every executor shares: the request as the worker sees it, lookups by the PegaId
property, link bookkeeping (changeKey, content hash, snapshot) and reporting ids back to Pega."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from shared.errors import PermanentError, TransientError
from shared.outbound.context import WorkerContext
from shared.outbound.graph_payloads import pega_id_filter
from shared.pega.errors import PegaPermanentError
from shared.pega.models import RecordKind
from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.failures import FAILED, OUTBOUND, PEGA_REPORT, Failure
from shared.storage.links import Link
from shared.storage.operations import Operation
from shared.sync.mapping import META_BY, META_PEGA_DECIDED, Mapped, content_hash, snapshot
from shared.sync.timezones import iso_z, parse_iso_utc

log = logging.getLogger(__name__)

META_PEGA_CHANGED_AT = "_pega_changed_at"
# An update/cancel/reply whose item is not linked yet (its create still queued) is retried this often.
MAX_LINK_WAITS = 6


@dataclass(frozen=True)
class OutboundRequest:
    op: Operation
    operation_id: str  # contract operationId
    pega_id: str
    params: dict[str, str]
    body: dict[str, Any]
    changed_at: dt.datetime | None
    # Pega records the inbound round created for our item before we linked it (see save_link)
    duplicates: list[str] = field(default_factory=list)

    @property
    def mailbox(self) -> str:
        return self.op.mailbox


@dataclass(frozen=True)
class ReportTarget:
    """Who an Exchange-id report is for, when it is repeated on its own (shared.ops.failures)."""

    mailbox: str
    pega_id: str


FIRST_RUN_WAIT_MIN, FIRST_RUN_WAIT_MAX = 2.0, 8.0  # seconds: waiting for a create on its first run
RETRYING_CREATE_WAIT = 30.0  # seconds: waiting for a create that is retrying (an outage, throttling)


class NotLinkedYet(TransientError):
    """The item this change is about is not linked yet; its create may still be on the way."""


class WaitingForCreate(NotLinkedYet):
    """Not linked yet, and the operation that creates the item is still pending (retrying through an
    outage, say): the change waits for it as long as it takes, without using up its own attempts."""


def user_path(mailbox: str) -> str:
    return f"users/{mailbox}"


async def find_by_pega_id(ctx: WorkerContext, mailbox: str, collection: str, pega_id: str,
                          select: str = "id") -> dict[str, Any] | None:
    """The item in `collection` stamped with this Pega id (the second idempotency guard)."""
    page = await ctx.graph.get_json(collection, mailbox=mailbox,
                                    params={"$filter": pega_id_filter(pega_id), "$select": select, "$top": 2},
                                    what="find by PegaId")
    values = (page or {}).get("value") or []
    if len(values) > 1:
        log.warning("%d items in %s carry the same PegaId; using the first", len(values), collection)
    return values[0] if values else None


def link_meta(req: OutboundRequest) -> dict[str, Any]:
    meta: dict[str, Any] = {META_BY: "pega"}
    if req.changed_at is not None:
        meta[META_PEGA_CHANGED_AT] = iso_z(req.changed_at)
    return meta


def already_decided(link: Link, req: OutboundRequest, pega: dict[str, Any], exchange: Mapping[str, Any]
                    ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Pega's values that an Exchange → Pega merge already decided against (a conflict Exchange won,
    against this change's Pega version or a later one) are replaced by Exchange's: the rep's change
    reached Pega before the merge read it, so pushing it now would undo the merge on one side only
    and leave the two sides disagreeing. Returns the Pega values to merge and the fields withheld."""
    decided = link.snapshot.get(META_PEGA_DECIDED) or {}
    if req.changed_at is None or not isinstance(decided, dict):
        return pega, ()
    withheld: list[str] = []
    out = dict(pega)
    for name, at in decided.items():
        lost_at = parse_iso_utc(at)
        if name in out and name in exchange and lost_at is not None and req.changed_at <= lost_at:
            out[name] = exchange[name]
            withheld.append(name)
    return out, tuple(withheld)


async def agreed_since(ctx: WorkerContext, req: OutboundRequest, kind: RecordKind, pega: dict[str, Any],
                       exchange: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """This call's values that Pega itself no longer holds, where Pega now holds what Outlook holds,
    are replaced by Outlook's: the sides agreed after this call's change (a later edit reached both,
    or a round wrote Outlook's newer value to Pega), so pushing the call's value would make Outlook
    disagree with Pega. Matters for a call that arrives late — a retry after Graph's answer to its
    write was lost (chaos seeds 261, 434). Costs one Pega read; returns the values and those withheld."""
    from shared.pega.errors import PegaNotFoundError
    from shared.sync.mapping import mapped_from_pega

    if ctx.pega is None:
        return pega, ()
    try:
        if kind is RecordKind.CONTACT:
            now = mapped_from_pega("contacts", (await ctx.pega.get_contact(req.pega_id))[1])
        else:
            now = mapped_from_pega("calendar", (await ctx.pega.get_appointment(req.pega_id))[1])
    except PegaNotFoundError:
        return pega, ()
    out = dict(pega)
    withheld: list[str] = []
    for name, value in pega.items():
        if name in now and name in exchange and now[name] == exchange[name] and value != exchange[name]:
            out[name] = exchange[name]
            withheld.append(name)
    return out, tuple(withheld)


def is_stale(link: Link, req: OutboundRequest) -> bool:
    """An older Pega change arriving after a newer one was applied (queues do not keep order)."""
    applied = parse_iso_utc(link.snapshot.get(META_PEGA_CHANGED_AT))
    return applied is not None and req.changed_at is not None and req.changed_at < applied


async def save_link(ctx: WorkerContext, req: OutboundRequest, *, kind: str, graph_id: str, change_key: str,
                    mapped: Mapped, existing: Link | None = None, state: str = "active",
                    keep_fields: Mapping[str, Any] | None = None) -> Link:
    """Create or update the link after a write: changeKey + content hash + snapshot of what Exchange
    now holds, so the Exchange → Pega path recognises the echo of this write and ignores it."""
    full = {**dict(keep_fields or {}), **mapped}
    snap = snapshot(full, meta=link_meta(req))
    h = content_hash(full)
    links = ctx.state.links
    for _ in range(4):
        current = existing if existing is not None else await links.by_pega_id(req.mailbox, req.pega_id)
        if current is None:
            link = Link(mailbox=req.mailbox, kind=kind, graph_id=graph_id, pega_id=req.pega_id,
                        graph_change_key=change_key, graph_hash=h, pega_hash=h, snapshot=snap, state=state)
            try:
                return await links.create(link)
            except AlreadyExistsError:
                existing = None
                other = await links.by_graph_id(req.mailbox, graph_id)
                if other is not None and other.pega_id != req.pega_id:
                    # The Exchange → Pega round saw our new item before this link existed and linked it
                    # to a Pega record of its own. The item was made for req.pega_id: take the link over
                    # and name the duplicate so an operator can close it (never deleted automatically).
                    log.warning("Exchange item of Pega %s was linked by the inbound round to Pega %s; taking "
                                "the link over (duplicate Pega record left for review)", req.pega_id, other.pega_id)
                    req.duplicates.append(other.pega_id)
                    await links.delete(other)
                continue
        if current.graph_id != graph_id:
            if current.state == "active":
                raise PermanentError(f"Pega record {req.pega_id} is already linked to another Exchange item")
            await links.delete(current)  # a closed link (cancelled, closed) gives way to the new item
            existing = None
            continue
        updated = dataclasses.replace(current, graph_change_key=change_key, graph_hash=h, pega_hash=h,
                                      snapshot=snap, state=state)
        try:
            return await links.update(updated)
        except ConcurrencyError:
            existing = None
            continue
    raise TransientError("the link changed concurrently; retrying", retry_after=1.0)


async def report_to_pega(ctx: WorkerContext, req: OutboundRequest | ReportTarget, kind: RecordKind,
                         graph_id: str) -> dict[str, Any]:
    """Tell Pega the Exchange id of a record it created (written by the integration user, so a
    configured Pega does not call us back for it). Returns the result fields to add.

    By the time this runs the Exchange write is done and linked, so a Pega answer never turns the
    operation into a failure (that would invite a second send): a transient error propagates and
    the retried operation finds its link and repeats only this report; a resolved case needs no
    id; any other refusal is recorded as a `pega_report` failure, listed in health until an
    operator replays or dismisses it, and the operation succeeds with `reportedToPega: false`."""
    if ctx.pega is None:
        log.info("PEGA_BASE_URL not set: the Exchange id of %s is not reported back", kind.value)
        return {"reportedToPega": False}
    try:
        await ctx.pega.set_external_id(kind, req.pega_id, graph_id)
    except PegaPermanentError as exc:
        if kind is not RecordKind.CONTACT and await _case_resolved(ctx, req.pega_id):
            log.info("the Pega %s is resolved; its Exchange id is not needed any more", kind.value)
            return {"reportedToPega": False, "pegaReport": "case_resolved"}
        cause = f"Pega refused the Exchange id: {exc}"[:1000]
        await ctx.state.failures.record(Failure(
            mailbox=req.mailbox, direction=OUTBOUND, kind=mailbox_kind_of(kind), item_id=req.pega_id,
            stage=PEGA_REPORT, cause=cause, status=FAILED, exchange_id=graph_id, pega_id=req.pega_id))
        log.warning("Pega refused the Exchange id of its %s: %s", kind.value, type(exc).__name__)
        return {"reportedToPega": False, "pegaReport": {"code": "pega_refused", "message": cause}}
    return {"reportedToPega": True}


async def _case_resolved(ctx: WorkerContext, case_id: str) -> bool:
    try:
        status = await ctx.pega.case_status(case_id)  # type: ignore[union-attr]
    except PegaPermanentError:
        return False
    return status.startswith("Resolved")


async def ended_meanwhile(ctx: WorkerContext, req: OutboundRequest, link: Link, *, what: str, ended: str) -> dict[str, Any] | None:
    """An update found its linked item gone: the result that skips it when the record was ended meanwhile
    — its link closed or relinked since it was read, or an end operation (cancel, close) pending that
    removed the item — else None (the item was deleted in Exchange itself: the caller's failure)."""
    fresh = await ctx.state.links.by_pega_id(req.mailbox, req.pega_id)
    if fresh is not None and (fresh.state != "active" or fresh.graph_id != link.graph_id):
        return {"exchangeId": link.graph_id, "skipped": f"the {what} was {ended} meanwhile"}
    end_id = await ending(ctx, req)
    if end_id is not None:
        return {"exchangeId": link.graph_id, "skipped": f"the {what} is being {ended} (operation {end_id})"}
    return None


async def ending(ctx: WorkerContext, req: OutboundRequest) -> str | None:
    """The operation that ends (cancels, closes) this record, when Pega sent one and it has not failed:
    a change that finds the Exchange item gone then knows the end removed it — even while the end's
    answer was lost and it is still retrying with the link active (chaos seed 24) — and has nothing
    left to change. Intake records the end before it is queued, so no timing is involved."""
    end_id = await ctx.state.operations.end_of(req.mailbox, req.pega_id)
    if not end_id or end_id == req.op.operation_id:
        return None
    end = await ctx.state.operations.get(end_id)
    if end is None or (end.settled and end.status == "failed"):
        return None
    return end_id


def mailbox_kind_of(kind: RecordKind) -> str:
    return {RecordKind.APPOINTMENT: "calendar", RecordKind.EMAIL: "email"}.get(kind, "contacts")


async def link_or_wait(ctx: WorkerContext, req: OutboundRequest, what: str, link: Link | None = None, *,
                       pega_id: str | None = None) -> NoReturn:
    """No (active) link: wait while this record's create operation is still pending, else as
    `require_link_or_wait`. A create retrying through a Graph outage longer than the link-wait
    budget used to fail every change Pega sent meanwhile, although the create then succeeded."""
    if link is None:
        create_id = await ctx.state.operations.create_of(req.mailbox, pega_id or req.pega_id)
        if create_id and create_id != req.op.operation_id:
            create = await ctx.state.operations.get(create_id)
            if create is not None and not create.settled:
                # a create on its first run is done within seconds: come back then (jittered, so changes
                # behind it do not all return at once); one that is retrying takes its back-off
                first_run = create.attempts <= 1
                wait = random.uniform(FIRST_RUN_WAIT_MIN, FIRST_RUN_WAIT_MAX) if first_run else RETRYING_CREATE_WAIT
                raise WaitingForCreate(f"{what} {pega_id or req.pega_id!r} waits for its create (operation {create_id})",
                                       retry_after=wait)
    require_link_or_wait(req, what, link)


def require_link_or_wait(req: OutboundRequest, what: str, link: Link | None = None) -> NoReturn:
    """Raise NotLinkedYet (retry soon) a few times, then a permanent failure. A closed link
    (cancelled or closed before) fails at once: there is nothing left to change."""
    if link is not None and link.state != "active":
        raise PermanentError(f"{what} {req.pega_id!r} was already cancelled or closed in Exchange")
    if req.op.attempts < MAX_LINK_WAITS:
        # its create may still be queued, retried or recovering from a crash: wait longer each time
        # (3, 6, 12, 24, 30 s: 75 s in all, beyond a crashed worker's lease and recovery) before giving up
        raise NotLinkedYet(f"{what} {req.pega_id!r} is not linked to an Exchange item yet",
                           retry_after=min(30.0, 3.0 * 2 ** max(0, req.op.attempts - 1)))
    raise PermanentError(f"{what} {req.pega_id!r} has no linked Exchange item")
