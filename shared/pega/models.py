"""Typed values the Pega client returns and accepts.

Two layers: raw Pega records (`PegaCase`, `SaRecord`, data view rows) as the APIs return them,
and neutral records (`AppointmentData`, `EmailData`, `ContactData`) that sync logic fills in
without knowing Pega property names; :mod:`shared.pega.convert` maps between them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RecordKind(enum.StrEnum):
    """Kinds of records the sync links to an Exchange item by its immutable id."""

    APPOINTMENT = "appointment"
    EMAIL = "email"
    CONTACT = "contact"


class UpsertAction(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED_RESOLVED = "skipped_resolved"


@dataclass(frozen=True)
class PegaCase:
    """A DX API v2 case as read: `etag` is the opaque header value to send back in If-Match."""

    id: str
    case_type_id: str
    status: str
    content: dict[str, Any]
    etag: str | None = None
    last_update_time: str | None = None


@dataclass(frozen=True)
class SaRecord:
    """A Sales Automation API v1 entity (contact, organization, lead, account, opportunity)."""

    id: str
    content: dict[str, Any]
    etag: str | None = None
    obj_class: str | None = None
    status_value: str | None = None  # set by adapters whose records carry no Pega content
    last_update_time: str | None = None

    @property
    def status(self) -> str:
        if self.status_value is not None:
            return self.status_value
        return str(self.content.get("pyStatusWork", ""))

    @property
    def updated_at(self) -> str | None:
        return self.last_update_time or self.content.get("pxUpdateDateTime")


@dataclass(frozen=True)
class PegaRef:
    """A found record: its key and the row the data view returned."""

    id: str
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpsertResult:
    id: str
    action: UpsertAction
    etag: str | None = None


@dataclass(frozen=True)
class Association:
    """What an email or appointment relates to in Pega, found from e-mail addresses."""

    contact_id: str | None = None
    lead_id: str | None = None
    organization_id: str | None = None
    opportunity_id: str | None = None
    matched_address: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.contact_id or self.lead_id or self.organization_id)


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str | None = None
    type: str = "required"  # required | optional | resource
    response: str | None = None


@dataclass
class AppointmentData:
    """Neutral appointment fields. None means "not given" (left out of a create, unchanged on update)."""

    subject: str | None = None
    start: datetime | None = None  # timezone-aware
    end: datetime | None = None
    time_zone: str | None = None  # IANA or Windows name of the organizer's zone
    is_all_day: bool | None = None
    location: str | None = None
    body: str | None = None
    body_type: str | None = None  # text | html
    body_html: str | None = None  # sanitized HTML, written only where the mapping names a property
    attendees: list[Attendee] | None = None
    recurrence: dict[str, Any] | None = None  # Graph patternedRecurrence shape
    sensitivity: str | None = None
    show_as: str | None = None
    reminder_minutes: int | None = None
    operator: str | None = None
    contact_id: str | None = None
    organization_id: str | None = None
    lead_id: str | None = None
    opportunity_id: str | None = None


@dataclass
class EmailData:
    """Neutral email interaction fields."""

    subject: str | None = None
    body: str | None = None
    body_type: str | None = None
    body_html: str | None = None  # sanitized HTML, written only where the mapping names a property
    sender: str | None = None
    sender_name: str | None = None
    to: list[str] | None = None
    cc: list[str] | None = None
    bcc: list[str] | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None
    direction: str | None = None  # Inbound | Outbound (mapping.status.email_*)
    importance: str | None = None
    has_attachments: bool | None = None
    conversation_id: str | None = None
    internet_message_id: str | None = None
    operator: str | None = None
    contact_id: str | None = None
    organization_id: str | None = None
    lead_id: str | None = None
    opportunity_id: str | None = None


@dataclass
class ContactData:
    """Neutral contact fields (SA API v1 contact entity)."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    business_phone: str | None = None
    mobile_phone: str | None = None
    job_title: str | None = None
    company_name: str | None = None
    department: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    notes: str | None = None
    photo: str | None = None  # base64
    operator: str | None = None
    organization_id: str | None = None
