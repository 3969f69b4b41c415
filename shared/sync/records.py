"""Typed records parsed straight from raw Graph delta JSON (no msgraph models on the per-item path).

The msgraph-sdk's model deserialization costs ~14 ms a message (graph.md §9); these parsers do
the same work with plain dict access in microseconds. Each parser is total: a missing or
malformed field becomes None/empty, never an exception, because one odd item must not stop a
page. `@removed` entries become :class:`Removal`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.sync.bodies import sanitized
from shared.sync.timezones import UnknownTimeZoneError, parse_datetime_tz, parse_iso_utc

# MAPI PidTagSensitivity (0x0036): 0 normal, 1 personal, 2 private, 3 confidential.
SENSITIVITY_PROP_ID = "Integer 0x0036"
# MAPI PidTagMessageClass (0x001A): "IPM.Note" for mail from people; meeting messages, reports and
# automatic replies have their own classes (graph.md §10). Read as a single-value extended property.
MESSAGE_CLASS_PROP_ID = "String 0x001A"

# What a message in a mail folder is, when it is not correspondence from a person; the value is the
# planner's Skip reason (counted per reason in the round report and health).
MEETING_MESSAGE = "meeting_message"
NON_DELIVERY_REPORT = "non_delivery_report"
DELIVERY_REPORT = "delivery_report"
READ_RECEIPT = "read_receipt"
AUTO_REPLY = "auto_reply"
_EVENT_MESSAGE_TYPES = ("#microsoft.graph.eventmessage", "#microsoft.graph.eventmessagerequest",
                        "#microsoft.graph.eventmessageresponse")


def classify_message(odata_type: str, message_class: str, headers: dict[str, str]) -> str:
    """"" for mail from a person; else why it is not an email case (see the constants above).

    Sources, strongest first: the `@odata.type` (eventMessage and its subtypes live in message
    collections), the MAPI message class (IPM.Schedule.Meeting.*, REPORT.IPM.Note.NDR / .DR / .IPNRN
    / .IPNNRN, IPM.Note.Rules.OofTemplate.*, IPM.Note.Rules.ReplyTemplate.*), then headers (RFC 3834
    Auto-Submitted, a multipart/report Content-Type, X-Auto-Response-Suppress is *not* used: senders
    set it on ordinary mail)."""
    if odata_type.lower() in _EVENT_MESSAGE_TYPES:
        return MEETING_MESSAGE
    mc = message_class.lower()
    if mc.startswith("ipm.schedule.meeting."):
        return MEETING_MESSAGE
    if mc.startswith("report."):
        if mc.endswith(".ndr"):
            return NON_DELIVERY_REPORT
        if mc.endswith(".ipnrn") or mc.endswith(".ipnnrn"):
            return READ_RECEIPT
        return DELIVERY_REPORT
    if mc.startswith("ipm.note.rules.ooftemplate") or mc.startswith("ipm.note.rules.replytemplate"):
        return AUTO_REPLY
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto.startswith("auto-replied"):
        return AUTO_REPLY
    ctype = headers.get("content-type", "").lower()
    if "multipart/report" in ctype:
        if "disposition-notification" in ctype:
            return READ_RECEIPT
        return NON_DELIVERY_REPORT if "delivery-status" in ctype else DELIVERY_REPORT
    if auto.startswith("auto-generated"):
        return AUTO_REPLY
    return ""
MAPI_PRIVATE = 2
MAPI_CONFIDENTIAL = 3


@dataclass(frozen=True, slots=True)
class Address:
    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Removal:
    """`{"id": ..., "@removed": {"reason": "deleted"}}` — deleted, or (calendar) changed outside the window."""

    id: str
    reason: str = "deleted"


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    change_key: str = ""
    conversation_id: str | None = None
    internet_message_id: str | None = None
    sender: Address | None = None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str | None = None
    body: str | None = None
    body_type: str | None = None
    unique_body: str | None = None
    received_at: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    last_modified: dt.datetime | None = None
    is_draft: bool = False
    importance: str | None = None
    categories: tuple[str, ...] = ()
    sensitivity: int | None = None
    parent_folder_id: str | None = None
    has_attachments: bool = False
    pega_stamp: str = ""  # our PegaId extended property: written to Exchange from this Pega record
    # internetMessageHeaders (name, value): insights tell auto-replies and bulk mail by them; never logged
    headers: tuple[tuple[str, str], ...] = ()
    body_text: str = ""  # the body as Pega receives it (shared.sync.bodies.canonical_text)
    body_html: str = ""  # the sanitized HTML body ("" for a text body), for a mapping that asks for it
    odata_type: str = "#microsoft.graph.message"
    message_class: str = ""  # MAPI PidTagMessageClass where read ("" otherwise)
    not_mail: str = ""  # why this is not correspondence from a person ("" = it is), see classify_message

    @property
    def is_private(self) -> bool:
        return self.sensitivity in (MAPI_PRIVATE, MAPI_CONFIDENTIAL)


@dataclass(frozen=True, slots=True)
class AttendeeRecord:
    address: str
    name: str = ""
    type: str = "required"
    response: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    change_key: str = ""
    type: str = "singleInstance"  # singleInstance | occurrence | exception | seriesMaster
    series_master_id: str | None = None
    original_start: dt.datetime | None = None
    start: dt.datetime | None = None  # aware UTC
    end: dt.datetime | None = None
    start_tz: str = "UTC"  # zone the start was expressed in on the wire
    original_tz: str | None = None  # organizer's zone (originalStartTimeZone)
    is_all_day: bool | None = None
    subject: str | None = None
    body: str | None = None
    body_type: str | None = None
    location: str | None = None
    organizer: Address | None = None
    attendees: tuple[AttendeeRecord, ...] = ()
    is_organizer: bool | None = None
    is_cancelled: bool = False
    is_draft: bool = False
    sensitivity: str | None = None  # normal | personal | private | confidential
    show_as: str | None = None
    reminder_minutes: int | None = None
    recurrence: dict[str, Any] | None = None
    cancelled_occurrences: tuple[str, ...] = ()
    ical_uid: str | None = None
    last_modified: dt.datetime | None = None
    created: dt.datetime | None = None  # createdDateTime (where read: GETs by id)
    sparse: bool = False  # an occurrence carrying only id/type/seriesMasterId/start/end
    pega_stamp: str = ""  # our PegaId extended property (only where read: calendarView/delta has no $expand)
    body_text: str = ""  # the body as Pega receives it (shared.sync.bodies.canonical_text)
    body_html: str = ""  # the sanitized HTML body ("" for a text body), for a mapping that asks for it
    # The dates of start/end as written on the wire (read, never converted). For an all-day event they
    # are the event's dates: Graph returns all-day events midnight-to-midnight in whatever zone the
    # request asked for (graph.md §10).
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    problem: str = ""  # why the event cannot be synced as it is (e.g. "unknown_time_zone"); "" = fine

    @property
    def is_private(self) -> bool:
        return (self.sensitivity or "normal").lower() in ("private", "confidential")

    @property
    def is_master(self) -> bool:
        return self.type == "seriesMaster"

    @property
    def is_instance(self) -> bool:
        return self.type in ("occurrence", "exception")


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: str
    change_key: str = ""
    given_name: str | None = None
    surname: str | None = None
    display_name: str | None = None
    emails: tuple[Address, ...] = ()
    business_phones: tuple[str, ...] = ()
    mobile_phone: str | None = None
    company_name: str | None = None
    job_title: str | None = None
    department: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    notes: str | None = None
    categories: tuple[str, ...] = ()
    sensitivity: int | None = None
    parent_folder_id: str | None = None
    last_modified: dt.datetime | None = None
    pega_stamp: str = ""  # our PegaId extended property: written to Exchange from this Pega record

    @property
    def is_private(self) -> bool:
        return self.sensitivity in (MAPI_PRIVATE, MAPI_CONFIDENTIAL)


Record = MessageRecord | EventRecord | ContactRecord
Item = Record | Removal


@dataclass(frozen=True)
class DeltaPage:
    items: list[Item] = field(default_factory=list)
    next_link: str = ""
    delta_link: str = ""


# ---------------------------------------------------------------- helpers


def change_key_of(raw: dict[str, Any]) -> str:
    """`changeKey` if selected, else from `@odata.etag` (`W/"<changeKey>"`)."""
    ck = raw.get("changeKey")
    if isinstance(ck, str) and ck:
        return ck
    etag = raw.get("@odata.etag")
    if isinstance(etag, str) and etag:
        text = etag[2:] if etag.startswith("W/") else etag
        return text.strip('"')
    return ""


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _address(v: Any) -> Address | None:
    if not isinstance(v, dict):
        return None
    ea = v.get("emailAddress") if "emailAddress" in v else v
    if not isinstance(ea, dict):
        return None
    addr = ea.get("address")
    if not isinstance(addr, str) or not addr.strip():
        return None
    return Address(addr.strip(), str(ea.get("name") or ""))


def _addresses(values: Any) -> tuple[Address, ...]:
    out = []
    for v in values if isinstance(values, list) else ():
        a = _address(v)
        if a is not None:
            out.append(a)
    return tuple(out)


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(v for v in (values if isinstance(values, list) else ()) if isinstance(v, str))


def _body(v: Any) -> tuple[str | None, str | None]:
    if not isinstance(v, dict):
        return None, None
    ct = v.get("contentType")
    return _str(v.get("content")), (ct.lower() if isinstance(ct, str) else None)


def extended_int(raw: dict[str, Any], prop_id: str = SENSITIVITY_PROP_ID) -> int | None:
    """An integer single-value extended property (ids compare case-insensitively on the tag)."""
    props = raw.get("singleValueExtendedProperties")
    for p in props if isinstance(props, list) else ():
        if isinstance(p, dict) and str(p.get("id", "")).lower() == prop_id.lower():
            try:
                return int(str(p.get("value")))
            except ValueError:
                return None
    return None


def extended_str(raw: dict[str, Any], prop_id: str) -> str:
    """A string single-value extended property ("" when absent or when no id is asked for)."""
    if not prop_id:
        return ""
    props = raw.get("singleValueExtendedProperties")
    for p in props if isinstance(props, list) else ():
        if isinstance(p, dict) and str(p.get("id", "")).lower() == prop_id.lower():
            value = p.get("value")
            return value if isinstance(value, str) else ""
    return ""


def _removal(raw: dict[str, Any], item_id: str) -> Removal:
    info = raw.get("@removed")
    reason = info.get("reason") if isinstance(info, dict) else None
    return Removal(item_id, str(reason or "deleted"))


def _bool(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def _headers(v: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, list):
        return ()
    return tuple((str(h.get("name") or ""), str(h.get("value") or "")) for h in v if isinstance(h, dict) and h.get("name"))


# ---------------------------------------------------------------- parsers


def parse_message(raw: dict[str, Any], *, stamp_prop: str = "") -> MessageRecord | Removal:
    mid = str(raw.get("id") or "")
    if "@removed" in raw:
        return _removal(raw, mid)
    body, body_type = _body(raw.get("body"))
    unique, _ = _body(raw.get("uniqueBody"))
    odata_type = _str(raw.get("@odata.type")) or "#microsoft.graph.message"
    body_html, body_text = sanitized(body, body_type)
    message_class = extended_str(raw, MESSAGE_CLASS_PROP_ID)
    headers = _headers(raw.get("internetMessageHeaders"))
    return MessageRecord(
        id=mid,
        change_key=change_key_of(raw),
        conversation_id=_str(raw.get("conversationId")),
        internet_message_id=_str(raw.get("internetMessageId")),
        sender=_address(raw.get("from")) or _address(raw.get("sender")),
        to=_addresses(raw.get("toRecipients")),
        cc=_addresses(raw.get("ccRecipients")),
        bcc=_addresses(raw.get("bccRecipients")),
        subject=_str(raw.get("subject")),
        body=body,
        body_type=body_type,
        unique_body=unique,
        received_at=parse_iso_utc(raw.get("receivedDateTime")),
        sent_at=parse_iso_utc(raw.get("sentDateTime")),
        last_modified=parse_iso_utc(raw.get("lastModifiedDateTime")),
        is_draft=_bool(raw.get("isDraft")),
        importance=_str(raw.get("importance")),
        categories=_strings(raw.get("categories")),
        sensitivity=extended_int(raw),
        parent_folder_id=_str(raw.get("parentFolderId")),
        headers=headers,
        has_attachments=_bool(raw.get("hasAttachments")),
        pega_stamp=extended_str(raw, stamp_prop),
        body_text=body_text,
        body_html=body_html,
        odata_type=odata_type,
        message_class=message_class,
        not_mail=classify_message(odata_type, message_class, _header_map(headers)),
    )


def _header_map(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Lower-cased header name → its first value."""
    out: dict[str, str] = {}
    for name, value in headers:
        out.setdefault(name.lower(), value)
    return out


def _all_day_date(value: Any) -> dt.date | None:
    """The date of an all-day start/end as written (midnight in whatever zone it was rendered in)."""
    raw = value.get("dateTime") if isinstance(value, dict) else None
    if not isinstance(raw, str) or len(raw) < 10:
        return None
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _attendees(values: Any) -> tuple[AttendeeRecord, ...]:
    out = []
    for v in values if isinstance(values, list) else ():
        a = _address(v)
        if a is None:
            continue
        status = v.get("status") if isinstance(v.get("status"), dict) else {}
        out.append(AttendeeRecord(a.address, a.name, str(v.get("type") or "required"),
                                  _str(status.get("response"))))
    return tuple(out)


def _location(v: Any) -> str | None:
    if isinstance(v, dict):
        return _str(v.get("displayName"))
    return None


def parse_event(raw: dict[str, Any], *, stamp_prop: str = "") -> EventRecord | Removal:
    eid = str(raw.get("id") or "")
    if "@removed" in raw:
        return _removal(raw, eid)
    problem = ""
    try:
        start, start_tz = parse_datetime_tz(raw.get("start"))
        end, _ = parse_datetime_tz(raw.get("end"))
    except UnknownTimeZoneError as exc:
        start, end, start_tz, problem = None, None, exc.name, exc.reason
    etype = str(raw.get("type") or "singleInstance")
    body, body_type = _body(raw.get("body"))
    body_html, body_text = sanitized(body, body_type)
    sparse = etype == "occurrence" and "subject" not in raw
    reminder = raw.get("reminderMinutesBeforeStart")
    return EventRecord(
        id=eid,
        change_key=change_key_of(raw),
        type=etype,
        series_master_id=_str(raw.get("seriesMasterId")),
        original_start=parse_iso_utc(raw.get("originalStart")),
        start=start,
        end=end,
        start_tz=start_tz,
        original_tz=_str(raw.get("originalStartTimeZone")),
        is_all_day=raw.get("isAllDay") if isinstance(raw.get("isAllDay"), bool) else None,
        subject=_str(raw.get("subject")),
        body=body,
        body_type=body_type,
        location=_location(raw.get("location")),
        organizer=_address(raw.get("organizer")),
        attendees=_attendees(raw.get("attendees")),
        is_organizer=raw.get("isOrganizer") if isinstance(raw.get("isOrganizer"), bool) else None,
        is_cancelled=_bool(raw.get("isCancelled")),
        is_draft=_bool(raw.get("isDraft")),
        sensitivity=_str(raw.get("sensitivity")),
        show_as=_str(raw.get("showAs")),
        reminder_minutes=reminder if isinstance(reminder, int) and not isinstance(reminder, bool) else None,
        recurrence=raw.get("recurrence") if isinstance(raw.get("recurrence"), dict) else None,
        cancelled_occurrences=_strings(raw.get("cancelledOccurrences")),
        ical_uid=_str(raw.get("iCalUId")),
        last_modified=parse_iso_utc(raw.get("lastModifiedDateTime")),
        created=parse_iso_utc(raw.get("createdDateTime")),
        sparse=sparse,
        pega_stamp=extended_str(raw, stamp_prop),
        body_text=body_text,
        body_html=body_html,
        start_date=_all_day_date(raw.get("start")),
        end_date=_all_day_date(raw.get("end")),
        problem=problem,
    )


def fill_from_master(occ: EventRecord, master: EventRecord) -> EventRecord:
    """A sparse occurrence completed with the series' shared fields (its own id/times kept)."""
    from dataclasses import replace

    return replace(
        master, id=occ.id, change_key=occ.change_key or master.change_key, type=occ.type,
        series_master_id=occ.series_master_id or master.id,
        original_start=occ.original_start or occ.start, start=occ.start, end=occ.end,
        start_tz=occ.start_tz, recurrence=None, cancelled_occurrences=(), ical_uid=master.ical_uid,
        start_date=occ.start_date, end_date=occ.end_date,
        problem=occ.problem or master.problem, sparse=False, pega_stamp="",  # the stamp belongs to the series, not to each occurrence
    )


def parse_contact(raw: dict[str, Any], *, stamp_prop: str = "") -> ContactRecord | Removal:
    cid = str(raw.get("id") or "")
    if "@removed" in raw:
        return _removal(raw, cid)
    found = raw.get("businessAddress")
    addr: dict[str, Any] = found if isinstance(found, dict) else {}
    return ContactRecord(
        id=cid,
        change_key=change_key_of(raw),
        given_name=_str(raw.get("givenName")),
        surname=_str(raw.get("surname")),
        display_name=_str(raw.get("displayName")),
        emails=_addresses(raw.get("emailAddresses")),
        business_phones=_strings(raw.get("businessPhones")),
        mobile_phone=_str(raw.get("mobilePhone")),
        company_name=_str(raw.get("companyName")),
        job_title=_str(raw.get("jobTitle")),
        department=_str(raw.get("department")),
        street=_str(addr.get("street")),
        city=_str(addr.get("city")),
        state=_str(addr.get("state")),
        postal_code=_str(addr.get("postalCode")),
        country=_str(addr.get("countryOrRegion")),
        notes=_str(raw.get("personalNotes")),
        categories=_strings(raw.get("categories")),
        sensitivity=extended_int(raw),
        parent_folder_id=_str(raw.get("parentFolderId")),
        last_modified=parse_iso_utc(raw.get("lastModifiedDateTime")),
        pega_stamp=extended_str(raw, stamp_prop),
    )


PARSERS = {"email": parse_message, "calendar": parse_event, "contacts": parse_contact}


def parse_page(raw: dict[str, Any], kind: str, *, stamp_prop: str = "") -> DeltaPage:
    """One delta page → typed items plus its continuation (nextLink) or end (deltaLink).
    `stamp_prop`: the id of our PegaId extended property, read into `pega_stamp` where present."""
    parser = PARSERS[kind]
    found = raw.get("value")
    values: Iterable[Any] = found if isinstance(found, list) else ()
    items: list[Item] = [parser(v, stamp_prop=stamp_prop) for v in values if isinstance(v, dict) and v.get("id")]
    return DeltaPage(items=items, next_link=str(raw.get("@odata.nextLink") or ""),
                     delta_link=str(raw.get("@odata.deltaLink") or ""))
