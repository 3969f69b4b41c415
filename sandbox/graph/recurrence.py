"""Expansion of Graph patternedRecurrence into occurrence start times.

Occurrences are computed on local dates in the recurrence time zone and then converted to UTC, so
a weekly 09:00 Pacific meeting stays at 09:00 local across a DST change and moves in UTC.
Supports daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly with
endDate, noEnd and numbered ranges. Monthly and yearly intervals count from the first occurrence
on or after the range's startDate (Microsoft's worked example); weekly intervals count from the
week of startDate (its firstDayOfWeek), as RFC 5545 does. tests/graph_sim/test_recurrence_props.py
checks both against python-dateutil's rrule.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sandbox.graph.errors import GraphError

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
INDEX = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
PATTERNS = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
MAX_OCCURRENCES = 20_000  # bounds a noEnd series (about 55 years of a daily one)


def normalize(rec: dict[str, Any], default_tz: str, start_date: date) -> dict[str, Any]:
    """Fill in the defaults Graph returns and validate the pattern."""
    pat = dict(rec.get("pattern") or {})
    rng = dict(rec.get("range") or {})
    ptype = {p.lower(): p for p in PATTERNS}.get(str(pat.get("type") or "").lower())
    if ptype is None:
        raise GraphError(400, "ErrorInvalidRecurrence", f"Recurrence pattern type '{pat.get('type')}' is not valid.")
    days = [str(d).lower() for d in pat.get("daysOfWeek") or []]
    if any(d not in DAYS for d in days):
        raise GraphError(400, "ErrorInvalidRecurrence", "Invalid daysOfWeek.")
    if ptype in ("weekly", "relativeMonthly", "relativeYearly") and not days:
        raise GraphError(400, "ErrorInvalidRecurrence", f"daysOfWeek is required for a {ptype} pattern.")
    interval = int(pat.get("interval") or 1)
    if interval < 1:
        raise GraphError(400, "ErrorInvalidRecurrence", "interval must be at least 1.")
    pattern = {
        "type": ptype, "interval": interval, "month": int(pat.get("month") or 0),
        "dayOfMonth": int(pat.get("dayOfMonth") or 0), "daysOfWeek": days,
        "firstDayOfWeek": str(pat.get("firstDayOfWeek") or "sunday").lower(),
        "index": str(pat.get("index") or "first").lower(),
    }
    if ptype in ("absoluteMonthly", "absoluteYearly") and not pattern["dayOfMonth"]:
        raise GraphError(400, "ErrorInvalidRecurrence", "dayOfMonth is required.")
    if ptype in ("absoluteYearly", "relativeYearly") and not pattern["month"]:
        raise GraphError(400, "ErrorInvalidRecurrence", "month is required.")
    rtype = {r.lower(): r for r in ("endDate", "noEnd", "numbered")}.get(str(rng.get("type") or "noEnd").lower(), "")
    if pattern["index"] not in INDEX or pattern["firstDayOfWeek"] not in DAYS:
        raise GraphError(400, "ErrorInvalidRecurrence", "Invalid index or firstDayOfWeek.")
    if not rtype:
        raise GraphError(400, "ErrorInvalidRecurrence", f"Recurrence range type '{rtype}' is not valid.")
    rng_out = {
        "type": rtype, "startDate": rng.get("startDate") or start_date.isoformat(),
        "endDate": rng.get("endDate") or "0001-01-01",
        "recurrenceTimeZone": rng.get("recurrenceTimeZone") or default_tz,
        "numberOfOccurrences": int(rng.get("numberOfOccurrences") or 0),
    }
    if rtype == "endDate" and rng_out["endDate"] == "0001-01-01":
        raise GraphError(400, "ErrorInvalidRecurrence", "endDate is required for an endDate range.")
    if rtype == "numbered" and int(rng.get("numberOfOccurrences") or 0) < 1:
        raise GraphError(400, "ErrorInvalidRecurrence", "numberOfOccurrences must be positive.")
    return {"pattern": pattern, "range": rng_out}


def _week_start(d: date, first_day: str) -> date:
    fd = DAYS.index(first_day)
    return d - timedelta(days=(d.weekday() - fd) % 7)


def _nth_in_month(year: int, month: int, days: list[str], index: str) -> date | None:
    wanted = {DAYS.index(d) for d in days}
    _, ndays = calendar.monthrange(year, month)
    cands = [date(year, month, n) for n in range(1, ndays + 1) if date(year, month, n).weekday() in wanted]
    i = INDEX.get(index, 0)
    if i == -1:
        return cands[-1] if cands else None
    return cands[i] if i < len(cands) else None


def _abs_in_month(year: int, month: int, day: int) -> date:
    # Outlook places "day 31" on the last day of shorter months.
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    m = month - 1 + n
    return year + m // 12, m % 12 + 1


def local_dates(rec: dict[str, Any]) -> Iterator[date]:
    """All occurrence dates of a normalized recurrence, in order, bounded by its range."""
    pat, rng = rec["pattern"], rec["range"]
    start = date.fromisoformat(rng["startDate"])
    end = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else date.max
    limit = rng["numberOfOccurrences"] if rng["type"] == "numbered" else MAX_OCCURRENCES

    def gen() -> Iterator[date]:
        t, iv = pat["type"], pat["interval"]
        if t == "daily":
            d = start
            while True:
                yield d
                d += timedelta(days=iv)
        elif t == "weekly":
            ws = _week_start(start, pat["firstDayOfWeek"])
            fd = DAYS.index(pat["firstDayOfWeek"])
            offsets = sorted((DAYS.index(d) - fd) % 7 for d in pat["daysOfWeek"])
            while True:
                for off in offsets:
                    d = ws + timedelta(days=off)
                    if d >= start:
                        yield d
                ws += timedelta(weeks=iv)
        elif t in ("absoluteMonthly", "relativeMonthly"):
            def in_month(y: int, m: int) -> date | None:
                return (_abs_in_month(y, m, pat["dayOfMonth"]) if t == "absoluteMonthly"
                        else _nth_in_month(y, m, pat["daysOfWeek"], pat["index"]))

            # The interval counts from the month of the FIRST occurrence on or after startDate, not from
            # startDate's month: "first Thursday of every other month" from 2017-08-29 starts 2017-09-07
            # (outlook-schedule-recurring-events.md), where RFC 5545 would start in October.
            y, m = start.year, start.month
            while (first := in_month(y, m)) is None or first < start:
                y, m = _add_months(y, m, 1)
            while True:
                d2 = in_month(y, m)
                if d2 is not None:
                    yield d2
                y, m = _add_months(y, m, iv)
        else:
            def in_year(y: int) -> date | None:
                return (_abs_in_month(y, pat["month"], pat["dayOfMonth"]) if t == "absoluteYearly"
                        else _nth_in_month(y, pat["month"], pat["daysOfWeek"], pat["index"]))

            y = start.year
            while (first := in_year(y)) is None or first < start:
                y += 1
            while y <= 9000:
                d3 = in_year(y)
                if d3 is not None:
                    yield d3
                y += iv

    for count, d in enumerate(gen()):
        if d > end or count >= limit or d.year > 9000:
            return
        yield d


def occurrence_starts(rec: dict[str, Any], local_time: time, tz: tzinfo, until_utc: datetime) -> Iterator[datetime]:
    """UTC start of each occurrence (local time of day kept in the recurrence zone), up to until_utc."""
    for d in local_dates(rec):
        start = datetime.combine(d, local_time).replace(tzinfo=tz).astimezone(UTC)
        if start >= until_utc:
            return
        yield start
