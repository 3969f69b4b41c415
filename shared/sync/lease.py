"""One delta round at a time per (mailbox, kind): a short lease with a heartbeat.

Two rounds of the same mailbox and kind running at once (a continuation and a notification, a
redelivered message, a parked item's retry) would both see "not linked" for a new item and could
both create it in Pega. The lease makes the second one wait: it raises LeaseBusyError (a
TransientError with a Retry-After) so run_message re-enqueues it with a delay instead of burning
retries. The holder renews the lease while it works (shared.storage.leases), and checks it before
applying each page; a worker that dies leaves a lease that expires within SYNC_LEASE_SECONDS, and
the recovery timer re-enqueues its round (shared.sync.recovery).
"""

from __future__ import annotations

import datetime as dt

from shared.storage.leases import Lease, LeaseBusyError
from shared.storage.tables import TableStore

ROUND_SCOPE = "round"
RoundBusyError = LeaseBusyError  # the name the engine used before leases were shared with operations


def round_key(mailbox: str, kind: str) -> str:
    return f"{mailbox.lower()}|{kind}"


async def round_lease(tables: TableStore, mailbox: str, kind: str, *, seconds: float) -> Lease:
    table = await tables.ensure(tables.names.roundlease)
    return Lease(table, ROUND_SCOPE, round_key(mailbox, kind), duration=dt.timedelta(seconds=seconds),
                 data={"mailbox": mailbox.lower(), "kind": kind})
