"""Timers of the Exchange → Pega side: the safety-net delta poll (every minute; each mailbox/kind at
its configured interval) and crash recovery (every 15 s: work of abandoned leases re-enqueued)."""

from __future__ import annotations

import azure.functions as func

from shared.runtime import services
from shared.sync.poll import poll_due
from shared.sync.recovery import recover_abandoned

bp = func.Blueprint()


@bp.function_name("delta_poll")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False)
async def delta_poll(timer: func.TimerRequest) -> None:
    await poll_due(await services())


@bp.function_name("lease_recovery")
@bp.timer_trigger(arg_name="timer", schedule="*/15 * * * * *", run_on_startup=False)
async def lease_recovery(timer: func.TimerRequest) -> None:
    await recover_abandoned(await services())
