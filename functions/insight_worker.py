"""Queue trigger on `insight-work`: the insight fields of new records, after the records (thin; logic
in shared/sync/insight_jobs.py). Its dead letters keep the job ids and the cause, not the mail text."""

from __future__ import annotations

import azure.functions as func

from shared.queues import names
from shared.queues.worker import run_message
from shared.runtime import services
from shared.sync import insight_jobs

bp = func.Blueprint()


@bp.function_name("insight_worker")
@bp.queue_trigger(arg_name="msg", queue_name=names.INSIGHT_WORK, connection="AzureWebJobsStorage")
async def insight_worker(msg: func.QueueMessage) -> None:
    svc = await services()
    await run_message(queue=names.INSIGHT_WORK, text=msg.get_body().decode("utf-8", "replace"),
                      dequeue_count=int(msg.dequeue_count or 1), handlers=insight_jobs.handlers(svc),
                      deadletters=svc.state.deadletters, sender=svc.queues, redact=insight_jobs.redact)
