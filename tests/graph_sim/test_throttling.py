"""Outlook throttling per (app, mailbox) with real concurrency, and injected faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.graph import AGENT_CLIENT_ID, AGENT_CLIENT_SECRET, SYNC_CLIENT_ID


@pytest.fixture
async def limits(graph_sim) -> AsyncIterator:
    yield graph_sim.control
    await graph_sim.control.set_throttle(requestsPerWindow=10_000, windowSeconds=600, concurrency=4,
                                         concurrencyRetryAfter=1.0, enabled=True)
    await graph_sim.control.clear_faults()


async def test_four_concurrent_requests_per_app_and_mailbox(graph_sim, limits, sim_user) -> None:
    uid = sim_user["id"]
    await limits.add_fault(path=f"users/{uid}/messages$", kind="delay", delayMs=400, method="GET")
    http = await graph_sim.http()
    async with http:
        results = await asyncio.gather(*(http.get(f"/users/{uid}/messages") for _ in range(8)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 4 + [429] * 4, codes  # the 5th-8th are refused, not queued behind the others
    throttled = next(r for r in results if r.status_code == 429)
    assert float(throttled.headers["Retry-After"]) > 0
    body = throttled.json()["error"]
    assert body["code"] == "TooManyRequests" and body["innerError"]["status"] == "429"
    assert "MailboxConcurrency" in body["innerError"]["message"]
    assert throttled.headers["request-id"]


async def test_request_rate_window_counts_while_throttled(graph_sim, limits) -> None:
    a = await graph_sim.control.new_user()
    b = await graph_sim.control.new_user()
    await limits.set_throttle(requestsPerWindow=5, windowSeconds=600)
    http = await graph_sim.http()
    agent = await graph_sim.http(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    async with http, agent:
        codes = [(await http.get(f"/users/{a['id']}/messages")).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        last = await http.get(f"/users/{a['id']}/messages")
        assert last.status_code == 429 and float(last.headers["Retry-After"]) > 500
        assert (await http.get(f"/users/{b['id']}/messages")).status_code == 200  # other mailbox unaffected
        assert (await agent.get(f"/users/{a['id']}/messages")).status_code == 200  # other app unaffected
        counts = {(r["app"], r["mailbox"]): r for r in await graph_sim.control.request_counts()}
        row = counts[(SYNC_CLIENT_ID, a["id"])]
        assert (row["requests"], row["throttled"]) == (8, 3)  # throttled requests still count
        assert row["userPrincipalName"] == a["userPrincipalName"]
        await graph_sim.control.advance_clock(601)
        assert (await http.get(f"/users/{a['id']}/messages")).status_code == 200


async def test_sdk_retries_injected_429_and_503(graph_client, graph_sim, limits, sim_user) -> None:
    uid = sim_user["id"]
    # whole seconds: kiota's retry handler ignores a fractional Retry-After and falls back to its backoff
    await limits.add_fault(path=f"users/{uid}/contacts$", status=429, retryAfter=1, count=1)
    await limits.add_fault(path=f"users/{uid}/contacts$", status=503, retryAfter=1, count=1)
    before = {(r["app"], r["mailbox"]): r["requests"] for r in await graph_sim.control.request_counts()}
    page = await graph_client.users.by_user_id(uid).contacts.get()
    assert page.value == []
    after = {(r["app"], r["mailbox"]): r["requests"] for r in await graph_sim.control.request_counts()}
    assert after[(SYNC_CLIENT_ID, uid)] - before.get((SYNC_CLIENT_ID, uid), 0) == 3
    faults = (await graph_sim.control.call("GET", "faults"))["rules"]
    assert [f["fired"] for f in faults] == [1, 1]


async def test_timeout_fault_and_rate(graph_sim, limits, sim_user) -> None:
    uid = sim_user["id"]
    await limits.add_fault(path=f"users/{uid}/events$", kind="timeout", timeoutSeconds=0.2, count=1)
    http = await graph_sim.http()
    async with http:
        r = await http.get(f"/users/{uid}/events")
        assert r.status_code == 504
        assert (await http.get(f"/users/{uid}/events")).status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await limits.add_fault(path=f"users/{uid}/events$", kind="timeout", timeoutSeconds=1, count=1)
            await http.get(f"/users/{uid}/events", timeout=0.3)
        await limits.add_fault(path=f"users/{uid}/calendar$", status=500, rate=0.0)
        assert (await http.get(f"/users/{uid}/calendar")).status_code == 200  # rate 0 never fires


async def test_access_policy_denies_one_app_one_mailbox(graph_sim, sim_user) -> None:
    ctl = graph_sim.control
    await ctl.call("POST", "access-policy", {"app": SYNC_CLIENT_ID, "user": sim_user["id"]})
    http = await graph_sim.http()
    agent = await graph_sim.http(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    try:
        async with http, agent:
            denied = await http.get(f"/users/{sim_user['id']}/messages")
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"
            assert (await agent.get(f"/users/{sim_user['id']}/messages")).status_code == 200
            assert (await http.get("/users/alex@contoso.example/messages")).status_code == 200
    finally:
        await ctl.call("POST", "access-policy", {"app": SYNC_CLIENT_ID, "user": sim_user["id"], "allow": True})


async def test_bulk_inbound_mail(graph_sim, sim_user) -> None:
    got = await graph_sim.control.inbound_mail(sim_user["userPrincipalName"], subject="bulk", body="x", count=250)
    assert len(got["value"]) == 250 and len({m["internetMessageId"] for m in got["value"]}) == 250
    http = await graph_sim.http()
    async with http:
        page = (await http.get(f"/users/{sim_user['id']}/messages", params={"$top": "1000"})).json()
    assert len(page["value"]) == 250
