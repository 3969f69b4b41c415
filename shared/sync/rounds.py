"""Asking for a delta round: the one way every trigger (notification, poll, lifecycle, admin) does it."""

from __future__ import annotations

from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services


async def enqueue_round(services: Services, mailbox: str, kind: str, *, reason: str, full_resync: bool = False,
                        coalesce: bool = True) -> bool:
    """Enqueue a `delta.sync`; coalesced with a round already pending unless told otherwise.

    Returns False when an already pending round will pick the change up.
    """
    if coalesce and not full_resync and not await services.state.coalescer.request(mailbox, kind):
        return False
    await services.queues.send(names.DELTA_WORK, Envelope(type="delta.sync", body={
        "mailbox": mailbox.lower(), "kind": kind, "reason": reason, "full_resync": full_resync}))
    return True
