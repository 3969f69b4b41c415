"""Helpers every executor shares: the request as the worker sees it, lookups by the PegaId
property, link bookkeeping (changeKey, content hash, snapshot) and reporting ids back to Pega."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from shared.errors import PermanentError, TransientError
from shared.outbound.context import WorkerContext
from shared.outbound.graph_payloads import pega_id_filter
from shared.pega.errors import PegaPermanentError
from shared.pega.models import RecordKind
from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.links import Link
from shared.storage.operations import Operation
from shared.sync.mapping import META_BY, Mapped, content_hash, snapshot
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


class ReportFailed(PermanentError):
    """Written to Exchange (and linked), but Pega refused to take the Exchange id."""

    def __init__(self, message: str, *, exchange_id: str) -> None:
        super().__init__(message)
        self.exchange_id = exchange_id


class NotLinkedYet(TransientError):
    """The item this change is about is not linked yet; its create may still be on the way."""


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


async def report_to_pega(ctx: WorkerContext, kind: RecordKind, pega_id: str, graph_id: str) -> bool:
    """Tell Pega the Exchange id of a record it created (written by the integration user, so a
    configured Pega does not call us back for it). False when no Pega is configured."""
    if ctx.pega is None:
        log.info("PEGA_BASE_URL not set: the Exchange id of %s is not reported back", kind.value)
        return False
    try:
        await ctx.pega.set_external_id(kind, pega_id, graph_id)
    except PegaPermanentError as exc:
        raise ReportFailed(f"written to Exchange as {graph_id}, but Pega refused the id report for {pega_id}: {exc}",
                           exchange_id=graph_id) from exc
    return True


def require_link_or_wait(req: OutboundRequest, what: str, link: Link | None = None) -> NoReturn:
    """Raise NotLinkedYet (retry soon) a few times, then a permanent failure. A closed link
    (cancelled or closed before) fails at once: there is nothing left to change."""
    if link is not None and link.state != "active":
        raise PermanentError(f"{what} {req.pega_id!r} was already cancelled or closed in Exchange")
    if req.op.attempts < MAX_LINK_WAITS:
        raise NotLinkedYet(f"{what} {req.pega_id!r} is not linked to an Exchange item yet", retry_after=3.0)
    raise PermanentError(f"{what} {req.pega_id!r} has no linked Exchange item")
