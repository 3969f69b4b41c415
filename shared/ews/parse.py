"""exchangelib items → the engine's typed records (shared/sync/records.py), total like the Graph
parsers: a missing field becomes None/empty, never an exception."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.sync.records import Address, AttendeeRecord, ContactRecord, EventRecord, MessageRecord, classify_message

SENSITIVITY = {"normal": 0, "personal": 1, "private": 2, "confidential": 3}
TYPES = {"Single": "singleInstance", "Occurrence": "occurrence", "Exception": "exception",
         "RecurringMaster": "seriesMaster"}
RESPONSES = {"Unknown": "none", "Organizer": "organizer", "Tentative": "tentativelyAccepted",
             "Accept": "accepted", "Decline": "declined", "NoResponseReceived": "notResponded"}
SHOW_AS = {"Free": "free", "Tentative": "tentative", "Busy": "busy", "OOF": "oof",
           "WorkingElsewhere": "workingElsewhere", "NoData": "unknown"}

MESSAGE_FIELDS = ("subject", "body", "sender", "author", "to_recipients", "cc_recipients", "bcc_recipients",
                  "datetime_received", "datetime_sent", "conversation_id", "message_id", "is_draft", "importance",
                  "has_attachments", "categories", "sensitivity", "parent_folder_id", "last_modified_time", "pega_id",
                  "item_class")
EVENT_FIELDS = ("subject", "body", "start", "end", "_start_timezone", "_end_timezone", "is_all_day", "location", "organizer",
                "required_attendees", "optional_attendees", "is_cancelled", "sensitivity", "legacy_free_busy_status",
                "reminder_minutes_before_start", "reminder_is_set", "recurrence", "type", "uid",
                "last_modified_time", "datetime_created", "modified_occurrences", "deleted_occurrences", "original_start",
                "pega_id")
CONTACT_FIELDS = ("given_name", "surname", "display_name", "email_addresses", "phone_numbers", "company_name",
                  "job_title", "department", "physical_addresses", "body", "categories", "sensitivity",
                  "parent_folder_id", "last_modified_time", "pega_id", "has_picture")
FIELDS = {"email": MESSAGE_FIELDS, "calendar": EVENT_FIELDS, "contacts": CONTACT_FIELDS}


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _utc(v: Any) -> dt.datetime | None:
    """A plain aware UTC datetime (exchangelib's EWSDateTime subclass converted away)."""
    if isinstance(v, dt.datetime):
        offset = v.utcoffset() or dt.timedelta(0)
        plain = dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
        return (plain - offset).replace(tzinfo=dt.UTC)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
    return None


def _addr(mbx: Any) -> Address | None:
    email = getattr(mbx, "email_address", None) or getattr(getattr(mbx, "mailbox", None), "email_address", None)
    if not isinstance(email, str) or not email.strip():
        return None
    name = getattr(mbx, "name", None) or getattr(getattr(mbx, "mailbox", None), "name", None)
    return Address(email.strip(), str(name or ""))


def _addrs(values: Any) -> tuple[Address, ...]:
    return tuple(a for a in (_addr(v) for v in (values or ())) if a is not None)


def _body(v: Any) -> tuple[str | None, str | None]:
    if v is None:
        return None, None
    kind = "html" if type(v).__name__ == "HTMLBody" else "text"
    return str(v), kind


def _id(item: Any) -> str:
    return str(getattr(item, "id", "") or "")


def _ck(item: Any) -> str:
    return str(getattr(item, "changekey", "") or "")


def message(item: Any) -> MessageRecord:
    """A message, meeting message or report as the engine reads mail; the item class tells a person's
    mail from a meeting request / response / cancellation, a delivery report or an auto-reply."""
    body, body_type = _body(getattr(item, "body", None))
    item_class = _s(getattr(item, "item_class", None)) or ""
    folder = getattr(item, "parent_folder_id", None)
    conv = getattr(item, "conversation_id", None)
    return MessageRecord(
        id=_id(item), change_key=_ck(item), conversation_id=_s(getattr(conv, "id", None)),
        internet_message_id=_s(getattr(item, "message_id", None)),
        sender=_addr(getattr(item, "author", None)) or _addr(getattr(item, "sender", None)),
        to=_addrs(getattr(item, "to_recipients", None)), cc=_addrs(getattr(item, "cc_recipients", None)),
        bcc=_addrs(getattr(item, "bcc_recipients", None)), subject=_s(getattr(item, "subject", None)),
        body=body, body_type=body_type, received_at=_utc(getattr(item, "datetime_received", None)),
        sent_at=_utc(getattr(item, "datetime_sent", None)), last_modified=_utc(getattr(item, "last_modified_time", None)),
        is_draft=getattr(item, "is_draft", None) is True, importance=(_s(getattr(item, "importance", None)) or "").lower()
        or None, categories=tuple(getattr(item, "categories", None) or ()),
        sensitivity=SENSITIVITY.get(str(getattr(item, "sensitivity", "") or "").lower()),
        parent_folder_id=_s(getattr(folder, "id", None)), has_attachments=getattr(item, "has_attachments", None) is True,
        pega_stamp=str(getattr(item, "pega_id", "") or ""),
        message_class=item_class, not_mail=classify_message("", item_class, {}),
    )


def _windows_zone(item: Any) -> str | None:
    tz = getattr(item, "_start_timezone", None)
    return _s(getattr(tz, "ms_id", None))


def _recurrence(item: Any, tz: str | None) -> dict[str, Any] | None:
    rec = getattr(item, "recurrence", None)
    if rec is None:
        return None
    return {"pattern": {"type": type(getattr(rec, "pattern", None)).__name__}, "range": {"recurrenceTimeZone": tz}}


def cancelled_occurrences(item: Any, tz: str | None) -> tuple[str, ...]:
    """Graph's cancelledOccurrences form ("OID.<master id>.<local date>") from DeletedOccurrences."""
    from shared.sync.timezones import zone

    out = []
    for occ in getattr(item, "deleted_occurrences", None) or ():
        start = _utc(getattr(occ, "start", None))
        if start is not None:
            out.append(f"OID.{_id(item)}.{start.astimezone(zone(tz)).date().isoformat()}")
    return tuple(out)


def _day(v: Any) -> dt.date | None:
    """An all-day start or end as the date exchangelib gives (None for a timed one)."""
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return dt.date(v.year, v.month, v.day)
    return None


def _next_day(day: dt.date | None) -> dt.date | None:
    """exchangelib's all-day end (the last day) as the engine's (the day after it)."""
    return day + dt.timedelta(days=1) if day is not None else None


def _all_day_end(v: Any) -> dt.datetime | None:
    """exchangelib gives an all-day event's end as its last day; the engine (as Graph) takes the
    midnight after it. A timed end is an instant as it is."""
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    return _utc(v)


def event(item: Any, *, mailbox: str, master_id: str | None = None) -> EventRecord:
    body, body_type = _body(getattr(item, "body", None))
    tz = _windows_zone(item)
    organizer = _addr(getattr(item, "organizer", None))
    attendees = []
    for kind, values in (("required", getattr(item, "required_attendees", None)),
                         ("optional", getattr(item, "optional_attendees", None))):
        for att in values or ():
            a = _addr(att)
            if a is not None:
                attendees.append(AttendeeRecord(a.address, a.name, kind,
                                                RESPONSES.get(str(getattr(att, "response_type", "") or ""))))
    reminder = getattr(item, "reminder_minutes_before_start", None)
    etype = TYPES.get(str(getattr(item, "type", "") or "Single"), "singleInstance")
    location = getattr(item, "location", None)
    return EventRecord(
        id=_id(item), change_key=_ck(item), type=etype,
        series_master_id=master_id if etype in ("occurrence", "exception") else None,
        original_start=_utc(getattr(item, "original_start", None)), start=_utc(getattr(item, "start", None)),
        end=_all_day_end(getattr(item, "end", None)), start_tz="UTC", original_tz=tz,
        start_date=_day(getattr(item, "start", None)), end_date=_next_day(_day(getattr(item, "end", None))),
        is_all_day=getattr(item, "is_all_day", None) if isinstance(getattr(item, "is_all_day", None), bool) else None,
        subject=_s(getattr(item, "subject", None)), body=body, body_type=body_type,
        location=location if isinstance(location, str) else None, organizer=organizer, attendees=tuple(attendees),
        is_organizer=(organizer.address.lower() == mailbox.lower()) if organizer else None,
        is_cancelled=getattr(item, "is_cancelled", None) is True,
        sensitivity=(_s(getattr(item, "sensitivity", None)) or "normal").lower(),
        show_as=SHOW_AS.get(str(getattr(item, "legacy_free_busy_status", "") or "")),
        reminder_minutes=reminder if isinstance(reminder, int) and getattr(item, "reminder_is_set", True) else None,
        recurrence=_recurrence(item, tz), cancelled_occurrences=cancelled_occurrences(item, tz),
        ical_uid=_s(getattr(item, "uid", None)), last_modified=_utc(getattr(item, "last_modified_time", None)),
        created=_utc(getattr(item, "datetime_created", None)),
        pega_stamp=str(getattr(item, "pega_id", "") or "") if etype != "occurrence" else "",
    )


def contact(item: Any) -> ContactRecord:
    emails = sorted(getattr(item, "email_addresses", None) or (), key=lambda e: str(getattr(e, "label", "")))
    phones = {str(getattr(p, "label", "")): getattr(p, "phone_number", None)
              for p in getattr(item, "phone_numbers", None) or ()}
    business = next((a for a in getattr(item, "physical_addresses", None) or ()
                     if getattr(a, "label", "") == "Business"), None)
    folder = getattr(item, "parent_folder_id", None)
    notes = getattr(item, "body", None)
    return ContactRecord(
        id=_id(item), change_key=_ck(item), given_name=_s(getattr(item, "given_name", None)),
        surname=_s(getattr(item, "surname", None)), display_name=_s(getattr(item, "display_name", None)),
        emails=tuple(Address(str(e.email)) for e in emails if getattr(e, "email", None)),
        business_phones=tuple(str(v) for k, v in sorted(phones.items()) if k.startswith("BusinessPhone") and v),
        mobile_phone=_s(phones.get("MobilePhone")), company_name=_s(getattr(item, "company_name", None)),
        job_title=_s(getattr(item, "job_title", None)), department=_s(getattr(item, "department", None)),
        street=_s(getattr(business, "street", None)), city=_s(getattr(business, "city", None)),
        state=_s(getattr(business, "state", None)), postal_code=_s(getattr(business, "zipcode", None)),
        country=_s(getattr(business, "country", None)), notes=str(notes) if notes is not None else None,
        categories=tuple(getattr(item, "categories", None) or ()),
        sensitivity=SENSITIVITY.get(str(getattr(item, "sensitivity", "") or "").lower()),
        parent_folder_id=_s(getattr(folder, "id", None)), last_modified=_utc(getattr(item, "last_modified_time", None)),
        pega_stamp=str(getattr(item, "pega_id", "") or ""),
    )
