"""Pega → Exchange → Pega: the inbound engine (shared.sync.inbound, run here in-process against the
same simulators and tables) sees our writes as echoes and writes nothing back to Pega; a real
Outlook edit afterwards produces exactly one Pega write, and nothing after it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from shared.config import load_settings
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.state import StateStore
from shared.sync.context import close_sync_context
from shared.sync.inbound import run_delta_round
from tests.sync_outbound.conftest import b64, host_settings, new_pega_contact

SOON = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT10:00")
SOON_END = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT11:00")


@pytest.fixture
async def inbound(azurite_conn, graph_sim, pega_sim, issuer, host_pega_adapter) -> AsyncIterator[Services]:
    env = {"AzureWebJobsStorage": azurite_conn, **host_settings(azurite_conn, graph_sim, pega_sim, issuer[1],
                                                                pega_adapter=host_pega_adapter)}
    settings = load_settings(env)
    svc = Services(settings=settings, state=await StateStore.open(settings.storage),
                   queues=QueueSender.from_settings(settings.storage))
    yield svc
    await close_sync_context()
    await svc.close()


async def pega_writes(pega_control) -> int:
    """Writes the Pega simulator received so far (creates, case actions, SA updates)."""
    counts = (await pega_control.requests())["byRoute"]
    return sum(n for route, n in counts.items()
               if route.split(" ")[0] in ("PUT", "PATCH") or (route.startswith("POST ") and "data_views" not in route
                                                              and "/lookups/" not in route and "token" not in route))


async def round_(inbound, rep, kind):
    report = await run_delta_round(inbound, mailbox=rep.upn, kind=kind, reason="test")
    assert report.completed and not report.failed, report.as_dict()
    return report


async def test_appointment_round_trip_has_no_echo_and_one_edit_makes_one_write(
        api, rep, inbound, pega_records, pega_control, graph_http):
    m = pega_records.m
    # the Pega record holds what Pega sends (as a real Pega would)
    pega_id = (await pega_records.client.create_case(m.case_types.appointment, {
        m.appointment.subject: "Demo for Fabrikam", m.appointment.location: "Online"})).id
    await round_(inbound, rep, "calendar")  # the mailbox's first round (empty calendar)
    op = await api.run("POST", "pega/v1/appointments", {
        "pegaId": pega_id, "operator": rep.operator, "subject": "Demo for Fabrikam",
        "start": {"dateTime": SOON, "timeZone": "Europe/Berlin"}, "end": {"dateTime": SOON_END, "timeZone": "Europe/Berlin"},
        "attendees": [{"email": "dana@fabrikam.example", "name": "Dana"}], "location": "Online",
        "changedAt": "2026-11-20T10:00:00Z"})
    before = await pega_writes(pega_control)
    report = await round_(inbound, rep, "calendar")
    assert report.synced == 0 and report.skipped.get("echo", 0) >= 1, report.as_dict()
    assert await pega_writes(pega_control) == before

    # a Pega update comes back as an echo too
    await pega_records.client.case_action(pega_id, m.actions.update, {m.appointment.subject: "Demo for Fabrikam (confirmed)"})
    await api.run("PATCH", f"pega/v1/appointments/{quote(pega_id, safe='')}",
                  {"operator": rep.operator, "subject": "Demo for Fabrikam (confirmed)", "changedAt": "2026-11-20T11:00:00Z"})
    before = await pega_writes(pega_control)
    report = await round_(inbound, rep, "calendar")
    assert report.synced == 0 and report.skipped.get("echo", 0) >= 1, report.as_dict()
    assert await pega_writes(pega_control) == before

    # the rep edits it in Outlook: one write to Pega, then quiet
    r = await graph_http.patch(f"/users/{rep.upn}/events/{op['exchangeId']}", json={"location": {"displayName": "HQ"}})
    r.raise_for_status()
    before = await pega_writes(pega_control)
    report = await round_(inbound, rep, "calendar")
    assert report.outcomes.get("updated") == 1, report.as_dict()
    assert await pega_writes(pega_control) == before + 1
    case = await pega_records.client.get_case(pega_id)
    assert case.content.get(m.appointment.location) == "HQ"
    assert case.content.get(m.appointment.subject) == "Demo for Fabrikam (confirmed)"
    report = await round_(inbound, rep, "calendar")
    assert report.synced == 0
    assert await pega_writes(pega_control) == before + 1
    # Pega cancels: the event is cancelled in Exchange, the inbound engine writes nothing back
    await api.run("POST", f"pega/v1/appointments/{quote(pega_id, safe='')}/cancel",
                  {"operator": rep.operator, "comment": "Postponed", "changedAt": "2026-11-20T12:00:00Z"})
    report = await round_(inbound, rep, "calendar")
    assert report.synced == 0, report.as_dict()
    assert await pega_writes(pega_control) == before + 1


async def test_contact_round_trip_has_no_echo(api, rep, inbound, pega_records, pega_control):
    pega_id = await new_pega_contact(pega_records)
    await round_(inbound, rep, "contacts")
    await api.run("POST", "pega/v1/contacts", {
        "pegaId": pega_id, "operator": rep.operator, "givenName": "Dana", "surname": "Lopez",
        "emailAddresses": [{"email": "dana@fabrikam.example"}], "companyName": "Fabrikam",
        "photo": {"contentType": "image/jpeg", "contentBytes": b64(b"\xff\xd8\xff\xe0photo\xff\xd9")},
        "changedAt": "2026-11-20T10:00:00Z"})
    before = await pega_writes(pega_control)
    report = await round_(inbound, rep, "contacts")
    assert report.synced == 0 and report.skipped.get("echo", 0) == 1, report.as_dict()
    await api.run("PATCH", f"pega/v1/contacts/{quote(pega_id, safe='')}",
                  {"operator": rep.operator, "jobTitle": "CFO", "changedAt": "2026-11-20T11:00:00Z"})
    report = await round_(inbound, rep, "contacts")
    assert report.synced == 0 and report.skipped.get("echo", 0) == 1, report.as_dict()
    # closing in Pega clears the category in Outlook; the inbound engine sees nothing to do
    await api.run("POST", f"pega/v1/contacts/{quote(pega_id, safe='')}/close",
                  {"operator": rep.operator, "changedAt": "2026-11-20T12:00:00Z"})
    report = await round_(inbound, rep, "contacts")
    assert report.synced == 0, report.as_dict()
    assert await pega_writes(pega_control) == before


async def test_sent_email_round_trip_has_no_echo(api, rep, inbound, pega_records, pega_control):
    m = pega_records.m
    pega_id = (await pega_records.client.create_case(m.case_types.email, {m.email.subject: "Pricing"})).id
    await round_(inbound, rep, "email")
    await api.run("POST", "pega/v1/emails", {
        "pegaId": pega_id, "operator": rep.operator, "subject": "Pricing", "to": [{"email": "dana@fabrikam.example"}],
        "body": {"contentType": "text", "content": "Figures attached."}, "changedAt": "2026-11-20T10:00:00Z"})
    before = await pega_writes(pega_control)
    report = await round_(inbound, rep, "email")
    assert report.synced == 0 and report.skipped.get("echo", 0) == 1, report.as_dict()
    assert await pega_writes(pega_control) == before


async def test_recurring_appointment_from_pega_round_trip_has_no_echo(api, rep, inbound, pega_records, pega_control):
    from tests.sync_outbound.test_appointments import create_body, pega_appointment

    pega_id = await pega_appointment(pega_records)
    await round_(inbound, rep, "calendar")
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%d")
    await api.run("POST", "pega/v1/appointments", create_body(
        rep, pega_id, start={"dateTime": f"{day}T09:00", "timeZone": "UTC"},
        end={"dateTime": f"{day}T10:00", "timeZone": "UTC"},
        recurrence={"pattern": {"type": "daily", "interval": 1},
                    "range": {"type": "numbered", "startDate": day, "numberOfOccurrences": 3}}))
    before = await pega_writes(pega_control)
    report = await round_(inbound, rep, "calendar")
    assert report.synced == 0 and report.skipped.get("series_from_pega") == 3, report.as_dict()
    assert await pega_writes(pega_control) == before


async def _planning_made_in_pega(api, rep, inbound, pega_records) -> tuple[str, dict]:
    """An appointment "Planning" made in Pega and sent to Outlook, the link settled: (Pega id, operation)."""
    m = pega_records.m
    pega_id = (await pega_records.client.create_case(m.case_types.appointment, {m.appointment.subject: "Planning"})).id
    await round_(inbound, rep, "calendar")
    op = await api.run("POST", "pega/v1/appointments", {
        "pegaId": pega_id, "operator": rep.operator, "subject": "Planning",
        "start": {"dateTime": SOON, "timeZone": "Europe/Berlin"}, "end": {"dateTime": SOON_END, "timeZone": "Europe/Berlin"},
        "changedAt": "2026-11-20T10:00:00Z"})
    await round_(inbound, rep, "calendar")  # our own create comes back: an echo, the link settles
    return pega_id, op


async def _pega_rename_call_arrives(api, rep, pega_records, graph_http, pega_id: str, op: dict,
                                    pega_saved_at: str) -> tuple[str, str]:
    """Pega's call for its rename to "Planning (Pega)" (saved at `pega_saved_at`) arrives and succeeds;
    returns the title in Outlook and in Pega after it."""
    upd = await api.run("PATCH", f"pega/v1/appointments/{quote(pega_id, safe='')}",
                        {"operator": rep.operator, "subject": "Planning (Pega)", "changedAt": pega_saved_at})
    assert upd["status"] == "succeeded", upd
    event = (await graph_http.get(f"/users/{rep.upn}/events/{op['exchangeId']}")).json()
    return event["subject"], (await pega_records.client.get_case(pega_id)).content[pega_records.m.appointment.subject]


async def test_both_sides_rename_one_meeting_at_once_and_the_sides_agree(
        api, rep, inbound, pega_records, graph_http):
    """Found by chaos seed 103: the rep renamed a meeting in Pega and in Outlook moments apart. The
    inbound merge saw both renames and let the later one (Outlook's) win, writing it to Pega; then
    Pega's call for its own rename arrived and pushed the losing title to Outlook: each side ended
    with the other's title. The merge's decision now holds for the call of the version it decided."""
    m = pega_records.m
    pega_id, op = await _planning_made_in_pega(api, rep, inbound, pega_records)
    # the rep renames it in Pega ...
    await pega_records.client.case_action(pega_id, m.actions.update, {m.appointment.subject: "Planning (Pega)"})
    pega_saved_at = (await pega_records.client.get_case(pega_id)).last_update_time
    assert pega_saved_at
    # ... and in Outlook, after that
    r = await graph_http.patch(f"/users/{rep.upn}/events/{op['exchangeId']}", json={"subject": "Planning (Outlook)"})
    r.raise_for_status()
    # the inbound merge runs first: both changed the title, the later (Outlook's) wins on both sides
    await round_(inbound, rep, "calendar")
    assert (await pega_records.client.get_case(pega_id)).content[m.appointment.subject] == "Planning (Outlook)"
    # then Pega's call for its (older, already decided) rename arrives
    outlook_title, in_pega = await _pega_rename_call_arrives(api, rep, pega_records, graph_http, pega_id, op,
                                                             pega_saved_at)
    assert outlook_title == in_pega == "Planning (Outlook)"


async def test_a_pega_rename_seen_by_a_round_before_outlooks_rename_is_still_a_conflict(
        api, rep, inbound, pega_records, graph_http):
    """Chaos seed 434: as seed 103, but an inbound round ran between the two renames. It saw only
    Pega's (whose push to Outlook is the Pega -> Exchange call's) and kept Pega's title as the last
    synced one, though Outlook did not hold it yet; Outlook's rename then looked like the only change
    and went to Pega with no conflict recorded, and Pega's call pushed the title Pega no longer held
    to Outlook: each side ended with the other's. The last synced state is now what Outlook holds."""
    m = pega_records.m
    pega_id, op = await _planning_made_in_pega(api, rep, inbound, pega_records)
    await pega_records.client.case_action(pega_id, m.actions.update, {m.appointment.subject: "Planning (Pega)"})
    pega_saved_at = (await pega_records.client.get_case(pega_id)).last_update_time
    assert pega_saved_at
    # a round runs (another item of the mailbox changed): it sees Pega's rename, Outlook's not yet made
    other = await graph_http.post(f"/users/{rep.upn}/events", json={
        "subject": "Unrelated", "start": {"dateTime": SOON, "timeZone": "Europe/Berlin"},
        "end": {"dateTime": SOON_END, "timeZone": "Europe/Berlin"}})
    other.raise_for_status()
    r = await graph_http.patch(f"/users/{rep.upn}/events/{op['exchangeId']}", json={"location": {"displayName": "Room 1"}})
    r.raise_for_status()
    await round_(inbound, rep, "calendar")
    assert (await graph_http.get(f"/users/{rep.upn}/events/{op['exchangeId']}")).json()["subject"] == "Planning"
    r = await graph_http.patch(f"/users/{rep.upn}/events/{op['exchangeId']}", json={"subject": "Planning (Outlook)"})
    r.raise_for_status()
    await round_(inbound, rep, "calendar")
    outlook_title, in_pega = await _pega_rename_call_arrives(api, rep, pega_records, graph_http, pega_id, op,
                                                             pega_saved_at)
    assert outlook_title == in_pega, (outlook_title, in_pega)


async def test_a_retried_pega_call_does_not_push_a_title_pega_no_longer_holds(
        api, rep, inbound, pega_records, graph_http):
    """Chaos seeds 261 and 434 (fresh-clone run, 2026-12-06): Pega's call for its rename wrote Outlook,
    but Graph's answer was lost (504 after the write); the call is retried later. Meanwhile a round saw
    both sides agree on Pega's title, then the rep renamed the meeting in Outlook and a round wrote that
    to Pega. The retry still carried the old Pega title and, no conflict being recorded, pushed it to
    Outlook: each side ended with the other's. A call whose values Pega has since replaced is merged
    with what Pega holds now."""
    m = pega_records.m
    pega_id, op = await _planning_made_in_pega(api, rep, inbound, pega_records)
    await pega_records.client.case_action(pega_id, m.actions.update, {m.appointment.subject: "Planning (Pega)"})
    pega_saved_at = (await pega_records.client.get_case(pega_id)).last_update_time
    # the call's first try: its PATCH of Outlook happened, its answer was lost (the link was not updated)
    r = await graph_http.patch(f"/users/{rep.upn}/events/{op['exchangeId']}", json={"subject": "Planning (Pega)"})
    r.raise_for_status()
    await round_(inbound, rep, "calendar")  # both sides agree on Pega's title
    r = await graph_http.patch(f"/users/{rep.upn}/events/{op['exchangeId']}", json={"subject": "Planning (Outlook)"})
    r.raise_for_status()
    await round_(inbound, rep, "calendar")  # the later rename goes to Pega
    assert (await pega_records.client.get_case(pega_id)).content[m.appointment.subject] == "Planning (Outlook)"
    outlook_title, in_pega = await _pega_rename_call_arrives(api, rep, pega_records, graph_http, pega_id, op,
                                                             pega_saved_at)
    assert outlook_title == in_pega == "Planning (Outlook)", (outlook_title, in_pega)
