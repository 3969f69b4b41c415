"""Appointments from Pega → events in the rep's calendar (create, update, cancel).

Create is idempotent twice over: `transactionId` derived from the operation (a retried POST never
makes a second event, graph.md §5) and the PegaId extended property looked up first (a second
operation for the same appointment finds the event). Graph sends the invitations to attendees.
Update is a three-way merge against the link snapshot (shared.sync.mapping.three_way, the same
rules as the Exchange → Pega path): only fields Pega changed are patched; a field both sides
changed is decided by the conflict policy; fields only Outlook changed are written to Pega now, so
that the merged state is on both sides and the echo of our patch is recognised.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.graph.errors import GraphBadRequestError, GraphNotFoundError
from shared.outbound.common import (
    OutboundRequest,
    agreed_since,
    already_decided,
    ended_meanwhile,
    find_by_pega_id,
    is_stale,
    link_or_wait,
    report_to_pega,
    save_link,
    user_path,
)
from shared.outbound.context import WorkerContext
from shared.outbound.graph_payloads import (
    APPOINTMENT_KEYS,
    event_fields,
    mapped_appointment,
    new_event,
    recurrence,
)
from shared.pega.models import RecordKind
from shared.storage.links import Link
from shared.sync.mapping import fields_of, map_event, snap_value, three_way, to_pega_data
from shared.sync.mapping.fields import APPOINTMENT_FIELDS
from shared.sync.records import EventRecord, parse_event
from shared.sync.timezones import UnknownTimeZoneError, zone

log = logging.getLogger(__name__)
LINK_KIND = "event"


def _record(raw: dict[str, Any]) -> EventRecord:
    rec = parse_event(raw)
    if not isinstance(rec, EventRecord):
        raise PermanentError("Graph returned a removed event")
    return rec


async def _get_event(ctx: WorkerContext, mailbox: str, event_id: str) -> dict[str, Any]:
    return await ctx.graph.get_json(f"{user_path(mailbox)}/events/{event_id}", mailbox=mailbox, what="get event")


async def _linked(ctx: WorkerContext, req: OutboundRequest) -> Link | None:
    """The link of this appointment; recovered from the PegaId property if a write lost its link."""
    link = await ctx.state.links.by_pega_id(req.mailbox, req.pega_id)
    if link is not None:
        return link
    found = await find_by_pega_id(ctx, req.mailbox, f"{user_path(req.mailbox)}/events", req.pega_id)
    if found is None:
        return None
    raw = await _get_event(ctx, req.mailbox, found["id"])
    rec = _record(raw)
    return await save_link(ctx, req, kind=LINK_KIND, graph_id=rec.id, change_key=rec.change_key,
                           mapped=map_event(rec))


async def create(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    mailbox = req.mailbox
    link = await ctx.state.links.by_pega_id(mailbox, req.pega_id)
    if link is not None and link.state != "active":
        # Cancelled (or declined) after this create first ran: a retried create must never bring the
        # meeting back — the transactionId no longer dedupes once the first event is cancelled, and a
        # new event would send a live invitation for a cancelled appointment.
        return {"exchangeId": link.graph_id, "created": False, "skipped": "the appointment was cancelled",
                "reportedToPega": False}
    created = False
    if link is None:
        found = await find_by_pega_id(ctx, mailbox, f"{user_path(mailbox)}/events", req.pega_id)
        if found is not None:
            raw = await _get_event(ctx, mailbox, found["id"])
        else:
            payload = new_event(req.body, pega_id=req.pega_id, operation_id=req.op.operation_id)
            raw = (await ctx.graph.request("POST", f"{user_path(mailbox)}/events", mailbox=mailbox, body=payload,
                                           what="create event")).json()
            created = True
        rec = _record(raw)
        link = await save_link(ctx, req, kind=LINK_KIND, graph_id=rec.id, change_key=rec.change_key,
                               mapped=map_event(rec))
    report = await report_to_pega(ctx, req, RecordKind.APPOINTMENT, link.graph_id)
    return {"exchangeId": link.graph_id, "changeKey": link.graph_change_key, "created": created, **report}


# What attendees see of a meeting: a change to any of these makes Exchange send them an update
# (graph.md §10: Graph has no "update silently"). Reminder and free/busy are the rep's own.
ATTENDEE_VISIBLE = ("subject", "start", "end", "time_zone", "is_all_day", "location", "body", "body_type",
                    "attendees", "sensitivity")


def _attendee_set(rows: Any) -> set[tuple[str, str]]:
    """Attendees as attendees see them: address and type (display names are resolved by Exchange)."""
    return {(str(r[0]).lower(), str(r[2] or "required").lower()) for r in rows or ()}


def really_changed(name: str, pega: Mapping[str, Any], exchange: Mapping[str, Any]) -> bool:
    """Whether Pega's value of a mapped field differs from what the event holds now, as a person
    would see it (so a re-sent unchanged value, or attendees differing only in display names, is no
    change)."""
    if name not in pega:
        return False
    if name == "attendees":
        return _attendee_set(pega[name]) != _attendee_set(exchange.get(name))
    return bool(snap_value(pega[name]) != snap_value(exchange.get(name)))


def _patch_from(req: OutboundRequest, to_exchange: tuple[str, ...], *, all_day: bool,
                current: EventRecord) -> dict[str, Any]:
    keys: set[str] = set()
    for name in to_exchange:
        keys.update(k for k in APPOINTMENT_KEYS.get(name, ()) if k in req.body)
    fields = {k: req.body[k] for k in keys}
    if all_day and ("isAllDay" in fields or fields.keys() & {"start", "end"}):
        # whole days, both ends together (Graph refuses an all-day event that is not midnight to midnight):
        # an end or start Pega did not send is the event's own, in its own zone
        tz = current.original_tz or current.start_tz or "UTC"
        for key, when, day in (("start", current.start, current.start_date), ("end", current.end, current.end_date)):
            if key in req.body:
                fields[key] = req.body[key]
            elif current.is_all_day and day is not None:  # already all-day: its dates as written
                fields[key] = {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": tz}
            elif when is not None:
                fields[key] = {"dateTime": _local_day(when, tz), "timeZone": tz}
    return event_fields(fields, all_day=all_day)


def _local_day(when: Any, tz: str) -> str:
    try:
        return when.astimezone(zone(tz)).strftime("%Y-%m-%dT00:00:00")
    except UnknownTimeZoneError:
        return when.strftime("%Y-%m-%dT00:00:00")


async def update(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    mailbox = req.mailbox
    link = await _linked(ctx, req)
    if link is not None and link.state != "active":
        # cancelled meanwhile (in Pega or in Outlook): nothing is left to change, and the change did not
        # fail — reporting it failed would invite Pega to send it again
        return {"exchangeId": link.graph_id, "skipped": "the appointment was cancelled"}
    if link is None:
        await link_or_wait(ctx, req, "appointment", link)
    if is_stale(link, req):
        return {"exchangeId": link.graph_id, "skipped": "a newer Pega change was already applied"}
    try:
        raw = await _get_event(ctx, mailbox, link.graph_id)
    except GraphNotFoundError:
        return await _gone(ctx, req, link)
    rec = _record(raw)
    exchange = map_event(rec)
    all_day = bool(req.body["isAllDay"]) if "isAllDay" in req.body else bool(rec.is_all_day)
    pega = mapped_appointment(req.body, all_day=all_day)
    pega, decided = already_decided(link, req, pega, exchange)
    pega, agreed = await agreed_since(ctx, req, RecordKind.APPOINTMENT, pega, exchange)
    decided = (*decided, *agreed)
    merge = three_way(fields_of(link.snapshot), exchange, pega, policy=ctx.settings.sync.conflict_policy,
                      exchange_time=rec.last_modified, pega_time=req.changed_at, fields=APPOINTMENT_FIELDS)
    # Only what really differs from the event as it is now is written: a PATCH of an organizer's
    # meeting sends every attendee an update, so an unchanged or cosmetic value must not cause one.
    to_exchange = tuple(name for name in merge.to_exchange if really_changed(name, pega, exchange))
    recurrence_patch: dict[str, Any] | None = None
    if "recurrence" in req.body:
        wanted = recurrence(req.body["recurrence"], (req.body.get("start") or {}).get("timeZone")
                            or rec.original_tz or rec.start_tz)
        if not _same_recurrence(rec.recurrence, wanted):
            recurrence_patch = {"recurrence": wanted}
    withheld: list[str] = []
    if _is_meeting(rec) and recurrence_patch is None and not set(to_exchange) & set(ATTENDEE_VISIBLE):
        # A meeting with attendees whose attendee-visible fields did not change: the rep's own fields
        # (reminder, free/busy) are not worth an update mail to every attendee, so nothing is written.
        withheld, to_exchange = list(to_exchange), ()
    patch = _patch_from(req, to_exchange, all_day=all_day, current=rec)
    if recurrence_patch:
        patch.update(recurrence_patch)
    if patch:
        try:
            raw = (await ctx.graph.request("PATCH", f"{user_path(mailbox)}/events/{link.graph_id}", mailbox=mailbox,
                                           body=patch, what="update event")).json()
        except GraphNotFoundError:
            return await _gone(ctx, req, link)
        rec = _record(raw)
        exchange = map_event(rec)
    if merge.to_pega and ctx.pega is not None:
        values = {name: exchange[name] for name in merge.to_pega}
        await ctx.pega.upsert_appointment(link.graph_id, to_pega_data("calendar", values), known_id=req.pega_id)  # type: ignore[arg-type]
    link = await save_link(ctx, req, kind=LINK_KIND, graph_id=link.graph_id, change_key=rec.change_key,
                           mapped=exchange, existing=link)
    return {"exchangeId": link.graph_id, "changeKey": link.graph_change_key, "patched": sorted(patch),
            "toPega": list(merge.to_pega), "conflicts": [c.field for c in merge.conflicts], "alreadyDecided": list(decided),
            "withheld": withheld}


GONE_RECHECKS = 2  # runs of an update that look again before calling a vanished event gone
_LOOK = re.compile(r"^EventVanished: .*\(look (\d+) of \d+\)")


class EventVanished(TransientError):
    """The linked event is gone and its link still active: looked again shortly (see `_gone`)."""


def _looks_so_far(op_error: str) -> int:
    """How many times earlier runs of this update already found the event gone: their own count,
    not the operation's attempts, which other failures (a Pega 5xx, a storage outage) use up too."""
    m = _LOOK.match(op_error or "")
    return int(m.group(1)) if m else 0


async def _gone(ctx: WorkerContext, req: OutboundRequest, link: Link) -> dict[str, Any]:
    """The linked event vanished while this update ran. If a cancel of the same appointment ran
    meanwhile (Pega sent both moments apart), the appointment's last word is done and the update
    has nothing left to change: skipped, not failed — a failure would invite Pega to resend it.
    Otherwise the event was deleted in Exchange itself: a real failure, explained."""
    skipped = await ended_meanwhile(ctx, req, link, what="appointment", ended="cancelled")
    if skipped is not None:
        return skipped
    look = _looks_so_far(req.op.error) + 1
    if look <= GONE_RECHECKS:
        # a cancel accepted before intake recorded ends (an operation from before an upgrade) may not
        # have closed the link yet (chaos seed 261: the two finished 3 ms apart): look again shortly
        raise EventVanished(f"the linked event vanished; a cancel may be finishing (look {look} of {GONE_RECHECKS})",
                            retry_after=3.0)
    raise PermanentError("the linked event no longer exists in Exchange")


def _is_meeting(rec: EventRecord) -> bool:
    """An event the mailbox organizes with attendees: every change to it is mailed to them."""
    return rec.is_organizer is not False and bool(rec.attendees)


def _same_recurrence(current: dict[str, Any] | None, wanted: dict[str, Any] | None) -> bool:
    if not current or not wanted:
        return current == wanted or (not current and not wanted)
    for part in ("pattern", "range"):
        have, want = current.get(part) or {}, wanted.get(part) or {}
        for k, v in want.items():
            a, b = have.get(k), v
            if isinstance(a, list) and isinstance(b, list):
                a, b = sorted(str(x).lower() for x in a), sorted(str(x).lower() for x in b)
            if a != b:
                return False
    return True


async def cancel(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    """Organizer: cancel with the comment (attendees are told). Attendee: decline (the organizer is
    told) when a response is expected, else delete the copy."""
    mailbox = req.mailbox
    link = await _linked(ctx, req)
    if link is None:
        await link_or_wait(ctx, req, "appointment", link)
    if link.state != "active":
        return {"exchangeId": link.graph_id, "action": "already_cancelled"}
    base = f"{user_path(mailbox)}/events/{link.graph_id}"
    comment = str(req.body.get("comment") or "")
    action = "deleted"
    try:
        raw = await _get_event(ctx, mailbox, link.graph_id)
        rec = _record(raw)
        if rec.is_cancelled:
            action = "already_cancelled"
        elif rec.is_organizer is not False:
            await ctx.graph.request("POST", f"{base}/cancel", mailbox=mailbox, body={"comment": comment},
                                    what="cancel event")
            action = "cancelled"
        elif raw.get("responseRequested", True) and (raw.get("responseStatus") or {}).get("response") != "declined":
            try:
                await ctx.graph.request("POST", f"{base}/decline", mailbox=mailbox,
                                        body={"comment": comment, "sendResponse": True}, what="decline event")
                action = "declined"
            except GraphBadRequestError:
                await ctx.graph.request("DELETE", base, mailbox=mailbox, what="delete event")
        else:
            await ctx.graph.request("DELETE", base, mailbox=mailbox, what="delete event")
    except GraphNotFoundError:
        action = "already_gone"
    await save_link(ctx, req, kind=LINK_KIND, graph_id=link.graph_id, change_key=link.graph_change_key,
                    mapped={}, keep_fields=fields_of(link.snapshot), existing=link, state="closed")
    return {"exchangeId": link.graph_id, "action": action}
