"""The worker in-process (real Graph gateway, simulators, Azurite) with settings the shared host
does not use: a dedicated contact folder, and "delete" as what closing a contact does."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.config import load_settings
from shared.graph.gateway import GraphGateway
from shared.outbound.context import WorkerContext
from shared.outbound.payloads import PayloadStore
from shared.outbound.worker import run_operation
from shared.pega.mapping import load_mapping
from shared.storage.operations import Operation
from shared.storage.state import StateStore
from tests.sync_outbound.conftest import host_settings


@pytest.fixture
async def ctx(azurite_conn, graph_sim, pega_sim, issuer) -> AsyncIterator[WorkerContext]:
    env = {"AzureWebJobsStorage": azurite_conn, **host_settings(azurite_conn, graph_sim, pega_sim, issuer[1]),
           "PEGA_BASE_URL": "", "SYNC_CONTACT_FOLDER": "Pega contacts", "SYNC_CONTACT_CLOSE_ACTION": "delete"}
    settings = load_settings(env)
    state = await StateStore.open(settings.storage)
    graph = GraphGateway.from_settings(settings.graph)
    payloads = PayloadStore(settings.storage)
    yield WorkerContext(settings=settings, state=state, graph=graph, payloads=payloads, pega=None,
                        mapping=load_mapping(None))
    await graph.close()
    await payloads.close()
    await state.close()


async def run(ctx, rep, kind, action, pega_id, body, operation):
    op = Operation(operation_id=uuid.uuid4().hex, mailbox=rep.upn, kind=kind, action=action,
                   idempotency_key=uuid.uuid4().hex, request_hash="-", created_at=dt.datetime.now(dt.UTC),
                   payload={"operation": operation, "pegaId": pega_id, "params": {"pegaId": pega_id},
                            "changedAt": body.get("changedAt"), "body": body})
    await ctx.state.operations.put(op)
    assert await run_operation(ctx, op.operation_id) == "succeeded"
    done = await ctx.state.operations.get(op.operation_id)
    assert done is not None
    return dataclasses.asdict(done)["result"]


async def test_dedicated_folder_and_delete_on_close(ctx, rep, graph_http):
    pega_id = f"PEGACRM-ENTITY-CONTACT CON-{uuid.uuid4().hex[:6]}"
    body = {"pegaId": pega_id, "operator": rep.operator, "givenName": "Erin", "surname": "Diaz",
            "changedAt": "2026-11-20T10:00:00Z"}
    result = await run(ctx, rep, "contact", "create", pega_id, body, "createContact")
    assert result["reportedToPega"] is False  # no Pega configured: nothing reported, nothing failed
    folders = (await graph_http.get(f"/users/{rep.upn}/contactFolders")).json()["value"]
    folder = next(f for f in folders if f["displayName"] == "Pega contacts")
    inside = (await graph_http.get(f"/users/{rep.upn}/contactFolders/{folder['id']}/contacts")).json()["value"]
    assert [c["id"] for c in inside] == [result["exchangeId"]]
    assert (await graph_http.get(f"/users/{rep.upn}/contacts")).json()["value"] == []  # not in the default folder
    # with its link lost, a second create for the same Pega contact finds it in the folder by PegaId
    await ctx.state.links.delete(await ctx.state.links.by_pega_id(rep.upn, pega_id))
    again = await run(ctx, rep, "contact", "create", pega_id, {**body, "surname": "Diaz-2"}, "createContact")
    assert again["exchangeId"] == result["exchangeId"] and again["created"] is False
    assert len((await graph_http.get(f"/users/{rep.upn}/contactFolders/{folder['id']}/contacts")).json()["value"]) == 1
    closed = await run(ctx, rep, "contact", "close", pega_id, {"operator": rep.operator,
                                                               "changedAt": "2026-11-20T12:00:00Z"}, "closeContact")
    assert closed["action"] == "deleted"
    gone = await graph_http.get(f"/users/{rep.upn}/contacts/{result['exchangeId']}")
    assert gone.status_code == 404


async def test_a_link_made_by_the_inbound_round_for_our_new_item_is_taken_over(ctx, rep):
    """The race: the Exchange → Pega round saw our new event before our link existed and linked it
    to a Pega record of its own. Our operation takes the link over and names the duplicate."""
    from shared.storage.links import Link

    pega_id = f"PEGASA-WORK-APPOINTMENT A-{uuid.uuid4().hex[:6]}"
    body = {"pegaId": pega_id, "operator": rep.operator, "subject": "Race",
            "start": {"dateTime": "2026-12-01T09:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00", "timeZone": "UTC"}, "changedAt": "2026-11-20T10:00:00Z"}
    first = await run(ctx, rep, "appointment", "create", pega_id, body, "createAppointment")
    ours = await ctx.state.links.by_pega_id(rep.upn, pega_id)
    await ctx.state.links.delete(ours)
    await ctx.state.links.create(Link(mailbox=rep.upn, kind="event", graph_id=first["exchangeId"],
                                      pega_id="PEGASA-WORK-APPOINTMENT A-DUP", snapshot={"_by": "exchange"}))
    again = await run(ctx, rep, "appointment", "create", pega_id, body, "createAppointment")
    assert again["exchangeId"] == first["exchangeId"] and again["created"] is False
    assert again["duplicatePegaRecords"] == ["PEGASA-WORK-APPOINTMENT A-DUP"]
    link = await ctx.state.links.by_graph_id(rep.upn, first["exchangeId"])
    assert link.pega_id == pega_id
    assert await ctx.state.links.by_pega_id(rep.upn, "PEGASA-WORK-APPOINTMENT A-DUP") is None


async def test_when_the_guard_gives_up_on_the_mailbox_the_operation_fails_and_is_dead_lettered(ctx, rep, graph_sim):
    """Graph keeps failing for the mailbox longer than the notification frequency: the ops guard
    dead-letters the message, and the operation says failed (gave_up) instead of staying accepted."""
    from shared.ops.notices import GraphNotifier
    from shared.outbound.intake import ENVELOPE_TYPE
    from shared.outbound.worker import queue_handlers
    from shared.queues.envelope import Envelope
    from shared.queues.sender import QueueSender
    from shared.queues.worker import run_message
    from shared.runtime import Services

    now = {"t": dt.datetime.now(dt.UTC)}
    svc = Services(settings=ctx.settings, state=ctx.state, queues=QueueSender.from_settings(ctx.settings.storage))
    rule = await graph_sim.control.add_fault(path=f"users/{rep.upn}/events$", method="POST", status=503)
    try:
        pega_id = f"PEGASA-WORK-APPOINTMENT A-{uuid.uuid4().hex[:6]}"
        body = {"pegaId": pega_id, "operator": rep.operator, "subject": "Doomed",
                "start": {"dateTime": "2026-12-01T09:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-01T10:00", "timeZone": "UTC"}, "changedAt": "2026-11-20T10:00:00Z"}
        op = Operation(operation_id=uuid.uuid4().hex, mailbox=rep.upn, kind="appointment", action="create",
                       idempotency_key=uuid.uuid4().hex, request_hash="-", created_at=dt.datetime.now(dt.UTC),
                       payload={"operation": "createAppointment", "pegaId": pega_id, "params": {},
                                "changedAt": body["changedAt"], "body": body})
        await ctx.state.operations.put(op)
        handlers = queue_handlers(svc, ctx, clock=lambda: now["t"], notifier=GraphNotifier(ctx.graph, sender=""))
        text = Envelope(type=ENVELOPE_TYPE, body={"operation_id": op.operation_id}).dumps()
        queue = "t" + uuid.uuid4().hex[:12]
        first = await run_message(queue=queue, text=text, dequeue_count=1, handlers=handlers,
                                  deadletters=ctx.state.deadletters, sender=svc.queues)
        assert first.status == "deferred"  # 503: retried later through the queue
        assert (await ctx.state.operations.get(op.operation_id)).status == "accepted"
        now["t"] += dt.timedelta(minutes=ctx.settings.sync.notification_frequency_minutes + 1)
        second = await run_message(queue=queue, text=text, dequeue_count=1, handlers=handlers,
                                   deadletters=ctx.state.deadletters, sender=svc.queues)
        assert second.status == "dead_lettered" and "GaveUpError" in second.cause
        failed = await ctx.state.operations.get(op.operation_id)
        assert failed.status == "failed" and failed.result["error"]["code"] == "gave_up"
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
        await svc.queues.close()
