"""Pega → Exchange writes for on-premises mailboxes: the outbound executors' Graph calls, carried
out over EWS.

The executors (shared/outbound/*) speak Graph: a path, a JSON body built by graph_payloads (the
one place that maps Pega's contract to Exchange fields), a JSON answer parsed by the records
module. `RoutingGateway` stands where the GraphGateway stood and sends a mailbox's calls either to
Graph (Exchange Online) or to `EwsWrites` (Exchange Server), which performs the same operation
with exchangelib and answers in Graph's shape. So idempotency (links, the PegaId stamp),
three-way merges, Pega reporting and retries stay single-sourced; only the transport differs.

Differences EWS imposes, handled here: a sent draft moves to Sent Items under a new id (the
gateway remembers draft → sent for the read that follows); attachments are attached whole (EWS has
no upload sessions and no 3 MB limit per request: the executor asks `takes_whole_attachments`); an
organizer's cancel is a delete that sends cancellations, an attendee's decline is EWS DeclineItem
(the organizer is told; the meeting leaves the attendee's calendar).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from shared.errors import PermanentError
from shared.ews import parse
from shared.ews.errors import EwsNotFoundError
from shared.ews.gateway import EwsGateway
from shared.graph.errors import GraphBadRequestError
from shared.graph.gateway import GraphResponse
from shared.sync.records import ContactRecord, EventRecord, MessageRecord

if TYPE_CHECKING:
    from shared.graph.gateway import GraphGateway
    from shared.storage.mailboxes import MailboxRepository

SUFFIXES = ("instances", "attachments/createUploadSession", "attachments", "send", "createReplyAll", "createReply", "cancel",
            "decline", "photo/$value", "contacts")
_PEGA_ID_VALUE = re.compile(r"ep/value eq '((?:[^']|'')*)'")


def _resp(value: Any, status: int = 200) -> GraphResponse:
    return GraphResponse(status, {"Content-Type": "application/json"}, json.dumps(value).encode() if value is not None
                         else b"")


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _addr(a: Any) -> dict[str, Any]:
    return {"emailAddress": {"address": a.address, "name": a.name}}


def _pega(stamp: str) -> list[dict[str, str]]:
    from shared.outbound.graph_payloads import PEGA_ID_PROPERTY

    return [{"id": PEGA_ID_PROPERTY, "value": stamp}] if stamp else []


def message_json(r: MessageRecord) -> dict[str, Any]:
    return {"id": r.id, "changeKey": r.change_key, "subject": r.subject, "conversationId": r.conversation_id,
            "internetMessageId": r.internet_message_id, "body": {"contentType": "HTML" if r.body_type == "html"
                                                                 else "Text", "content": r.body or ""},
            "from": _addr(r.sender) if r.sender else None, "toRecipients": [_addr(a) for a in r.to],
            "ccRecipients": [_addr(a) for a in r.cc], "bccRecipients": [_addr(a) for a in r.bcc],
            "receivedDateTime": _iso(r.received_at), "sentDateTime": _iso(r.sent_at), "isDraft": r.is_draft,
            "importance": r.importance, "hasAttachments": r.has_attachments, "categories": list(r.categories),
            "lastModifiedDateTime": _iso(r.last_modified), "singleValueExtendedProperties": _pega(r.pega_stamp)}


def event_json(r: EventRecord) -> dict[str, Any]:
    return {"id": r.id, "changeKey": r.change_key, "type": r.type, "seriesMasterId": r.series_master_id,
            "subject": r.subject, "body": {"contentType": "HTML" if r.body_type == "html" else "Text",
                                           "content": r.body or ""},
            "start": {"dateTime": _iso(r.start), "timeZone": "UTC"}, "end": {"dateTime": _iso(r.end), "timeZone": "UTC"},
            "originalStartTimeZone": r.original_tz, "isAllDay": r.is_all_day,
            "location": {"displayName": r.location or ""}, "organizer": _addr(r.organizer) if r.organizer else None,
            "attendees": [{"emailAddress": {"address": a.address, "name": a.name}, "type": a.type,
                           "status": {"response": a.response or "none"}} for a in r.attendees],
            "isOrganizer": r.is_organizer, "isCancelled": r.is_cancelled, "sensitivity": r.sensitivity,
            "showAs": r.show_as, "reminderMinutesBeforeStart": r.reminder_minutes, "recurrence": r.recurrence,
            "iCalUId": r.ical_uid, "lastModifiedDateTime": _iso(r.last_modified), "responseRequested": True,
            "responseStatus": {"response": "organizer" if r.is_organizer else "none"},
            "singleValueExtendedProperties": _pega(r.pega_stamp)}


def contact_json(r: ContactRecord) -> dict[str, Any]:
    return {"id": r.id, "changeKey": r.change_key, "givenName": r.given_name, "surname": r.surname,
            "displayName": r.display_name, "emailAddresses": [{"address": a.address, "name": a.name}
                                                              for a in r.emails],
            "businessPhones": list(r.business_phones), "mobilePhone": r.mobile_phone, "companyName": r.company_name,
            "jobTitle": r.job_title, "department": r.department,
            "businessAddress": {"street": r.street, "city": r.city, "state": r.state, "postalCode": r.postal_code,
                                "countryOrRegion": r.country},
            "personalNotes": r.notes, "categories": list(r.categories), "parentFolderId": r.parent_folder_id,
            "lastModifiedDateTime": _iso(r.last_modified), "singleValueExtendedProperties": _pega(r.pega_stamp)}


# ---------------------------------------------------------------- Graph JSON → exchangelib fields


def _tz(name: str | None) -> Any:
    from exchangelib import EWSTimeZone

    from shared.sync.timezones import zone

    try:
        return EWSTimeZone.from_ms_id(name) if name and " " in name else EWSTimeZone(getattr(zone(name), "key", "UTC"))
    except Exception:
        return EWSTimeZone("UTC")


def _when(value: Mapping[str, Any], all_day: bool, *, end: bool = False) -> Any:
    from exchangelib import EWSDate, EWSDateTime

    text = str(value.get("dateTime") or "")
    naive = dt.datetime.fromisoformat(text.replace("Z", "").split(".")[0])
    if all_day:
        # Graph's all-day end is the midnight after the last day; exchangelib takes an all-day end date
        # as the last day itself (and sends the midnight after it)
        day = naive.date() - (dt.timedelta(days=1) if end and naive.date() > dt.date.min else dt.timedelta(0))
        return EWSDate(day.year, day.month, day.day)
    return EWSDateTime.from_datetime(naive).replace(tzinfo=_tz(str(value.get("timeZone") or "UTC")))


def _body(value: Mapping[str, Any] | None) -> Any:
    from exchangelib import Body, HTMLBody

    value = value or {}
    content = str(value.get("content") or "")
    return HTMLBody(content) if str(value.get("contentType") or "").lower() == "html" else Body(content)


def _mailboxes(values: Any) -> list[Any]:
    from exchangelib import Mailbox

    return [Mailbox(email_address=str((v.get("emailAddress") or {}).get("address")),
                    name=(v.get("emailAddress") or {}).get("name")) for v in values or []]


def _stamp(payload: Mapping[str, Any]) -> str | None:
    for p in payload.get("singleValueExtendedProperties") or []:
        if str(p.get("id", "")).lower().endswith("name pegaid"):
            return str(p.get("value") or "")
    return None


SENSITIVITIES = ("Normal", "Personal", "Private", "Confidential")


def _sensitivity(payload: Mapping[str, Any]) -> str | None:
    """Graph's MAPI sensitivity extended property (Integer 0x0036) or `sensitivity` as EWS's value."""
    for p in payload.get("singleValueExtendedProperties") or []:
        if str(p.get("id", "")).lower() == "integer 0x0036":
            try:
                return SENSITIVITIES[int(str(p.get("value")))]
            except (ValueError, IndexError):
                return None
    value = payload.get("sensitivity")
    return str(value).capitalize() if isinstance(value, str) and value else None


_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 5}


def _recurrence(value: Mapping[str, Any] | None, start: Any) -> Any:
    if not value:
        return None
    from exchangelib.recurrence import (
        AbsoluteMonthlyPattern,
        AbsoluteYearlyPattern,
        DailyPattern,
        EndDatePattern,
        NoEndPattern,
        NumberedPattern,
        Recurrence,
        RelativeMonthlyPattern,
        RelativeYearlyPattern,
        WeeklyPattern,
    )

    p, r = dict(value.get("pattern") or {}), dict(value.get("range") or {})
    days = [_DAYS.index(d.lower()) + 1 for d in p.get("daysOfWeek") or [] if d.lower() in _DAYS]
    iv = int(p.get("interval") or 1)
    kind = p.get("type")
    pattern: Any
    if kind == "daily":
        pattern = DailyPattern(interval=iv)
    elif kind == "weekly":
        pattern = WeeklyPattern(interval=iv, weekdays=days or [start.isoweekday()],
                                first_day_of_week=_DAYS.index(str(p.get("firstDayOfWeek") or "sunday").lower()) + 1)
    elif kind == "absoluteMonthly":
        pattern = AbsoluteMonthlyPattern(interval=iv, day_of_month=int(p.get("dayOfMonth") or start.day))
    elif kind == "relativeMonthly":
        pattern = RelativeMonthlyPattern(interval=iv, weekday=days[0] if days else 1,
                                         week_number=_INDEX.get(str(p.get("index") or "first"), 1))
    elif kind == "absoluteYearly":
        pattern = AbsoluteYearlyPattern(day_of_month=int(p.get("dayOfMonth") or start.day),
                                        month=int(p.get("month") or start.month))
    elif kind == "relativeYearly":
        pattern = RelativeYearlyPattern(weekday=days[0] if days else 1,
                                        week_number=_INDEX.get(str(p.get("index") or "first"), 1),
                                        month=int(p.get("month") or start.month))
    else:
        raise GraphBadRequestError(f"recurrence pattern {kind!r} is not valid", status=400,
                                   code="ErrorInvalidRecurrence")
    begin = dt.date.fromisoformat(str(r.get("startDate") or start.date().isoformat())[:10])
    if r.get("type") == "endDate":
        boundary: Any = EndDatePattern(start=begin, end=dt.date.fromisoformat(str(r["endDate"])[:10]))
    elif r.get("type") == "numbered":
        boundary = NumberedPattern(start=begin, number=int(r.get("numberOfOccurrences") or 1))
    else:
        boundary = NoEndPattern(start=begin)
    return Recurrence(pattern=pattern, boundary=boundary)


def apply_event(item: Any, payload: Mapping[str, Any]) -> list[str]:
    """Set the Graph event properties in `payload` on an exchangelib CalendarItem; the fields set."""
    fields: list[str] = []
    all_day = bool(payload.get("isAllDay", getattr(item, "is_all_day", False)))
    if "isAllDay" in payload:
        item.is_all_day = all_day
        fields.append("is_all_day")
    simple = {"subject": "subject", "reminderMinutesBeforeStart": "reminder_minutes_before_start",
              "isReminderOn": "reminder_is_set"}
    for key, attr in simple.items():
        if key in payload:
            setattr(item, attr, payload[key])
            fields.append(attr)
    if _sensitivity(payload):
        item.sensitivity = _sensitivity(payload)
        fields.append("sensitivity")
    if "showAs" in payload:
        item.legacy_free_busy_status = {"free": "Free", "tentative": "Tentative", "busy": "Busy", "oof": "OOF",
                                        "workingElsewhere": "WorkingElsewhere"}.get(str(payload["showAs"]), "Busy")
        fields.append("legacy_free_busy_status")
    for key in ("start", "end"):
        if key in payload:
            # the event's own zone, as Graph's originalStartTimeZone: an all-day event is whole days in it
            # (else exchangelib places an EWSDate in the account's zone, UTC); an update that moves a
            # meeting to another zone moves its zone too (else the old one is kept and the time converted).
            # An occurrence keeps its series' zone (its new time is converted into it), as with Graph.
            if getattr(item, "type", None) not in ("Occurrence", "Exception"):
                setattr(item, f"_{key}_timezone", _tz(str(payload[key].get("timeZone") or "UTC")))
            setattr(item, key, _when(payload[key], all_day, end=key == "end"))
            fields.append(key)
    if "location" in payload:
        item.location = (payload["location"] or {}).get("displayName") or None
        fields.append("location")
    if "body" in payload:
        item.body = _body(payload["body"])
        fields.append("body")
    if "attendees" in payload:
        from exchangelib import Attendee

        for kind, attr in (("required", "required_attendees"), ("optional", "optional_attendees")):
            setattr(item, attr, [Attendee(mailbox=m, response_type="Unknown") for m, a in
                                 zip(_mailboxes(payload["attendees"]), payload["attendees"], strict=True)
                                 if str(a.get("type") or "required") == kind] or None)
            fields.append(attr)
    if "recurrence" in payload:
        item.recurrence = _recurrence(payload["recurrence"], item.start)
        fields.append("recurrence")
    stamp = _stamp(payload)
    if stamp is not None:
        item.pega_id = stamp
        fields.append("pega_id")
    return fields


def apply_contact(item: Any, payload: Mapping[str, Any]) -> list[str]:
    from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress

    fields: list[str] = []
    simple = {"givenName": "given_name", "surname": "surname", "displayName": "display_name",
              "companyName": "company_name", "jobTitle": "job_title", "department": "department",
              "categories": "categories"}
    for key, attr in simple.items():
        if key in payload:
            setattr(item, attr, payload[key] or None)
            fields.append(attr)
    if "personalNotes" in payload:
        item.body = payload["personalNotes"] or None
        fields.append("body")
    if "emailAddresses" in payload:
        item.email_addresses = [EmailAddress(email=str(e["address"]), label=f"EmailAddress{i}")
                                for i, e in enumerate(payload["emailAddresses"][:3], start=1)] or None
        fields.append("email_addresses")
    if "businessPhones" in payload or "mobilePhone" in payload:
        phones = {p.label: p.phone_number for p in getattr(item, "phone_numbers", None) or ()}
        if "businessPhones" in payload:
            for i, label in enumerate(("BusinessPhone", "BusinessPhone2")):
                values = list(payload["businessPhones"] or [])
                phones[label] = values[i] if i < len(values) else None
        if "mobilePhone" in payload:
            phones["MobilePhone"] = payload["mobilePhone"] or None
        item.phone_numbers = [PhoneNumber(label=k, phone_number=v) for k, v in phones.items() if v] or None
        fields.append("phone_numbers")
    if "businessAddress" in payload:
        a = payload["businessAddress"] or {}
        item.physical_addresses = [PhysicalAddress(label="Business", street=a.get("street"), city=a.get("city"),
                                                   state=a.get("state"), zipcode=a.get("postalCode"),
                                                   country=a.get("countryOrRegion"))]
        fields.append("physical_addresses")
    if _sensitivity(payload):
        item.sensitivity = _sensitivity(payload)
        fields.append("sensitivity")
    stamp = _stamp(payload)
    if stamp is not None:
        item.pega_id = stamp
        fields.append("pega_id")
    return fields


def _named(payload: Mapping[str, Any], name: str) -> str | None:
    for p in payload.get("singleValueExtendedProperties") or []:
        if str(p.get("id", "")).lower().endswith(f"name {name.lower()}"):
            return str(p.get("value") or "")
    return None


def apply_message(item: Any, payload: Mapping[str, Any]) -> list[str]:
    fields: list[str] = []
    ready = _named(payload, "PegaReplyReady")
    if ready is not None:
        item.reply_ready = ready
        fields.append("reply_ready")
    for key, attr in (("toRecipients", "to_recipients"), ("ccRecipients", "cc_recipients"),
                      ("bccRecipients", "bcc_recipients")):
        if key in payload:
            setattr(item, attr, _mailboxes(payload[key]) or None)
            fields.append(attr)
    if "subject" in payload:
        item.subject = payload["subject"]
        fields.append("subject")
    if "body" in payload:
        item.body = _body(payload["body"])
        fields.append("body")
    if "importance" in payload:
        item.importance = str(payload["importance"]).capitalize()
        fields.append("importance")
    if _sensitivity(payload):
        item.sensitivity = _sensitivity(payload)
        fields.append("sensitivity")
    stamp = _stamp(payload)
    if stamp is not None:
        item.pega_id = stamp
        fields.append("pega_id")
    return fields


# ---------------------------------------------------------------- the operations


def fetch_one(account: Any, item_id: str, fields: Any) -> Any:
    """One item by id with `fields`, or the item's EWS error raised (mapped by the gateway)."""
    found = next(iter(account.fetch(ids=[(item_id, None)], only_fields=list(fields))), None)
    if found is None:
        raise EwsNotFoundError("EWS get: gone", status=404)
    if isinstance(found, Exception):
        raise found
    return found


class EwsWrites:
    """Graph-shaped requests of the outbound executors, performed over EWS for one deployment."""

    def __init__(self, gateway: EwsGateway) -> None:
        self.gw = gateway
        self.sent_ids: dict[str, str] = {}  # draft id → id of its Sent Items copy

    async def request(self, method: str, path: str, *, mailbox: str, body: Any = None,
                      params: Mapping[str, str | int] | None = None, what: str = "", raw_body: bytes | None = None,
                      **_: Any) -> GraphResponse:
        if raw_body is not None:
            body = raw_body
        parts = path.lstrip("/").split("/", 3)  # never strip the end: an EWS id may end in "/"
        if len(parts) < 3 or parts[0] != "users":
            raise GraphBadRequestError("EWS backend: unsupported request", status=400)
        collection = parts[2]
        # EWS ids are base64 with "/" and "+": the id is what lies between the collection and a
        # known trailing action, not one path segment
        remainder = unquote(parts[3]) if len(parts) > 3 else ""
        rest: list[str] = []
        for suffix in SUFFIXES:
            if remainder.endswith("/" + suffix):
                rest = [remainder[:-len(suffix) - 1], *suffix.split("/")]
                break
        else:
            rest = [remainder] if remainder else []
        handler = getattr(self, f"_{collection.lower()}", None)
        if handler is None:
            raise GraphBadRequestError(f"EWS backend: unsupported collection {collection}", status=400)
        result: GraphResponse = await handler(method, rest, mailbox=mailbox, body=body, params=params or {},
                                              what=what or f"{method} {collection}")
        return result

    async def get_json(self, path: str, *, mailbox: str, params: Mapping[str, str | int] | None = None,
                       what: str = "", **_: Any) -> Any:
        return (await self.request("GET", path, mailbox=mailbox, params=params, what=what)).json()

    # -------------------------------------------------------- helpers

    async def _find_stamped(self, mailbox: str, folders: tuple[str, ...], params: Mapping[str, Any],
                            *, folder_id: str = "") -> GraphResponse:
        match = _PEGA_ID_VALUE.search(str(params.get("$filter") or ""))
        if match is None:
            raise GraphBadRequestError("EWS backend: only the PegaId filter is supported", status=400)
        value = match.group(1).replace("''", "'")

        def work(account: Any) -> list[dict[str, Any]]:
            out = []
            targets = [self._folder(account, f) for f in folders]
            if folder_id:
                from exchangelib.properties import FolderId

                targets = [account.root.get_folder(FolderId(id=folder_id))]
            for folder in targets:
                for item in folder.filter(pega_id=value).only("id", "changekey", "is_draft" if folder in (
                        account.drafts, account.sent, account.inbox) else "id"):
                    out.append({"id": item.id, "isDraft": getattr(item, "is_draft", None) is True})
            return out

        return _resp({"value": await self.gw.call(mailbox, work, what="find by PegaId")})

    @staticmethod
    def _folder(account: Any, name: str) -> Any:
        return {"drafts": account.drafts, "sentitems": account.sent, "inbox": account.inbox,
                "calendar": account.calendar, "contacts": account.contacts}[name]

    async def _get(self, mailbox: str, item_id: str, fields: tuple[str, ...], *, what: str) -> Any:
        def work(account: Any) -> Any:
            found = list(account.fetch(ids=[(item_id, None)], only_fields=list(fields)))
            if not found or isinstance(found[0], Exception):
                raise found[0] if found else EwsNotFoundError("EWS get: gone", status=404)
            return found[0]

        return await self.gw.call(mailbox, work, what=what)

    # -------------------------------------------------------- events

    async def _events(self, method: str, rest: list[str], *, mailbox: str, body: Any, params: Mapping[str, Any],
                      what: str) -> GraphResponse:
        from exchangelib import CalendarItem

        if not rest:
            if method == "GET":
                return await self._find_stamped(mailbox, ("calendar",), params)
            if method == "POST":
                def create(account: Any) -> Any:
                    item = CalendarItem(account=account, folder=account.calendar)
                    apply_event(item, body or {})
                    item.save(send_meeting_invitations="SendToAllAndSaveCopy" if item.required_attendees
                              or item.optional_attendees else "SendToNone")
                    return item.id

                new_id = await self.gw.call(mailbox, create, what="create event")
                return _resp(event_json(parse.event(await self._get(mailbox, new_id, parse.EVENT_FIELDS, what=what),
                                                    mailbox=mailbox)), 201)
        event_id = rest[0]
        action = rest[1] if len(rest) > 1 else ""
        if method == "GET" and not action:
            return _resp(event_json(parse.event(await self._get(mailbox, event_id, parse.EVENT_FIELDS, what=what),
                                                mailbox=mailbox)))
        if method == "GET" and action == "instances":
            start = dt.datetime.fromisoformat(str(params["startDateTime"]).replace("Z", "+00:00"))
            end = dt.datetime.fromisoformat(str(params["endDateTime"]).replace("Z", "+00:00"))

            def instances(account: Any) -> list[Any]:
                from exchangelib import EWSDateTime

                master = fetch_one(account, event_id, ["id", "uid"])
                view = account.calendar.view(start=EWSDateTime.from_datetime(start.astimezone(dt.UTC)),
                                             end=EWSDateTime.from_datetime(end.astimezone(dt.UTC))
                                             ).only("id", "changekey", "uid", "type")
                occurrences = [o for o in view if o.uid == master.uid and o.type in ("Occurrence", "Exception")]
                full = account.fetch(ids=occurrences, only_fields=list(parse.EVENT_FIELDS)) if occurrences else []
                return [f for f in full if not isinstance(f, Exception)]

            found = await self.gw.call(mailbox, instances, what="list instances")
            return _resp({"value": [event_json(parse.event(o, mailbox=mailbox, master_id=event_id)) for o in found]})
        if method == "PATCH":
            def update(account: Any) -> None:
                item = fetch_one(account, event_id, list(parse.EVENT_FIELDS))
                fields = apply_event(item, body or {})
                if fields:
                    item.save(update_fields=fields, send_meeting_invitations="SendToAllAndSaveCopy"
                              if item.required_attendees or item.optional_attendees else "SendToNone")

            await self.gw.call(mailbox, update, what="update event")
            return _resp(event_json(parse.event(await self._get(mailbox, event_id, parse.EVENT_FIELDS, what=what),
                                                mailbox=mailbox)))
        if method == "DELETE" or action == "cancel":
            def delete(account: Any) -> None:
                item = fetch_one(account, event_id, ["id", "changekey"])
                item.delete(send_meeting_cancellations="SendToAllAndSaveCopy" if action == "cancel"
                            else "SendToNone")

            await self.gw.call(mailbox, delete, what="delete event")
            return _resp(None, 204)
        if action == "decline":
            send = bool((body or {}).get("sendResponse", True))

            def decline(account: Any) -> None:
                from exchangelib.items import SEND_AND_SAVE_COPY

                item = fetch_one(account, event_id, ["id", "changekey"])
                if not send:  # no answer to the organizer: the meeting just leaves the calendar
                    item.move_to_trash()
                    return
                comment = str((body or {}).get("comment") or "")
                item.decline(message_disposition=SEND_AND_SAVE_COPY, **({"body": comment} if comment else {}))

            await self.gw.call(mailbox, decline, what="decline event")
            return _resp(None, 202)
        raise GraphBadRequestError(f"EWS backend: unsupported event request {method} {action}", status=400)

    # -------------------------------------------------------- messages

    async def _messages(self, method: str, rest: list[str], *, mailbox: str, body: Any, params: Mapping[str, Any],
                        what: str) -> GraphResponse:
        from exchangelib import FileAttachment, Message

        if not rest:
            if method == "GET":
                return await self._find_stamped(mailbox, ("drafts", "sentitems"), params)

            def create(account: Any) -> str:
                item = Message(account=account, folder=account.drafts)
                apply_message(item, body or {})
                item.save()
                return str(item.id)

            new_id = await self.gw.call(mailbox, create, what="create draft")
            return _resp(message_json(parse.message(await self._get(mailbox, new_id, parse.MESSAGE_FIELDS,
                                                                    what=what))), 201)
        msg_id = self.sent_ids.get(rest[0], rest[0])
        action = rest[1] if len(rest) > 1 else ""
        if method == "GET" and not action:
            item = await self._get(mailbox, msg_id, (*parse.MESSAGE_FIELDS, "reply_ready"), what=what)
            out = message_json(parse.message(item))
            if getattr(item, "reply_ready", None):
                from shared.outbound.emails import REPLY_READY_PROPERTY

                out["singleValueExtendedProperties"].append({"id": REPLY_READY_PROPERTY, "value": item.reply_ready})
            return _resp(out)
        if action == "attachments" and method == "GET":
            item = await self._get(mailbox, msg_id, ("attachments",), what=what)
            return _resp({"value": [{"id": str(a.attachment_id.id), "name": a.name} for a in item.attachments or ()]})
        if action == "attachments" and method == "POST":
            if len(rest) > 2:  # createUploadSession
                raise PermanentError("EWS has no upload sessions: attachments are attached whole")

            def attach(account: Any) -> None:
                item = fetch_one(account, msg_id, ["id", "changekey"])
                item.attach(FileAttachment(name=str(body["name"]), content=base64.b64decode(body["contentBytes"]),
                                           content_type=body.get("contentType"), is_inline=bool(body.get("isInline"))))

            await self.gw.call(mailbox, attach, what="add attachment")
            return _resp({}, 201)
        if action == "send":
            def send(account: Any) -> str:
                item = fetch_one(account, msg_id, ["id", "changekey", "pega_id"])
                stamp = item.pega_id
                item.send(save_copy=True, copy_to_folder=account.sent)
                found = list(account.sent.filter(pega_id=stamp).only("id")) if stamp else []
                return str(found[0].id) if found else msg_id

            self.sent_ids[rest[0]] = await self.gw.call(mailbox, send, what="send draft")
            return _resp(None, 202)
        if action in ("createReply", "createReplyAll"):
            def reply(account: Any) -> str:
                from exchangelib.items import ReplyAllToItem, ReplyToItem
                from exchangelib.properties import ReferenceItemId

                original = fetch_one(account, msg_id, ["id", "changekey", "subject"])
                cls = ReplyAllToItem if action == "createReplyAll" else ReplyToItem
                draft = cls(account=account, reference_item_id=ReferenceItemId(id=original.id,
                                                                                changekey=original.changekey),
                            subject=f"RE: {original.subject or ''}", new_body="")
                created = draft.save(folder=account.drafts)
                draft_id = str(created.id)
                stamp = _stamp((body or {}).get("message") or {})
                if stamp:
                    made = fetch_one(account, draft_id, ["id", "changekey"])
                    made.pega_id = stamp
                    made.save(update_fields=["pega_id"])
                return draft_id

            draft_id = await self.gw.call(mailbox, reply, what=action)
            return _resp(message_json(parse.message(await self._get(mailbox, draft_id, parse.MESSAGE_FIELDS,
                                                                    what=what))), 201)
        if method == "PATCH":
            def update(account: Any) -> None:
                item = fetch_one(account, msg_id, list(parse.MESSAGE_FIELDS))
                fields = apply_message(item, body or {})
                if fields:
                    item.save(update_fields=fields)

            await self.gw.call(mailbox, update, what="update draft")
            return _resp(message_json(parse.message(await self._get(mailbox, msg_id, parse.MESSAGE_FIELDS,
                                                                    what=what))))
        raise GraphBadRequestError(f"EWS backend: unsupported message request {method} {action}", status=400)

    async def _sendmail(self, method: str, rest: list[str], *, mailbox: str, body: Any, params: Mapping[str, Any],
                        what: str) -> GraphResponse:
        """POST users/{id}/sendMail: send at once, a copy in Sent Items."""
        from exchangelib import Message

        def send(account: Any) -> None:
            item = Message(account=account, folder=account.sent)
            apply_message(item, (body or {}).get("message") or {})
            item.send_and_save()

        await self.gw.call(mailbox, send, what="send mail")
        return _resp(None, 202)

    async def _mailfolders(self, method: str, rest: list[str], *, mailbox: str, body: Any,
                           params: Mapping[str, Any], what: str) -> GraphResponse:
        """mailFolders/{inbox|sentitems|drafts}/messages: list (GET) or save a message there (POST)."""
        from exchangelib import Message

        name = rest[0].split("/", 1)[0] if rest else ""
        if name not in ("inbox", "sentitems", "drafts"):
            raise GraphBadRequestError(f"EWS backend: unsupported mail folder {name}", status=400)
        if method == "GET":
            def listing(account: Any) -> list[Any]:
                return list(self._folder(account, name).all().only(*parse.MESSAGE_FIELDS)[:50])

            found = await self.gw.call(mailbox, listing, what="list messages")
            return _resp({"value": [message_json(parse.message(m)) for m in found]})

        def save(account: Any) -> str:
            item = Message(account=account, folder=self._folder(account, name))
            apply_message(item, body or {})
            item.save()
            return str(item.id)

        new_id = await self.gw.call(mailbox, save, what="save message")
        return _resp(message_json(parse.message(await self._get(mailbox, new_id, parse.MESSAGE_FIELDS, what=what))),
                     201)

    # -------------------------------------------------------- contacts

    async def _contactfolders(self, method: str, rest: list[str], *, mailbox: str, body: Any,
                              params: Mapping[str, Any], what: str) -> GraphResponse:
        if rest and len(rest) >= 2 and rest[1] == "contacts":
            return await self._contacts(method, [], mailbox=mailbox, body=body, params=params, what=what,
                                        folder_id=rest[0])
        if method == "GET":
            match = re.search(r"displayName eq '((?:[^']|'')*)'", str(params.get("$filter") or ""))
            name = match.group(1).replace("''", "'") if match else ""

            def find(account: Any) -> list[dict[str, str]]:
                return [{"id": str(f.id), "displayName": f.name} for f in account.contacts.children
                        if not name or (f.name or "").lower() == name.lower()]

            return _resp({"value": await self.gw.call(mailbox, find, what="find contact folder")})

        def make(account: Any) -> str:
            from exchangelib.folders import Contacts

            folder = Contacts(parent=account.contacts, name=str((body or {}).get("displayName") or ""))
            folder.save()
            return str(folder.id)

        return _resp({"id": await self.gw.call(mailbox, make, what="create contact folder")}, 201)

    async def _contacts(self, method: str, rest: list[str], *, mailbox: str, body: Any, params: Mapping[str, Any],
                        what: str, folder_id: str = "") -> GraphResponse:
        from exchangelib import Contact, FileAttachment

        if not rest:
            if method == "GET":
                return await self._find_stamped(mailbox, ("contacts",), params, folder_id=folder_id)

            def create(account: Any) -> str:
                folder = account.contacts
                if folder_id:
                    from exchangelib.properties import FolderId

                    folder = account.root.get_folder(FolderId(id=folder_id))
                item = Contact(account=account, folder=folder)
                apply_contact(item, body or {})
                if not item.display_name:
                    item.display_name = " ".join(x for x in (item.given_name, item.surname) if x) or "(no name)"
                item.save()
                return str(item.id)

            new_id = await self.gw.call(mailbox, create, what="create contact")
            return _resp(contact_json(parse.contact(await self._get(mailbox, new_id, parse.CONTACT_FIELDS,
                                                                    what=what))), 201)
        contact_id = rest[0]
        if len(rest) > 1 and rest[1] == "photo":
            def photo(account: Any) -> None:
                item = fetch_one(account, contact_id, ["id", "changekey", "attachments"])
                for old in [a for a in item.attachments or () if getattr(a, "is_contact_photo", False)]:
                    item.detach(old)
                item.attach(FileAttachment(name="ContactPicture.jpg", content=bytes(body or b""),
                                           is_contact_photo=True))

            await self.gw.call(mailbox, photo, what="set contact photo")
            return _resp(None, 200)
        if method == "GET":
            return _resp(contact_json(parse.contact(await self._get(mailbox, contact_id, parse.CONTACT_FIELDS,
                                                                    what=what))))
        if method == "PATCH":
            def update(account: Any) -> None:
                item = fetch_one(account, contact_id, list(parse.CONTACT_FIELDS))
                fields = apply_contact(item, body or {})
                if fields:
                    item.save(update_fields=fields)

            await self.gw.call(mailbox, update, what="update contact")
            return _resp(contact_json(parse.contact(await self._get(mailbox, contact_id, parse.CONTACT_FIELDS,
                                                                    what=what))))
        if method == "DELETE":
            def delete(account: Any) -> None:
                item = fetch_one(account, contact_id, ["id", "changekey"])
                item.delete()

            await self.gw.call(mailbox, delete, what="delete contact")
            return _resp(None, 204)
        raise GraphBadRequestError(f"EWS backend: unsupported contact request {method}", status=400)


class RoutingGateway:
    """Where the outbound executors' GraphGateway stood: Exchange Online mailboxes go to Graph,
    on-premises ones (Mailbox.backend == "ews") to EwsWrites. The backend of a mailbox is read from
    the mailbox table once per context."""

    def __init__(self, graph: GraphGateway, ews: EwsWrites, mailboxes: MailboxRepository) -> None:
        self.graph = graph
        self.ews = ews
        self.mailboxes = mailboxes
        self._backend: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)  # limiter, url, close …

    async def _for(self, mailbox: str) -> Any:
        key = mailbox.lower()
        if key not in self._backend:
            mb = await self.mailboxes.get(key)
            self._backend[key] = mb.backend if mb is not None else "graph"
        return self.ews if self._backend[key] == "ews" else self.graph

    async def request(self, method: str, path: str, *, mailbox: str, **kw: Any) -> GraphResponse:
        target = await self._for(mailbox)
        result: GraphResponse = await target.request(method, path, mailbox=mailbox, **kw)
        return result

    async def get_json(self, path: str, *, mailbox: str, **kw: Any) -> Any:
        target = await self._for(mailbox)
        return await target.get_json(path, mailbox=mailbox, **kw)

    async def takes_whole_attachments(self, mailbox: str) -> bool:
        """EWS CreateAttachment takes an attachment whole, whatever its size (Exchange's own message size
        limit applies and is reported as its error); Graph's 3 MB limit and upload sessions do not."""
        return await self._for(mailbox) is self.ews


def routed(settings: Any, state: Any, graph: GraphGateway) -> GraphGateway:
    """The gateway the outbound executors use: Graph alone, or routed per mailbox when EWS is set."""
    if not settings.ews.configured:
        return graph
    from typing import cast

    from shared.ews.gateway import ews_gateway

    return cast("GraphGateway", RoutingGateway(graph, EwsWrites(ews_gateway(settings.ews)), state.mailboxes))
