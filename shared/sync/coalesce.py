"""Coalescing of change notifications into delta rounds.

A burst of notifications for one mailbox and kind must cause one delta round, not one per
notification — but a notification arriving while a round is already reading must cause another
round, or that change would wait for the safety-net poll. So:
- intake calls :meth:`Coalescer.request` — an insert-if-absent of a "pending" row; only the
  winner enqueues a `delta.sync` message, then marks the row sent (:meth:`Coalescer.mark_sent`);
- the delta worker calls :meth:`Coalescer.begin_round` before it reads the first page, deleting
  the row, so any later notification enqueues a fresh round.

A pending row must never block rounds for long without a message behind it: a row still unsent
after `unsent_after` (the claimer died or was stopped between the insert and the send) no longer
blocks, nor does a sent row older than `stale_after` (the message was lost or dead-lettered).
Taking a row over at worst enqueues one redundant round, which the delta worker runs harmlessly.

Every operation is a point operation on one (mailbox, kind) row, so the rows are spread over one
partition per mailbox: a single partition ("pending", before issue 16's follow-up) serves about
2,000 operations per second, which a large tenant's notification peaks (three operations per change)
would reach. A row left in the old partition by an upgrade blocks nothing (nothing reads it) and is
never written again.
"""

from __future__ import annotations

import datetime as dt

from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.keys import encode_key
from shared.storage.tables import Table

PK_PREFIX = "pending|"


def pending_key(mailbox: str, kind: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of the pending row of a mailbox and kind: a partition per mailbox."""
    return PK_PREFIX + encode_key(mailbox.lower()), encode_key(kind)


class Coalescer:
    def __init__(self, table: Table, *, stale_after: dt.timedelta = dt.timedelta(minutes=10),
                 unsent_after: dt.timedelta = dt.timedelta(seconds=30)) -> None:
        self._t = table
        self.stale_after = stale_after
        self.unsent_after = unsent_after

    def _blocks(self, row: dict[str, object], now: dt.datetime) -> bool:
        age = now - row["requested_at"]  # type: ignore[operator]
        if not row.get("sent", True):  # rows written before the flag existed count as sent
            return age <= self.unsent_after
        return age <= self.stale_after

    async def request(self, mailbox: str, kind: str, *, now: dt.datetime | None = None) -> str | None:
        """A claim (the pending row's ETag) if the caller should enqueue a round; None when a round
        is already pending for this mailbox and kind. Send, then :meth:`mark_sent` the claim."""
        now = now or dt.datetime.now(dt.UTC)
        pk, rk = pending_key(mailbox, kind)
        row = {"PartitionKey": pk, "RowKey": rk, "requested_at": now, "sent": False}
        try:
            return await self._t.insert(row)
        except AlreadyExistsError:
            existing = await self._t.get(pk, rk)
            if existing is None:
                return await self.request(mailbox, kind, now=now)
            if not self._blocks(existing, now):
                await self._t.delete(pk, rk, etag=existing["_etag"])
                return await self.request(mailbox, kind, now=now)
            return None

    async def mark_sent(self, mailbox: str, kind: str, claim: str) -> None:
        """The round of `claim` is in the queue. A row already taken by the worker (deleted) or by
        a later claimer is left alone."""
        try:
            pk, rk = pending_key(mailbox, kind)
            await self._t.merge({"PartitionKey": pk, "RowKey": rk, "sent": True}, etag=claim)
        except (NotFoundError, ConcurrencyError):
            pass

    async def release(self, mailbox: str, kind: str, claim: str) -> None:
        """Give a claim up (its message could not be sent), so the next request claims at once."""
        try:
            await self._t.delete(*pending_key(mailbox, kind), etag=claim)
        except ConcurrencyError:
            pass

    async def begin_round(self, mailbox: str, kind: str) -> None:
        await self._t.delete(*pending_key(mailbox, kind))
