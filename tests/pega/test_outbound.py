"""The simulator calls our HTTP contract like a configured Pega: bearer token from Entra, function
key, Idempotency-Key, bodies that fit openapi.yaml, retries with backoff, never for its own
integration user's changes, and never blocking its own API when the service is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web

from sandbox.pega.control import PegaSimControl
from sandbox.proc import free_port
from shared.auth import AuthError, BearerValidator
from shared.config import ApiAuthSettings
from shared.contract import ContractViolation, check_idempotency_key, operations, validate_request
from shared.pega import AppointmentData, PegaClient, PegaRecords
from tests.pega.entra_stub import API_AUDIENCE, TENANT, EntraStub
from tests.plugins.pega_sim import PegaSim

FUNCTION_KEY = "test-function-key"


@dataclass
class Received:
    operation_id: str
    path: str
    path_params: dict[str, str]
    body: dict[str, Any]
    idempotency_key: str
    app_id: str


@dataclass
class Receiver:
    """Stands in for our Functions host: checks auth and the contract, records, can fail on purpose."""

    validator: BearerValidator
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    seen_keys: list[str] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        route = request.match_info.route.resource.canonical  # type: ignore[union-attr]
        op = next(o for o in operations() if o.path == route.removeprefix("/api") and o.method == request.method)
        try:
            principal = await self.validator.validate(request.headers.get("Authorization"))
        except AuthError as exc:
            self.rejected.append(type(exc).__name__)
            return web.json_response({"error": {"code": exc.code, "message": exc.message}}, status=exc.status)
        if request.headers.get("x-functions-key") != FUNCTION_KEY:
            self.rejected.append("function key")
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        key = check_idempotency_key(request.headers.get("Idempotency-Key"))
        self.seen_keys.append(key)
        if self.fail_next:
            return web.json_response({"error": {"code": "unavailable"}}, status=self.fail_next.pop(0))
        body = await request.json()
        try:
            validate_request(op.operation_id, body)
        except ContractViolation as exc:
            self.rejected.append(f"{op.operation_id}: {exc.field}: {exc.message}")
            return web.json_response({"error": {"code": "invalid_request", "field": exc.field}}, status=400)
        params = {k: unquote(v) for k, v in request.match_info.items()}
        self.received.append(Received(op.operation_id, request.path, params, body, key, principal.app_id))
        return web.json_response({"operationId": f"op-{len(self.received)}", "status": "accepted",
                                  "statusUrl": "/api/pega/v1/operations/x"}, status=202)


@pytest.fixture
async def receiver(entra: EntraStub, pega_control: PegaSimControl) -> AsyncIterator[Receiver]:
    settings = ApiAuthSettings(tenant_id=TENANT, audience=API_AUDIENCE, openid_config_url=entra.openid_config_url)
    rec = Receiver(BearerValidator.from_settings(settings))
    app = web.Application()
    for op in operations():
        app.router.add_route(op.method, "/api" + op.path, rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.base_url = f"http://127.0.0.1:{port}/api"
    await pega_control.configure(service_base_url=rec.base_url, function_key=FUNCTION_KEY, token_url=entra.token_url,
                                 client_id="pega-connect-rest", client_secret="sandbox-pega-secret",
                                 scope=f"{API_AUDIENCE}/.default", backoff_seconds=0.05, max_attempts=4)
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_rep_appointment_create_update_cancel(receiver: Receiver, pega_control: PegaSimControl) -> None:
    seeded = (await pega_control.state())["seeded"]
    appt = await pega_control.create_appointment("alex", {
        "Subject": "Fleet review", "StartTime": "2026-12-01T09:00:00.000Z", "EndTime": "2026-12-01T10:00:00.000Z",
        "TimeZone": "Europe/Berlin", "Location": "Fabrikam HQ", "Description": "Agenda", "ContactID": seeded["dana"],
        "Attendees": [{"Email": "dana@fabrikam.example", "Name": "Dana Example", "AttendeeType": "Required"}],
        "Recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
                       "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 3}},
    })
    await pega_control.update_appointment(appt["id"], "alex", {"Location": "Teams"})
    await pega_control.cancel_appointment(appt["id"], "alex", reason="Customer asked to postpone")
    await pega_control.wait_outbound(3)
    assert receiver.rejected == []
    create, update, cancel = receiver.received
    assert create.operation_id == "createAppointment" and create.app_id == "pega-connect-rest"
    b = create.body
    assert b["pegaId"] == appt["id"] and b["operator"] == "alex" and b["mailbox"] == "alex@contoso.example"
    assert b["start"] == {"dateTime": "2026-12-01T10:00:00", "timeZone": "Europe/Berlin"}  # 09:00Z in Berlin
    assert b["attendees"] == [{"email": "dana@fabrikam.example", "name": "Dana Example", "type": "required"}]
    assert b["recurrence"]["range"]["numberOfOccurrences"] == 3
    assert b["links"] == {"contactId": seeded["dana"]}
    assert update.operation_id == "updateAppointment" and update.path_params == {"pegaId": appt["id"]}
    assert set(update.body) == {"operator", "mailbox", "location", "changedAt"}  # only what changed
    assert update.body["location"] == "Teams"
    assert cancel.operation_id == "cancelAppointment" and cancel.body["comment"] == "Customer asked to postpone"
    assert len({r.idempotency_key for r in receiver.received}) == 3


async def test_rep_email_send_reply_reply_all(receiver: Receiver, pega_control: PegaSimControl) -> None:
    sent = await pega_control.send_email("alex", {"Subject": "Proposal", "Body": "<p>Attached</p>", "BodyType": "html",
                                                  "ToAddresses": "dana@fabrikam.example",
                                                  "CcAddresses": "blair@contoso.example",
                                                  "Attachments": [{"name": "p.txt", "contentBytes": "aGVsbG8="}]})
    await pega_control.reply_email(sent["id"], "alex", {"Body": "Following up"})
    await pega_control.reply_email(sent["id"], "blair", {"Body": "Adding my notes"}, reply_all=True)
    await pega_control.wait_outbound(3)
    assert receiver.rejected == []
    send, reply, reply_all = receiver.received
    assert send.operation_id == "sendEmail"
    assert send.body["to"] == [{"email": "dana@fabrikam.example"}] and send.body["cc"] == [{"email": "blair@contoso.example"}]
    assert send.body["body"] == {"contentType": "html", "content": "<p>Attached</p>"}
    assert reply.operation_id == "replyToEmail" and reply.path_params == {"originalPegaId": sent["id"]}
    assert reply.body["pegaId"] != sent["id"] and reply.body["subject"] == "RE: Proposal"
    assert reply_all.operation_id == "replyAllToEmail" and reply_all.body["mailbox"] == "blair@contoso.example"


async def test_inbound_email_from_exchange_is_not_sent_again(receiver: Receiver, pega_sim: PegaSim,
                                                             pega_control: PegaSimControl) -> None:
    async with pega_sim.client(client_id=pega_sim.other_client_id, client_secret=pega_sim.other_client_secret) as c:
        await c.create_case("PegaSA-Work-Email", {"Subject": "Hi", "Direction": "Inbound", "OwnerOperator": "alex"})
    await pega_control.send_email("alex", {"Subject": "marker", "Body": "x", "ToAddresses": "dana@fabrikam.example"})
    calls = await pega_control.wait_outbound(1)
    assert [c["operation_id"] for c in calls] == ["sendEmail"]


async def test_rep_contact_create_update_close(receiver: Receiver, pega_control: PegaSimControl) -> None:
    seeded = (await pega_control.state())["seeded"]
    con = await pega_control.create_contact("alex", {"FirstName": "Sam", "LastName": "Example",
                                                     "WorkEmail": "sam@fabrikam.example", "OrganizationID": seeded["fabrikam"],
                                                     "Address": {"pyCity": "Redmond"}})
    await pega_control.update_contact(con["id"], "alex", {"Title": "CTO"})
    await pega_control.close_contact(con["id"], "alex")
    await pega_control.wait_outbound(3)
    assert receiver.rejected == []
    create, update, close = receiver.received
    assert create.operation_id == "createContact"
    assert create.body["emailAddresses"] == [{"email": "sam@fabrikam.example", "name": "Sam Example"}]
    assert create.body["businessAddress"] == {"city": "Redmond"}
    assert create.body["links"] == {"organizationId": seeded["fabrikam"]}
    assert update.operation_id == "updateContact" and update.body["jobTitle"] == "CTO"
    assert set(update.body) == {"operator", "mailbox", "jobTitle", "changedAt"}
    assert close.operation_id == "closeContact" and close.path_params == {"pegaId": con["id"]}


async def test_integration_user_changes_do_not_call_out(receiver: Receiver, pega_sim: PegaSim, pega_client: PegaClient,
                                                        pega_control: PegaSimControl) -> None:
    records = PegaRecords(pega_client)  # the sync service's own credentials
    await records.upsert_appointment("AAMkAD-from-exchange", AppointmentData(subject="From Outlook", operator="alex"))
    await pega_client.sa_create("contacts", {"LastName": "Synced", "OwnerOperator": "alex"})
    # ...but the same kind of change by another API client does (Pega excludes only its integration user)
    async with pega_sim.client(client_id=pega_sim.other_client_id, client_secret=pega_sim.other_client_secret) as other:
        await other.create_case("PegaSA-Work-Appointment", {"Subject": "By another app", "OwnerOperator": "alex",
                                                            "StartTime": "2026-12-01T09:00:00.000Z",
                                                            "EndTime": "2026-12-01T09:30:00.000Z"})
    calls = await pega_control.wait_outbound(1)
    assert [c["body"]["subject"] for c in calls] == ["By another app"]
    assert receiver.received[0].operation_id == "createAppointment"


async def test_retries_keep_the_idempotency_key(receiver: Receiver, pega_control: PegaSimControl) -> None:
    receiver.fail_next = [503, 429]
    await pega_control.create_contact("alex", {"LastName": "Retry"})
    calls = await pega_control.wait_outbound(1)
    assert calls[0]["state"] == "delivered"
    assert [a["status"] for a in calls[0]["attempts"]] == [503, 429, 202]
    assert len(set(receiver.seen_keys)) == 1 and len(receiver.seen_keys) == 3
    assert len(receiver.received) == 1


async def test_retries_are_bounded(receiver: Receiver, pega_control: PegaSimControl) -> None:
    receiver.fail_next = [500] * 10
    await pega_control.create_contact("alex", {"LastName": "Bounded"})
    calls = await pega_control.wait_outbound(1)
    assert calls[0]["state"] == "failed" and len(calls[0]["attempts"]) == 4


async def test_a_400_is_not_retried(receiver: Receiver, pega_control: PegaSimControl) -> None:
    receiver.fail_next = [400]
    await pega_control.create_contact("alex", {"LastName": "Bad"})
    calls = await pega_control.wait_outbound(1)
    assert calls[0]["state"] == "failed" and len(calls[0]["attempts"]) == 1


async def test_token_without_role_is_refused_by_the_service(receiver: Receiver, pega_control: PegaSimControl) -> None:
    await pega_control.configure(client_id="sandbox-no-role", client_secret="sandbox-no-role-secret", max_attempts=1)
    await pega_control.create_contact("alex", {"LastName": "NoRole"})
    calls = await pega_control.wait_outbound(1)
    assert calls[0]["attempts"][0]["status"] == 403
    assert receiver.rejected == ["MissingRoleError"]


async def test_service_down_never_blocks_the_simulator(pega_sim: PegaSim, pega_control: PegaSimControl) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api"
    await pega_control.configure(service_base_url=dead, token_url=f"http://127.0.0.1:{free_port()}/token",
                                 backoff_seconds=60, max_attempts=3)
    # The rep's saves and the API answer while every delivery still waits for its retry (a minute's
    # backoff): had a save waited for its delivery, it would not have returned before the test's timeout.
    for i in range(5):
        await pega_control.create_appointment("alex", {"Subject": f"offline {i}"})
    async with pega_sim.client() as client:
        await client.query_data_view("D_AppointmentList")
    calls = await pega_control.outbound()
    assert len(calls) == 5 and all(c["state"] == "pending" for c in calls)


async def test_outbound_with_the_graph_simulator_as_entra(graph_sim: Any, pega_control: PegaSimControl) -> None:
    """The sandbox wiring: tokens from the Graph simulator (the sandbox's Entra ID), validated by shared.auth
    through its published metadata and keys."""
    base = f"{graph_sim.base_url}/{graph_sim.tenant_id}"
    settings = ApiAuthSettings(tenant_id=graph_sim.tenant_id, audience=API_AUDIENCE,
                               openid_config_url=f"{base}/v2.0/.well-known/openid-configuration")
    rec = Receiver(BearerValidator.from_settings(settings))
    app = web.Application()
    for op in operations():
        app.router.add_route(op.method, "/api" + op.path, rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await pega_control.configure(service_base_url=f"http://127.0.0.1:{port}/api", function_key=FUNCTION_KEY,
                                     token_url=f"{base}/oauth2/v2.0/token", client_id="pega-connect-rest",
                                     client_secret="sandbox-pega-secret", scope=f"{API_AUDIENCE}/.default",
                                     backoff_seconds=0.05, max_attempts=2)
        await pega_control.create_contact("alex", {"LastName": "ViaGraphSim"})
        calls = await pega_control.wait_outbound(1)
        assert calls[0]["state"] == "delivered", calls
        assert rec.rejected == [] and rec.received[0].app_id == "pega-connect-rest"
        # the client without a role on our API gets a token, but the service refuses it
        await pega_control.configure(client_id="sandbox-no-role", client_secret="sandbox-no-role-secret")
        await pega_control.create_contact("alex", {"LastName": "NoRoleViaGraphSim"})
        calls = await pega_control.wait_outbound(2)
        assert calls[1]["attempts"][0]["status"] == 403
        assert rec.rejected == ["MissingRoleError"]
    finally:
        await runner.cleanup()


async def test_rep_working_through_the_sa_api_calls_out(receiver: Receiver, pega_sim: PegaSim,
                                                        pega_control: PegaSimControl) -> None:
    alex_password = dict(pega_sim.rep_passwords)["alex"]
    async with pega_sim.client(username="alex", password=alex_password) as as_alex:
        created = await as_alex.sa_create("contacts", {"FirstName": "Via", "LastName": "Api", "OwnerOperator": "alex"})
        await as_alex.sa_update("contacts", created.id, {"pyStatusWork": "Closed"})
    calls = await pega_control.wait_outbound(2)
    assert [c["operation_id"] for c in calls] == ["createContact", "closeContact"]
    assert all(c["actor"] == "alex" for c in calls)


async def test_reset_restores_outbound_settings(receiver: Receiver, pega_control: PegaSimControl) -> None:
    await pega_control.configure(max_attempts=9, client_id="someone")
    await pega_control.reset()
    cfg = (await pega_control.config())["outbound"]
    assert cfg["max_attempts"] != 9 and cfg["client_id"] == "pega-connect-rest"
