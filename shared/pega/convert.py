"""Neutral records <-> Pega content, driven only by the mapping.

Datetimes travel to Pega as ISO-8601 UTC with milliseconds and `Z` (what DX API v2 returns);
address lists as `; `-separated text; attendees as a page list of rows. A property name with a dot
(`Address.pyCity`) is a property of an embedded page (SA's contact `Address`, a Data-Address-Postal
page): written into that page, read from it, compared leaf by leaf.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.pega.mapping import AttendeeFields
from shared.pega.models import Attendee

T = TypeVar("T")

_LIST_SEPARATOR = "; "


_MISSING = object()


def get_path(content: Any, prop: str, default: Any = None) -> Any:
    """`content[prop]`, following dots into embedded pages."""
    value = content
    for part in prop.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def set_path(content: dict[str, Any], prop: str, value: Any) -> None:
    """`content[prop] = value`, creating embedded pages for a dotted name."""
    *pages, leaf = prop.split(".")
    target = content
    for page in pages:
        nxt = target.get(page)
        if not isinstance(nxt, dict):
            nxt = target[page] = {}
        target = nxt
    target[leaf] = value


def leaves(content: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, value) of every scalar or list in `content`, embedded pages flattened."""
    out: list[tuple[str, Any]] = []
    for k, v in content.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += leaves(v, name + ".")
        else:
            out.append((name, v))
    return out


def differs(current: Any, wanted: Any) -> bool:
    """Would writing `wanted` change `current`? An embedded page only differs in the leaves given."""
    if isinstance(wanted, dict) and isinstance(current, dict):
        return any(differs(current.get(k), v) for k, v in wanted.items())
    return bool(current != wanted)


def changed_fields(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The part of `wanted` that differs from `current` (embedded pages: only their changed leaves)."""
    out: dict[str, Any] = {}
    for k, v in wanted.items():
        cur = current.get(k)
        if isinstance(v, dict) and isinstance(cur, dict):
            sub = changed_fields(cur, v)
            if sub:
                out[k] = sub
        elif differs(cur, v):
            out[k] = v
    return out


def format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes sent to Pega must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_datetime(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) >= 15 and text[8] == "T" and text.endswith(" GMT"):  # 20250305T140005.123 GMT
        text = f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[9:11]}:{text[11:13]}:{text[13:15]}{text[15:-4]}+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def attendees_to_rows(attendees: list[Attendee], fields: AttendeeFields) -> list[dict[str, Any]]:
    rows = []
    for a in attendees:
        row: dict[str, Any] = {fields.email: a.email, fields.type: a.type}
        if a.name is not None:
            row[fields.name] = a.name
        if a.response is not None:
            row[fields.response] = a.response
        rows.append(row)
    return rows


def rows_to_attendees(rows: Any, fields: AttendeeFields) -> list[Attendee]:
    out = []
    for row in rows or []:
        if isinstance(row, dict) and row.get(fields.email):
            out.append(
                Attendee(
                    email=str(row[fields.email]),
                    name=row.get(fields.name),
                    type=str(row.get(fields.type) or "required"),
                    response=row.get(fields.response),
                )
            )
    return out


def to_content(data: Any, field_map: BaseModel, *, attendee_fields: AttendeeFields | None = None) -> dict[str, Any]:
    """Pega content for the non-None fields of a neutral record (so an update touches only those)."""
    names = field_map.model_dump()
    content: dict[str, Any] = {}
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if value is None:
            continue
        prop = names.get(f.name)
        if prop is None:
            raise ValueError(f"mapping has no property for {type(data).__name__}.{f.name}")
        if prop == "":
            continue  # an optional field the mapping does not map (e.g. body_html)
        if isinstance(value, datetime):
            value = format_datetime(value)
        elif f.name == "attendees":
            value = attendees_to_rows(value, attendee_fields or AttendeeFields())
        elif isinstance(value, list):
            value = _LIST_SEPARATOR.join(str(v) for v in value)
        set_path(content, prop, value)
    return content


def from_content(cls: type[T], content: dict[str, Any], field_map: BaseModel, *, attendee_fields: AttendeeFields | None = None) -> T:
    """A neutral record from Pega content (fields Pega does not carry stay None)."""
    names = field_map.model_dump()
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        prop = names.get(f.name)
        if not prop:
            continue
        value = get_path(content, prop, _MISSING)
        if value is _MISSING:
            continue
        annotation = str(f.type)
        if "datetime" in annotation:
            value = parse_datetime(value)
        elif f.name == "attendees":
            value = rows_to_attendees(value, attendee_fields or AttendeeFields())
        elif annotation.startswith("list[str]"):
            value = [v.strip() for v in str(value or "").split(";") if v.strip()]
        kwargs[f.name] = value
    return cls(**kwargs)
