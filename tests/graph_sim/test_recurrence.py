"""Pure tests of series expansion: every pattern and range type, evaluated in the recurrence zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from sandbox.graph import recurrence as rec
from sandbox.graph.errors import GraphError
from sandbox.graph.timezones import zone


def dates(pattern: dict, rng: dict, start: date) -> list[date]:
    return list(rec.local_dates(rec.normalize({"pattern": pattern, "range": rng}, "UTC", start)))


def test_daily_interval_numbered() -> None:
    got = dates({"type": "daily", "interval": 3}, {"type": "numbered", "numberOfOccurrences": 4}, date(2025, 1, 30))
    assert got == [date(2025, 1, 30), date(2025, 2, 2), date(2025, 2, 5), date(2025, 2, 8)]


def test_weekly_multiple_days_every_other_week_with_end_date() -> None:
    got = dates({"type": "weekly", "interval": 2, "daysOfWeek": ["Monday", "thursday"], "firstDayOfWeek": "sunday"},
                {"type": "endDate", "startDate": "2025-03-04", "endDate": "2025-03-31"}, date(2025, 3, 4))
    # Week of Sun 2 Mar: Thu 6 (Mon 3 is before the start); skip a week; week of 16 Mar: Mon 17, Thu 20; 30 Mar: Mon 31
    assert got == [date(2025, 3, 6), date(2025, 3, 17), date(2025, 3, 20), date(2025, 3, 31)]


def test_absolute_monthly_day_31_lands_on_last_day() -> None:
    got = dates({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
                {"type": "numbered", "numberOfOccurrences": 3}, date(2025, 1, 31))
    assert got == [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)]


def test_relative_monthly_last_friday_and_second_weekday() -> None:
    got = dates({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
                {"type": "numbered", "numberOfOccurrences": 3}, date(2025, 1, 1))
    assert got == [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 28)]
    weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday"]
    got = dates({"type": "relativeMonthly", "interval": 2, "daysOfWeek": weekdays, "index": "second"},
                {"type": "numbered", "numberOfOccurrences": 2}, date(2025, 3, 1))
    assert got == [date(2025, 3, 4), date(2025, 5, 2)]


def test_yearly_patterns() -> None:
    got = dates({"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
                {"type": "numbered", "numberOfOccurrences": 2}, date(2024, 2, 29))
    assert got == [date(2024, 2, 29), date(2025, 2, 28)]
    got = dates({"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
                {"type": "endDate", "startDate": "2025-01-01", "endDate": "2026-12-31"}, date(2025, 1, 1))
    assert got == [date(2025, 11, 27), date(2026, 11, 26)]


def test_no_end_is_bounded_by_the_caller() -> None:
    r = rec.normalize({"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": "2025-01-01"}},
                      "UTC", date(2025, 1, 1))
    starts = list(rec.occurrence_starts(r, time(9), zone("UTC"), datetime(2025, 1, 4, tzinfo=UTC)))
    assert len(starts) == 3


def test_local_time_is_kept_across_dst() -> None:
    r = rec.normalize({"pattern": {"type": "weekly", "daysOfWeek": ["monday"]},
                       "range": {"type": "numbered", "startDate": "2025-03-03", "numberOfOccurrences": 2}},
                      "Pacific Standard Time", date(2025, 3, 3))
    starts = list(rec.occurrence_starts(r, time(9), zone("Pacific Standard Time"), datetime(2026, 1, 1, tzinfo=UTC)))
    assert [s.hour for s in starts] == [17, 16]  # PST then PDT (DST began 9 March 2025)


@pytest.mark.parametrize("bad", [
    {"pattern": {"type": "hourly"}, "range": {"type": "noEnd"}},
    {"pattern": {"type": "weekly"}, "range": {"type": "noEnd"}},
    {"pattern": {"type": "daily"}, "range": {"type": "numbered"}},
    {"pattern": {"type": "daily"}, "range": {"type": "endDate"}},
    {"pattern": {"type": "absoluteYearly", "dayOfMonth": 3}, "range": {"type": "noEnd"}},
])
def test_invalid_recurrences_are_400(bad: dict) -> None:
    with pytest.raises(GraphError) as err:
        rec.normalize(bad, "UTC", date(2025, 1, 1))
    assert err.value.status == 400
