"""Mapped fields ⇄ shared.pega's neutral records (AppointmentData, EmailData, ContactData).

Pega property names never appear here: shared.pega.convert turns the neutral records into
content through the mapping configuration. `mapped_from_pega` normalizes what Pega holds into the
very same form the Exchange side produces, so the two can be compared field by field (merges,
echo suppression in the Pega → Exchange direction).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from shared.pega.models import AppointmentData, Attendee, ContactData, EmailData
from shared.sync.bodies import canonical_text
from shared.sync.mapping.fields import BODY_HTML, DIGEST_PREFIX, FIELDS, Mapped, norm_text
from shared.sync.timezones import iso_z, parse_iso_utc

PegaData = AppointmentData | EmailData | ContactData


def photo_digest(content: bytes | None) -> str:
    if not content:
        return ""
    return DIGEST_PREFIX + hashlib.sha256(content).hexdigest()[:32]


def _dt(value: Any) -> Any:
    return parse_iso_utc(value) if value else None


def to_pega_data(kind: str, values: Mapping[str, Any], *, photo: bytes | None = None) -> PegaData:
    """A neutral Pega record holding exactly `values` (other fields None = untouched on update)."""
    if kind == "calendar":
        a = AppointmentData()
        for k, v in values.items():
            if k == BODY_HTML:
                a.body_html = v
            elif k in ("start", "end"):
                setattr(a, k, _dt(v))
            elif k == "attendees":
                a.attendees = [Attendee(email=r[0], name=r[1] or None, type=r[2] or "required") for r in v]
            elif hasattr(a, k):
                setattr(a, k, v)
        return a
    if kind == "email":
        e = EmailData()
        for k, v in values.items():
            if k == BODY_HTML:
                e.body_html = v
            elif k in ("sent_at", "received_at"):
                setattr(e, k, _dt(v))
            elif hasattr(e, k):
                setattr(e, k, list(v) if isinstance(v, list) else v)
        return e
    c = ContactData()
    for k, v in values.items():
        if k == "photo":
            if photo is not None:
                c.photo = base64.b64encode(photo).decode() if photo else ""
        elif hasattr(c, k):
            setattr(c, k, v)
    return c


def mapped_from_pega(kind: str, data: PegaData) -> Mapped:
    """What Pega holds, normalized like the Exchange side (fields Pega lacks are left out)."""
    out: Mapped = {}
    for name in FIELDS[kind]:
        if not any(f.name == name for f in dataclasses.fields(data)):  # type: ignore[arg-type]
            continue
        v = getattr(data, name)
        if v is None:
            continue
        if name in ("start", "end", "sent_at", "received_at"):
            out[name] = iso_z(v)
        elif name == "attendees":
            out[name] = sorted(([a.email.lower(), a.name or "", a.type or "required"] for a in v),
                               key=lambda r: r[0])
        elif name in ("to", "cc"):
            out[name] = [str(x).lower() for x in v]
        elif name == "photo":
            try:
                out[name] = photo_digest(base64.b64decode(str(v), validate=False)) if v else ""
            except (binascii.Error, ValueError):
                out[name] = ""
        elif name in ("sender", "email"):
            out[name] = str(v).lower()
        elif name == "body":
            out[name] = canonical_text(v, getattr(data, "body_type", None))
        elif name == "body_type":
            out[name] = "text" if canonical_text(getattr(data, "body", None), v) else ""
        elif isinstance(v, str):
            out[name] = norm_text(v)
        elif isinstance(v, bool):
            out[name] = v
        else:
            out[name] = v
    return out
