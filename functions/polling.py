"""The safety-net delta poll timer (every minute; each mailbox/kind at its configured interval)."""

from __future__ import annotations

import azure.functions as func

from shared.runtime import services
from shared.sync.poll import poll_due

bp = func.Blueprint()


@bp.function_name("delta_poll")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False)
async def delta_poll(timer: func.TimerRequest) -> None:
    await poll_due(await services())
