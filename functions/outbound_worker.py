"""Queue trigger on `outbound-ops`: one accepted Pega operation per message, written to Exchange.

Thin: run_message gives the shared queue semantics (malformed → dead letter, Retry-After →
deferred re-enqueue, other failures → host retries then poison); shared.outbound.worker runs the
operation and keeps its status.
"""

from __future__ import annotations

import azure.functions as func

from shared.outbound.context import worker_context
from shared.outbound.intake import ENVELOPE_TYPE
from shared.outbound.worker import operation_id_of, run_operation
from shared.queues.envelope import Envelope
from shared.queues.names import OUTBOUND_OPS
from shared.queues.worker import run_message
from shared.runtime import services

bp = func.Blueprint()


@bp.function_name("outbound_worker")
@bp.queue_trigger(arg_name="msg", queue_name=OUTBOUND_OPS, connection="AzureWebJobsStorage")
async def outbound_worker(msg: func.QueueMessage) -> None:
    svc = await services()
    ctx = worker_context(svc.settings, svc.state)

    async def handle(envelope: Envelope) -> None:
        await run_operation(ctx, operation_id_of(envelope))

    await run_message(queue=OUTBOUND_OPS, text=msg.get_body().decode("utf-8", "replace"),
                      dequeue_count=int(msg.dequeue_count or 1), handlers={ENVELOPE_TYPE: handle},
                      deadletters=svc.state.deadletters, sender=svc.queues)
