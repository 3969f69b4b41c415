"""Failures reach the operation status and mailbox health; transient ones are retried through the
queue (honouring Retry-After); a burst of 100 operations for one mailbox stays within Outlook's
4 concurrent requests per app and mailbox (the simulator throttles anything above 4)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from sandbox.graph.seed import SYNC_CLIENT_ID
from tests.sync_outbound.conftest import id_report_fault, new_pega_contact
from tests.sync_outbound.test_appointments import create_body, events_of, pega_appointment


@pytest.fixture
async def fault(graph_sim):
    added: list[str] = []

    async def add(**rule):
        r = await graph_sim.control.add_fault(**rule)
        added.append(r["id"])
        return r

    yield add
    for rule_id in added:
        await graph_sim.control.call("DELETE", f"faults/{rule_id}")


async def usage(graph_sim, rep) -> dict:
    rows = await graph_sim.control.request_counts()
    return next((r for r in rows if r["app"] == SYNC_CLIENT_ID and r["mailbox"] == rep.user_id),
                {"requests": 0, "throttled": 0})


# a 503 is a failed attempt; a 429 is a wait for Retry-After, which spends no attempt
@pytest.mark.parametrize(("status", "retry_after", "attempts"), [(503, None, 2), (429, 1, 1)])
async def test_transient_graph_errors_are_retried_and_the_event_is_made_once(
        api, rep, pega_records, graph_http, fault, status, retry_after, attempts):
    await fault(path=f"users/{rep.upn}/events$", method="POST", status=status, count=1, retry_after=retry_after)
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id), within=40)
    assert op["attempts"] == attempts
    assert len(await events_of(graph_http, rep.upn)) == 1


async def test_a_permanent_graph_error_fails_the_operation_with_the_reason(api, rep, pega_records, fault, state):
    await fault(path=f"users/{rep.upn}/events$", method="POST", status=403, code="ErrorAccessDenied", count=1)
    pega_id = await pega_appointment(pega_records)
    op = await api.wait(await api.submit("POST", "pega/v1/appointments", create_body(rep, pega_id)))
    assert op["status"] == "failed" and op["attempts"] == 1
    assert op["error"]["code"] == "exchange_error" and "403" in op["error"]["message"]
    health = await state.health.get(rep.upn, "calendar")
    assert health.failed == 1 and "403" in health.last_error


async def test_a_burst_of_100_operations_for_one_mailbox_respects_4_concurrent(
        api, rep, graph_sim, pega_records, graph_http):
    sem = asyncio.Semaphore(8)

    async def pega_contact(i: int) -> str:
        async with sem:
            return await new_pega_contact(pega_records, "Burst", f"Contact {i:03d}")

    ids = await asyncio.gather(*(pega_contact(i) for i in range(100)))
    before = await usage(graph_sim, rep)
    started = time.monotonic()

    async def submit(i: int, pega_id: str) -> str:
        async with sem:
            return await api.submit("POST", "pega/v1/contacts", {
                "pegaId": pega_id, "operator": rep.operator, "givenName": "Burst", "surname": f"Contact {i:03d}",
                "changedAt": "2026-11-20T10:00:00Z"})

    op_ids = await asyncio.gather(*(submit(i, p) for i, p in enumerate(ids)))
    accepted = time.monotonic() - started
    ops = [await api.wait(o, within=120) for o in op_ids]
    finished = time.monotonic() - started
    assert all(o["status"] == "succeeded" for o in ops), [o for o in ops if o["status"] != "succeeded"][:3]
    after = await usage(graph_sim, rep)
    # the simulator answers 429 to a 5th concurrent request of an app on a mailbox: none happened
    assert after["throttled"] == before["throttled"] == 0
    # 2 Graph calls per contact (PegaId lookup + create), no retries, no duplicates
    assert after["requests"] - before["requests"] == 200
    page = (await graph_http.get(f"/users/{rep.upn}/contacts", params={"$top": "500"})).json()["value"]
    assert len(page) == 100
    print(f"\nburst: 100 accepted in {accepted:.1f}s, all written in {finished:.1f}s, "
          f"{after['requests'] - before['requests']} Graph requests, 0 throttled")


async def test_pega_unavailable_for_the_id_report_is_retried_without_a_second_event(
        api, rep, pega_records, pega_control, graph_http, graph_sim, host_pega_adapter):
    pega_id = await pega_appointment(pega_records)
    # the id report fails once with 503, after Exchange already has the event
    await pega_control.add_fault(**id_report_fault(host_pega_adapter, pega_id), status=503, times=1)
    before = await usage(graph_sim, rep)
    op = await api.run("POST", "pega/v1/appointments", create_body(rep, pega_id), within=40)
    assert op["attempts"] == 2
    assert len(await events_of(graph_http, rep.upn)) == 1
    after = await usage(graph_sim, rep)
    assert after["requests"] - before["requests"] == 2  # lookup + create; the retry did not touch Graph
    case = await pega_records.client.get_case(pega_id)
    assert case.content[pega_records.m.appointment.external_id] == op["exchangeId"]


async def test_changes_to_items_that_were_never_linked_fail_visibly(api, rep, pega_records, state):
    """Update/cancel/close/reply for a Pega record with no Exchange item: after waiting for a create that
    might still be queued (about 75 s), each operation fails with the reason (and health counts it)."""
    from urllib.parse import quote

    def unknown(prefix: str) -> str:
        return quote(f"{prefix}-{uuid.uuid4().hex[:6]}", safe="")

    who = {"operator": rep.operator, "changedAt": "2026-11-20T11:00:00Z"}
    reply_pega = (await pega_records.client.create_case(pega_records.m.case_types.email, {})).id
    submitted = await asyncio.gather(
        api.submit("PATCH", f"pega/v1/appointments/{unknown('PEGASA-WORK-APPOINTMENT A')}", {**who, "subject": "x"}),
        api.submit("POST", f"pega/v1/appointments/{unknown('PEGASA-WORK-APPOINTMENT A')}/cancel", who),
        api.submit("PATCH", f"pega/v1/contacts/{unknown('PEGACRM-ENTITY-CONTACT CON')}", {**who, "jobTitle": "x"}),
        api.submit("POST", f"pega/v1/contacts/{unknown('PEGACRM-ENTITY-CONTACT CON')}/close", who),
        api.submit("POST", f"pega/v1/emails/{unknown('PEGASA-WORK-EMAIL E')}/reply",
                   {**who, "pegaId": reply_pega, "body": {"content": "?"}}))
    # the wait for a create that might still come is 3 + 6 + 12 + 24 + 30 s (shared/outbound/common.py)
    ops = await asyncio.gather(*(api.wait(o, within=150) for o in submitted))
    for op in ops:
        assert op["status"] == "failed", op
        assert "no linked Exchange item" in op["error"]["message"], op
    calendar = await state.health.get(rep.upn, "calendar")
    assert calendar.failed == 2 and "no linked Exchange item" in calendar.last_error
    assert (await state.health.get(rep.upn, "contacts")).failed == 2
    assert (await state.health.get(rep.upn, "email")).failed == 1
