"""Time-zone names as Outlook uses them: Windows names (e.g. "Pacific Standard Time") or IANA.

Windows names are mapped to IANA zones via the CLDR primary mapping (the common subset); tzdata
provides the rules, so DST transitions are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.graph.clock import parse_iso
from sandbox.graph.errors import GraphError

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


def zone(name: str | None) -> tzinfo:
    """Resolve a Windows or IANA zone name. Unknown names are a 400, as Graph does."""
    if not name:
        return UTC
    iana = WINDOWS_TO_IANA.get(name)
    if iana is None:
        for k, v in WINDOWS_TO_IANA.items():
            if k.lower() == name.lower():
                iana = v
                break
    try:
        return ZoneInfo(iana or name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise GraphError(400, "TimeZoneNotSupportedException",
                         f"A valid TimeZone value must be specified. The following TimeZone value is not "
                         f"supported: '{name}'.") from exc


def to_utc(dtz: dict[str, str] | None) -> datetime:
    """A Graph dateTimeTimeZone ({dateTime, timeZone}) as an aware UTC datetime."""
    if not dtz or not dtz.get("dateTime"):
        raise GraphError(400, "ErrorInvalidRequest", "Start and end date/time are required.")
    raw = parse_iso(dtz["dateTime"]) if dtz["dateTime"].endswith("Z") else None
    if raw is not None:
        return raw
    local = parse_iso(dtz["dateTime"]).replace(tzinfo=None)
    return local.replace(tzinfo=zone(dtz.get("timeZone"))).astimezone(UTC)


def fmt_local(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0"


def render(dt_utc: datetime, tz_name: str | None) -> dict[str, str]:
    """Render as {dateTime, timeZone} in the preferred zone (UTC when no Prefer: outlook.timezone)."""
    name = tz_name or "UTC"
    local = dt_utc.astimezone(zone(name))
    return {"dateTime": fmt_local(local), "timeZone": name}
