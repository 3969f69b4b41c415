"""Checks of contract values that a JSON Schema pattern cannot express: real calendar dates,
known time zones, instants Exchange can store, an end not before its start.

Why at intake: the schema's patterns let `2025-02-30T10:00`, a zone named `Mars/Olympus`, year
0001 in Asia/Tokyo (before year 1 once converted to UTC) or year 9999 in America/Los_Angeles
(after year 9999 in UTC) through. Accepted with 202, such an operation then failed in the worker
on every retry until its retry window ran out — a stuck operation instead of the 400 naming the
field that the contract promises. Exchange itself treats dates before 1601-01-01 and after
4500-12-31 as invalid ([MS-OXCICAL] 2.2.31, Outlook's date range), so that is the accepted range,
for the local time and for its UTC instant alike.

Zones are resolved by shared.sync.timezones — the same table the worker uses — so this check
follows whatever zones that table knows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.contract.errors import ContractViolation
from shared.sync import timezones

EARLIEST = dt.datetime(1601, 1, 1)
LATEST = dt.datetime(4500, 12, 31, 23, 59, 59, 999999)
_RANGE = "between 1601-01-01 and 4500-12-31 (the dates Exchange can store)"


_PROBE = "Pes/No Such Zone"


def resolve_zone(name: str) -> dt.tzinfo | None:
    """The zone `name` names (Windows or IANA), or None when the time-zone table does not know it.

    A strict table raises for an unknown name. A table that falls back to UTC instead (a name it
    does not know becomes UTC) is recognised by asking it for a zone that cannot exist; then UTC
    is accepted only for a name the table itself maps to UTC."""
    try:
        tz = timezones.zone(name)
    except Exception:  # unknown, or a name zoneinfo cannot even open (a directory such as "America")
        return None
    if tz is not timezones.UTC:
        return tz
    try:
        falls_back = timezones.zone(_PROBE) is timezones.UTC
    except Exception:
        return tz  # a strict table: UTC was meant
    windows = getattr(timezones, "WINDOWS_TO_IANA", {})
    return tz if not falls_back or name == "UTC" or windows.get(name) == "UTC" else None


def _in_range(value: dt.datetime) -> bool:
    naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return EARLIEST <= naive <= LATEST


def local_date_time(value: Mapping[str, Any], field: str) -> dt.datetime:
    """A contract DateTimeTimeZone (`{"dateTime", "timeZone"}`) as an aware UTC datetime, or
    ContractViolation naming `field.dateTime` / `field.timeZone`."""
    raw = str(value.get("dateTime") or "")
    try:
        local = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ContractViolation(f"{field}.dateTime: {raw!r} is not a real calendar date and time",
                                field=f"{field}.dateTime") from None
    if local.tzinfo is not None:
        raise ContractViolation(f"{field}.dateTime: a local time without an offset is expected (the zone is in "
                                f"{field}.timeZone)", field=f"{field}.dateTime")
    if not _in_range(local):
        raise ContractViolation(f"{field}.dateTime: must be {_RANGE}", field=f"{field}.dateTime")
    name = str(value.get("timeZone") or "")
    tz = resolve_zone(name)
    if tz is None:
        raise ContractViolation(f"{field}.timeZone: {name!r} is not a known Windows or IANA time zone",
                                field=f"{field}.timeZone")
    try:
        instant = local.replace(tzinfo=tz).astimezone(dt.UTC)
    except (OverflowError, ValueError):
        instant = None
    if instant is None or not _in_range(instant):
        raise ContractViolation(f"{field}: {raw} in {name} is not {_RANGE} in UTC", field=f"{field}.dateTime")
    return instant


def instant(raw: str, field: str) -> dt.datetime:
    """An ISO 8601 timestamp with `Z` or an offset (up to 7 fractional digits, as Pega and Graph
    write them) as aware UTC, or ContractViolation naming `field`."""
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        utc = parsed.astimezone(dt.UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        utc = None
    if utc is None:
        raise ContractViolation(f"{field}: {raw!r} is not a real date and time with an offset", field=field)
    if not _in_range(utc):
        raise ContractViolation(f"{field}: must be {_RANGE}", field=field)
    return utc


def calendar_date(raw: str, field: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise ContractViolation(f"{field}: {raw!r} is not a real calendar date", field=field) from None
    if not EARLIEST.date() <= day <= LATEST.date():
        raise ContractViolation(f"{field}: must be {_RANGE}", field=field)
    return day


def _recurrence(value: Mapping[str, Any]) -> None:
    rng = value.get("range")
    if not isinstance(rng, Mapping):
        return
    start = calendar_date(str(rng.get("startDate")), "recurrence.range.startDate")
    if rng.get("endDate") is not None:
        end = calendar_date(str(rng["endDate"]), "recurrence.range.endDate")
        if end < start:
            raise ContractViolation("recurrence.range.endDate: is before recurrence.range.startDate",
                                    field="recurrence.range.endDate")
    tz_name = rng.get("recurrenceTimeZone")
    if tz_name and resolve_zone(str(tz_name)) is None:
        raise ContractViolation(f"recurrence.range.recurrenceTimeZone: {tz_name!r} is not a known Windows or IANA "
                                "time zone", field="recurrence.range.recurrenceTimeZone")


def check_values(body: Any) -> None:
    """Raise ContractViolation naming the first field whose value is impossible (the body already
    matches its schema, so the shapes are known)."""
    if not isinstance(body, Mapping):
        return
    if isinstance(body.get("changedAt"), str):
        instant(body["changedAt"], "changedAt")
    start = local_date_time(body["start"], "start") if isinstance(body.get("start"), Mapping) else None
    end = local_date_time(body["end"], "end") if isinstance(body.get("end"), Mapping) else None
    if start is not None and end is not None and end < start:
        raise ContractViolation("end: is before start", field="end")
    if isinstance(body.get("recurrence"), Mapping):
        _recurrence(body["recurrence"])
