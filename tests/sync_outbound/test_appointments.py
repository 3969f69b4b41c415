"""Appointments: Pega → events in the rep's calendar, through the host's HTTP layer and queue worker."""

from __future__ import annotations

from urllib.parse import quote

from shared.outbound.graph_payloads import PEGA_ID_PROPERTY


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
        api, rep, pega_records, graph_http, state):
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    events = await events_of(graph_http, rep.upn)
    assert len(events) == 1
    ev = events[0]
    assert ev["id"] == op["exchangeId"]
    assert ev["subject"] == "Pricing review with Fabrikam"
    assert ev["location"]["displayName"] == "Teams"
    assert [a["emailAddress"]["address"] for a in ev["attendees"]] == ["dana@fabrikam.example"]
    # 09:00 Berlin in December is 08:00 UTC, whatever zone the event is read in
    got = await graph_http.get(f"/users/{rep.upn}/events/{ev['id']}", headers={"Prefer": 'outlook.timezone="UTC"'},
                               params={"$expand": f"singleValueExtendedProperties($filter=id eq '{PEGA_ID_PROPERTY}')"})
    full = got.json()
    assert full["start"]["dateTime"].startswith("2026-12-01T08:00:00")
    assert full["end"]["dateTime"].startswith("2026-12-01T08:30:00")
    assert full["singleValueExtendedProperties"][0]["value"] == pega_id
    assert full.get("transactionId")
    # linked both ways, with the changeKey Exchange holds now (echo suppression)
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link is not None and link.graph_id == ev["id"] and link.kind == "event"
    assert link.graph_change_key == full["changeKey"]
    assert link.graph_hash and link.snapshot["subject"] == "Pricing review with Fabrikam"
    # the Exchange id was reported to the Pega record
    case = await pega_records.client.get_case(pega_id)
    assert case.content[pega_records.m.appointment.external_id] == ev["id"]


async def test_invitations_reach_internal_attendees(api, rep, graph_sim, pega_records, graph_http):
    other = await graph_sim.control.new_user("Colleague")
    pega_id = await pega_appointment(pega_records)
    body = create_body(rep, pega_id, attendees=[{"email": other["userPrincipalName"], "name": "Colleague"},
                                                {"email": "dana@fabrikam.example", "type": "optional"}])
    await api.run("POST", "pega/v1/appointments", body)
    invited = await events_of(graph_http, other["userPrincipalName"])
    assert [e["subject"] for e in invited] == ["Pricing review with Fabrikam"]
    assert invited[0]["isOrganizer"] is False
    assert invited[0]["organizer"]["emailAddress"]["address"].lower() == rep.upn


async def test_a_second_create_for_the_same_appointment_finds_the_event(api, rep, pega_records, graph_http):
    """Two operations (different Idempotency-Keys) for one Pega appointment → still one event."""
    pega_id = await pega_appointment(pega_records)
    first = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    second = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, subject="Changed"))
    assert first["operationId"] != second["operationId"]
    assert first["exchangeId"] == second["exchangeId"]
    assert len(await events_of(graph_http, rep.upn)) == 1


async def test_update_patches_only_changed_fields_and_keeps_outlook_edits(api, rep, pega_records, graph_http, state):
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id))
    event_id = op["exchangeId"]
    # the rep moves the location in Outlook meanwhile
    r = await graph_http.patch(f"/users/{rep.upn}/events/{event_id}", json={"location": {"displayName": "Room 7"}})
    r.raise_for_status()
    # Pega changes the subject only
    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    upd = await api.run("PATCH", path, {"operator": rep.operator, "subject": "Pricing review (v2)",
                                        "changedAt": "2026-11-20T11:00:00Z"})
    assert upd["exchangeId"] == event_id
    ev = (await graph_http.get(f"/users/{rep.upn}/events/{event_id}")).json()
    assert ev["subject"] == "Pricing review (v2)"
    assert ev["location"]["displayName"] == "Room 7"  # the Outlook edit survives
    # the Outlook-only change went to Pega in the same merge, so nothing is left pending either way
    case = await pega_records.client.get_case(pega_id)
    assert case.content.get(pega_records.m.appointment.location) == "Room 7"
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.graph_change_key == ev["changeKey"]
    assert link.snapshot["location"] == "Room 7" and link.snapshot["subject"] == "Pricing review (v2)"
    # Pega moves it to New York time: only start/end change
    await api.run("PATCH", path, {"operator": rep.operator, "changedAt": "2026-11-20T12:00:00Z",
                                  "start": {"dateTime": "2026-12-01T09:00", "timeZone": "America/New_York"},
                                  "end": {"dateTime": "2026-12-01T10:00", "timeZone": "America/New_York"}})
    ev = (await graph_http.get(f"/users/{rep.upn}/events/{event_id}",
                               headers={"Prefer": 'outlook.timezone="UTC"'})).json()
    assert ev["start"]["dateTime"].startswith("2026-12-01T14:00:00")  # 09:00 EST = 14:00 UTC
    assert ev["end"]["dateTime"].startswith("2026-12-01T15:00:00")
    assert ev["subject"] == "Pricing review (v2)" and ev["location"]["displayName"] == "Room 7"


async def test_update_mails_the_customer_once_per_real_change(api, rep, graph_sim, pega_records, graph_http):
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
    [stats] = await graph_sim.control.meeting_messages(rep.upn)
    assert stats["byRecipient"] == {"dana@fabrikam.example": 3}  # the invitation and two updates
    assert (stats["requests"], stats["updates"]) == (1, 2)


async def test_recurring_appointment_becomes_a_series(api, rep, pega_records, graph_http):
    pega_id = await pega_appointment(pega_records)
    rec = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
           "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 4}}
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id, recurrence=rec))
    ev = (await graph_http.get(f"/users/{rep.upn}/events/{op['exchangeId']}")).json()
    assert ev["type"] == "seriesMaster"
    assert ev["recurrence"]["pattern"]["daysOfWeek"] == ["tuesday"]
    assert ev["recurrence"]["range"]["numberOfOccurrences"] == 4


async def test_cancel_as_organizer_cancels_with_comment(api, rep, graph_sim, pega_records, graph_http, state):
    other = await graph_sim.control.new_user("Colleague")
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments",
                       create_body(rep, pega_id, attendees=[{"email": other["userPrincipalName"]}]))
    done = await api.run("POST", f"pega/v1/appointments/{quote(pega_id, safe='')}/cancel",
                         {"operator": rep.operator, "comment": "Customer postponed", "changedAt": "2026-11-21T08:00:00Z"})
    assert done["exchangeId"] == op["exchangeId"]
    mine = await events_of(graph_http, rep.upn)
    assert mine == []  # cancelled events leave the organizer's calendar
    theirs = await events_of(graph_http, other["userPrincipalName"])
    assert all(e["isCancelled"] for e in theirs)
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.state == "closed"


async def test_cancel_as_attendee_declines_and_the_organizer_is_told(api, rep, graph_sim, pega_records, graph_http,
                                                                     state):
    from shared.storage.links import Link

    organizer = await graph_sim.control.new_user("Organizer")
    r = await graph_http.post(f"/users/{organizer['userPrincipalName']}/events", json={
        "subject": "Their meeting", "start": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-02T11:00:00", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": rep.upn}, "type": "required"}]})
    r.raise_for_status()
    copy = (await events_of(graph_http, rep.upn))[0]
    pega_id = await pega_appointment(pega_records, "Their meeting")
    await state.links.create(Link(mailbox=rep.upn, kind="event", graph_id=copy["id"], pega_id=pega_id))
    done = await api.run("POST", f"pega/v1/appointments/{quote(pega_id, safe='')}/cancel",
                         {"operator": rep.operator, "comment": "Cannot make it", "changedAt": "2026-11-21T08:00:00Z"})
    assert done["exchangeId"] == copy["id"]
    assert await events_of(graph_http, rep.upn) == []
    theirs = (await events_of(graph_http, organizer["userPrincipalName"]))[0]
    assert theirs["attendees"][0]["status"]["response"] == "declined"
    assert not theirs["isCancelled"]  # the organizer's meeting goes on
