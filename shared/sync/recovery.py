"""Recovery after a crash in seconds, not minutes: re-enqueue the work of abandoned leases.

When a worker dies mid-round or mid-operation (SIGKILL, a lost instance), its queue message stays
invisible for the host's visibility window (10 minutes on Azure Functions) and its lease stops
being renewed. This timer finds leases whose holder stopped renewing (the lease table holds only
live leases, so the query is as small as the work in flight), deletes them (only if still
unrenewed) and re-enqueues their work: a delta round for the mailbox and kind, or the outbound
operation. A message that reappears later is harmless: rounds and operations are idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging

from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.leases import abandoned, forget
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)


async def recover_abandoned(services: Services, *, now: dt.datetime | None = None) -> int:
    """Re-enqueue the work of every abandoned lease; returns how many were recovered."""
    ts = services.state.tables
    table = await ts.ensure(ts.names.roundlease)
    recovered = 0
    for lease in await abandoned(table, now=now):
        if not await forget(table, lease):
            continue  # renewed or taken over meanwhile: someone is on it
        if lease.scope == "round" and lease.data.get("mailbox") and lease.data.get("kind"):
            await enqueue_round(services, str(lease.data["mailbox"]), str(lease.data["kind"]), reason="recovery",
                                coalesce=False, full_resync=lease.rerun == "full")
        elif lease.scope == "op" and lease.data.get("operation_id"):
            await services.queues.send(names.OUTBOUND_OPS, Envelope(type="outbound.operation", body={
                "operation_id": str(lease.data["operation_id"])}))
        else:
            continue
        recovered += 1
    if recovered:
        log.warning("recovered the work of %s abandoned leases", recovered)
    return recovered
