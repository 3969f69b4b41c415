"""Contract request bodies (openapi.yaml) → Microsoft Graph JSON, and → the neutral mapped fields.

Two translations live here and nowhere else:
- Graph bodies for events, messages and contacts (what the executors POST/PATCH);
- the *mapped* form of a Pega request (shared.sync.mapping's neutral, normalized field set), so
  the Pega side of a change can be merged against the link snapshot with the same three-way rules
  the Exchange → Pega direction uses.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from shared.errors import PermanentError
from shared.sync.bodies import canonical_text
from shared.sync.mapping import Mapped, photo_digest
from shared.sync.mapping.fields import norm_text
from shared.sync.timezones import UTC, UnknownTimeZoneError, iso_z, windows_name, zone

# The Pega record id on every item this service writes: filterable, survives moves (graph.md §4).
# The property set GUID is fixed forever: changing it orphans every stamped item.
PEGA_ID_PROPERTY = "String {4b1e9f3a-6c2d-4e8b-9a75-0d3c5e7f9a21} Name PegaId"
_TX_NAMESPACE = uuid.UUID("0f6a2b7c-3d4e-4f50-8a1b-2c3d4e5f6a7b")

INLINE_ATTACHMENT_MAX = 3 * 1024 * 1024  # above: createUploadSession (graph.md §6)
UPLOAD_CHUNK = 320 * 1024 * 10  # 3.125 MiB: a multiple of 320 KiB and under Graph's 4 MB per PUT

def transaction_id(operation_id: str) -> str:
    """The event `transactionId` for an operation: the same on every retry of that operation."""
    return str(uuid.uuid5(_TX_NAMESPACE, operation_id))


def pega_id_filter(pega_id: str) -> str:
    value = pega_id.replace("'", "''")
    return f"singleValueExtendedProperties/Any(ep: ep/id eq '{PEGA_ID_PROPERTY}' and ep/value eq '{value}')"


def pega_id_property(pega_id: str) -> list[dict[str, str]]:
    return [{"id": PEGA_ID_PROPERTY, "value": pega_id}]


def graph_time_zone(name: str) -> str:
    """A zone name Graph accepts everywhere: Windows names (canonical spelling), IANA names translated
    through the CLDR mapping. An unknown zone is a permanent failure naming it, never UTC."""
    try:
        return windows_name(name)
    except UnknownTimeZoneError as exc:
        raise PermanentError(str(exc)) from None


def _local_text(value: str) -> str:
    """`YYYY-MM-DDTHH:MM[:SS[.f]]` → `YYYY-MM-DDTHH:MM:SS` (Graph's local dateTime)."""
    date, _, time = value.partition("T")
    parts = time.split(":")
    hh, mm = parts[0], parts[1]
    ss = parts[2].split(".")[0] if len(parts) > 2 else "00"
    return f"{date}T{hh}:{mm}:{ss}"


def date_time_tz(value: Mapping[str, Any]) -> dict[str, str]:
    return {"dateTime": _local_text(str(value["dateTime"])), "timeZone": graph_time_zone(str(value["timeZone"]))}


def utc_of(value: Mapping[str, Any]) -> dt.datetime:
    local = dt.datetime.fromisoformat(_local_text(str(value["dateTime"])))
    try:
        tz = zone(str(value["timeZone"]))
    except UnknownTimeZoneError as exc:
        raise PermanentError(str(exc)) from None
    return local.replace(tzinfo=tz).astimezone(UTC)


def _body(value: Mapping[str, Any]) -> dict[str, str]:
    ctype = str(value.get("contentType") or "text").lower()
    return {"contentType": "HTML" if ctype == "html" else "Text", "content": str(value.get("content") or "")}


def _recipients(values: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in values:
        addr: dict[str, str] = {"address": str(r["email"])}
        if r.get("name"):
            addr["name"] = str(r["name"])
        out.append({"emailAddress": addr})
    return out


def _attendees(values: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**rcpt, "type": str(a.get("type") or "required")} for a, rcpt in
            ((a, _recipients([a])[0]) for a in values)]


def recurrence(value: Mapping[str, Any] | None, start_tz: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    pattern = dict(value["pattern"])
    rng = dict(value["range"])
    if rng.get("recurrenceTimeZone"):
        rng["recurrenceTimeZone"] = graph_time_zone(str(rng["recurrenceTimeZone"]))
    elif start_tz:
        rng["recurrenceTimeZone"] = graph_time_zone(start_tz)
    return {"pattern": pattern, "range": rng}


# ---------------------------------------------------------------- events


def _day_text(value: Mapping[str, Any]) -> str:
    return _local_text(str(value["dateTime"]))[:10]


def all_day_span(start: Mapping[str, Any] | None, end: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """An all-day appointment's dates (local, in its own zone): the start's date, and the end's date
    or the day after the start when the end is on the same day or missing (Graph wants whole days,
    midnight to midnight)."""
    first = _day_text(start) if start else None
    last = _day_text(end) if end else None
    if first and (last is None or last <= first):
        last = (dt.date.fromisoformat(first) + dt.timedelta(days=1)).isoformat()
    return first, last


def event_fields(body: Mapping[str, Any], *, all_day: bool | None = None) -> dict[str, Any]:
    """The Graph event properties for the appointment fields present in `body` (create or update).
    `all_day` (default: the body's isAllDay): start/end are sent as whole days at midnight."""
    out: dict[str, Any] = {}
    all_day = bool(body.get("isAllDay")) if all_day is None else all_day
    if "subject" in body:
        out["subject"] = body["subject"]
    if "start" in body:
        out["start"] = date_time_tz(body["start"])
    if "end" in body:
        out["end"] = date_time_tz(body["end"])
    if all_day:
        first, last = all_day_span(body.get("start"), body.get("end"))
        if first and "start" in out:
            out["start"]["dateTime"] = f"{first}T00:00:00"
        if last and "end" in out:
            out["end"]["dateTime"] = f"{last}T00:00:00"
    if "isAllDay" in body:
        out["isAllDay"] = bool(body["isAllDay"])
    if "location" in body:
        out["location"] = {"displayName": body["location"] or ""}
    if "body" in body:
        out["body"] = _body(body["body"])
    if "attendees" in body:
        out["attendees"] = _attendees(body["attendees"])
    if "recurrence" in body:
        tz = (body.get("start") or {}).get("timeZone")
        out["recurrence"] = recurrence(body["recurrence"], tz)
    if "sensitivity" in body:
        out["sensitivity"] = body["sensitivity"]
    if "showAs" in body:
        out["showAs"] = body["showAs"]
    if "reminderMinutesBeforeStart" in body:
        out["reminderMinutesBeforeStart"] = int(body["reminderMinutesBeforeStart"])
        out["isReminderOn"] = True
    return out


def new_event(body: Mapping[str, Any], *, pega_id: str, operation_id: str) -> dict[str, Any]:
    ev = event_fields(body)
    ev.setdefault("body", {"contentType": "Text", "content": ""})
    ev["transactionId"] = transaction_id(operation_id)
    ev["singleValueExtendedProperties"] = pega_id_property(pega_id)
    return ev


# Neutral mapped field → the contract keys that carry it (for building a patch from merge results).
APPOINTMENT_KEYS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",), "start": ("start",), "end": ("end",), "time_zone": ("start", "end"),
    "is_all_day": ("isAllDay",), "location": ("location",), "body": ("body",), "body_type": ("body",),
    "attendees": ("attendees",), "sensitivity": ("sensitivity",), "show_as": ("showAs",),
    "reminder_minutes": ("reminderMinutesBeforeStart",),
}


def mapped_appointment(body: Mapping[str, Any], *, all_day: bool | None = None) -> Mapped:
    """The appointment fields present in a contract body, normalized like shared.sync.mapping.map_event
    (an all-day appointment as midnight of its dates in its own zone)."""
    out: Mapped = {}
    all_day = bool(body.get("isAllDay")) if all_day is None else all_day
    if "subject" in body:
        out["subject"] = norm_text(body["subject"])
    if "start" in body:
        out["start"] = iso_z(utc_of(body["start"]))
        out["time_zone"] = graph_time_zone(str(body["start"]["timeZone"]))
    if "end" in body:
        out["end"] = iso_z(utc_of(body["end"]))
    if all_day:
        first, last = all_day_span(body.get("start"), body.get("end"))
        if first and "start" in body:
            out["start"] = iso_z(utc_of({"dateTime": f"{first}T00:00:00", "timeZone": body["start"]["timeZone"]}))
        if last and "end" in body:
            tz = (body.get("end") or body["start"])["timeZone"]
            out["end"] = iso_z(utc_of({"dateTime": f"{last}T00:00:00", "timeZone": tz}))
    if "isAllDay" in body:
        out["is_all_day"] = bool(body["isAllDay"])
    if "location" in body:
        out["location"] = norm_text(body["location"])
    if "body" in body:
        content = canonical_text(str(body["body"].get("content") or ""), str(body["body"].get("contentType") or "text"))
        out["body"] = content
        out["body_type"] = "text" if content else ""
    if "attendees" in body:
        out["attendees"] = sorted(([str(a["email"]).lower(), str(a.get("name") or ""), str(a.get("type") or "required")]
                                   for a in body["attendees"]), key=lambda r: r[0])
    if "sensitivity" in body:
        out["sensitivity"] = str(body["sensitivity"]).lower()
    if "showAs" in body:
        out["show_as"] = str(body["showAs"]).lower()
    if "reminderMinutesBeforeStart" in body:
        out["reminder_minutes"] = int(body["reminderMinutesBeforeStart"])
    return out


# ---------------------------------------------------------------- messages


def decoded_attachments(values: Iterable[Mapping[str, Any]]) -> list[tuple[dict[str, Any], bytes]]:
    out = []
    for a in values:
        try:
            data = base64.b64decode(str(a["contentBytes"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            from shared.errors import PermanentError

            raise PermanentError(f"attachment {a.get('name')!r} is not valid base64") from exc
        out.append((dict(a), data))
    return out


def file_attachment(meta: Mapping[str, Any], data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment", "name": meta["name"],
        "contentType": meta.get("contentType") or "application/octet-stream",
        "contentBytes": base64.b64encode(data).decode(), "isInline": bool(meta.get("isInline", False)),
    }
    if meta.get("contentId"):
        out["contentId"] = meta["contentId"]
    return out


def upload_session_request(meta: Mapping[str, Any], size: int) -> dict[str, Any]:
    item: dict[str, Any] = {"attachmentType": "file", "name": meta["name"], "size": size,
                            "contentType": meta.get("contentType") or "application/octet-stream"}
    if meta.get("isInline"):
        item["isInline"] = True
    if meta.get("contentId"):
        item["contentId"] = meta["contentId"]
    return {"AttachmentItem": item}


def new_message(body: Mapping[str, Any], *, pega_id: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "subject": body.get("subject") or "",
        "body": _body(body["body"]),
        "toRecipients": _recipients(body.get("to") or []),
        "singleValueExtendedProperties": pega_id_property(pega_id),
    }
    if body.get("cc"):
        msg["ccRecipients"] = _recipients(body["cc"])
    if body.get("bcc"):
        msg["bccRecipients"] = _recipients(body["bcc"])
    if body.get("importance"):
        msg["importance"] = body["importance"]
    return msg


def merged_recipients(existing: Iterable[Mapping[str, Any]], extra: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`existing` Graph recipients plus contract recipients not already among them (by address)."""
    out = [dict(r) for r in existing]
    seen = {str((r.get("emailAddress") or {}).get("address", "")).lower() for r in out}
    for r in _recipients(extra):
        addr = r["emailAddress"]["address"].lower()
        if addr not in seen:
            seen.add(addr)
            out.append(r)
    return out


# ---------------------------------------------------------------- contacts


def contact_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("givenName", "surname", "displayName", "mobilePhone", "jobTitle", "companyName", "department",
                "personalNotes"):
        if key in body:
            out[key] = body[key]
    if "businessPhones" in body:
        out["businessPhones"] = list(body["businessPhones"])
    if "emailAddresses" in body:
        out["emailAddresses"] = [{"address": e["email"], **({"name": e["name"]} if e.get("name") else {})}
                                 for e in body["emailAddresses"]]
    if "businessAddress" in body:
        out["businessAddress"] = dict(body["businessAddress"])
    if ("givenName" in body or "surname" in body) and "displayName" not in body:
        name = " ".join(str(body[k]) for k in ("givenName", "surname") if body.get(k))
        if name:
            out["displayName"] = name
    return out


def new_contact(body: Mapping[str, Any], *, pega_id: str, category: str) -> dict[str, Any]:
    c = contact_fields(body)
    if category:
        c["categories"] = [category]
    c["singleValueExtendedProperties"] = pega_id_property(pega_id)
    return c


CONTACT_KEYS: dict[str, tuple[str, ...]] = {
    "first_name": ("givenName",), "last_name": ("surname",), "email": ("emailAddresses",),
    "business_phone": ("businessPhones",), "mobile_phone": ("mobilePhone",), "job_title": ("jobTitle",),
    "company_name": ("companyName",), "department": ("department",), "street": ("businessAddress",),
    "city": ("businessAddress",), "state": ("businessAddress",), "postal_code": ("businessAddress",),
    "country": ("businessAddress",), "notes": ("personalNotes",), "photo": ("photo",),
}


def photo_bytes(body: Mapping[str, Any]) -> bytes | None:
    photo = body.get("photo")
    if not photo:
        return None
    try:
        return base64.b64decode(str(photo["contentBytes"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        from shared.errors import PermanentError

        raise PermanentError("photo.contentBytes is not valid base64") from exc


def mapped_contact(body: Mapping[str, Any]) -> Mapped:
    """The contact fields present in a contract body, normalized like shared.sync.mapping.map_contact."""
    out: Mapped = {}
    simple = {"givenName": "first_name", "mobilePhone": "mobile_phone", "jobTitle": "job_title",
              "companyName": "company_name", "department": "department", "personalNotes": "notes"}
    for key, name in simple.items():
        if key in body:
            out[name] = norm_text(body[key])
    if "surname" in body:
        out["last_name"] = norm_text(body["surname"])
    elif "displayName" in body and "givenName" not in body:
        out["last_name"] = norm_text(body["displayName"])
    if "emailAddresses" in body:
        emails = body["emailAddresses"]
        out["email"] = str(emails[0]["email"]).lower() if emails else ""
    if "businessPhones" in body:
        out["business_phone"] = str(body["businessPhones"][0]) if body["businessPhones"] else ""
    if "businessAddress" in body:
        a = body["businessAddress"] or {}
        for key, name in (("street", "street"), ("city", "city"), ("state", "state"), ("postalCode", "postal_code"),
                          ("countryOrRegion", "country")):
            out[name] = norm_text(a.get(key))
    if "photo" in body:
        out["photo"] = photo_digest(photo_bytes(body))
    return out
