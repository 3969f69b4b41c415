"""The issue's "done when", end to end: a rep acts in Pega (the simulator's rep actions), the
simulator calls our contract the way Connect-REST would (Entra token from the Graph simulator,
function key, Idempotency-Key), and the result is in Outlook once, with ids linked both ways."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator

import pytest

from sandbox.graph.seed import PEGA_CLIENT_ID, PEGA_CLIENT_SECRET, TENANT_ID
from shared.storage.mailboxes import Mailbox
from shared.sync.inbound import run_delta_round
from tests.sync_outbound.test_round_trip import inbound  # noqa: F401  (fixture)

ALEX = "alex@contoso.example"
BLAIR = "blair@contoso.example"


@pytest.fixture
async def wired(pega_control, outbound_host, graph_sim, state) -> AsyncIterator[None]:
    """The Pega simulator calls this suite's host; alex is onboarded as Pega operator `alex`."""
    await state.mailboxes.put(Mailbox(upn=ALEX, pega_operator="alex"))
    await pega_control.configure(service_base_url=outbound_host.url, function_key=outbound_host.function_key,
                                 token_url=f"{graph_sim.base_url}/{TENANT_ID}/oauth2/v2.0/token",
                                 client_id=PEGA_CLIENT_ID, client_secret=PEGA_CLIENT_SECRET, max_attempts=3,
                                 backoff_seconds=0.2)
    yield
    await pega_control.configure(service_base_url="")


async def delivered(pega_control, n: int) -> list[dict]:
    calls = await pega_control.wait_outbound(n, within=20)
    assert all(c["state"] == "delivered" for c in calls), calls
    return calls


async def until(check, within: float = 30.0):
    deadline = time.monotonic() + within
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def test_appointment_with_dana_reply_in_thread_and_contact_each_once(
        wired, api, pega_control, pega_records, graph_http, state, inbound):  # noqa: F811
    m = pega_records.m
    # 1. Alex books a meeting with Dana (and Blair) in Pega
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(hour=14, minute=0, second=0, microsecond=0)
    subject = f"Fabrikam pricing {start:%H%M%S%f}"
    rec = await pega_control.create_appointment("alex", {
        m.appointment.subject: subject, m.appointment.start: start.isoformat().replace("+00:00", "Z"),
        m.appointment.end: (start + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        m.appointment.time_zone: "Europe/Berlin", m.appointment.location: "Teams",
        m.appointment.attendees: [{m.attendee.email: "dana@fabrikam.example", m.attendee.name: "Dana"},
                                  {m.attendee.email: BLAIR, m.attendee.name: "Blair"}]})
    calls = await delivered(pega_control, 1)
    assert calls[0]["operation_id"] == "createAppointment"

    async def event_id():
        case = await pega_records.client.get_case(rec["id"])
        return case.content.get(m.appointment.external_id)

    ev_id = await until(event_id)  # the Exchange id came back to Pega
    got = await graph_http.get(f"/users/{ALEX}/events/{ev_id}")
    assert got.status_code == 200, (got.status_code, got.text[:500])
    ev = got.json()
    assert ev["subject"] == subject
    assert {a["emailAddress"]["address"] for a in ev["attendees"]} == {"dana@fabrikam.example", BLAIR}
    mine = [e for e in (await graph_http.get(f"/users/{ALEX}/events", params={"$top": "200"})).json()["value"]
            if e["subject"] == subject]
    assert len(mine) == 1
    invited = [e for e in (await graph_http.get(f"/users/{BLAIR}/events", params={"$top": "200"})).json()["value"]
               if e["subject"] == subject]
    assert len(invited) == 1  # Graph sent Blair the invitation
    assert (await state.links.by_pega_id(ALEX, rec["id"])).graph_id == ev_id
    # the id report was written by the integration user: the simulator did not call us back for it
    await asyncio.sleep(0.5)
    assert len(await pega_control.outbound()) == 1

    # 2. Dana writes to Alex; the inbound engine brings it to Pega; Alex replies from Pega
    original = await api.graph_sim.control.inbound_mail(ALEX, subject=f"Question {subject}",
                                                        body="Can we talk about the discount?")
    report = await run_delta_round(inbound, mailbox=ALEX, kind="email", reason="test")
    assert report.outcomes.get("created", 0) >= 1, report.as_dict()
    original_link = await state.links.by_graph_id(ALEX, original["immutableId"])
    assert original_link is not None
    await pega_control.clear_outbound()
    reply = await pega_control.reply_email(original_link.pega_id, "alex", {
        m.email.body: "Yes, let us discuss on Tuesday.", m.email.body_type: "text"})
    calls = await delivered(pega_control, 1)
    assert calls[0]["operation_id"] == "replyToEmail"

    async def reply_id():
        case = await pega_records.client.get_case(reply["id"])
        return case.content.get(m.email.external_id)

    sent_id = await until(reply_id)
    sent = (await graph_http.get(f"/users/{ALEX}/messages/{sent_id}")).json()
    assert sent["conversationId"] == original["conversationId"] and not sent["isDraft"]
    assert [r["emailAddress"]["address"] for r in sent["toRecipients"]] == ["dana@fabrikam.example"]

    # 3. Alex adds a contact in Pega
    await pega_control.clear_outbound()
    contact = await pega_control.create_contact("alex", {m.contact.first_name: "Erin", m.contact.last_name: "Diaz",
                                                         m.contact.email: "erin@fabrikam.example"})
    await delivered(pega_control, 1)

    async def contact_id():
        rec_, _ = await pega_records.get_contact(contact["id"])
        return rec_.content.get(m.contact.external_id)

    cid = await until(contact_id)
    c = (await graph_http.get(f"/users/{ALEX}/contacts/{cid}")).json()
    assert (c["givenName"], c["surname"], c["categories"]) == ("Erin", "Diaz", ["PegaSASync"])
