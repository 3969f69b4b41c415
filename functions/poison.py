"""Poison-queue triggers: a message the host gave up on becomes a dead letter with its cause."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from shared.queues import names
from shared.queues.worker import record_poison
from shared.runtime import services
from shared.sync import insight_jobs

bp = func.Blueprint()


async def _record(queue: str, msg: func.QueueMessage, *, redact: Callable[[str], str] | None = None) -> None:
    svc = await services()
    await record_poison(poison_queue=queue, text=msg.get_body().decode("utf-8", "replace"),
                        dequeue_count=int(msg.dequeue_count or 0), deadletters=svc.state.deadletters, redact=redact)


@bp.function_name("poison_delta_work")
@bp.queue_trigger(arg_name="msg", queue_name=names.poison(names.DELTA_WORK), connection="AzureWebJobsStorage")
async def poison_delta_work(msg: func.QueueMessage) -> None:
    await _record(names.poison(names.DELTA_WORK), msg)


@bp.function_name("poison_outbound_ops")
@bp.queue_trigger(arg_name="msg", queue_name=names.poison(names.OUTBOUND_OPS), connection="AzureWebJobsStorage")
async def poison_outbound_ops(msg: func.QueueMessage) -> None:
    await _record(names.poison(names.OUTBOUND_OPS), msg)


@bp.function_name("poison_subscription_work")
@bp.queue_trigger(arg_name="msg", queue_name=names.poison(names.SUBSCRIPTION_WORK), connection="AzureWebJobsStorage")
async def poison_subscription_work(msg: func.QueueMessage) -> None:
    await _record(names.poison(names.SUBSCRIPTION_WORK), msg)


@bp.function_name("poison_insight_work")
@bp.queue_trigger(arg_name="msg", queue_name=names.poison(names.INSIGHT_WORK), connection="AzureWebJobsStorage")
async def poison_insight_work(msg: func.QueueMessage) -> None:
    await _record(names.poison(names.INSIGHT_WORK), msg, redact=insight_jobs.redact)
