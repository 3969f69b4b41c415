"""Coalescing of change notifications into delta rounds.

A burst of notifications for one mailbox and kind must cause one delta round, not one per
notification — but a notification arriving while a round is already reading must cause another
round, or that change would wait for the safety-net poll. So:
- intake calls :meth:`Coalescer.request` — an insert-if-absent of a "pending" row; only the
  winner enqueues a `delta.sync` message;
- the delta worker calls :meth:`Coalescer.begin_round` before it reads the first page, deleting
  the row, so any later notification enqueues a fresh round.
A pending row older than `stale_after` (the message was lost or dead-lettered) no longer blocks.
"""

from __future__ import annotations

import datetime as dt

from shared.storage.errors import AlreadyExistsError
from shared.storage.keys import encode_key
from shared.storage.tables import Table

PK = "pending"


class Coalescer:
    def __init__(self, table: Table, *, stale_after: dt.timedelta = dt.timedelta(minutes=10)) -> None:
        self._t = table
        self.stale_after = stale_after

    @staticmethod
    def _rk(mailbox: str, kind: str) -> str:
        return encode_key(f"{mailbox.lower()}|{kind}")

    async def request(self, mailbox: str, kind: str, *, now: dt.datetime | None = None) -> bool:
        """True if the caller should enqueue a round (no round is pending for this mailbox/kind)."""
        now = now or dt.datetime.now(dt.UTC)
        row = {"PartitionKey": PK, "RowKey": self._rk(mailbox, kind), "requested_at": now}
        try:
            await self._t.insert(row)
            return True
        except AlreadyExistsError:
            existing = await self._t.get(PK, self._rk(mailbox, kind))
            if existing is None:
                return await self.request(mailbox, kind, now=now)
            if now - existing["requested_at"] > self.stale_after:
                await self._t.delete(PK, self._rk(mailbox, kind), etag=existing["_etag"])
                return await self.request(mailbox, kind, now=now)
            return False

    async def begin_round(self, mailbox: str, kind: str) -> None:
        await self._t.delete(PK, self._rk(mailbox, kind))
