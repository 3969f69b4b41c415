"""Issue 17: the exact hostile and broken inputs of the report, sent over HTTP to the running host.

Each answer is a 4xx that names what is wrong (or a 202 that ignores and counts the bad item) —
never a 5xx, never a silent acceptance of something the worker cannot do.
"""

from __future__ import annotations

import json
import uuid

import pytest

from shared.sync.notifications import MAX_NOTIFICATIONS_PER_POST
from tests.security.conftest import notification, pega_headers, queued_rounds, send

DEEP = 100_000  # far past the decoder's recursion limit
MID = 500  # within it, past any document of the contract


def nested(depth: int) -> bytes:
    return b'{"value": ' + b"[" * depth + b"]" * depth + b"}"


def appointment(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "mailbox": "alex@contoso.example", "pegaId": f"A-{uuid.uuid4().hex[:6]}", "subject": "Pricing review",
        "start": {"dateTime": "2026-03-03T15:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-03T16:00:00", "timeZone": "Europe/Berlin"},
        "changedAt": "2026-03-01T10:00:00Z"}
    body.update(over)
    return body


# ---------------------------------------------------------------- 1. deeply nested JSON


@pytest.mark.parametrize("depth", [DEEP, MID])
@pytest.mark.parametrize("route", ["graph/notifications", "graph/lifecycle"])
async def test_deep_nesting_on_graph_intake_is_400_with_a_reason(secure_host, route, depth):
    r = await send(secure_host, "POST", route, body=nested(depth))
    assert r.status == 400, r.text
    assert "nested" in r.json()["error"]


@pytest.mark.parametrize("depth", [DEEP, MID])
async def test_deep_nesting_on_the_pega_api_is_400_naming_the_body(secure_host, pega_token, depth):
    r = await send(secure_host, "POST", "pega/v1/appointments", body=b"[" * depth + b"]" * depth,
                   headers=pega_headers(pega_token))
    assert r.status == 400, r.text
    assert r.json()["error"]["field"] == "body" and "nested" in r.json()["error"]["message"]


@pytest.mark.parametrize("depth", [DEEP, MID])
@pytest.mark.parametrize("route", ["admin/deadletters/replay", "admin/mailboxes/alex%40contoso.example/resync"])
async def test_deep_nesting_on_the_admin_api_is_400(secure_host, route, depth):
    r = await send(secure_host, "POST", route, body=b'{"kind": ' + b"[" * depth + b"]" * depth + b"}",
                   key=secure_host.master_key)
    assert r.status == 400, r.text
    assert "nested" in r.json()["error"]


# ---------------------------------------------------------------- 2. lone UTF-16 surrogates


async def test_a_lone_surrogate_in_client_state_ignores_that_notification_only(secure_host, subscription, graph_sim,
                                                                             security_conn, state):
    before = (await state.health.get("_tenant", "intake")).skip_reasons if await state.health.get(
        "_tenant", "intake") else {}
    forged = notification(subscription, tenant=graph_sim.tenant_id, clientState="\ud800")
    genuine = notification(subscription, tenant=graph_sim.tenant_id, item="AAMkAD2")
    body = json.dumps({"value": [forged, genuine]}).encode()  # ensure_ascii: the surrogate travels as \ud800
    assert b"\\ud800" in body
    r = await send(secure_host, "POST", "graph/notifications", body=body)
    assert r.status == 202, r.text
    assert r.json() == {"accepted": 1, "enqueued": 1, "coalesced": 0, "ignored": {"malformed": 1}}
    assert len(await queued_rounds(security_conn, subscription.mailbox)) == 1
    after = (await state.health.get("_tenant", "intake")).skip_reasons
    assert after.get("malformed", 0) == before.get("malformed", 0) + 1


async def test_a_lone_surrogate_in_a_lifecycle_notification_is_ignored(secure_host, subscription, graph_sim):
    event = {"subscriptionId": subscription.subscription_id, "clientState": "\udfff", "lifecycleEvent": "missed",
             "tenantId": graph_sim.tenant_id}
    r = await send(secure_host, "POST", "graph/lifecycle", body=json.dumps({"value": [event]}).encode())
    assert r.status == 202 and r.json()["ignored"] == {"malformed": 1}


@pytest.mark.parametrize(("over", "field"), [
    ({"subject": "Pricing \ud800 review"}, "subject"),
    ({"start": {"dateTime": "2026-03-03T15:00:00", "timeZone": "Europe/\udc00Berlin"}}, "start.timeZone"),
    ({"attendees": [{"email": "dana@fabrikam.example", "name": "\ud83d"}]}, "attendees.0.name"),
])
async def test_a_lone_surrogate_in_a_pega_field_is_400_naming_it(secure_host, pega_token, over, field):
    r = await send(secure_host, "POST", "pega/v1/appointments", body=json.dumps(appointment(**over)).encode(),
                   headers=pega_headers(pega_token))
    assert r.status == 400, r.text
    assert r.json()["error"]["field"] == field


async def test_a_lone_surrogate_in_a_key_is_400(secure_host, pega_token):
    body = json.dumps(appointment()).encode()[:-1] + b', "\\ud800x": 1}'
    r = await send(secure_host, "POST", "pega/v1/appointments", body=body, headers=pega_headers(pega_token))
    assert r.status == 400, r.text
    assert r.json()["error"]["field"] == "\\ud800x"


async def test_raw_surrogate_bytes_are_400_naming_the_field(secure_host, pega_token):
    """UTF-8-encoded surrogates (ED A0 80): Python's JSON decoder lets them through as a lone surrogate."""
    body = json.dumps(appointment(subject="X")).encode().replace(b'"X"', b'"\xed\xa0\x80"')
    r = await send(secure_host, "POST", "pega/v1/appointments", body=body, headers=pega_headers(pega_token))
    assert r.status == 400 and r.json()["error"]["field"] == "subject"


# ---------------------------------------------------------------- 3. 1,000 unknown subscription ids


async def test_a_thousand_unknown_subscription_ids_are_answered_202_and_genuine_items_still_count(
        secure_host, subscription, graph_sim, security_conn):
    tenant = graph_sim.tenant_id
    unknown = [notification(subscription, tenant=tenant, subscriptionId=str(uuid.uuid4()), item=f"X{i}")
               for i in range(1000)]
    r = await send(secure_host, "POST", "graph/notifications", body=json.dumps({"value": unknown}).encode())
    assert r.status == 202, r.text
    # all read (or, on a machine so loaded that the lookup time ran out, the rest counted unchecked)
    ignored = r.json()["ignored"]
    assert set(ignored) <= {"unknown_subscription", "not_checked"} and sum(ignored.values()) == 1000
    # one genuine item among 999 unknown ones is still processed; items past the cap are counted
    mixed = [notification(subscription, tenant=tenant), *unknown[:MAX_NOTIFICATIONS_PER_POST - 1], unknown[-1]]
    r = await send(secure_host, "POST", "graph/notifications", body=json.dumps({"value": mixed}).encode())
    assert r.status == 202, r.text
    body = r.json()
    assert (body["accepted"], body["enqueued"], body["ignored"]["over_limit"]) == (1, 1, 1)
    assert body["ignored"].get("unknown_subscription", 0) + body["ignored"].get("not_checked", 0) == 999
    assert len(await queued_rounds(security_conn, subscription.mailbox)) == 1


async def test_ids_that_are_not_guids_are_unknown_without_a_lookup(secure_host, subscription, graph_sim):
    junk = [notification(subscription, tenant=graph_sim.tenant_id, subscriptionId=sid)
            for sid in (subscription.subscription_id + "\n", "", "x" * 5000, "../../etc", "'; drop --")]
    junk.append(notification(subscription, tenant=graph_sim.tenant_id, subscriptionId=12345))
    r = await send(secure_host, "POST", "graph/notifications", body=json.dumps({"value": junk}).encode())
    assert r.status == 202, r.text
    assert r.json()["ignored"] == {"unknown_subscription": 5, "malformed": 1}


# ---------------------------------------------------------------- 4. foreign tenant


async def test_a_notification_naming_another_tenant_is_ignored_and_counted(secure_host, subscription, security_conn,
                                                                          state):
    before = await state.health.get("_tenant", "intake")
    foreign = notification(subscription, tenant="bbbbbbbb-0000-4000-8000-00000000beef")
    r = await send(secure_host, "POST", "graph/notifications", body=json.dumps({"value": [foreign]}).encode())
    assert r.status == 202, r.text
    assert r.json() == {"accepted": 0, "enqueued": 0, "coalesced": 0, "ignored": {"foreign_tenant": 1}}
    assert await queued_rounds(security_conn, subscription.mailbox) == []
    after = (await state.health.get("_tenant", "intake")).skip_reasons
    assert after.get("foreign_tenant", 0) == (before.skip_reasons if before else {}).get("foreign_tenant", 0) + 1
    life = {"subscriptionId": subscription.subscription_id, "clientState": subscription.client_state,
            "lifecycleEvent": "subscriptionRemoved", "tenantId": "bbbbbbbb-0000-4000-8000-00000000beef"}
    r = await send(secure_host, "POST", "graph/lifecycle", body=json.dumps({"value": [life]}).encode())
    assert r.status == 202 and r.json()["ignored"] == {"foreign_tenant": 1}


async def test_our_tenant_in_another_case_is_ours(secure_host, subscription, graph_sim):
    n = notification(subscription, tenant=graph_sim.tenant_id.upper())
    r = await send(secure_host, "POST", "graph/notifications", body=json.dumps({"value": [n]}).encode())
    assert r.status == 202 and r.json()["accepted"] == 1


# ---------------------------------------------------------------- 5. impossible dates and zones


@pytest.mark.parametrize(("over", "field"), [
    ({"start": {"dateTime": "2026-02-30T10:00:00", "timeZone": "Europe/Berlin"}}, "start.dateTime"),
    ({"start": {"dateTime": "0001-01-01T00:00:00", "timeZone": "Asia/Tokyo"},
      "end": {"dateTime": "0001-01-01T01:00:00", "timeZone": "Asia/Tokyo"}}, "start.dateTime"),
    ({"start": {"dateTime": "9999-12-31T22:00:00", "timeZone": "America/Los_Angeles"},
      "end": {"dateTime": "9999-12-31T23:00:00", "timeZone": "America/Los_Angeles"}}, "start.dateTime"),
    ({"end": {"dateTime": "2026-03-03T16:00:00", "timeZone": "Mars/Olympus_Mons"}}, "end.timeZone"),
    ({"start": {"dateTime": "2026-03-03T15:00:00", "timeZone": "America"}}, "start.timeZone"),
    ({"end": {"dateTime": "2026-03-03T14:00:00", "timeZone": "Europe/Berlin"}}, "end"),
    ({"changedAt": "2026-13-45T25:61:61Z"}, "changedAt"),
    ({"changedAt": "9999-12-31T23:59:59-05:00"}, "changedAt"),
])
async def test_an_impossible_appointment_is_400_naming_the_field(secure_host, pega_token, over, field):
    r = await send(secure_host, "POST", "pega/v1/appointments", body=json.dumps(appointment(**over)).encode(),
                   headers=pega_headers(pega_token))
    assert r.status == 400, r.text
    assert r.json()["error"]["field"] == field and r.json()["error"]["code"] == "invalid_request"


async def test_an_impossible_update_and_an_invalid_changed_at_elsewhere_are_400(secure_host, pega_token):
    update = {"mailbox": "alex@contoso.example", "changedAt": "2026-03-01T10:00:00Z",
              "start": {"dateTime": "2026-02-29T10:00:00", "timeZone": "W. Europe Standard Time"}}
    r = await send(secure_host, "PATCH", "pega/v1/appointments/A-1", body=json.dumps(update).encode(),
                   headers=pega_headers(pega_token))
    assert r.status == 400 and r.json()["error"]["field"] == "start.dateTime"  # 2026 is not a leap year
    close = {"mailbox": "alex@contoso.example", "changedAt": "2026-02-30T10:00:00Z"}
    r = await send(secure_host, "POST", "pega/v1/contacts/C-1/close", body=json.dumps(close).encode(),
                   headers=pega_headers(pega_token))
    assert r.status == 400 and r.json()["error"]["field"] == "changedAt"


# ---------------------------------------------------------------- 8. ids ending in a newline, unknown routes


async def test_an_id_ending_in_a_newline_is_400_naming_it(secure_host, pega_token):
    update = {"mailbox": "alex@contoso.example", "changedAt": "2026-03-01T10:00:00Z", "subject": "x"}
    r = await send(secure_host, "PATCH", "pega/v1/appointments/A-1%0A", body=json.dumps(update).encode(),
                   headers=pega_headers(pega_token))
    assert r.status == 400, r.text
    assert r.json()["error"]["field"] == "pegaId"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "pega/v1/operations/abc%0A"),
    ("GET", "nothing/here%0A"),
    ("GET", "health%0A"),
    ("POST", "pega/v1/appointments%0A"),
    ("DELETE", "pega/v1/appointments"),
])
async def test_unknown_routes_and_newline_ids_answer_the_json_error_shape(secure_host, pega_token, method, path):
    r = await send(secure_host, method, path, headers={"Authorization": f"Bearer {pega_token}"})
    assert r.status in (404, 405), r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] in ("not_found", "method_not_allowed") and err["message"]


async def test_missing_function_key_answers_the_json_error_shape(secure_host):
    r = await send(secure_host, "POST", "graph/notifications", key="wrong", body=b"{}")
    assert r.status == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_the_validation_handshake_is_not_sniffable(secure_host):
    for route in ("graph/notifications", "graph/lifecycle"):
        r = await send(secure_host, "POST", route, params={"validationToken": "<script>alert(1)</script>"})
        assert r.status == 200 and r.text == "<script>alert(1)</script>"
        assert r.headers["Content-Type"].startswith("text/plain")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
