"""Calendar: calendarView/delta over the rolling window → Pega appointments, occurrence by occurrence.

Real Graph simulator (server-side recurrence expansion, sparse occurrences, time zones with DST)
and Pega simulator over HTTP, state in Azurite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from shared.config import PrivatePolicy
from shared.sync.mapping import META_BY
from shared.sync.planner import BY_PEGA
from shared.sync.source import calendar_window, stagger

pytestmark = [
    pytest.mark.parametrize("backend", ["graph", "ews"]),  # Exchange Online and on-premises mailboxes
    pytest.mark.parametrize("pega_adapter", ["sync-service", "dx-v2"]),  # shared/pega/adapter.py
]

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
UTC = dt.UTC


async def sim_now(inbound) -> dt.datetime:
    return await inbound.now()


def event_body(subject: str, start: dt.datetime, *, minutes: int = 30, tz: str = "UTC", **extra):
    end = start + dt.timedelta(minutes=minutes)
    fmt = "%Y-%m-%dT%H:%M:%S"
    return {"subject": subject, "body": {"contentType": "html", "content": f"<p>{subject}</p>"},
            "start": {"dateTime": start.strftime(fmt), "timeZone": tz},
            "end": {"dateTime": end.strftime(fmt), "timeZone": tz},
            "attendees": [{"emailAddress": DANA, "type": "required"}], **extra}


async def appointments(inbound) -> list[dict]:
    return [r for r in await inbound.pega_records("appointment") if r["content"].get("ExchangeID")]


def by_ext(records, ext_id):
    found = [r for r in records if r["content"]["ExchangeID"] == ext_id]
    assert len(found) == 1, f"exactly one Pega appointment for {ext_id}: {found}"
    return found[0]


async def test_meeting_created_touched_updated_and_cancelled_never_deleted(inbound) -> None:
    await inbound.onboard()
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Intro call", now + dt.timedelta(days=2)))
    created = await inbound.run("calendar")
    assert created.outcomes["created"] == 1, created.as_dict()
    rec = by_ext(await appointments(inbound), ev["id"])
    assert rec["content"]["Subject"] == "Intro call" and rec["content"]["ContactID"]
    assert rec["content"]["OwnerOperator"] == "alex"

    # opening the appointment in Outlook bumps changeKey/lastModified only: nothing is written
    await inbound.touch(ev["id"], subject="Intro call")
    touched = await inbound.run("calendar")
    assert touched.items == 1 and touched.skipped["unchanged"] == 1 and touched.synced == 0, touched.as_dict()
    assert by_ext(await appointments(inbound), ev["id"])["etag"] == rec["etag"]

    await inbound.user_call("PATCH", f"events/{ev['id']}", json={"subject": "Intro call (agenda)"})
    updated = await inbound.run("calendar")
    assert updated.outcomes["updated"] == 1, updated.as_dict()
    assert by_ext(await appointments(inbound), ev["id"])["content"]["Subject"] == "Intro call (agenda)"

    await inbound.user_call("DELETE", f"events/{ev['id']}")
    cancelled = await inbound.run("calendar")
    assert cancelled.outcomes["cancelled"] == 1, cancelled.as_dict()
    rec = by_ext(await appointments(inbound), ev["id"])
    assert rec["content"]["pyStatusWork"] == "Resolved-Cancelled", "cancelled in Pega, not deleted"
    again = await inbound.run("calendar")
    assert again.synced == 0


async def test_weekly_series_with_a_moved_and_a_cancelled_occurrence_across_dst(inbound) -> None:
    await inbound.onboard(past_days=60)
    now = await sim_now(inbound)
    # first Monday at least 3 weeks back: the series spans a DST change in America/Los_Angeles when now is
    # near one, and in every case the local wall-clock time must stay 09:00 Pacific
    first = (now - dt.timedelta(days=21)).date()
    first -= dt.timedelta(days=first.weekday())
    tz = "Pacific Standard Time"
    body = event_body("Weekly sync with Fabrikam", dt.datetime.combine(first, dt.time(9, 0)), tz=tz)
    body["recurrence"] = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                          "range": {"type": "numbered", "startDate": first.isoformat(), "numberOfOccurrences": 8,
                                    "recurrenceTimeZone": tz}}
    master = await inbound.user_call("POST", "events", json=body)
    instances = (await inbound.user_call("GET", f"events/{master['id']}/instances", params={
        "startDateTime": (now - dt.timedelta(days=60)).isoformat(), "endDateTime": (now + dt.timedelta(days=90)).isoformat(),
    }))["value"]
    assert len(instances) == 8
    moved, cancelled = instances[4], instances[5]
    moved_start = dt.datetime.fromisoformat(moved["start"]["dateTime"][:19]) + dt.timedelta(hours=2)
    await inbound.user_call("PATCH", f"events/{moved['id']}", json={
        "start": {"dateTime": moved_start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (moved_start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    await inbound.user_call("DELETE", f"events/{cancelled['id']}")

    report = await inbound.run("calendar")
    assert report.outcomes["created"] == 7, report.as_dict()
    recs = await appointments(inbound)
    assert len(recs) == 7 and not [r for r in recs if r["content"]["ExchangeID"] == cancelled["id"]]
    la = dt.UTC
    from zoneinfo import ZoneInfo

    la = ZoneInfo("America/Los_Angeles")
    for r in recs:
        c = r["content"]
        start = dt.datetime.fromisoformat(c["StartTime"].replace("Z", "+00:00"))
        assert c["TimeZone"] == tz and c["Subject"] == "Weekly sync with Fabrikam", c
        assert c["ContactID"], "occurrences are filled from the master (attendees) and associated"
        if c["ExchangeID"] == moved["id"]:
            assert start.astimezone(la).hour == 11, "the moved occurrence keeps its own time"
        else:
            assert start.astimezone(la).time() == dt.time(9, 0), f"09:00 Pacific across DST: {start}"

    # cancel one more occurrence after it was synced: only that one is cancelled in Pega
    third = instances[2]
    await inbound.user_call("DELETE", f"events/{third['id']}")
    later = await inbound.run("calendar")
    assert later.outcomes["cancelled"] == 1 and later.outcomes["created"] == 0, later.as_dict()
    recs = await appointments(inbound)
    statuses = {r["content"]["ExchangeID"]: r["content"]["pyStatusWork"] for r in recs}
    assert statuses[third["id"]] == "Resolved-Cancelled"
    assert sum(1 for s in statuses.values() if s == "Resolved-Cancelled") == 1


@pytest.mark.parametrize("policy", [PrivatePolicy.SKIP, PrivatePolicy.MASK, PrivatePolicy.FULL])
async def test_private_appointments_follow_the_mailbox_policy(inbound, policy) -> None:
    await inbound.onboard(private_policy=policy)
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body(
        "Doctor", now + dt.timedelta(days=1), sensitivity="private", location={"displayName": "Clinic"}))
    report = await inbound.run("calendar")
    recs = await appointments(inbound)
    if policy is PrivatePolicy.SKIP:
        assert report.skipped["private"] == 1 and recs == [], report.as_dict()
        return
    rec = by_ext(recs, ev["id"])["content"]
    if policy is PrivatePolicy.MASK:
        assert rec["Subject"] == "Private appointment"
        assert not rec.get("Description") and not rec.get("Attendees") and not rec.get("Location")
        assert rec["StartTime"] and rec["EndTime"], "the time stays blocked"
    else:
        assert rec["Subject"] == "Doctor" and rec["Location"] == "Clinic"


async def test_an_event_moved_out_of_the_window_is_updated_not_cancelled(inbound) -> None:
    await inbound.onboard()
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Kick-off", now + dt.timedelta(days=3)))
    assert (await inbound.run("calendar")).outcomes["created"] == 1
    far = now + dt.timedelta(days=400)  # beyond future_days: leaves the window, delta says @removed
    await inbound.user_call("PATCH", f"events/{ev['id']}", json=event_body("Kick-off", far))
    report = await inbound.run("calendar")
    assert report.outcomes["cancelled"] == 0, report.as_dict()
    rec = by_ext(await appointments(inbound), ev["id"])["content"]
    assert rec["pyStatusWork"] != "Resolved-Cancelled"
    assert rec["StartTime"].startswith(far.strftime("%Y-%m-%d")), "the move itself reached Pega"


async def test_mass_deletion_is_held_and_reported_then_applied_when_confirmed(inbound) -> None:
    await inbound.onboard()
    now = await sim_now(inbound)
    ids = []
    for i in range(6):
        ev = await inbound.user_call("POST", "events", json=event_body(f"Call {i}", now + dt.timedelta(days=i + 1)))
        ids.append(ev["id"])
    assert (await inbound.run("calendar")).outcomes["created"] == 6
    for eid in ids:
        await inbound.user_call("DELETE", f"events/{eid}")
    held = await inbound.run("calendar")
    assert held.held and held.synced == 0, held.as_dict()
    assert all(r["content"]["pyStatusWork"] != "Resolved-Cancelled" for r in await appointments(inbound))
    health = await inbound.services.state.health.get(inbound.upn, "calendar")
    assert "delete safety" in health.last_error and health.consecutive_failures == 1
    still = await inbound.run("calendar")
    assert still.held, "held until confirmed"
    confirmed = await inbound.run("calendar", allow_mass_delete=True)
    assert confirmed.outcomes["cancelled"] == 6, confirmed.as_dict()


async def test_both_sides_edited_merge_field_by_field_and_a_true_conflict_follows_the_policy(inbound) -> None:
    await inbound.onboard()
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Review", now + dt.timedelta(days=2),
                                                                     location={"displayName": "Room 1"}))
    await inbound.run("calendar")
    rec = by_ext(await appointments(inbound), ev["id"])
    # the rep edits the location in Pega, the user edits the subject in Outlook: both survive
    await inbound.pega_control.update_appointment(rec["id"], "alex", {"Location": "Room 7"})
    await inbound.user_call("PATCH", f"events/{ev['id']}", json={"subject": "Review (final)"})
    merged = await inbound.run("calendar")
    assert merged.outcomes["updated"] == 1 and merged.conflicts == [], merged.as_dict()
    c = by_ext(await appointments(inbound), ev["id"])["content"]
    assert c["Subject"] == "Review (final)" and c["Location"] == "Room 7"

    # both edit the subject: a true conflict; the newer edit (Outlook's, made last) wins and is recorded
    await inbound.pega_control.update_appointment(rec["id"], "alex", {"Subject": "Review (Pega)"})
    await inbound.advance_clock(5)
    await inbound.user_call("PATCH", f"events/{ev['id']}", json={"subject": "Review (Outlook)"})
    conflict = await inbound.run("calendar")
    assert [(f, w) for _, f, w in conflict.conflicts] == [("subject", "exchange")], conflict.as_dict()
    assert by_ext(await appointments(inbound), ev["id"])["content"]["Subject"] == "Review (Outlook)"
    health = await inbound.services.state.health.get(inbound.upn, "calendar")
    assert health.skip_reasons.get("conflict") == 1


async def test_echo_of_our_own_write_to_exchange_is_not_written_back(inbound) -> None:
    await inbound.onboard()
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Demo", now + dt.timedelta(days=2)))
    await inbound.run("calendar")
    rec = by_ext(await appointments(inbound), ev["id"])
    # the Pega -> Exchange side writes a change to Exchange and records what it wrote on the link
    written = await inbound.app_call("PATCH", f"events/{ev['id']}", json={"subject": "Demo (from Pega)"})
    [link] = await inbound.links("event")
    from shared.sync.mapping import content_hash, map_event, snapshot
    from shared.sync.records import parse_event

    mapped = map_event(parse_event(written))
    await inbound.services.state.links.update(replace(
        link, graph_change_key=written["changeKey"], graph_hash=content_hash(mapped),
        snapshot=snapshot(mapped, meta={META_BY: BY_PEGA})))
    report = await inbound.run("calendar")
    assert report.skipped["echo"] == 1 and report.synced == 0, report.as_dict()
    assert by_ext(await appointments(inbound), ev["id"])["etag"] == rec["etag"], "nothing written back to Pega"


async def test_the_window_advances_daily_with_a_fresh_round_and_items_leaving_it_are_not_cancelled(inbound) -> None:
    await inbound.onboard(past_days=2)
    now = await sim_now(inbound)
    old = await inbound.user_call("POST", "events", json=event_body("Yesterday", now - dt.timedelta(days=1)))
    soon = await inbound.user_call("POST", "events", json=event_body("Tomorrow", now + dt.timedelta(days=1)))
    first = await inbound.run("calendar", now=now)
    assert first.outcomes["created"] == 2, first.as_dict()
    later = now + dt.timedelta(days=3)  # "Yesterday" is now before the window start
    second = await inbound.run("calendar", now=later)
    assert second.window_advanced and second.synced == 0, second.as_dict()
    cursor = await inbound.services.state.cursors.get(inbound.upn, "calendar", "calendarView")
    # the window moves once a day, at this mailbox's own time of day (staggered across the tenant)
    expected = calendar_window(later, past_days=2, future_days=inbound.services.settings.sync.future_days,
                               offset=stagger(inbound.upn))
    assert cursor.window_start == expected.start
    assert expected.start <= later - dt.timedelta(days=2) < expected.start + dt.timedelta(days=1)
    statuses = {r["content"]["ExchangeID"]: r["content"]["pyStatusWork"] for r in await appointments(inbound)}
    assert statuses == {old["id"]: "New", soon["id"]: "New"}, "leaving the window is not a cancellation"
