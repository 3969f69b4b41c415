"""Queue trigger on `outbound-ops`: one accepted Pega operation per message, written to Exchange.

Thin: run_message gives the shared queue semantics (malformed → dead letter, Retry-After →
deferred re-enqueue, other failures → host retries then poison); shared.outbound.worker's
handlers run the operation inside the ops guard (tracing, metrics, notification frequency) and
keep the operation's status.
"""

from __future__ import annotations

import azure.functions as func

from shared.outbound.context import worker_context
from shared.outbound.worker import queue_handlers
from shared.queues.names import OUTBOUND_OPS
from shared.queues.worker import run_message
from shared.runtime import services

bp = func.Blueprint()


@bp.function_name("outbound_worker")
@bp.queue_trigger(arg_name="msg", queue_name=OUTBOUND_OPS, connection="AzureWebJobsStorage")
async def outbound_worker(msg: func.QueueMessage) -> None:
    svc = await services()
    await run_message(queue=OUTBOUND_OPS, text=msg.get_body().decode("utf-8", "replace"),
                      dequeue_count=int(msg.dequeue_count or 1),
                      handlers=queue_handlers(services, worker_context(svc.settings, svc.state)),
                      deadletters=svc.state.deadletters, sender=svc.queues)
