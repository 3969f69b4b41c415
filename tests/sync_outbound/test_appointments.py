"""Appointments: Pega → events in the rep's calendar, through the host's HTTP layer and queue worker."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.parametrize("backend", ["graph", "ews"])


async def pega_appointment(pega_records, subject: str = "Intro call") -> str:
    m = pega_records.m
    case = await pega_records.client.create_case(m.case_types.appointment, {m.appointment.subject: subject})
    return case.id


def create_body(rep, pega_id, **extra):
    body = {"pegaId": pega_id, "operator": rep.operator, "subject": "Pricing review with Fabrikam",
            "start": {"dateTime": "2026-12-01T09:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-12-01T09:30:00", "timeZone": "W. Europe Standard Time"},
            "location": "Teams", "body": {"contentType": "text", "content": "Agenda: pricing"},
            "attendees": [{"email": "dana@fabrikam.example", "name": "Dana", "type": "required"}],
            "changedAt": "2026-11-20T10:00:00Z"}
    body.update(extra)
    return body


async def events_of(graph_http, upn):
    resp = await graph_http.get(f"/users/{upn}/events", params={"$top": "50"})
    resp.raise_for_status()
    return resp.json()["value"]


async def test_create_makes_one_event_with_times_attendees_and_pega_id_and_reports_back(
        api, rep, pega_records, outlook, state):
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    [ev] = await outlook.events(rep.upn)
    assert ev.id == op["exchangeId"]
    assert ev.subject == "Pricing review with Fabrikam"
    assert ev.location == "Teams"
    assert ev.attendees == ["dana@fabrikam.example"]
    # 09:00 Berlin in December is 08:00 UTC
    assert ev.start == dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    assert ev.end == dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC)
    assert ev.pega_id == pega_id
    # linked both ways, with the changeKey Exchange holds now (echo suppression)
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link is not None and link.graph_id == ev.id and link.kind == "event"
    assert link.graph_change_key == ev.change_key
    assert link.graph_hash and link.snapshot["subject"] == "Pricing review with Fabrikam"
    # the Exchange id was reported to the Pega record
    case = await pega_records.client.get_case(pega_id)
    assert case.content[pega_records.m.appointment.external_id] == ev.id


@pytest.mark.graph_only("EWS has no transactionId; there the PegaId stamp, looked up before a create, does it")
async def test_a_graph_create_carries_a_transaction_id(api, rep, pega_records, graph_http):
    """The event's transactionId makes a retried POST never a second event."""
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    got = await graph_http.get(f"/users/{rep.upn}/events/{op['exchangeId']}")
    assert got.json().get("transactionId")


async def test_invitations_reach_internal_attendees(api, rep, pega_records, outlook):
    other = await outlook.new_user()
    pega_id = await pega_appointment(pega_records)
    body = create_body(rep, pega_id, attendees=[{"email": other, "name": "Colleague"},
                                                {"email": "dana@fabrikam.example", "type": "optional"}])
    await api.run("POST", "pega/v1/appointments", body)
    assert await outlook.invitations(other) == [("Pricing review with Fabrikam", rep.upn)]


async def test_a_second_create_for_the_same_appointment_finds_the_event(api, rep, pega_records, outlook):
    """Two operations (different Idempotency-Keys) for one Pega appointment → still one event."""
    pega_id = await pega_appointment(pega_records)
    first = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    second = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, subject="Changed"))
    assert first["operationId"] != second["operationId"]
    assert first["exchangeId"] == second["exchangeId"]
    assert len(await outlook.events(rep.upn)) == 1


async def test_update_patches_only_changed_fields_and_keeps_outlook_edits(api, rep, pega_records, outlook, state):
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    event_id = op["exchangeId"]
    # the rep moves the location in Outlook meanwhile
    await outlook.move(rep.upn, event_id, location="Room 7")
    # Pega changes the subject only
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    upd = await api.run("PATCH", path, {"operator": rep.operator, "subject": "Pricing review (v2)",
                                        "changedAt": "2026-11-20T11:00:00Z"})
    assert upd["exchangeId"] == event_id
    ev = await outlook.event(rep.upn, event_id)
    assert ev.subject == "Pricing review (v2)"
    assert ev.location == "Room 7"  # the Outlook edit survives
    # the Outlook-only change went to Pega in the same merge, so nothing is left pending either way
    case = await pega_records.client.get_case(pega_id)
    assert case.content.get(pega_records.m.appointment.location) == "Room 7"
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.graph_change_key == ev.change_key
    assert link.snapshot["location"] == "Room 7" and link.snapshot["subject"] == "Pricing review (v2)"
    # Pega moves it to New York time: only start/end change
    await api.run("PATCH", path, {"operator": rep.operator, "changedAt": "2026-11-20T12:00:00Z",
                                  "start": {"dateTime": "2026-12-01T09:00", "timeZone": "America/New_York"},
                                  "end": {"dateTime": "2026-12-01T10:00", "timeZone": "America/New_York"}})
    ev = await outlook.event(rep.upn, event_id)
    assert ev.start == dt.datetime(2026, 12, 1, 14, tzinfo=dt.UTC)  # 09:00 EST = 14:00 UTC
    assert ev.end == dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC)
    assert ev.start_zone == "Eastern Standard Time"  # the meeting moved zone, not just time
    assert ev.subject == "Pricing review (v2)" and ev.location == "Room 7"


async def test_update_mails_the_customer_once_per_real_change(api, rep, pega_records, outlook):
    """Each Pega change of a meeting is ONE update to the attendee (graph.md §10), none for a resend."""
    pega_id = await pega_appointment(pega_records)
    await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    await api.run("PATCH", path, {"operator": rep.operator, "subject": "Pricing review (v2)",
                                  "changedAt": "2026-11-20T11:00:00Z"})
    await api.run("PATCH", path, {"operator": rep.operator, "subject": "Pricing review (v2)",
                                  "changedAt": "2026-11-20T11:30:00Z"})
    await api.run("PATCH", path, {"operator": rep.operator, "changedAt": "2026-11-20T12:00:00Z",
                                  "start": {"dateTime": "2026-12-01T09:00", "timeZone": "America/New_York"},
                                  "end": {"dateTime": "2026-12-01T10:00", "timeZone": "America/New_York"}})
    mail = await outlook.meeting_mail(rep.upn)
    assert mail.by_recipient == {"dana@fabrikam.example": 3}  # the invitation and two updates
    assert (mail.requests, mail.updates) == (1, 2)


async def test_recurring_appointment_becomes_a_series(api, rep, pega_records, outlook):
    pega_id = await pega_appointment(pega_records)
    rec = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
           "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 4}}
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, recurrence=rec))
    ev = await outlook.event(rep.upn, op["exchangeId"])
    assert ev.series_days == ["tuesday"]
    assert ev.occurrences == 4


async def test_cancel_as_organizer_cancels_with_comment(api, rep, pega_records, outlook, state):
    other = await outlook.new_user()
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, attendees=[{"email": other}]))
    done = await api.run("POST", f"pega/v1/appointments/{quote(pega_id, safe='')}/cancel",
                         {"operator": rep.operator, "comment": "Customer postponed", "changedAt": "2026-11-21T08:00:00Z"})
    assert done["exchangeId"] == op["exchangeId"]
    assert await outlook.events(rep.upn) == []  # cancelled events leave the organizer's calendar
    assert await outlook.cancellations(other) == ["Pricing review with Fabrikam"]
    assert (await outlook.meeting_mail(rep.upn)).cancellations == 1
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.state == "closed"


async def test_cancel_as_attendee_declines_and_the_organizer_is_told(api, rep, pega_records, outlook, state):
    from shared.storage.links import Link

    organizer = await outlook.new_user("Organizer")
    copy_id = await outlook.invite(organizer, rep.upn, "Their meeting")
    pega_id = await pega_appointment(pega_records, "Their meeting")
    await state.links.create(Link(mailbox=rep.upn, kind="event", graph_id=copy_id, pega_id=pega_id))
    done = await api.run("POST", f"pega/v1/appointments/{quote(pega_id, safe='')}/cancel",
                         {"operator": rep.operator, "comment": "Cannot make it", "changedAt": "2026-11-21T08:00:00Z"})
    assert done["exchangeId"] == copy_id
    assert await outlook.events(rep.upn) == []
    [theirs] = await outlook.events(organizer)
    assert theirs.responses[rep.upn] == "declined"
    assert not theirs.cancelled  # the organizer's meeting goes on
