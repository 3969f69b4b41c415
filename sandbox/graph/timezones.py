"""Time-zone names as Outlook uses them: Windows names (e.g. "Pacific Standard Time") or IANA.

Windows names resolve through the full CLDR windowsZones mapping (every Windows zone of the
"001" territory, as shipped and kept current by the ``tzlocal`` package); tzdata provides the
rules, so DST transitions are exact. Graph also writes ``tzone://Microsoft/Utc`` into
``originalStartTimeZone`` for events created in UTC by some clients; it is accepted as UTC.
An unknown name is a 400, as in Graph.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from sandbox.graph.clock import parse_iso
from sandbox.graph.errors import GraphError

_ALIASES = {"tzone://microsoft/utc": "Etc/UTC"}
_WINDOWS = {name.lower(): iana for name, iana in win_tz.items()}


def windows_names() -> list[str]:
    """Every Windows zone name the simulator accepts (the CLDR mapping)."""
    return sorted(win_tz)


def zone(name: str | None) -> tzinfo:
    """Resolve a Windows or IANA zone name. Unknown names are a 400, as Graph does."""
    if not name:
        return UTC
    key = name.strip().lower()
    iana = _WINDOWS.get(key) or _ALIASES.get(key) or name.strip()
    if iana in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(iana)
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
