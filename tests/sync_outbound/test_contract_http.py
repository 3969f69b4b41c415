"""The contract's HTTP layer on the real host: function key, Entra bearer validation, headers,
size, schema, mailbox resolution, idempotency and the operation status."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from sandbox.graph.seed import NO_ROLE_CLIENT_ID, NO_ROLE_CLIENT_SECRET, SYNC_CLIENT_ID, SYNC_CLIENT_SECRET
from tests.sync_outbound.conftest import new_pega_contact


def contact_body(rep, **extra):
    body = {"pegaId": f"PEGACRM-ENTITY-CONTACT CON-{uuid.uuid4().hex[:6]}", "operator": rep.operator,
            "givenName": "Dana", "surname": "Lopez", "changedAt": "2026-11-20T10:00:00Z"}
    body.update(extra)
    return body


async def test_without_the_function_key_the_host_refuses(api, rep):
    status, _, _ = await api.call("POST", "pega/v1/contacts", contact_body(rep), key=None)
    assert status == 401
    status, _, _ = await api.call("POST", "pega/v1/contacts", contact_body(rep), key="wrong-key")
    assert status == 401


@pytest.mark.parametrize("case", ["missing", "garbage", "bad_signature", "wrong_audience", "expired", "foreign_key"])
async def test_bad_tokens_get_401_with_www_authenticate(api, rep, case):
    if case == "missing":
        token = None
    elif case == "garbage":
        token = "not-a-jwt"
    elif case == "bad_signature":
        good = await api.token()
        head, payload, sig = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["roles"] = ["Sync.ReadWrite", "Admin"]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        token = f"{head}.{forged}.{sig}"
    elif case == "wrong_audience":  # a real token from the same issuer, but for Microsoft Graph
        token = await api.token(SYNC_CLIENT_ID, SYNC_CLIENT_SECRET, "https://graph.microsoft.com/.default")
    elif case == "expired":  # correctly signed by a key the host trusts, expired 10 minutes ago
        token = api.issuer.mint(lifetime=60, issued_ago=660)
    else:  # a self-made key the issuer does not publish
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode({"aud": "api://pega-exchange-sync", "iss": api.issuer.url, "exp": 9999999999,
                            "roles": ["Sync.ReadWrite"]}, key, algorithm="RS256", headers={"kid": "nope"})
    status, headers, body = await api.call("POST", "pega/v1/contacts", contact_body(rep), token=token)
    assert status == 401, body
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert body["error"]["code"] == "invalid_token"
    if case == "expired":
        assert "expired" in body["error"]["message"]
    if case == "wrong_audience":
        assert "audience" in body["error"]["message"]


async def test_a_minted_token_that_is_valid_is_accepted(api, rep):
    """Control for the 'expired' case: the same test key with a live token passes."""
    status, _, body = await api.call("POST", "pega/v1/contacts", contact_body(rep), token=api.issuer.mint())
    assert status == 202, body


async def test_a_token_without_the_app_role_gets_403(api, rep):
    token = await api.token(NO_ROLE_CLIENT_ID, NO_ROLE_CLIENT_SECRET)
    status, headers, body = await api.call("POST", "pega/v1/contacts", contact_body(rep), token=token)
    assert status == 403
    assert body["error"]["code"] == "insufficient_role"
    assert "insufficient_scope" in headers.get("WWW-Authenticate", "")


async def test_idempotency_key_is_required(api, rep):
    status, _, body = await api.call("POST", "pega/v1/contacts", contact_body(rep), idem=None)
    assert status == 400
    assert body["error"]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("changedAt"), "changedAt"),
    (lambda b: b.update(emailAddresses=[{"email": "not-an-address"}]), "emailAddresses.0.email"),
    (lambda b: b.update(businessAddress={"city": 7}), "businessAddress.city"),
    (lambda b: b.update(favouriteColour="blue"), "favouriteColour"),
    (lambda b: [b.pop(k) for k in ("givenName", "surname")], "surname|givenName|displayName"),
])
async def test_malformed_bodies_get_400_naming_the_field(api, rep, mutate, field):
    body = contact_body(rep)
    mutate(body)
    status, _, resp = await api.call("POST", "pega/v1/contacts", body)
    assert status == 400, resp
    assert resp["error"]["code"] == "invalid_request"
    assert resp["error"]["field"] == field


async def test_appointment_time_zone_errors_name_the_nested_field(api, rep):
    body = {"pegaId": "A-1", "operator": rep.operator, "subject": "x", "changedAt": "2026-11-20T10:00:00Z",
            "start": {"dateTime": "2026-12-01T09:00"}, "end": {"dateTime": "2026-12-01T10:00", "timeZone": "UTC"}}
    status, _, resp = await api.call("POST", "pega/v1/appointments", body)
    assert status == 400
    assert resp["error"]["field"] == "start.timeZone"


async def test_not_json_and_wrong_media_type(api, rep):
    status, _, resp = await api.call("POST", "pega/v1/contacts", raw=b"{not json")
    assert status == 400 and "JSON" in resp["error"]["message"]
    status, _, resp = await api.call("POST", "pega/v1/contacts", raw=b"a=b", content_type="text/plain")
    assert status == 415


async def test_bodies_over_the_limit_get_413(api, rep):
    big = contact_body(rep, personalNotes="x" * 100)
    big["photo"] = {"contentType": "image/jpeg", "contentBytes": base64.b64encode(b"\0" * (11 * 1024 * 1024)).decode()}
    status, _, resp = await api.call("POST", "pega/v1/contacts", big)
    assert status == 413
    assert resp["error"]["code"] == "payload_too_large"


async def test_unknown_operator_or_mailbox_is_refused(api, rep):
    status, _, resp = await api.call("POST", "pega/v1/contacts", contact_body(rep, operator="nobody-" + uuid.uuid4().hex))
    assert status == 403 and resp["error"]["field"] == "operator"
    body = contact_body(rep)
    body.pop("operator")
    body["mailbox"] = f"ghost-{uuid.uuid4().hex[:6]}@contoso.example"
    status, _, resp = await api.call("POST", "pega/v1/contacts", body)
    assert status == 403 and resp["error"]["field"] == "mailbox"
    # the operator decides; a different address (e.g. a primary SMTP alias) does not redirect the write
    status, _, resp = await api.call("POST", "pega/v1/contacts", contact_body(rep, mailbox="alias@contoso.example"))
    assert status == 202
    assert (await api.operation(resp["operationId"]))["mailbox"] == rep.upn


async def test_the_mailbox_upn_alone_is_enough(api, rep):
    body = contact_body(rep)
    body.pop("operator")
    body["mailbox"] = rep.upn.upper()
    status, _, resp = await api.call("POST", "pega/v1/contacts", body)
    assert status == 202, resp


async def test_same_key_same_body_replays_the_first_operation_and_writes_once(api, rep, pega_records, graph_http):
    key = str(uuid.uuid4())
    body = contact_body(rep, pegaId=await new_pega_contact(pega_records))
    s1, h1, first = await api.call("POST", "pega/v1/contacts", body, idem=key)
    s2, h2, second = await api.call("POST", "pega/v1/contacts", dict(reversed(list(body.items()))), idem=key)
    assert s1 == s2 == 202
    assert first["operationId"] == second["operationId"] and h1["Location"] == h2["Location"]
    assert "idempotentReplay" not in first and second["idempotentReplay"] is True
    op = await api.wait(first["operationId"])
    assert op["status"] == "succeeded", op
    s3, _, third = await api.call("POST", "pega/v1/contacts", body, idem=key)
    assert s3 == 202 and third["operationId"] == first["operationId"] and third["status"] == "succeeded"
    assert (await api.operation(first["operationId"]))["attempts"] == 1  # ran once
    contacts = (await graph_http.get(f"/users/{rep.upn}/contacts")).json()["value"]
    assert len(contacts) == 1


async def test_a_write_pega_refuses_to_take_the_id_for_succeeds_and_is_listed(api, rep, state):
    """The Pega record does not exist: Exchange got the contact. The operation is NOT failed (that would
    invite Pega to send it again); it succeeds with reportedToPega false and the reason, and the refusal is
    listed in the mailbox's failures until an operator retries or dismisses it (issue #11, section 3)."""
    op = await api.wait(await api.submit("POST", "pega/v1/contacts", contact_body(rep)))
    assert op["status"] == "succeeded" and op["error"] is None
    assert op["exchangeId"] and op["reportedToPega"] is False
    assert op["pegaReport"]["code"] == "pega_refused" and "refused the Exchange id" in op["pegaReport"]["message"]
    listed = await state.failures.for_mailbox(rep.upn)
    assert [(f.stage, f.pega_id, f.exchange_id) for f in listed] == [("pega_report", op["pegaId"], op["exchangeId"])]


async def test_same_key_different_body_is_409(api, rep):
    key = str(uuid.uuid4())
    s1, _, _ = await api.call("POST", "pega/v1/contacts", contact_body(rep, surname="A"), idem=key)
    s2, _, resp = await api.call("POST", "pega/v1/contacts", contact_body(rep, surname="B"), idem=key)
    assert s1 == 202 and s2 == 409
    assert resp["error"]["code"] == "idempotency_key_reused" and resp["error"]["field"] == "Idempotency-Key"


async def test_operation_status_shape_and_unknown_ids(api, rep):
    _, _, accepted = await api.call("POST", "pega/v1/contacts", contact_body(rep))
    op = await api.operation(accepted["operationId"])
    assert set(op) >= {"operationId", "operation", "pegaId", "mailbox", "status", "exchangeId", "attempts", "error",
                       "createdAt", "updatedAt"}
    assert op["operation"] == "createContact" and op["mailbox"] == rep.upn
    status, _, body = await api.call("GET", "pega/v1/operations/doesnotexist", idem=None)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _, _ = await api.call("GET", f"pega/v1/operations/{accepted['operationId']}", idem=None, token=None)
    assert status == 401


async def test_concurrent_duplicates_make_one_operation_and_one_contact(api, rep, pega_records, graph_http):
    import asyncio

    key = str(uuid.uuid4())
    body = contact_body(rep, pegaId=await new_pega_contact(pega_records))
    results = await asyncio.gather(*(api.call("POST", "pega/v1/contacts", body, idem=key) for _ in range(5)))
    assert {r[0] for r in results} == {202}
    ids = {r[2]["operationId"] for r in results}
    assert len(ids) == 1
    op = await api.wait(ids.pop())
    assert op["status"] == "succeeded", op
    await asyncio.sleep(0.5)  # any duplicate message has had its chance
    assert len((await graph_http.get(f"/users/{rep.upn}/contacts")).json()["value"]) == 1


async def test_an_operator_on_two_active_mailboxes_is_never_guessed(api, rep, graph_sim, state):
    """Found in the full suite: two onboarded mailboxes named one Pega operator and the first row the
    scan met got the rep's meeting — Pega's write landed in another person's mailbox. Two active
    mailboxes for one operator are refused (409) unless the request's `mailbox` names one."""
    from shared.storage.mailboxes import Mailbox

    other = str((await graph_sim.control.new_user("Twin"))["userPrincipalName"]).lower()
    await state.mailboxes.put(Mailbox(upn=other, pega_operator=rep.operator))
    status, _, body = await api.call("POST", "pega/v1/contacts", contact_body(rep))
    assert status == 409 and body["error"]["code"] == "operator_ambiguous", body
    assert body["error"]["field"] == "operator"
    status, _, body = await api.call("POST", "pega/v1/contacts", contact_body(rep, mailbox=rep.upn))
    assert status == 202, body
    assert (await api.wait(body["operationId"]))["mailbox"] in (rep.upn, rep.user_id)


async def test_an_offboarded_mailbox_of_the_same_operator_does_not_shadow_the_active_one(api, rep, graph_sim, state):
    import dataclasses

    from shared.storage.mailboxes import Mailbox

    old = str((await graph_sim.control.new_user("Former"))["userPrincipalName"]).lower()
    gone = await state.mailboxes.put(Mailbox(upn=old, pega_operator=rep.operator))
    await state.mailboxes.put(dataclasses.replace(gone, status="offboarded"))
    status, _, body = await api.call("POST", "pega/v1/contacts", contact_body(rep))
    assert status == 202, body
    op = await api.wait(body["operationId"])
    assert op["mailbox"] != old and op["status"] == "succeeded", op
