"""Calendar: events CRUD, series expansion (occurrences and exceptions), calendarView, instances,
invitations to internal attendees, cancel, responses, transactionId idempotency.

Occurrence ids are ``{masterId}.{originalStartUtc:%Y%m%dT%H%M%SZ}``; a modified occurrence (an
exception) keeps that id. Deleting an occurrence records it in the master's cancelledOccurrences.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from sandbox.graph import generated_mail as gm
from sandbox.graph import recurrence as rec
from sandbox.graph.clock import iso, iso7, parse_iso
from sandbox.graph.errors import GraphError, bad_request, not_found
from sandbox.graph.items import View, body_as, email, enum_value, norm_body, preview, view_of
from sandbox.graph.model import Exception_, Item, User, new_change_key
from sandbox.graph.odata import (
    apply_filter_order,
    apply_select,
    context_url,
    ext_props_list,
    graph_json,
    list_page,
    q,
    read_action,
    read_json,
    set_ext,
)
from sandbox.graph.router import Router
from sandbox.graph.timezones import render, to_utc, zone

EVENT_WRITABLE = {
    "subject", "body", "start", "end", "isAllDay", "location", "locations", "attendees", "recurrence",
    "sensitivity", "showAs", "importance", "categories", "isReminderOn", "reminderMinutesBeforeStart",
    "responseRequested", "allowNewTimeProposals", "isOnlineMeeting", "onlineMeetingProvider", "hideAttendees",
}
EXCEPTION_WRITABLE = EVENT_WRITABLE - {"recurrence"}
_OCC = re.compile(r"^(.+)\.(\d{8}T\d{6}Z)$")
NO_TIME = "0001-01-01T00:00:00Z"
_FAR = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass
class Instance:
    """One expanded instance of a series: a plain occurrence or an exception."""

    master: Item
    original_start: datetime
    start: datetime
    end: datetime
    exception: Exception_ | None

    @property
    def key(self) -> str:
        return occ_key(self.original_start)


def occ_key(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _key_time(key: str) -> datetime:
    return datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def occ_id(master_id: str, original_start: datetime) -> str:
    return f"{master_id}.{occ_key(original_start)}"


def event_utc(dtz: dict[str, str], all_day: bool) -> datetime:
    """An event time as UTC. All-day events are stored as midnight UTC of their dates (a maintainer
    in microsoft-graph-docs#1802 / jasonjoh/php-calendar#9: "we store it as midnight in UTC") and are
    therefore rendered midnight-to-midnight in whatever zone a request asks for."""
    if all_day:
        return datetime.fromisoformat(str(dtz["dateTime"])[:10]).replace(tzinfo=UTC)
    return to_utc(dtz)


def is_all_day(data: dict[str, Any]) -> bool:
    return bool(data.get("isAllDay"))


def start_utc(item: Item) -> datetime:
    return event_utc(item.data["start"], is_all_day(item.data))


def end_utc(item: Item) -> datetime:
    return event_utc(item.data["end"], is_all_day(item.data))


def rec_zone(data: dict[str, Any]) -> Any:
    """The zone a series is expanded in (all-day series: their dates, i.e. UTC as stored)."""
    return UTC if is_all_day(data) else zone(data["recurrence"]["range"]["recurrenceTimeZone"])


def instances(item: Item, until: datetime, since: datetime | None = None, *, include_cancelled: bool = False
              ) -> list[Instance]:
    """Expanded instances of a series whose span overlaps [since, until); all when since is None."""
    r = item.data.get("recurrence")
    if not r:
        return []
    s, e = start_utc(item), end_utc(item)
    duration = e - s
    tz = rec_zone(item.data)
    all_day = is_all_day(item.data)
    local_time = s.astimezone(tz).time().replace(tzinfo=None)
    out: list[Instance] = []
    # Exceptions can move an occurrence; look a little beyond the window for their originals.
    margin = timedelta(days=31)
    horizon = until + margin
    for orig in rec.occurrence_starts(r, local_time, tz, horizon):
        key = occ_key(orig)
        if key in item.cancelled and not include_cancelled:
            continue
        exc = item.exceptions.get(key)
        if exc is not None:
            st = event_utc(exc.overrides["start"], all_day) if "start" in exc.overrides else orig
            en = event_utc(exc.overrides["end"], all_day) if "end" in exc.overrides else orig + duration
        else:
            st, en = orig, orig + duration
        if since is not None and not (st < until and en > since):
            continue
        if since is None and st >= until:
            continue
        out.append(Instance(item, orig, st, en, exc))
    out.sort(key=lambda i: i.start)
    return out


def _dtz(view: View, dt: datetime, all_day: bool = False) -> dict[str, str]:
    if all_day:  # midnight-to-midnight whatever the zone asked for (microsoft-graph-docs#1802)
        return {"dateTime": dt.astimezone(UTC).strftime("%Y-%m-%dT00:00:00.0000000"), "timeZone": view.tz or "UTC"}
    return render(dt, view.tz)


def render_event(item: Item, view: View, *, inst: Instance | None = None, sparse: bool = False) -> dict[str, Any]:
    d = item.data
    master_id = view.item_id(item)
    if inst is not None:
        ev_id = occ_id(master_id, inst.original_start)
        etype = "exception" if inst.exception is not None else "occurrence"
        change_key = inst.exception.change_key if inst.exception is not None else item.change_key
        if sparse and inst.exception is None:
            return {"@odata.type": "#microsoft.graph.event", "@odata.etag": f'W/"{change_key}"', "id": ev_id,
                    "seriesMasterId": master_id, "type": "occurrence",
                    "start": _dtz(view, inst.start, is_all_day(d)), "end": _dtz(view, inst.end, is_all_day(d))}
    else:
        ev_id = master_id
        etype = "seriesMaster" if d.get("recurrence") else "singleInstance"
        change_key = item.change_key
    src = dict(d)
    if inst is not None and inst.exception is not None:
        src.update(inst.exception.overrides)
    modified = inst.exception.modified if inst is not None and inst.exception is not None else item.modified
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{change_key}"',
        "id": ev_id,
        "createdDateTime": iso7(item.created),
        "lastModifiedDateTime": iso7(modified),
        "changeKey": change_key,
        "categories": list(src.get("categories") or []),
        "originalStartTimeZone": d.get("originalStartTimeZone"),
        "originalEndTimeZone": d.get("originalEndTimeZone"),
        "iCalUId": d["iCalUId"] + (occ_key(inst.original_start) if inst is not None else ""),
        "reminderMinutesBeforeStart": src.get("reminderMinutesBeforeStart", 15),
        "isReminderOn": src.get("isReminderOn", True),
        "hasAttachments": bool(item.attachments),
        "subject": src.get("subject", ""),
        "bodyPreview": preview(src.get("body")),
        "importance": src.get("importance", "normal"),
        "sensitivity": src.get("sensitivity", "normal"),
        "isAllDay": bool(src.get("isAllDay", False)),
        "isCancelled": bool(d.get("isCancelled", False)),
        "isOrganizer": bool(d.get("isOrganizer", True)),
        "responseRequested": src.get("responseRequested", True),
        "seriesMasterId": master_id if inst is not None else None,
        "showAs": src.get("showAs", "busy"),
        "type": etype,
        "webLink": f"https://outlook.office365.com/owa/?itemid={ev_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": bool(src.get("isOnlineMeeting", False)),
        "onlineMeetingProvider": src.get("onlineMeetingProvider", "unknown"),
        "allowNewTimeProposals": src.get("allowNewTimeProposals", True),
        "isDraft": False,
        "hideAttendees": bool(src.get("hideAttendees", False)),
        "responseStatus": d.get("responseStatus") or {"response": "organizer", "time": NO_TIME},
        "body": body_as(src.get("body") or {"contentType": "html", "content": ""}, view),
        "start": _dtz(view, inst.start if inst is not None else start_utc(item), is_all_day(src)),
        "end": _dtz(view, inst.end if inst is not None else end_utc(item), is_all_day(src)),
        "location": src.get("location") or {"displayName": "", "locationType": "default",
                                             "uniqueIdType": "unknown", "address": {}, "coordinates": {}},
        "locations": src.get("locations") or [],
        "recurrence": d.get("recurrence") if inst is None else None,
        "attendees": src.get("attendees") or [],
        "organizer": d.get("organizer"),
        "onlineMeeting": None,
    }
    if d.get("transactionId"):
        out["transactionId"] = d["transactionId"]
    if inst is not None:
        out["originalStart"] = iso(inst.original_start)
    if inst is None and d.get("recurrence"):
        if view.selected("cancelledOccurrences"):
            tz = rec_zone(d)
            out["cancelledOccurrences"] = [
                f"OID.{master_id}.{_key_time(k).astimezone(tz).date().isoformat()}" for k in sorted(item.cancelled)]
        if view.selected("exceptionOccurrences") or "exceptionoccurrences" in view.expand.other:
            # a navigation property: the exception events themselves
            plain = View(immutable=view.immutable, tz=view.tz, graph_base=view.graph_base, body_type=view.body_type,
                         allow_unsafe_html=view.allow_unsafe_html)
            out["exceptionOccurrences"] = [render_event(item, plain, inst=i) for i in instances(item, _FAR)
                                           if i.exception is not None]
    keep = out.get("exceptionOccurrences")
    out = apply_select(out, list(view.select) if view.select else None)
    if keep is not None:
        out["exceptionOccurrences"] = keep
    if view.expand.ext_single:
        ext = inst.exception.ext if inst is not None and inst.exception is not None and inst.exception.ext else item.ext
        if props := ext_props_list(ext, view.expand.ext_filter):
            out["singleValueExtendedProperties"] = props  # absent (no key) when none matches, as in Graph
    return out


def filterable(item: Item, view: View) -> dict[str, Any]:
    full = render_event(item, View(immutable=view.immutable, tz=view.tz))
    full["singleValueExtendedProperties"] = ext_props_list(item.ext, None)
    return full


# ---- normalization --------------------------------------------------------------------------


def _norm_attendees(value: Any) -> list[dict[str, Any]]:
    out = []
    for a in value or []:
        ea = (a or {}).get("emailAddress") or {}
        if not ea.get("address"):
            raise bad_request("Each attendee needs an emailAddress.address.")
        out.append({"type": enum_value("attendeeType", a.get("type") or "required"),
                    "status": a.get("status") or {"response": "none", "time": NO_TIME},
                    "emailAddress": {"name": ea.get("name") or ea["address"], "address": ea["address"]}})
    if len(out) > 500:
        raise bad_request("An event can have at most 500 attendees.")
    return out


def _norm_time(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise GraphError(400, "ErrorInvalidRequest", f"The {name} property is required.")
    tzname = value.get("timeZone") or "UTC"
    zone(tzname)
    local = parse_iso(value["dateTime"]).replace(tzinfo=None) if not value["dateTime"].endswith("Z") else \
        parse_iso(value["dateTime"]).astimezone(zone(tzname)).replace(tzinfo=None)
    return {"dateTime": local.isoformat(), "timeZone": tzname}


def apply_event_fields(data: dict[str, Any], body: dict[str, Any], allowed: set[str]) -> None:
    for k, v in body.items():
        if k not in allowed:
            continue
        if k in ("start", "end"):
            data[k] = _norm_time(v, k)
        elif k == "attendees":
            data[k] = _norm_attendees(v)
        elif k in ("importance", "sensitivity", "showAs", "onlineMeetingProvider"):
            data[k] = enum_value(k, v)
        elif k == "body":
            data[k] = norm_body(v)
        else:
            data[k] = v
    # event.md: location and locations always correspond; updating location replaces locations
    if "location" in body and "location" in allowed and "locations" not in body:
        loc = body.get("location") or {}
        data["locations"] = [loc] if (loc.get("displayName") or "") else []
    elif "locations" in body and "locations" in allowed and "location" not in body:
        locs = body.get("locations") or []
        data["location"] = locs[0] if locs else {"displayName": ""}


def _finish(data: dict[str, Any]) -> None:
    all_day = is_all_day(data)
    if all_day:
        for key in ("start", "end"):
            if not str(data[key]["dateTime"]).endswith("T00:00:00"):
                raise GraphError(400, "ErrorPropertyValidationFailure", "All-day events must start and end at "
                                                                         "midnight (whole days).")
    s, e = event_utc(data["start"], all_day), event_utc(data["end"], all_day)
    if e < s or (all_day and e <= s):
        raise GraphError(400, "ErrorInvalidRequest", "The end time must be after the start time.")
    data["originalStartTimeZone"] = data["start"]["timeZone"]
    data["originalEndTimeZone"] = data["end"]["timeZone"]
    if data.get("recurrence"):
        start_local = s.date() if all_day else s.astimezone(zone(data["start"]["timeZone"])).date()
        data["recurrence"] = rec.normalize(data["recurrence"], data["start"]["timeZone"], start_local)


def new_event_data(user: User, body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    apply_event_fields(data, body, EVENT_WRITABLE)
    if "start" not in data or "end" not in data:
        raise GraphError(400, "ErrorInvalidRequest", "Start and end are required.")
    _finish(data)
    data["iCalUId"] = "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper()
    data["organizer"] = email(user.upn, user.display_name)
    data["isOrganizer"] = True
    data["responseStatus"] = {"response": "organizer", "time": NO_TIME}
    data.setdefault("attendees", [])
    if body.get("transactionId"):
        data["transactionId"] = str(body["transactionId"])
    return data


# ---- lookup ---------------------------------------------------------------------------------


def resolve(sim: Any, user: User, ev_id: str) -> tuple[Item, Instance | None]:
    """An event id (master/single, occurrence or exception) -> (item, instance or None)."""
    item = sim.store.find_item(user, ev_id, "event")
    if item is not None:
        return item, None
    m = _OCC.match(ev_id)
    if m:
        master = sim.store.find_item(user, m.group(1), "event")
        if master is not None and master.data.get("recurrence"):
            k = m.group(2)
            orig = datetime.strptime(k, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if k not in master.cancelled:
                for inst in instances(master, orig + timedelta(seconds=1), orig - timedelta(days=1)):
                    if inst.key == k:
                        return master, inst
                exc = master.exceptions.get(k)
                if exc is not None:
                    dur = end_utc(master) - start_utc(master)
                    ad = is_all_day(master.data)
                    st = event_utc(exc.overrides["start"], ad) if "start" in exc.overrides else orig
                    en = event_utc(exc.overrides["end"], ad) if "end" in exc.overrides else orig + dur
                    return master, Instance(master, orig, st, en, exc)
                for inst in instances(master, orig + timedelta(seconds=1)):
                    if inst.key == k:
                        return master, inst
    raise not_found()


# ---- invitations ----------------------------------------------------------------------------


def _attendee_addresses(organizer: User, data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for a in data.get("attendees") or []:
        addr = a["emailAddress"]["address"].lower()
        if addr != organizer.upn and addr not in out:
            out.append(addr)
    return out


def _copy_for(sim: Any, attendee: User, ical: str) -> Item | None:
    for it in sim.store.items_of(attendee, "event"):
        if it.data.get("iCalUId") == ical:
            return it
    return None


def _sync_copy(sim: Any, organizer: User, ev: Item, att: User, *, create: bool, cancelled: bool) -> None:
    """Keep an internal attendee's copy in step with the organizer's event."""
    copy = _copy_for(sim, att, ev.data["iCalUId"])
    data = {k: v for k, v in ev.data.items() if k != "transactionId"}
    data.update({"isOrganizer": False, "responseStatus": {"response": "notResponded", "time": NO_TIME},
                 "isCancelled": cancelled or bool(ev.data.get("isCancelled"))})
    exceptions = {k: Exception_(e.original_start, dict(e.overrides), new_change_key(), e.created, e.modified)
                  for k, e in ev.exceptions.items()}
    if copy is None:
        if not create or cancelled:
            return
        cal = sim.store.default_folder(att, "calendar")
        copy = sim.store.create(att, "event", cal, data, notify=False)
        copy.exceptions, copy.cancelled = exceptions, set(ev.cancelled)
        sim.store.emit_created(copy)
        return
    data["responseStatus"] = copy.data.get("responseStatus", data["responseStatus"])
    copy.data, copy.exceptions, copy.cancelled = data, exceptions, set(ev.cancelled)
    sim.store.modified(copy)


def propagate(sim: Any, organizer: User, ev: Item, *, kind: str, inst: Instance | None = None,
              previous: list[str] | None = None) -> None:
    """What Exchange does when an organizer creates, changes or cancels a meeting: attendees' copies
    follow, and every attendee gets a message (graph.md §10: Graph has no "update silently").

    kind: "create" (requests), "update" (updates to existing attendees — for a series master with
    separately changed occurrences one for the series plus one per exception, event-update.md —;
    requests to added attendees, cancellations to removed ones), "cancel" (cancellations to all),
    "occurrence" (an update about one occurrence), "occurrence_cancel" (a cancellation of one)."""
    if not ev.data.get("isOrganizer", True):
        return
    current = _attendee_addresses(organizer, ev.data)
    before = current if previous is None else previous
    start = inst.start if inst is not None else start_utc(ev)
    end = inst.end if inst is not None else end_utc(ev)
    plan: list[tuple[str, str, int]] = []  # (address, message kind, how many)
    if kind == "create":
        plan = [(a, "request", 1) for a in current]
    elif kind in ("cancel", "occurrence_cancel"):
        plan = [(a, "cancel", 1) for a in current]
    elif kind == "occurrence":
        plan = [(a, "update", 1) for a in current]
    elif kind == "update":
        per_attendee = 1 + (len(ev.exceptions) if ev.data.get("recurrence") else 0)
        plan = [(a, "update" if a in before else "request", per_attendee if a in before else 1) for a in current]
        plan += [(a, "cancel", 1) for a in before if a not in current]
    for address, message_kind, count in plan:
        att = sim.store.find_user(address)
        if att is not None:
            removed = message_kind == "cancel" and kind == "update"
            _sync_copy(sim, organizer, ev, att, create=message_kind == "request",
                       cancelled=kind == "cancel" or removed)
        for _ in range(count):
            gm.meeting_message(sim, organizer, address, ev, message_kind, start=start, end=end)


# ---- handlers -------------------------------------------------------------------------------


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


def _user(request: web.Request, p: dict[str, str]) -> User:
    return _sim(request).store.users[p["user"]]


def _entity(request: web.Request, user: User, item: Item, inst: Instance | None = None, status: int = 200
            ) -> web.Response:
    body = {"@odata.context": context_url(request, f"users('{user.id}')/events/$entity"),
            **render_event(item, view_of(request), inst=inst)}
    return graph_json(request, body, status)


def window(request: web.Request) -> tuple[datetime, datetime]:
    s, e = q(request, "startDateTime"), q(request, "endDateTime")
    if not s or not e:
        raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the "
                                                       "query string parameters StartDateTime and EndDateTime.")
    try:
        return parse_iso(s), parse_iso(e)
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidParameter", "Invalid StartDateTime or EndDateTime.") from exc


async def list_events(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    view = view_of(request)
    items = sim.store.items_of(user, "event")
    full = [(filterable(i, view), i) for i in items]
    objs = apply_filter_order(request, [f for f, _ in full])
    by_id = {id(f): i for f, i in full}
    page = [render_event(by_id[id(o)], view) for o in objs]
    return list_page(request, page, f"users('{user.id}')/events", default_top=10)


async def create_event(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    body = await read_json(request)
    tx = body.get("transactionId")
    if tx:
        existing = sim.store.transaction_ids.get((user.id, str(tx)))
        if existing and existing in sim.store.items:
            return _entity(request, user, sim.store.items[existing], status=201)
    data = new_event_data(user, body)
    cal = sim.store.default_folder(user, "calendar")
    item = sim.store.create(user, "event", cal, data, notify=False)
    set_ext(item.ext, body.get("singleValueExtendedProperties"))
    if tx:
        sim.store.transaction_ids[(user.id, str(tx))] = item.uid
    sim.store.emit_created(item)
    propagate(sim, user, item, kind="create")
    return _entity(request, user, item, status=201)


async def get_event(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item, inst = resolve(sim, user, p["id"])
    return _entity(request, user, item, inst)


async def update_event(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item, inst = resolve(sim, user, p["id"])
    body = await read_json(request)
    if "transactionId" in body and body["transactionId"] != item.data.get("transactionId"):
        raise GraphError(400, "ErrorInvalidRequest", "transactionId can't be changed after the event is created.")
    now = sim.clock.now()
    if inst is not None:
        exc = inst.exception
        trial = dict(exc.overrides) if exc is not None else {}
        apply_event_fields(trial, body, EXCEPTION_WRITABLE)
        if "start" in trial:
            _check_crossing(item, inst, event_utc(trial["start"], is_all_day(item.data)))
        if exc is None:
            exc = Exception_(inst.original_start, {}, new_change_key(), now, now)
            item.exceptions[inst.key] = exc
        apply_event_fields(exc.overrides, body, EXCEPTION_WRITABLE)
        set_ext(exc.ext, body.get("singleValueExtendedProperties"))
        exc.change_key = new_change_key()
        exc.modified = now
        sim.store.modified(item)
        _, changed = resolve(sim, user, occ_id(item.rest_id, inst.original_start))
        if EXCEPTION_WRITABLE & body.keys():
            propagate(sim, user, item, kind="occurrence", inst=changed)
        _, inst2 = resolve(sim, user, occ_id(view_of(request).item_id(item), inst.original_start))
        return _entity(request, user, item, inst2)
    before = (item.data.get("recurrence"), item.data.get("start"))
    previous = _attendee_addresses(user, item.data)
    data = dict(item.data)
    apply_event_fields(data, body, EVENT_WRITABLE)
    _finish(data)
    if before != (data.get("recurrence"), data.get("start")):
        item.exceptions.clear()
        item.cancelled.clear()
    item.data = data
    set_ext(item.ext, body.get("singleValueExtendedProperties"))
    sim.store.modified(item)
    if EVENT_WRITABLE & body.keys():  # any event property, changed or not: Exchange mails the attendees
        propagate(sim, user, item, kind="update", previous=previous)
    return _entity(request, user, item)


def _check_crossing(item: Item, inst: Instance, new_start: datetime) -> None:
    """event-update.md: an occurrence cannot be moved to or before the day of the previous occurrence,
    nor to or after the day of the following one (400 ErrorOccurrenceCrossingBoundary)."""
    tz = rec_zone(item.data)
    around = instances(item, inst.original_start + timedelta(days=400), inst.original_start - timedelta(days=400))
    around.sort(key=lambda i: i.original_start)
    keys = [i.key for i in around]
    if inst.key not in keys:
        return
    pos = keys.index(inst.key)
    day = new_start.astimezone(tz).date()
    prev_day = around[pos - 1].start.astimezone(tz).date() if pos > 0 else None
    next_day = around[pos + 1].start.astimezone(tz).date() if pos + 1 < len(around) else None
    if (prev_day is not None and day <= prev_day) or (next_day is not None and day >= next_day):
        raise GraphError(400, "ErrorOccurrenceCrossingBoundary",
                         "Modified occurrence is crossing or overlapping adjacent occurrence.")


def _cancel_occurrence(sim: Any, user: User, item: Item, inst: Instance) -> None:
    item.exceptions.pop(inst.key, None)
    item.cancelled.add(inst.key)
    sim.store.modified(item)
    propagate(sim, user, item, kind="occurrence_cancel", inst=inst)


async def delete_event(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item, inst = resolve(sim, user, p["id"])
    if inst is not None:
        _cancel_occurrence(sim, user, item, inst)
        return web.Response(status=204)
    if item.data.get("isOrganizer", True):
        propagate(sim, user, item, kind="cancel")
    sim.store.delete(item)
    return web.Response(status=204)


async def cancel_event(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item, inst = resolve(sim, user, p["id"])
    await read_action(request)
    if not item.data.get("isOrganizer", True):
        raise GraphError(400, "ErrorAccessDenied", "Your request can't be completed. You need to be an organizer "
                                                   "to cancel a meeting.")
    if inst is not None:
        _cancel_occurrence(sim, user, item, inst)
        return web.Response(status=202)
    propagate(sim, user, item, kind="cancel")
    sim.store.delete(item)
    return web.Response(status=202)


def _respond(response: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request, p: dict[str, str]) -> web.Response:
        sim = _sim(request)
        user = _user(request, p)
        item, _ = resolve(sim, user, p["id"])
        action = await read_action(request)
        if item.data.get("isOrganizer", True):
            raise GraphError(400, "ErrorInvalidRequest", "Your request can't be completed. You can't respond to "
                                                         "a meeting you organized.")
        now = iso(sim.clock.now())
        item.data["responseStatus"] = {"response": response, "time": now}
        sim.store.modified(item)
        org = sim.store.find_user(item.data["organizer"]["emailAddress"]["address"])
        if org is not None:
            master = _copy_for(sim, org, item.data["iCalUId"])
            if master is not None:
                for a in master.data.get("attendees") or []:
                    if a["emailAddress"]["address"].lower() == user.upn:
                        a["status"] = {"response": response, "time": now}
                sim.store.modified(master)
        if str(action.get("sendResponse", True)).lower() != "false":  # event-accept.md: sendResponse
            gm.meeting_response(sim, user, item.data["organizer"]["emailAddress"]["address"], item, response)
        if response == "declined":
            sim.store.delete(item)
        return web.Response(status=202)

    return handler


async def calendar_view(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    start, end = window(request)
    view = view_of(request)
    out: list[dict[str, Any]] = []
    for item in sim.store.items_of(user, "event"):
        if item.data.get("recurrence"):
            out.extend(render_event(item, view, inst=i) for i in instances(item, end, start))
        else:
            s, e = start_utc(item), end_utc(item)
            if s < end and e > start:
                out.append(render_event(item, view))
    out.sort(key=lambda o: o["start"]["dateTime"])
    out = apply_filter_order(request, out)
    return list_page(request, out, f"users('{user.id}')/calendarView", default_top=10)


async def list_instances(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item, inst = resolve(sim, user, p["id"])
    if inst is not None or not item.data.get("recurrence"):
        return list_page(request, [], "events")
    start, end = window(request)
    view = view_of(request)
    out = [render_event(item, view, inst=i) for i in instances(item, end, start)]
    return list_page(request, out, f"users('{user.id}')/events('{p['id']}')/instances", default_top=10)


async def get_calendar(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    cal = sim.store.default_folder(user, "calendar")
    return graph_json(request, {"@odata.context": context_url(request, "calendars/$entity"), **_cal(cal, user)})


def _cal(cal: Any, user: User) -> dict[str, Any]:
    return {"id": cal.id, "name": cal.display_name, "color": "auto", "isDefaultCalendar": True,
            "changeKey": "", "canShare": True, "canViewPrivateItems": True, "canEdit": True,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"], "defaultOnlineMeetingProvider": "teamsForBusiness",
            "isTallyingResponses": True, "isRemovable": False, "owner": {"name": user.display_name,
                                                                          "address": user.upn}}


async def list_calendars(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    return list_page(request, [_cal(sim.store.default_folder(user, "calendar"), user)], "calendars")


def register(router: Router) -> None:
    u = "users/{user}"
    router.add("GET", f"{u}/calendar", get_calendar, "calendar")
    router.add("GET", f"{u}/calendars", list_calendars, "calendar")
    for base in (f"{u}", f"{u}/calendar", f"{u}/calendars/{{cal}}"):
        router.add("GET", f"{base}/events", list_events, "calendar")
        router.add("POST", f"{base}/events", create_event, "calendar.write")
        router.add("GET", f"{base}/events/{{id}}", get_event, "calendar")
        router.add("PATCH", f"{base}/events/{{id}}", update_event, "calendar.write")
        router.add("DELETE", f"{base}/events/{{id}}", delete_event, "calendar.write")
        router.add("POST", f"{base}/events/{{id}}/permanentDelete", delete_event, "calendar.write")
        router.add("POST", f"{base}/events/{{id}}/cancel", cancel_event, "calendar.write")
        router.add("POST", f"{base}/events/{{id}}/accept", _respond("accepted"), "calendar.write")
        router.add("POST", f"{base}/events/{{id}}/decline", _respond("declined"), "calendar.write")
        router.add("POST", f"{base}/events/{{id}}/tentativelyAccept", _respond("tentativelyAccepted"),
                   "calendar.write")
        router.add("GET", f"{base}/events/{{id}}/instances", list_instances, "calendar")
        router.add("GET", f"{base}/calendarView", calendar_view, "calendar")
    from sandbox.graph import delta

    delta.register_calendar(router)
