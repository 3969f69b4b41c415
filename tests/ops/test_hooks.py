"""The ready-made outbound handler: the operation's mailbox and kind (appointment → calendar) are found
from its Operation row, and the notification frequency applies to Pega → Exchange writes too."""

from __future__ import annotations

import uuid

from shared.graph.errors import GraphUnavailableError
from shared.ops.hooks import outbound_handlers
from shared.ops.notices import GraphNotifier
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.storage.health import record_failure, record_success
from shared.storage.mailboxes import Mailbox
from shared.storage.operations import Operation
from tests.ops.conftest import inbox


async def test_outbound_operations_give_up_and_notify_per_mailbox_kind(services, gateway, graph_sim, people, clock,
                                                                       queue_name):
    rep = people.rep
    await services.state.mailboxes.put(Mailbox(upn=rep, pega_operator="alex"))
    op = await services.state.operations.put(Operation(operation_id=uuid.uuid4().hex, mailbox=rep, kind="appointment",
                                                       action="create", idempotency_key="k1", request_hash="h"))
    failing = {"on": True}

    async def run(env: Envelope) -> str:  # what shared.outbound.worker.run_operation does with health
        if failing["on"]:
            await services.state.health.update(rep, "calendar", record_failure("GraphUnavailableError: 503",
                                                                               now=clock()))
            raise GraphUnavailableError("POST /v1.0/users/x/events: Graph 503", status=503)
        await services.state.health.update(rep, "calendar", record_success(synced=1, now=clock()))
        return "succeeded"

    handlers = outbound_handlers(services, run, clock=clock,
                                 notifier=GraphNotifier(gateway, sender=people.sender, admin=people.admin))
    env = Envelope(type="outbound.operation", body={"operation_id": op.operation_id})

    async def deliver():
        try:
            return await run_message(queue=queue_name, text=env.dumps(), dequeue_count=1, handlers=handlers,
                                     deadletters=services.state.deadletters, sender=services.queues)
        except GraphUnavailableError:
            return None

    assert await deliver() is None  # retried
    clock.advance(minutes=2)
    out = await deliver()
    assert out is not None and out.status == "dead_lettered" and "GaveUpError" in out.cause
    [mail] = await inbox(graph_sim, rep)
    assert "calendar sync is failing" in mail["subject"]
    failing["on"] = False
    assert (await deliver()).status == "done"
    assert [m["subject"] for m in await inbox(graph_sim, rep)][-1].endswith(f"calendar sync has recovered for {rep}")
    assert len(await inbox(graph_sim, people.admin)) == 2


async def test_delta_handler_dead_letters_a_malformed_round_at_once(services, queue_name):
    from shared.ops.hooks import delta_handlers

    bad = Envelope(type="delta.sync", body={"mailbox": "not-a-upn", "kind": "email"})
    out = await run_message(queue=queue_name, text=bad.dumps(), dequeue_count=1, handlers=delta_handlers(services),
                            deadletters=services.state.deadletters, sender=services.queues)
    assert out.status == "dead_lettered" and "body.mailbox" in out.cause
