"""One delta round at a time per (mailbox, kind): a short lease row in the state store.

Two rounds of the same mailbox and kind running at once (a continuation and a notification, a
redelivered message) would both see "not linked" for a new item and could both create it in
Pega. The lease makes the second one wait: it raises RoundBusyError (a TransientError with a
Retry-After) so run_message re-enqueues it with a delay instead of burning retries. A worker
that dies leaves a lease that simply expires.
"""

from __future__ import annotations

import datetime as dt
import uuid

from shared.errors import TransientError
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.keys import encode_key
from shared.storage.tables import Table, TableStore

LEASE_TABLE = "roundlease"


class RoundBusyError(TransientError):
    """Another round of this mailbox and kind holds the lease."""


class RoundLease:
    def __init__(self, table: Table, mailbox: str, kind: str, *, duration: dt.timedelta) -> None:
        self._t = table
        self.pk = encode_key(mailbox.lower())
        self.rk = kind
        self.duration = duration
        self.owner = uuid.uuid4().hex
        self._etag: str | None = None

    @classmethod
    async def open(cls, tables: TableStore, mailbox: str, kind: str, *,
                   duration: dt.timedelta = dt.timedelta(minutes=5)) -> RoundLease:
        table = await tables.ensure(tables.names.prefix + LEASE_TABLE)
        return cls(table, mailbox, kind, duration=duration)

    def _row(self, now: dt.datetime) -> dict[str, object]:
        return {"PartitionKey": self.pk, "RowKey": self.rk, "owner": self.owner, "expires": now + self.duration}

    async def acquire(self, *, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        try:
            self._etag = await self._t.insert(self._row(now))
            return
        except AlreadyExistsError:
            pass
        current = await self._t.get(self.pk, self.rk)
        if current is None:
            return await self.acquire(now=now)
        expires = current.get("expires")
        if isinstance(expires, dt.datetime) and expires > now:
            wait = max(1.0, min(60.0, (expires - now).total_seconds()))
            raise RoundBusyError(f"a delta round of this {self.rk} is already running", retry_after=min(wait, 15.0))
        try:
            self._etag = await self._t.replace(self._row(now), etag=str(current["_etag"]))
        except ConcurrencyError as exc:
            raise RoundBusyError("a delta round just started elsewhere", retry_after=5.0) from exc

    async def renew(self, *, now: dt.datetime | None = None) -> None:
        if self._etag is None:
            return
        try:
            self._etag = await self._t.replace(self._row(now or dt.datetime.now(dt.UTC)), etag=self._etag)
        except (ConcurrencyError, NotFoundError) as exc:
            raise RoundBusyError("the round lost its lease (it ran past the lease duration)",
                                 retry_after=5.0) from exc

    async def release(self) -> None:
        if self._etag is None:
            return
        try:
            await self._t.delete(self.pk, self.rk, etag=self._etag)
        except ConcurrencyError:
            pass
        self._etag = None
