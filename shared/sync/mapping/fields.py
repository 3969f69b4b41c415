"""The mapped field set of each kind, normalized values, snapshot form and the content hash.

Both sync directions compare the same things: a *mapped* item is a dict of neutral field names
(the names of shared.pega's neutral records: `subject`, `start`, ...) to normalized JSON values
(UTC ISO text for times, lower-cased addresses, "" for absent text). Its *snapshot form*
replaces long values by a digest, so a link row stays small while equality still works. The
content hash is over the snapshot form of the mapped fields only — so a `changeKey` or
`lastModifiedDateTime` bump without content change (a user opening an appointment) hashes equal.

Keys starting with "_" are link metadata (series id, original start, who wrote last); they
ride in the link snapshot and never take part in hashing or merging.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

Mapped = dict[str, Any]

# Link kinds (Link.kind) and work kinds (delta.sync "kind").
LINK_KIND = {"email": "email", "calendar": "event", "contacts": "contact"}

APPOINTMENT_FIELDS = (
    "subject", "start", "end", "time_zone", "is_all_day", "location", "body", "body_type", "attendees",
    "sensitivity", "show_as", "reminder_minutes",
)
EMAIL_FIELDS = (
    "subject", "body", "body_type", "sender", "sender_name", "to", "cc", "sent_at", "received_at", "direction",
    "importance", "has_attachments", "conversation_id", "internet_message_id",
)
CONTACT_FIELDS = (
    "first_name", "last_name", "email", "business_phone", "mobile_phone", "job_title", "company_name",
    "department", "street", "city", "state", "postal_code", "country", "notes", "photo",
)
FIELDS: dict[str, tuple[str, ...]] = {"calendar": APPOINTMENT_FIELDS, "email": EMAIL_FIELDS, "contacts": CONTACT_FIELDS}

# Fields whose values are free text that Pega may store with different line endings.
_TEXT = {"body", "notes"}
# Values longer than this are kept in snapshots as a digest.
SNAPSHOT_INLINE_MAX = 200
DIGEST_PREFIX = "#sha256:"

META_BY = "_by"  # "exchange" (inbound wrote last) | "pega" (outbound wrote to Exchange last)
META_SERIES = "_series"
# field -> the Pega version (pxUpdateDateTime) whose value of that field lost a conflict in an
# Exchange → Pega merge. Pega's own call for that change may arrive later (both directions run at
# once): it is already decided and must not undo the merge by pushing the losing value to Exchange.
META_PEGA_DECIDED = "_pega_decided"
META_ORIGINAL_START = "_original_start"
# The sanitized HTML body rides along as metadata: written to Pega where the mapping names a property
# (body_html), never hashed or merged — the canonical text in "body" decides what changed.
BODY_HTML = "_body_html"


def norm_text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return DIGEST_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:32]


def snap_value(value: Any) -> Any:
    """The snapshot form of one normalized value (long text and long lists become a digest)."""
    if isinstance(value, str):
        return value if len(value) <= SNAPSHOT_INLINE_MAX or value.startswith(DIGEST_PREFIX) else digest(value)
    if isinstance(value, list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        return value if len(text) <= SNAPSHOT_INLINE_MAX else digest(value)
    return value


def snapshot(mapped: Mapping[str, Any], *, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out = {k: snap_value(v) for k, v in mapped.items() if not k.startswith("_")}
    out.update({k: v for k, v in (meta or {}).items() if v is not None})
    return out


def content_hash(mapped: Mapping[str, Any]) -> str:
    """Hash of the snapshot form of the mapped (non-meta) fields; order-independent."""
    body = {k: snap_value(v) for k, v in mapped.items() if not k.startswith("_")}
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def meta_of(snap: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snap.items() if k.startswith("_")}


def fields_of(snap: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snap.items() if not k.startswith("_")}
