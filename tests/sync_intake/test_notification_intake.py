"""Graph notification and lifecycle intake through the real local host and Azurite."""

import base64
import datetime as dt
import json
import uuid

import aiohttp
import pytest
from azure.storage.queue.aio import QueueClient

from shared.config import load_settings
from shared.storage.state import StateStore
from shared.storage.subscriptions import SubscriptionRecord

# Only the HTTP triggers run: the rounds intake enqueues must stay in the queue for the assertions.
WORKERS_OFF = ("delta_worker", "outbound_worker", "delta_poll", "subscription_manager", "subscription_worker",
               "ops_incidents", "poison_delta_work", "poison_outbound_ops", "poison_subscription_work",
               "insight_worker", "poison_insight_work")


@pytest.fixture(scope="module")
def host(azurite_conn, tmp_path_factory):
    from tests.plugins.app_host import fast_host_json, start_app_host

    h = start_app_host(azurite_conn, host_json=fast_host_json(tmp_path_factory.mktemp("h")), disable=WORKERS_OFF)
    yield h
    h.stop()


@pytest.fixture
async def state(azurite_conn):
    s = await StateStore.open(load_settings({"AzureWebJobsStorage": azurite_conn}).storage)
    yield s
    await s.close()


@pytest.fixture
async def subscription(state):
    mailbox = f"rep-{uuid.uuid4().hex[:8]}@contoso.example"
    rec = SubscriptionRecord(subscription_id=str(uuid.uuid4()), mailbox=mailbox, kind="email",
                             resource=f"/users/{mailbox}/mailFolders('inbox')/messages", client_state="s3cret-state",
                             expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    return await state.subscriptions.put(rec)


def notification(sub, *, state=None, item="AAMkAD1"):
    return {"subscriptionId": sub.subscription_id, "clientState": sub.client_state if state is None else state,
            "changeType": "created", "resource": f"Users/x/Messages/{item}", "tenantId": "t",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00.000Z",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": item, "@odata.etag": 'W/"ck"'}}


async def rounds_for(conn, queue, mailbox):
    out = []
    async with QueueClient.from_connection_string(conn, queue) as q:
        try:
            for m in await q.peek_messages(max_messages=32):
                env = json.loads(base64.b64decode(m.content))
                if env["body"].get("mailbox") == mailbox:
                    out.append(env)
        except Exception:
            return []
    return out


async def post(host, route, body, *, key=True, params=None):
    params = dict(params or {})
    if key:
        params["code"] = host.function_key
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{host.url}/{route}", params=params, data=body if isinstance(body, bytes) else (json.dumps(body) if body is not None else b""),
                          headers={"Content-Type": "application/json"}) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


async def test_validation_handshake_echoes_the_decoded_token(host):
    token = "Validation: Testing client application reachability for subscription Request-Id: 1234"
    for route in ("graph/notifications", "graph/lifecycle"):
        status, ctype, text = await post(host, route, None, params={"validationToken": token})
        assert status == 200 and ctype.startswith("text/plain") and text == token


async def test_intake_requires_the_function_key(host, subscription):
    status, _, _ = await post(host, "graph/notifications", {"value": [notification(subscription)]}, key=False)
    assert status == 401


async def test_a_burst_becomes_one_round(host, subscription, azurite_conn, state):
    burst = {"value": [notification(subscription, item=f"AAMkAD{i}") for i in range(25)]}
    status, _, text = await post(host, "graph/notifications", burst)
    assert status == 202
    assert json.loads(text)["accepted"] == 25
    status, _, text = await post(host, "graph/notifications", burst)  # delivered again (Graph retries)
    assert status == 202 and json.loads(text)["coalesced"] == 1
    rounds = await rounds_for(azurite_conn, "delta-work", subscription.mailbox)
    assert len(rounds) == 1
    assert rounds[0]["type"] == "delta.sync"
    assert rounds[0]["body"] == {"mailbox": subscription.mailbox, "kind": "email", "reason": "notification",
                                 "full_resync": False}
    # once the worker starts reading, a new notification must cause a new round
    await state.coalescer.begin_round(subscription.mailbox, "email")
    await post(host, "graph/notifications", {"value": [notification(subscription)]})
    assert len(await rounds_for(azurite_conn, "delta-work", subscription.mailbox)) == 2


async def test_wrong_client_state_and_unknown_subscriptions_are_ignored_and_counted(host, subscription, azurite_conn,
                                                                                   state):
    before = (await state.health.get("_tenant", "intake")).skip_reasons
    forged = notification(subscription, state="guess")
    unknown = notification(subscription)
    unknown["subscriptionId"] = str(uuid.uuid4())
    status, _, text = await post(host, "graph/notifications", {"value": [forged, unknown]})
    assert status == 202
    assert json.loads(text) == {"accepted": 0, "enqueued": 0, "coalesced": 0,
                                "ignored": {"client_state_mismatch": 1, "unknown_subscription": 1}}
    assert await rounds_for(azurite_conn, "delta-work", subscription.mailbox) == []
    after = (await state.health.get("_tenant", "intake")).skip_reasons
    assert after.get("client_state_mismatch", 0) == before.get("client_state_mismatch", 0) + 1
    assert after.get("unknown_subscription", 0) == before.get("unknown_subscription", 0) + 1


@pytest.mark.parametrize(("body", "reason"), [(b"not json", "not JSON"), ({"value": "x"}, "'value' array"),
                                              ({"value": [1]}, "object")])
async def test_malformed_bodies_get_400_with_a_reason(host, body, reason):
    status, _, text = await post(host, "graph/notifications", body)
    assert status == 400 and reason in json.loads(text)["error"]


async def test_lifecycle_events_are_queued_for_the_subscription_worker(host, subscription, azurite_conn):
    events = [{"subscriptionId": subscription.subscription_id, "clientState": subscription.client_state,
               "lifecycleEvent": e, "tenantId": "t", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"}
              for e in ("missed", "reauthorizationRequired", "somethingNew")]
    status, _, text = await post(host, "graph/lifecycle", {"value": events})
    assert status == 202
    assert json.loads(text)["ignored"] == {"unknown_lifecycle_event": 1}
    queued = await rounds_for(azurite_conn, "subscription-work", subscription.mailbox)
    assert sorted(m["body"]["event"] for m in queued) == ["missed", "reauthorizationRequired"]
