"""Asking for a delta round: the one way every trigger (notification, poll, lifecycle, admin) does it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services

log = logging.getLogger(__name__)


async def enqueue_round(services: Services, mailbox: str, kind: str, *, reason: str, full_resync: bool = False,
                        coalesce: bool = True) -> bool:
    """Enqueue a `delta.sync`; coalesced with a round already pending unless told otherwise.

    Returns False when an already pending round will pick the change up.

    The claim and the send run shielded from the caller's cancellation: notification intake
    runs under a time budget, and a cancellation between the coalescer's pending row and the
    queue message would leave a row that suppresses every notification and poll of that
    mailbox and kind without a round behind it.
    """
    task = asyncio.ensure_future(_enqueue(services, mailbox, kind, reason=reason, full_resync=full_resync,
                                          coalesce=coalesce))
    task.add_done_callback(_observe)
    return await asyncio.shield(task)


def _observe(task: asyncio.Future[bool]) -> None:
    """Retrieve the outcome of a round whose caller stopped waiting (no 'never retrieved' noise)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("enqueueing a round failed: %s", type(task.exception()).__name__)


async def _enqueue(services: Services, mailbox: str, kind: str, *, reason: str, full_resync: bool,
                   coalesce: bool) -> bool:
    claim: str | None = None
    if coalesce and not full_resync:
        claim = await services.state.coalescer.request(mailbox, kind)
        if claim is None:
            return False
    try:
        await services.queues.send(names.DELTA_WORK, Envelope(type="delta.sync", body={
            "mailbox": mailbox.lower(), "kind": kind, "reason": reason, "full_resync": full_resync}))
    except BaseException:
        if claim is not None:
            with contextlib.suppress(Exception):
                await services.state.coalescer.release(mailbox, kind, claim)
        raise
    if claim is not None:
        await services.state.coalescer.mark_sent(mailbox, kind, claim)
    return True
