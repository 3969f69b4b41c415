"""The safety-net delta poll: Pega's connector polls; we poll as a backstop to push.

Every tick, each active mailbox's enabled kinds that have not completed a round within the poll
interval get a (coalesced) delta round. With push switched off this is the only path.
"""

from __future__ import annotations

import datetime as dt
import logging

from shared.runtime import Services
from shared.storage.mailboxes import KINDS
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)


async def poll_due(services: Services, *, now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    interval = dt.timedelta(minutes=services.settings.sync.poll_interval_minutes)
    enqueued = 0
    for mailbox in await services.state.mailboxes.list():
        health = {h.kind: h for h in await services.state.health.for_mailbox(mailbox.key)}
        for kind in KINDS:
            if not mailbox.enabled(kind):
                continue
            h = health.get(kind)
            last = h.last_success_at if h else None
            due = last is None or now - last >= interval
            if due and await enqueue_round(services, mailbox.key, kind, reason="poll"):
                enqueued += 1
    if enqueued:
        log.info("delta poll enqueued %s rounds", enqueued)
    return enqueued
