"""No meeting-update storms (issue #13): Graph mails every attendee on every change of a meeting the
mailbox organizes, so a Pega change patches such an event only when an attendee-visible field really
changed, in one PATCH, and never for Pega-internal content. Each scenario counts the meeting
messages the simulator sent (GET /_sim/meeting-messages), to customers included."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest

from tests.sync_outbound.outlook import MeetingMail
from tests.sync_outbound.test_appointments import create_body, pega_appointment

pytestmark = pytest.mark.parametrize("backend", ["graph", "ews"])

DANA = "dana@fabrikam.example"


async def _run(api, state, method: str, path: str, body: dict) -> dict:
    """Run an operation and return what the executor recorded (patched/withheld fields)."""
    op = await api.run(method, path, body)
    stored = await state.operations.get(op["operationId"])
    assert stored is not None
    return dict(stored.result)


async def test_pega_edits_that_attendees_cannot_see_send_no_meeting_update(api, rep, pega_records, outlook,
                                                                            state) -> None:
    colleague = await outlook.new_user()
    attendees = [{"email": DANA, "name": "Dana", "type": "required"},
                 {"email": colleague, "type": "required"}]  # no name: Exchange fills one in
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, attendees=attendees))
    start = await outlook.meeting_mail(rep.upn)
    assert start.by_recipient == {DANA: 1, colleague: 1} and start.updates == 0
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    who = {"operator": rep.operator}

    # Pega-internal only: what the appointment relates to in Pega
    links = await _run(api, state, "PATCH", path, {**who, "links": {"opportunityId": "OPP-1"},
                                          "changedAt": "2026-11-20T11:00:00Z"})
    assert links["patched"] == []
    # the rep's own reminder and free/busy: not worth a mail to every attendee of a meeting
    personal = await _run(api, state, "PATCH", path, {**who, "reminderMinutesBeforeStart": 30, "showAs": "tentative",
                                             "changedAt": "2026-11-20T11:01:00Z"})
    assert personal["patched"] == [] and sorted(personal["withheld"]) == ["reminder_minutes", "show_as"]
    # everything re-sent unchanged (Pega saves the whole form): text body vs Exchange's HTML, attendees
    # without the names Exchange resolved, the zone as IANA instead of Windows
    body = create_body(rep, pega_id, attendees=attendees)
    resend = await _run(api, state, "PATCH", path, {k: v for k, v in body.items() if k != "pegaId"}
                           | {"changedAt": "2026-11-20T11:02:00Z"})
    assert resend["patched"] == [] and resend["conflicts"] == []
    assert (await outlook.meeting_mail(rep.upn)).updates == 0, "no meeting update for any of these"

    # a real change: one PATCH, one update per attendee
    moved = await _run(api, state, "PATCH", path, {**who, "location": "Room 7", "reminderMinutesBeforeStart": 10,
                                          "changedAt": "2026-11-20T12:00:00Z"})
    assert moved["patched"] == ["isReminderOn", "location", "reminderMinutesBeforeStart"]
    after = await outlook.meeting_mail(rep.upn)
    assert after.by_recipient == {DANA: 2, colleague: 2}  # the invitation and one update each
    ev = await outlook.event(rep.upn, op["exchangeId"])
    assert ev.location == "Room 7" and ev.reminder_minutes == 10


async def test_an_event_without_attendees_still_takes_personal_fields(api, rep, pega_records, outlook,
                                                                       state) -> None:
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, attendees=[]))
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    upd = await _run(api, state, "PATCH", path, {"operator": rep.operator, "reminderMinutesBeforeStart": 45,
                                        "changedAt": "2026-11-20T11:00:00Z"})
    assert upd["patched"] == ["isReminderOn", "reminderMinutesBeforeStart"] and upd["withheld"] == []
    assert (await outlook.event(rep.upn, op["exchangeId"])).reminder_minutes == 45
    assert await outlook.meeting_mail(rep.upn) == MeetingMail()


async def test_all_day_appointment_round_trips_without_a_spurious_change(api, rep, pega_records, outlook,
                                                                         state) -> None:
    """A rep in Los Angeles: the event is the right day in Exchange, and Pega re-sending the same
    appointment patches nothing (no conflict, no update to the customer)."""
    pega_id = await pega_appointment(pega_records)
    day = {"isAllDay": True, "start": {"dateTime": "2026-12-01T00:00", "timeZone": "America/Los_Angeles"},
           "end": {"dateTime": "2026-12-01T00:00", "timeZone": "America/Los_Angeles"}}
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, **day))
    ev = await outlook.event(rep.upn, op["exchangeId"])
    assert ev.all_day and ev.start_zone == "Pacific Standard Time"
    assert (ev.local_start, ev.local_end) == (dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 2))
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.snapshot["start"] == "2026-12-01T08:00:00Z" and link.snapshot["end"] == "2026-12-02T08:00:00Z"
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    again = await _run(api, state, "PATCH", path, {"operator": rep.operator, **day, "changedAt": "2026-11-20T11:00:00Z"})
    assert again["patched"] == [] and again["conflicts"] == []
    assert (await outlook.meeting_mail(rep.upn)).updates == 0


async def test_a_timed_appointment_made_all_day_in_pega_becomes_whole_days(api, rep, pega_records, outlook,
                                                                            state) -> None:
    """Pega sends only isAllDay: the event becomes its local day, midnight to midnight (Graph refuses
    anything else), in the rep's zone."""
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, attendees=[], start={
        "dateTime": "2026-12-01T09:00", "timeZone": "America/Los_Angeles"}, end={
        "dateTime": "2026-12-01T10:00", "timeZone": "America/Los_Angeles"}))
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    done = await _run(api, state, "PATCH", path, {"operator": rep.operator, "isAllDay": True,
                                                   "changedAt": "2026-11-20T11:00:00Z"})
    assert "isAllDay" in done["patched"]
    ev = await outlook.event(rep.upn, op["exchangeId"])
    assert ev.all_day and (ev.local_start, ev.local_end) == (dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 2))
