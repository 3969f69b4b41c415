"""Subscriptions against the Graph simulator through the real host: onboarding creates them (immutable
ids, function key on the URL, a secret clientState), Graph's notifications reach intake and become one
delta round, lifecycle events are acted on, renewal extends, offboarding removes them."""

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import time
import uuid

import aiohttp
import pytest
from azure.storage.queue.aio import QueueClient

from shared.config import load_settings
from shared.graph.gateway import GraphGateway
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.state import StateStore
from shared.sync.subscriptions import SubscriptionManager

# The delta worker is off so the rounds that notifications cause stay visible in the queue.
OFF = ("delta_worker", "delta_poll", "subscription_manager", "outbound_worker", "ops_incidents")


@pytest.fixture(scope="module")
def stack(azurite_conn, graph_sim, tmp_path_factory):
    from tests.plugins.app_host import fast_host_json, start_app_host

    settings = {"GRAPH_TENANT_ID": graph_sim.tenant_id, "GRAPH_CLIENT_ID": "cccccccc-0000-4000-8000-000000000001",
                "GRAPH_CLIENT_SECRET": "sandbox-sync-secret", "GRAPH_AUTHORITY_HOST": graph_sim.authority,
                "GRAPH_CA_BUNDLE": str(graph_sim.ca_path), "GRAPH_BASE_URL": graph_sim.graph_url}
    host = start_app_host(azurite_conn, settings=settings, disable=OFF,
                          host_json=fast_host_json(tmp_path_factory.mktemp("subs")))
    yield host, {"AzureWebJobsStorage": azurite_conn, **settings,
                 "SYNC_NOTIFICATION_URL_BASE": host.url, "SYNC_NOTIFICATION_URL_KEY": host.function_key}
    host.stop()


async def admin(host, method, path, body=None):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"{host.url}/admin/{path}", json=body,
                             headers={"x-functions-key": host.master_key}) as r:
            return r.status, (await r.json() if r.content_type.endswith("json") else None)


async def eventually(fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def sim_subs(graph_sim, upn):
    """The simulator's subscriptions of this mailbox: its resources name it by UPN or by object id."""
    users = (await graph_sim.control.call("GET", "users"))["value"]
    ids = {upn.lower()} | {u["id"].lower() for u in users if u["userPrincipalName"].lower() == upn.lower()}
    return [s for s in await graph_sim.control.subscriptions()
            if any(f"/users/{i}/" in s["resource"].lower() for i in ids)]


KEYS: dict[str, str] = {}  # upn -> the mailbox's key (its object id): what queue messages and state name it by


def key(upn: str) -> str:
    return KEYS.get(upn.lower(), upn.lower())


async def rounds(conn, upn):
    """The mailbox's rounds waiting in the queue, with its key shown as `upn` (readable assertions)."""
    async with QueueClient.from_connection_string(conn, "delta-work") as q:
        msgs = await q.peek_messages(max_messages=32)
    out = [json.loads(base64.b64decode(m.content)) for m in msgs]
    return [{**m["body"], "mailbox": upn} for m in out if m["body"].get("mailbox") == key(upn)]


async def drain(conn, upn):
    """Take the mailbox's rounds off the queue as the (disabled) delta worker would, pending marks included."""
    async with QueueClient.from_connection_string(conn, "delta-work") as q:
        async for m in q.receive_messages(max_messages=32):
            if json.loads(base64.b64decode(m.content))["body"].get("mailbox") == key(upn):
                await q.delete_message(m)
    state = await StateStore.open(load_settings({"AzureWebJobsStorage": conn}).storage)
    try:
        for kind in ("email", "calendar", "contacts"):
            await state.coalescer.begin_round(key(upn), kind)
    finally:
        await state.close()


@pytest.fixture
async def onboarded(stack, graph_sim, azurite_conn):
    host, _ = stack
    upn = (await graph_sim.control.new_user())["userPrincipalName"].lower()
    # each rep their own Pega operator: one operator on two active mailboxes is refused (409)
    status, body = await admin(host, "PUT", f"mailboxes/{upn}", {"pega_operator": "op-" + uuid.uuid4().hex[:10]})
    assert status == 201
    KEYS[upn] = body["id"]
    subs = await eventually(lambda: _three(graph_sim, upn))
    assert subs, "onboarding did not create the three subscriptions"
    return upn, subs


async def _three(graph_sim, upn):
    subs = await sim_subs(graph_sim, upn)
    return subs if len(subs) == 3 else None


async def test_onboarding_creates_subscriptions_as_graph_wants_them(onboarded, stack, graph_sim):
    host, _ = stack
    upn, subs = onboarded
    resources = sorted(s["resource"] for s in subs)
    # mail: the whole mailbox's messages (SYNC_MAIL_FOLDERS=inbox_tree), so mail that server rules file into
    # folders under the Inbox notifies too (issue #11 item 18)
    # named by the mailbox's object id (its state key), which a UPN rename does not change
    users = (await graph_sim.control.call("GET", "users"))["value"]
    uid = next(u["id"] for u in users if u["userPrincipalName"].lower() == upn).lower()
    assert resources == sorted([f"/users/{uid}/contacts", f"/users/{uid}/events", f"/users/{uid}/messages"])
    for s in subs:
        assert s["immutableIds"] is True
        assert s["notificationUrl"] == f"{host.url}/graph/notifications?code={host.function_key}"
        assert s["lifecycleNotificationUrl"] == f"{host.url}/graph/lifecycle?code={host.function_key}"
        assert len(s["clientState"]) >= 32
        assert set(s["changeType"].split(",")) == {"created", "updated", "deleted"}
    _, body = await admin(host, "GET", f"mailboxes/{upn}")
    assert {x["status"] for x in body["subscriptions"]} == {"active"}


async def test_mail_arrival_reaches_intake_and_becomes_one_round(onboarded, graph_sim, azurite_conn):
    upn, _ = onboarded
    await drain(azurite_conn, upn)  # the onboarding rounds
    for i in range(5):
        await graph_sim.control.inbound_mail(upn, **{"from": "dana@fabrikam.example", "subject": f"hello {i}",
                                                     "body": "hi"})
    got = await eventually(lambda: rounds(azurite_conn, upn))
    await asyncio.sleep(1.0)  # any further notifications of the burst have arrived by now
    got = await rounds(azurite_conn, upn)
    assert got and all(r == {"mailbox": upn, "kind": "email", "reason": "notification", "full_resync": False}
                       for r in got)
    assert len(got) == 1, "a burst of notifications must coalesce into one round"


async def test_lifecycle_missed_and_removed(onboarded, graph_sim, azurite_conn):
    upn, subs = onboarded
    await drain(azurite_conn, upn)
    cal = next(s for s in subs if s["resource"].endswith("/events"))
    await graph_sim.control.lifecycle(cal["id"], "missed")
    got = await eventually(lambda: rounds(azurite_conn, upn))
    assert {"mailbox": upn, "kind": "calendar", "reason": "missed", "full_resync": False} in got
    await drain(azurite_conn, upn)
    await graph_sim.control.lifecycle(cal["id"], "subscriptionRemoved")

    async def recreated():
        now = await sim_subs(graph_sim, upn)
        events = [s for s in now if s["resource"].endswith("/events")]
        return events if events and events[0]["id"] != cal["id"] else None

    assert await eventually(recreated), "a removed subscription is recreated"
    got = await eventually(lambda: rounds(azurite_conn, upn))
    assert any(r["kind"] == "calendar" and r["reason"] == "resync" for r in got), "and the kind is resynced"


async def test_renewal_extends_and_a_vanished_subscription_is_recreated(onboarded, graph_sim, stack):
    upn, _ = onboarded
    _, env = stack
    settings = load_settings(env)
    state = await StateStore.open(settings.storage)
    services = Services(settings=settings, state=state, queues=QueueSender.from_settings(settings.storage))
    gateway = GraphGateway.from_settings(settings.graph)
    try:
        mailbox = await state.mailboxes.get(upn)
        records = await state.subscriptions.for_mailbox(key(upn))
        # pretend they are about to expire: the manager renews them
        for r in records:
            await state.subscriptions.put(dataclasses.replace(
                r, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)))
        gone = next(r for r in records if r.resource.endswith("/contacts"))
        await graph_sim.control.call("DELETE", f"subscriptions/{gone.subscription_id}", notify="false")
        report = await SubscriptionManager(services, gateway).ensure(mailbox)
        assert (report.renewed, report.created, report.failed) == (2, 1, 0)
        after = await state.subscriptions.for_mailbox(key(upn))
        assert len(after) == 3
        assert all(r.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(days=6) for r in after)
        assert gone.subscription_id not in {r.subscription_id for r in after}
    finally:
        await gateway.close()
        await services.close()


async def test_offboarding_removes_subscriptions(onboarded, graph_sim, stack):
    host, _ = stack
    upn, _ = onboarded
    status, _ = await admin(host, "DELETE", f"mailboxes/{upn}")
    assert status == 204

    async def none_left():
        return not await sim_subs(graph_sim, upn)

    assert await eventually(none_left)
    _, body = await admin(host, "GET", f"mailboxes/{upn}")
    assert body["status"] == "offboarded" and body["subscriptions"] == []


async def test_invalid_onboarding_requests_name_the_field(stack):
    host, _ = stack
    status, body = await admin(host, "PUT", "mailboxes/not-an-upn", {"pega_operator": "x"})
    assert status == 400 and "upn" in body["error"]
    status, body = await admin(host, "PUT", "mailboxes/a@b.example", {"pega_operator": "x", "batch_size": 600})
    assert status == 400 and "batch_size" in body["error"]
    status, body = await admin(host, "PUT", "mailboxes/a@b.example", {"pega_operator": "x", "colour": "red"})
    assert status == 400 and "colour" in body["error"]
    status, _ = await admin(host, "GET", "mailboxes/nobody@b.example")
    assert status == 404


async def test_a_pega_operator_already_on_an_active_mailbox_is_refused(onboarded, stack, graph_sim):
    """One operator on two active mailboxes made Pega's writes go to whichever row a scan met first.
    Onboarding refuses it (409 naming the field); re-onboarding the same mailbox, or the operator
    once its mailbox is offboarded, is fine."""
    host, _ = stack
    upn, _ = onboarded
    _, mine = await admin(host, "GET", f"mailboxes/{upn}")
    operator = mine["pega_operator"]
    other = (await graph_sim.control.new_user())["userPrincipalName"].lower()
    status, body = await admin(host, "PUT", f"mailboxes/{other}", {"pega_operator": operator})
    assert status == 409 and "pega_operator" in body["error"], body
    status, _ = await admin(host, "PUT", f"mailboxes/{upn}", {"pega_operator": operator})
    assert status == 200
    status, _ = await admin(host, "DELETE", f"mailboxes/{upn}")
    assert status == 204
    status, body = await admin(host, "PUT", f"mailboxes/{other}", {"pega_operator": operator})
    assert status == 201, body


async def test_8_a_changed_notification_url_recreates_the_subscriptions_and_health_shows_it(onboarded, graph_sim,
                                                                                          stack):
    """Issue #11 item 8: after a key rotation or a base-URL change, subscriptions that still point at the
    old URL were renewed forever (push silently dead). They record a hash of their URL and are recreated."""
    from shared.ops.health import mailbox_health

    upn, before = onboarded
    _, env = stack
    # the service moved behind another base URL (same host, reached by name instead of by address)
    rotated = {**env, "SYNC_NOTIFICATION_URL_BASE": env["SYNC_NOTIFICATION_URL_BASE"].replace("127.0.0.1", "localhost")}
    settings = load_settings(rotated)
    state = await StateStore.open(settings.storage)
    services = Services(settings=settings, state=state, queues=QueueSender.from_settings(settings.storage))
    gateway = GraphGateway.from_settings(settings.graph)
    try:
        health = await mailbox_health(services, upn)
        flags = [s["notification_url_current"] for k in health["kinds"] for s in k["subscriptions"]]
        assert flags == [False] * 3, "health shows the subscriptions point at an old URL"
        report = await SubscriptionManager(services, gateway).ensure(await state.mailboxes.get(upn))
        assert (report.recreated, report.created, report.renewed) == (3, 3, 0)
        now = await sim_subs(graph_sim, upn)
        assert len(now) == 3 and all(s["notificationUrl"].startswith("http://localhost:") for s in now)
        assert not {s["id"] for s in before} & {s["id"] for s in now}, "the stale ones are gone from Graph"
        health = await mailbox_health(services, upn)
        assert all(s["notification_url_current"] for k in health["kinds"] for s in k["subscriptions"])
        assert {r["kind"] for r in await rounds(env["AzureWebJobsStorage"], upn) if r["reason"] == "resync"} == \
            {"email", "calendar", "contacts"}, "a round catches up with what the dead URL missed"
        assert (await SubscriptionManager(services, gateway).ensure(await state.mailboxes.get(upn))).recreated == 0
    finally:
        await gateway.close()
        await services.close()


async def test_18_mail_a_server_rule_files_into_a_subfolder_notifies_too(onboarded, graph_sim, azurite_conn):
    upn, _ = onboarded
    await drain(azurite_conn, upn)
    async with await graph_sim.http() as http:
        r = await http.post(f"/users/{upn}/mailFolders/inbox/childFolders", json={"displayName": "Fabrikam"})
        assert r.status_code == 201, r.text
        folder = r.json()["id"]
    await graph_sim.control.inbound_mail(upn, **{"from": "dana@fabrikam.example", "subject": "filed by a rule",
                                                 "body": "hi", "folder": folder})
    got = await eventually(lambda: rounds(azurite_conn, upn))
    assert {"mailbox": upn, "kind": "email", "reason": "notification", "full_resync": False} in got
