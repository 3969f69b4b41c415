"""One delta round at a time per (mailbox, kind): a short lease with a heartbeat.

Two rounds of the same mailbox and kind running at once (a continuation and a notification, a
redelivered message, a parked item's retry) would both see "not linked" for a new item and could
both create it in Pega. A round that finds the lease held hands its work over: it asks the holder
to run once more when it is done (Lease.acquire_or_hand_over) and completes at once — no message
waits in the queue for the lease, and a change that arrived during a round is read right after it.
A parked item's retry waits instead (LeaseBusyError: deferred with a Retry-After). The holder renews the lease while it works (shared.storage.leases), and checks it before
applying each page; a worker that dies leaves a lease that expires within SYNC_LEASE_SECONDS, and
the recovery timer re-enqueues its round (shared.sync.recovery).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from shared.storage.leases import Lease, LeaseBusyError
from shared.storage.tables import TableStore

ROUND_SCOPE = "round"
RoundBusyError = LeaseBusyError  # the name the engine used before leases were shared with operations


def round_key(mailbox: str, kind: str) -> str:
    return f"{mailbox.lower()}|{kind}"


async def round_lease(tables: TableStore, mailbox: str, kind: str, *, seconds: float,
                      on_rerun: Callable[[str], Awaitable[None]] | None = None) -> Lease:
    """`on_rerun(how)`: enqueue one more round ("normal" or "full" resync) when someone asked for it
    while this round held the lease (Lease.acquire_or_hand_over)."""
    table = await tables.ensure(tables.names.roundlease)
    return Lease(table, ROUND_SCOPE, round_key(mailbox, kind), duration=dt.timedelta(seconds=seconds),
                 data={"mailbox": mailbox.lower(), "kind": kind}, on_rerun=on_rerun)
