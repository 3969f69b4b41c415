"""Queue trigger on `delta-work`: one Exchange → Pega delta round per message (thin; logic in shared/sync).

The round runs inside the ops guard (shared.ops.hooks.delta_handlers): the body is validated
(a bad body is a PermanentError → dead letter), the round gets a CONSUMER span continuing the
producer's trace and its metrics, and repeated failures give up by the notification-frequency rule.
"""

from __future__ import annotations

import azure.functions as func

from shared.ops.hooks import delta_handlers
from shared.queues import names
from shared.queues.worker import Handler, run_message
from shared.runtime import services

bp = func.Blueprint()


def handlers() -> dict[str, Handler]:
    """The handlers this trigger runs (the engine's round wrapped by the ops guard)."""
    return delta_handlers(services)


@bp.function_name("delta_worker")
@bp.queue_trigger(arg_name="msg", queue_name=names.DELTA_WORK, connection="AzureWebJobsStorage")
async def delta_worker(msg: func.QueueMessage) -> None:
    svc = await services()
    await run_message(queue=names.DELTA_WORK, text=msg.get_body().decode("utf-8", "replace"),
                      dequeue_count=int(msg.dequeue_count or 1), handlers=handlers(),
                      deadletters=svc.state.deadletters, sender=svc.queues)
