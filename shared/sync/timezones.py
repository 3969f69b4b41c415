"""Outlook time-zone names (Windows or IANA) → tzinfo, and Graph dateTimeTimeZone → aware UTC.

Graph returns `{"dateTime": "2025-03-03T16:00:00.0000000", "timeZone": "UTC"}` (UTC unless a
`Prefer: outlook.timezone` is sent) and names the organizer's zone in `originalStartTimeZone`,
usually a Windows name. Times are stored as UTC plus the original zone name, so a weekly series
keeps its local wall-clock time across DST changes when Pega renders it. Windows names resolve
through the complete CLDR windowsZones mapping that the maintained ``tzlocal`` package ships
(graph.md §10); an unknown name is an error with a reason, never UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

UTC = dt.UTC

# Graph writes this into originalStartTimeZone for events some clients create in UTC.
_ALIASES = {"tzone://microsoft/utc": "Etc/UTC"}
_WINDOWS = {name.lower(): iana for name, iana in win_tz.items()}
_WINDOWS_CANONICAL = {name.lower(): name for name in win_tz}


class UnknownTimeZoneError(ValueError):
    """A zone name that is neither a Windows name of the CLDR mapping nor an IANA zone.

    Never silently UTC: an appointment placed in the wrong zone is on the wrong hour (or day)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown time zone {name!r}: neither a Windows zone of the CLDR mapping nor an IANA zone")
        self.name = name
        self.reason = "unknown_time_zone"


def zone(name: str | None) -> dt.tzinfo:
    """A Windows (full CLDR windowsZones mapping, from tzlocal) or IANA zone; empty means UTC.
    Raises UnknownTimeZoneError for anything else."""
    if not name:
        return UTC
    key = name.strip().lower()
    iana = _WINDOWS.get(key) or _ALIASES.get(key) or name.strip()
    if iana in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZoneError(name) from None


def windows_name(name: str) -> str:
    """The Windows name Graph uses natively for a Windows or IANA zone (CLDR primary mapping).
    Raises UnknownTimeZoneError when the name is neither."""
    key = name.strip().lower()
    if key in _WINDOWS_CANONICAL:
        return _WINDOWS_CANONICAL[key]
    if key in _ALIASES or key in ("utc", "etc/utc"):
        return "UTC"
    zone(name)  # raises when unknown
    return tz_win.get(name.strip(), name.strip())


def parse_iso_utc(value: Any) -> dt.datetime | None:
    """An ISO timestamp (with Z, an offset or none = UTC) as aware UTC; None if absent or invalid."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    # Graph sends 7 fractional digits; Python accepts at most 6.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_datetime_tz(value: Any) -> tuple[dt.datetime | None, str]:
    """Graph dateTimeTimeZone → (aware UTC datetime, the zone name as sent).
    Raises UnknownTimeZoneError for a zone name outside the CLDR mapping and tzdata."""
    if not isinstance(value, dict):
        return None, ""
    raw, tz_name = value.get("dateTime"), str(value.get("timeZone") or "UTC")
    if not raw or not isinstance(raw, str):
        return None, tz_name
    naive = parse_iso_utc(raw)
    if naive is None:
        return None, tz_name
    local = naive.replace(tzinfo=None)
    if "+" in raw[10:] or raw.endswith("Z"):
        return naive, tz_name
    return local.replace(tzinfo=zone(tz_name)).astimezone(UTC), tz_name


def iso_z(value: dt.datetime) -> str:
    """Canonical UTC text used in snapshots and hashes (second precision, `Z`)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def all_day_instant(day: dt.date, tz_name: str | None) -> dt.datetime:
    """Midnight of `day` in the zone `tz_name` (Windows or IANA), as aware UTC: how an all-day date is
    written to Pega, so it shows on that day for a rep in that zone. Raises UnknownTimeZoneError."""
    return dt.datetime.combine(day, dt.time()).replace(tzinfo=zone(tz_name)).astimezone(UTC)
