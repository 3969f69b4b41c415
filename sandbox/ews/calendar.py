"""Recurring series as EWS has them: one RecurringMaster item in the folder; occurrences and
exceptions (modified occurrences) exist only through the master — expanded by a CalendarView,
addressed by occurrence ids, listed in ModifiedOccurrences / DeletedOccurrences.

Expansion reuses the Graph simulator's pattern engine (sandbox/graph/recurrence.py) on the EWS
pattern translated to the same rules: local dates in the series' StartTimeZone, so a 09:00 meeting
stays at 09:00 local across a DST change.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any

from lxml import etree

from sandbox.ews import ids
from sandbox.ews.soap import ItemError, local, sub, t
from sandbox.ews.store import Item, iso
from sandbox.graph import recurrence as graph_recurrence
from sandbox.graph.errors import GraphError
from sandbox.graph.timezones import zone

PATTERNS = {"DailyRecurrence": "daily", "WeeklyRecurrence": "weekly",
            "AbsoluteMonthlyRecurrence": "absoluteMonthly", "RelativeMonthlyRecurrence": "relativeMonthly",
            "AbsoluteYearlyRecurrence": "absoluteYearly", "RelativeYearlyRecurrence": "relativeYearly"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
INDEXES = {"First": "first", "Second": "second", "Third": "third", "Fourth": "fourth", "Last": "last"}
SERIES_ONLY = ("Recurrence", "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences")
HORIZON = dt.timedelta(days=3650)


def parse_dt(text: str | None) -> dt.datetime:
    if not text:
        raise ItemError("ErrorInvalidValueForProperty", "Start and End are required.")
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def tz_name(item: Item) -> str:
    for tag in ("StartTimeZone", "MeetingTimeZone"):
        el = item.props.get(tag)
        if el is not None and (el.get("Id") or el.get("TimeZoneName")):
            return str(el.get("Id") or el.get("TimeZoneName"))
    return "UTC"


def graph_rule(rec_el: etree._Element, tz: str, start_local: dt.date) -> dict[str, Any]:
    """The EWS Recurrence element as the Graph engine's normalized rule (ErrorInvalidRecurrence if bad)."""
    pattern: dict[str, Any] = {}
    rng: dict[str, Any] = {"recurrenceTimeZone": tz}
    for child in rec_el:
        name = local(child)
        if name in PATTERNS:
            pattern["type"] = PATTERNS[name]
            pattern["interval"] = int(child.findtext(t("Interval")) or 1)
            days = (child.findtext(t("DaysOfWeek")) or "").split()
            pattern["daysOfWeek"] = [d.lower() for d in days if d.lower() in graph_recurrence.DAYS]
            if child.findtext(t("FirstDayOfWeek")):
                pattern["firstDayOfWeek"] = child.findtext(t("FirstDayOfWeek"))
            if child.findtext(t("DayOfMonth")):
                pattern["dayOfMonth"] = int(child.findtext(t("DayOfMonth")) or 0)
            if child.findtext(t("Month")):
                pattern["month"] = MONTHS.index(str(child.findtext(t("Month")))) + 1
            if child.findtext(t("DayOfWeekIndex")):
                pattern["index"] = INDEXES.get(str(child.findtext(t("DayOfWeekIndex"))), "first")
        elif name in ("EndDateRecurrence", "NumberedRecurrence", "NoEndRecurrence"):
            rng["type"] = {"EndDateRecurrence": "endDate", "NumberedRecurrence": "numbered"}.get(name, "noEnd")
            rng["startDate"] = (child.findtext(t("StartDate")) or start_local.isoformat())[:10]
            if child.findtext(t("EndDate")):
                rng["endDate"] = str(child.findtext(t("EndDate")))[:10]
            if child.findtext(t("NumberOfOccurrences")):
                rng["numberOfOccurrences"] = int(child.findtext(t("NumberOfOccurrences")) or 0)
    if pattern.get("type") in ("weekly",) and not pattern.get("daysOfWeek"):
        pattern["daysOfWeek"] = [start_local.strftime("%A").lower()]
    try:
        return graph_recurrence.normalize({"pattern": pattern, "range": rng}, tz, start_local)
    except GraphError as exc:
        raise ItemError("ErrorInvalidRecurrence", str(exc)) from None
    except ValueError:
        raise ItemError("ErrorInvalidRecurrence", "The recurrence pattern is not valid.") from None


def original_starts(master: Item, *, until: dt.datetime) -> Iterator[dt.datetime]:
    rec_el = master.props.get("Recurrence")
    if rec_el is None:
        return
    start = parse_dt(master.text("Start"))
    tz = zone(tz_name(master))
    local_start = start.astimezone(tz)
    rule = graph_rule(rec_el, tz_name(master), local_start.date())
    yield from graph_recurrence.occurrence_starts(rule, local_start.time().replace(tzinfo=None), tz, until)


def duration(item: Item) -> dt.timedelta:
    return parse_dt(item.text("End")) - parse_dt(item.text("Start"))


def occurrence(master: Item, original: dt.datetime) -> Item | None:
    """The occurrence (or exception) of `master` that originally starts at `original`; None if deleted."""
    key = iso(original)
    if key in master.deleted_occurrences:
        return None
    occ_id = ids.occurrence_id(master.id, key)
    if key in master.exceptions:
        exc = master.exceptions[key]
        exc.id = occ_id
        return exc
    occ = Item(id=occ_id, kind="CalendarItem", folder_id=master.folder_id,
               props={k: v for k, v in master.props.items() if k not in SERIES_ONLY},
               ext=master.ext, change_n=master.change_n, change_key=master.change_key)
    occ.set("Start", key)
    occ.set("End", iso(original + duration(master)))
    occ.set("OriginalStart", key)
    occ.set("CalendarItemType", "Occurrence")
    occ.set("IsRecurring", "true")
    return occ


def make_exception(master: Item, original: dt.datetime) -> Item:
    key = iso(original)
    if key not in master.exceptions:
        base = occurrence(master, original)
        if base is None:
            raise ItemError("ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                            "Occurrence has been deleted from the recurrence.")
        base.props = dict(base.props)
        base.ext = dict(master.ext)
        base.set("CalendarItemType", "Exception")
        master.exceptions[key] = base
    return master.exceptions[key]


def find_original(master: Item, instant: str) -> dt.datetime:
    wanted = parse_dt(instant)
    for start in original_starts(master, until=wanted + dt.timedelta(seconds=1)):
        if start == wanted:
            return start
    raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")


def nth_original(master: Item, index: int) -> dt.datetime:
    for i, start in enumerate(original_starts(master, until=parse_dt(master.text("Start")) + HORIZON), start=1):
        if i == index:
            return start
    raise ItemError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                    "The occurrence index is out of the recurrence range.")


def refresh_series(master: Item) -> None:
    """Server-computed series properties: FirstOccurrence, LastOccurrence, Modified/DeletedOccurrences."""
    for tag in SERIES_ONLY[1:]:
        master.props.pop(tag, None)
    if master.props.get("Recurrence") is None:
        return
    starts = list(original_starts(master, until=parse_dt(master.text("Start")) + HORIZON))
    holder = etree.Element("x")
    live = [s for s in starts if iso(s) not in master.deleted_occurrences]
    for tag, pick in (("FirstOccurrence", live[:1]), ("LastOccurrence", live[-1:])):
        for s in pick:
            occ = occurrence(master, s)
            if occ is None:
                continue
            el = sub(holder, t(tag))
            sub(el, t("ItemId"), Id=occ.id, ChangeKey=master.change_key or "")
            sub(el, t("Start"), occ.text("Start"))
            sub(el, t("End"), occ.text("End"))
            sub(el, t("OriginalStart"), iso(s))
            master.props[tag] = el
    if master.exceptions:
        mod = sub(holder, t("ModifiedOccurrences"))
        for key in sorted(master.exceptions):
            exc = master.exceptions[key]
            o = sub(mod, t("Occurrence"))
            sub(o, t("ItemId"), Id=ids.occurrence_id(master.id, key), ChangeKey=master.change_key or "")
            sub(o, t("Start"), exc.text("Start"))
            sub(o, t("End"), exc.text("End"))
            sub(o, t("OriginalStart"), key)
        master.props["ModifiedOccurrences"] = mod
    if master.deleted_occurrences:
        dele = sub(holder, t("DeletedOccurrences"))
        for key in sorted(master.deleted_occurrences):
            sub(sub(dele, t("DeletedOccurrence")), t("Start"), key)
        master.props["DeletedOccurrences"] = dele


def view(items: list[Item], start: dt.datetime, end: dt.datetime) -> list[Item]:
    """A CalendarView: singles, occurrences and exceptions overlapping [start, end), by start."""
    out: list[Item] = []
    for item in items:
        if item.kind != "CalendarItem":
            continue
        if item.props.get("Recurrence") is None:
            s, e = parse_dt(item.text("Start")), parse_dt(item.text("End"))
            if s < end and (e > start or s == e == start):
                out.append(item)
            continue
        span = duration(item)
        for original in original_starts(item, until=end + dt.timedelta(days=366)):
            occ = occurrence(item, original)
            if occ is None:
                continue
            s, e = parse_dt(occ.text("Start")), parse_dt(occ.text("End"))
            if s < end and e > start:
                out.append(occ)
            if original > end + span + dt.timedelta(days=366):
                break
    return sorted(out, key=lambda i: parse_dt(i.text("Start")))


def copy_props(item: Item) -> dict[str, etree._Element]:
    return {k: copy.deepcopy(v) for k, v in item.props.items()}
