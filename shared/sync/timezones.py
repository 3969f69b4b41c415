"""Outlook time-zone names (Windows or IANA) → tzinfo, and Graph dateTimeTimeZone → aware UTC.

Graph returns `{"dateTime": "2025-03-03T16:00:00.0000000", "timeZone": "UTC"}` (UTC unless a
`Prefer: outlook.timezone` is sent) and names the organizer's zone in `originalStartTimeZone`,
usually a Windows name. Times are stored as UTC plus the original zone name, so a weekly series
keeps its local wall-clock time across DST changes when Pega renders it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC

# CLDR primary mapping, the common subset (same set the Graph simulator understands).
WINDOWS_TO_IANA = {
    "UTC": "UTC", "Coordinated Universal Time": "UTC", "tzone://Microsoft/Utc": "UTC", "GMT": "UTC",
    "Dateline Standard Time": "Etc/GMT+12", "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage", "Pacific Standard Time": "America/Los_Angeles",
    "Pacific Standard Time (Mexico)": "America/Tijuana", "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver", "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago", "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina", "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time": "America/New_York", "US Eastern Standard Time": "America/Indianapolis",
    "Atlantic Standard Time": "America/Halifax", "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo", "Argentina Standard Time": "America/Buenos_Aires",
    "Greenland Standard Time": "America/Godthab", "Azores Standard Time": "Atlantic/Azores",
    "GMT Standard Time": "Europe/London", "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin", "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris", "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos", "GTB Standard Time": "Europe/Bucharest",
    "E. Europe Standard Time": "Europe/Chisinau", "FLE Standard Time": "Europe/Kiev",
    "Israel Standard Time": "Asia/Jerusalem", "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg", "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow", "Arab Standard Time": "Asia/Riyadh",
    "Arabian Standard Time": "Asia/Dubai", "Iran Standard Time": "Asia/Tehran",
    "Pakistan Standard Time": "Asia/Karachi", "India Standard Time": "Asia/Calcutta",
    "Nepal Standard Time": "Asia/Katmandu", "Bangladesh Standard Time": "Asia/Dhaka",
    "SE Asia Standard Time": "Asia/Bangkok", "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore", "Taipei Standard Time": "Asia/Taipei",
    "Tokyo Standard Time": "Asia/Tokyo", "Korea Standard Time": "Asia/Seoul",
    "AUS Central Standard Time": "Australia/Darwin", "Cen. Australia Standard Time": "Australia/Adelaide",
    "E. Australia Standard Time": "Australia/Brisbane", "AUS Eastern Standard Time": "Australia/Sydney",
    "Tasmania Standard Time": "Australia/Hobart", "New Zealand Standard Time": "Pacific/Auckland",
}


def zone(name: str | None) -> dt.tzinfo:
    """A Windows or IANA zone; unknown names fall back to UTC (the value Graph sent is kept as text)."""
    if not name:
        return UTC
    iana = WINDOWS_TO_IANA.get(name, name)
    if iana == "UTC":
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


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
    """Graph dateTimeTimeZone → (aware UTC datetime, the zone name as sent)."""
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
