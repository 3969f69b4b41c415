"""Exchange records → mapped fields (the neutral, normalized field set of shared.sync.mapping.fields)."""

from __future__ import annotations

from typing import Any

from shared.sync.bodies import canonical_text
from shared.sync.mapping.fields import BODY_HTML, Mapped, norm_text
from shared.sync.records import ContactRecord, EventRecord, MessageRecord
from shared.sync.timezones import UnknownTimeZoneError, all_day_instant, iso_z

MASKED_SUBJECT = "Private appointment"
MASKED_EMAIL_SUBJECT = "Private message"


def _iso(value: Any) -> str:
    return iso_z(value) if value is not None else ""


def _addr_list(addresses: Any) -> list[str]:
    return [a.address.lower() for a in addresses]


def _text(record: EventRecord | MessageRecord) -> str:
    """The canonical body text (parsed once by shared.sync.records; computed here for a record built
    without the parser)."""
    if record.body_text or not record.body:
        return record.body_text
    return canonical_text(record.body, record.body_type)


def _event_times(ev: EventRecord, tz_name: str) -> tuple[str, str]:
    """Start and end as UTC text. An all-day event is its dates, placed at midnight of its own zone
    (the organizer's originalStartTimeZone): the same instant whatever zone Graph rendered it in, and
    the right day for a rep west (or east) of UTC."""
    if ev.is_all_day and ev.start_date is not None and ev.end_date is not None:
        try:
            return iso_z(all_day_instant(ev.start_date, tz_name)), iso_z(all_day_instant(ev.end_date, tz_name))
        except UnknownTimeZoneError:
            pass
    return _iso(ev.start), _iso(ev.end)


def map_event(ev: EventRecord, *, masked: bool = False) -> Mapped:
    """An occurrence/single event as Pega appointment fields. `masked`: time blocked, nothing else."""
    attendees = sorted(([a.address.lower(), a.name, a.type] for a in ev.attendees), key=lambda r: r[0])
    tz_name = ev.original_tz or ev.start_tz or "UTC"
    start, end = _event_times(ev, tz_name)
    body = _text(ev)
    out: Mapped = {
        "subject": norm_text(ev.subject),
        "start": start,
        "end": end,
        "time_zone": tz_name,
        "is_all_day": bool(ev.is_all_day),
        "location": norm_text(ev.location),
        "body": body,
        "body_type": "text" if body else "",
        "attendees": attendees,
        "sensitivity": (ev.sensitivity or "normal").lower(),
        "show_as": (ev.show_as or "busy").lower(),
        "reminder_minutes": ev.reminder_minutes if ev.reminder_minutes is not None else 0,
    }
    if ev.body_html and not masked:
        out[BODY_HTML] = ev.body_html
    if masked:
        out.update(subject=MASKED_SUBJECT, location="", body="", body_type="", attendees=[])
    return out


def map_message(msg: MessageRecord, *, direction: str, masked: bool = False) -> Mapped:
    """An email as Pega email-interaction fields; `direction` is the mapping's inbound/outbound value."""
    body = _text(msg)
    out: Mapped = {
        "subject": norm_text(msg.subject),
        "body": body,
        "body_type": "text" if body else "",
        "sender": msg.sender.address.lower() if msg.sender else "",
        "sender_name": msg.sender.name if msg.sender else "",
        "to": _addr_list(msg.to),
        "cc": _addr_list(msg.cc),
        "sent_at": _iso(msg.sent_at),
        "received_at": _iso(msg.received_at),
        "direction": direction,
        "importance": (msg.importance or "normal").lower(),
        "has_attachments": bool(msg.has_attachments),
        "conversation_id": msg.conversation_id or "",
        "internet_message_id": msg.internet_message_id or "",
    }
    if msg.body_html and not masked:
        out[BODY_HTML] = msg.body_html
    if masked:
        out.update(subject=MASKED_EMAIL_SUBJECT, body="", body_type="", has_attachments=False)
    return out


def map_contact(c: ContactRecord, *, photo_digest: str = "") -> Mapped:
    first_email = c.emails[0].address.lower() if c.emails else ""
    return {
        "first_name": norm_text(c.given_name),
        "last_name": norm_text(c.surname) or ("" if c.given_name else norm_text(c.display_name)),
        "email": first_email,
        "business_phone": c.business_phones[0] if c.business_phones else "",
        "mobile_phone": norm_text(c.mobile_phone),
        "job_title": norm_text(c.job_title),
        "company_name": norm_text(c.company_name),
        "department": norm_text(c.department),
        "street": norm_text(c.street),
        "city": norm_text(c.city),
        "state": norm_text(c.state),
        "postal_code": norm_text(c.postal_code),
        "country": norm_text(c.country),
        "notes": norm_text(c.notes),
        "photo": photo_digest,
    }
