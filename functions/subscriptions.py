"""Subscription maintenance: a queue worker (ensure/remove/lifecycle) and its timer."""

from __future__ import annotations

import datetime as dt

import azure.functions as func

from shared.errors import PermanentError
from shared.graph.factory import graph_gateway
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.runtime import Services, services
from shared.sync.poll import scheduled_keys
from shared.sync.subscriptions import SubscriptionManager

bp = func.Blueprint()

ENSURE_EVERY_MINUTES = 10


async def _manager() -> SubscriptionManager:
    svc = await services()
    return SubscriptionManager(svc, graph_gateway(svc.settings.graph, slots=svc.state.graphslots))


async def _ensure(env: Envelope) -> None:
    mgr = await _manager()
    mailbox = await mgr.services.state.mailboxes.get(str(env.body.get("mailbox", "")))
    if mailbox is None:
        raise PermanentError("subscriptions.ensure: mailbox is not onboarded")
    if not mailbox.active:
        await mgr.remove_all(mailbox.key)
        return
    await mgr.ensure(mailbox)


async def _remove(env: Envelope) -> None:
    mgr = await _manager()
    await mgr.remove_all(str(env.body.get("mailbox", "")))


async def _lifecycle(env: Envelope) -> None:
    mgr = await _manager()
    await mgr.on_lifecycle(subscription_id=str(env.body.get("subscription_id", "")), event=str(env.body.get("event")))


HANDLERS = {"subscriptions.ensure": _ensure, "subscriptions.remove": _remove, "subscription.lifecycle": _lifecycle}


@bp.function_name("subscription_worker")
@bp.queue_trigger(arg_name="msg", queue_name=names.SUBSCRIPTION_WORK, connection="AzureWebJobsStorage")
async def subscription_worker(msg: func.QueueMessage) -> None:
    svc = await services()
    await run_message(queue=names.SUBSCRIPTION_WORK, text=msg.get_body().decode("utf-8", "replace"),
                      dequeue_count=int(msg.dequeue_count or 1), handlers=HANDLERS,
                      deadletters=svc.state.deadletters, sender=svc.queues)


@bp.function_name("subscription_manager")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False)
async def subscription_manager(timer: func.TimerRequest) -> None:
    """One ensure per mailbox every 10 minutes, spread over the minutes by schedule slot (fanned out
    through the queue): a tick's work is a tenth of the tenant, never all of it at once."""
    await ensure_due(await services())


async def ensure_due(svc: Services, *, now: dt.datetime | None = None) -> int:
    """Send `subscriptions.ensure` for the active mailboxes whose slot is due this minute, and those of
    the ticks missed since the last one ran: after a host slept past its subscriptions' expiry, every
    mailbox gets them back at the first tick, not at its slot up to ten minutes later."""
    minute = int((now or dt.datetime.now(dt.UTC)).timestamp() // 60)
    keys = await scheduled_keys(svc, "subscriptions", minute=minute, interval_minutes=ENSURE_EVERY_MINUTES)
    sent = 0
    for key in keys:
        mailbox = await svc.state.mailboxes.get(key)
        if mailbox is None or not mailbox.active:
            continue
        await svc.queues.send(names.SUBSCRIPTION_WORK, Envelope(type="subscriptions.ensure",
                                                                body={"mailbox": mailbox.key}))
        sent += 1
    await svc.state.mailboxes.save_tick("subscriptions", minute)
    return sent
