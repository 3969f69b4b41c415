"""Queue trigger on `delta-work`: one Exchange → Pega delta round per message (thin; logic in shared/sync)."""

from __future__ import annotations

import azure.functions as func

from shared.errors import PermanentError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.runtime import services
from shared.sync.inbound import run_delta_round

bp = func.Blueprint()

KINDS = ("email", "calendar", "contacts")


async def handle_delta_sync(envelope: Envelope) -> None:
    body = envelope.body
    mailbox, kind = body.get("mailbox"), body.get("kind")
    if not isinstance(mailbox, str) or "@" not in mailbox or kind not in KINDS:
        raise PermanentError("delta.sync needs body.mailbox (a UPN) and body.kind (email|calendar|contacts)")
    await run_delta_round(await services(), mailbox=mailbox, kind=str(kind), reason=str(body.get("reason") or "poll"),
                          full_resync=bool(body.get("full_resync", False)))


@bp.function_name("delta_worker")
@bp.queue_trigger(arg_name="msg", queue_name=names.DELTA_WORK, connection="AzureWebJobsStorage")
async def delta_worker(msg: func.QueueMessage) -> None:
    svc = await services()
    await run_message(queue=names.DELTA_WORK, text=msg.get_body().decode("utf-8", "replace"),
                      dequeue_count=int(msg.dequeue_count or 1), handlers={"delta.sync": handle_delta_sync},
                      deadletters=svc.state.deadletters, sender=svc.queues)
