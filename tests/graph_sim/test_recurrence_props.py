"""The simulator's recurrence expansion against an independent RFC 5545 expansion (python-dateutil's
rrule), for every pattern type and range type.

Where Outlook and RFC 5545 differ, the difference is stated and built into the oracle with rrule's
own machinery, never with the simulator's code:
- monthly and yearly intervals count from the first occurrence on or after startDate (the
  documented example: the first Thursday of every other month from 2017-08-29 starts 2017-09-07;
  RFC 5545 would start in October), so the oracle finds that first date with an interval-1 rrule
  and expands the real interval from it;
- "day 31" (absolute patterns) falls on the last day of shorter months (BYMONTHDAY d..28 with
  BYSETPOS=-1 in the oracle);
- relativeMonthly/Yearly with several days: "the event falls on the first day that satisfies the
  pattern" (BYDAY with BYSETPOS=index).
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

from dateutil import rrule
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.graph import recurrence as rec

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
RR_DAYS = [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU]
INDEX_POS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
LIMIT = 40

starts = st.dates(min_value=date(2016, 1, 1), max_value=date(2030, 12, 31))
day_sets = st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True)


@st.composite
def recurrences(draw: st.DrawFn) -> dict:
    ptype = draw(st.sampled_from(rec.PATTERNS))
    pattern: dict = {"type": ptype, "interval": draw(st.integers(1, 4))}
    if ptype == "weekly":
        pattern["daysOfWeek"] = draw(day_sets)
        pattern["firstDayOfWeek"] = draw(st.sampled_from(DAYS))
    if ptype in ("absoluteMonthly", "absoluteYearly"):
        pattern["dayOfMonth"] = draw(st.integers(1, 31))
    if ptype in ("relativeMonthly", "relativeYearly"):
        pattern["daysOfWeek"] = draw(day_sets)
        pattern["index"] = draw(st.sampled_from(list(INDEX_POS)))
    if ptype in ("absoluteYearly", "relativeYearly"):
        pattern["month"] = draw(st.integers(1, 12))
    start = draw(starts)
    rtype = draw(st.sampled_from(["endDate", "noEnd", "numbered"]))
    rng: dict = {"type": rtype, "startDate": start.isoformat()}
    if rtype == "endDate":
        rng["endDate"] = (start + timedelta(days=draw(st.integers(0, 3 * 366)))).isoformat()
    if rtype == "numbered":
        rng["numberOfOccurrences"] = draw(st.integers(1, 30))
    return rec.normalize({"pattern": pattern, "range": rng}, "UTC", start)


def _rule_kwargs(pattern: dict) -> dict:
    t = pattern["type"]
    if t == "daily":
        return {"freq": rrule.DAILY}
    if t == "weekly":
        return {"freq": rrule.WEEKLY, "wkst": DAYS.index(pattern["firstDayOfWeek"]),
                "byweekday": [RR_DAYS[DAYS.index(d)] for d in pattern["daysOfWeek"]]}
    monthly = t.endswith("Monthly")
    kwargs: dict = {"freq": rrule.MONTHLY if monthly else rrule.YEARLY}
    if not monthly:
        kwargs["bymonth"] = pattern["month"]
    if t.startswith("absolute"):
        d = pattern["dayOfMonth"]
        kwargs["bymonthday"] = list(range(min(d, 28), d + 1))
        kwargs["bysetpos"] = -1
    else:
        kwargs["byweekday"] = [RR_DAYS[DAYS.index(d)] for d in pattern["daysOfWeek"]]
        kwargs["bysetpos"] = INDEX_POS[pattern["index"]]
    return kwargs


def oracle(r: dict) -> list[date]:
    pattern, rng = r["pattern"], r["range"]
    start = datetime.fromisoformat(rng["startDate"])
    kwargs = _rule_kwargs(pattern)
    bounds: dict = {}
    if rng["type"] == "endDate":
        bounds["until"] = datetime.fromisoformat(rng["endDate"])
    if rng["type"] == "numbered":
        bounds["count"] = rng["numberOfOccurrences"]
    if pattern["type"] not in ("daily", "weekly"):
        first = next(iter(rrule.rrule(dtstart=start, interval=1, **kwargs)), None)
        if first is None:
            return []
        start = first
    rule = rrule.rrule(dtstart=start, interval=pattern["interval"], **kwargs, **bounds)
    return [d.date() for d in itertools.islice(rule, LIMIT)]


@settings(max_examples=300, deadline=None)
@given(recurrences())
def test_expansion_matches_rrule(r: dict) -> None:
    mine = list(itertools.islice(rec.local_dates(r), LIMIT))
    assert mine == oracle(r), r


def test_documented_examples() -> None:
    """outlook-schedule-recurring-events.md, the two worked examples."""
    thursdays = rec.normalize({"pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["Thursday"],
                                           "index": "first"},
                               "range": {"type": "noEnd", "startDate": "2017-08-29"}}, "UTC", date(2017, 8, 29))
    assert list(itertools.islice(rec.local_dates(thursdays), 3)) == [date(2017, 9, 7), date(2017, 11, 2),
                                                                      date(2018, 1, 4)]
    mondays = rec.normalize({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday"]},
                             "range": {"type": "endDate", "startDate": "2017-09-04", "endDate": "2017-12-31"}},
                            "UTC", date(2017, 9, 4))
    assert list(rec.local_dates(mondays))[-1] == date(2017, 12, 25)
