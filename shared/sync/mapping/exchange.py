"""Exchange records → mapped fields (the neutral, normalized field set of shared.sync.mapping.fields)."""

from __future__ import annotations

from typing import Any

from shared.sync.mapping.fields import Mapped, norm_text
from shared.sync.records import ContactRecord, EventRecord, MessageRecord
from shared.sync.timezones import iso_z

MASKED_SUBJECT = "Private appointment"
MASKED_EMAIL_SUBJECT = "Private message"


def _iso(value: Any) -> str:
    return iso_z(value) if value is not None else ""


def _addr_list(addresses: Any) -> list[str]:
    return [a.address.lower() for a in addresses]


def map_event(ev: EventRecord, *, masked: bool = False) -> Mapped:
    """An occurrence/single event as Pega appointment fields. `masked`: time blocked, nothing else."""
    attendees = sorted(([a.address.lower(), a.name, a.type] for a in ev.attendees), key=lambda r: r[0])
    out: Mapped = {
        "subject": norm_text(ev.subject),
        "start": _iso(ev.start),
        "end": _iso(ev.end),
        "time_zone": ev.original_tz or ev.start_tz or "UTC",
        "is_all_day": bool(ev.is_all_day),
        "location": norm_text(ev.location),
        "body": norm_text(ev.body),
        "body_type": (ev.body_type or "html") if ev.body else "",
        "attendees": attendees,
        "sensitivity": (ev.sensitivity or "normal").lower(),
        "show_as": (ev.show_as or "busy").lower(),
        "reminder_minutes": ev.reminder_minutes if ev.reminder_minutes is not None else 0,
    }
    if masked:
        out.update(subject=MASKED_SUBJECT, location="", body="", body_type="", attendees=[])
    return out


def map_message(msg: MessageRecord, *, direction: str, masked: bool = False) -> Mapped:
    """An email as Pega email-interaction fields; `direction` is the mapping's inbound/outbound value."""
    out: Mapped = {
        "subject": norm_text(msg.subject),
        "body": norm_text(msg.body),
        "body_type": (msg.body_type or "text") if msg.body else "",
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
