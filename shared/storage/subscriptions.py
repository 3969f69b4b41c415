"""Graph change-notification subscriptions we own: keyed by mailbox, with an index row per id.

Layout (issue 16: no read that grows with the tenant on a per-notification or per-tick path):
- the record lives in its mailbox's partition (PartitionKey = the mailbox key, RowKey = the
  subscription id): the subscription manager lists a mailbox's few subscriptions with one
  partition query;
- an index row per subscription id (PartitionKey ``~sub|<id>``) carries a copy of the record, so
  notification intake checks a clientState with one point read. The copy is written before the
  record and deleted after it: a crash can leave an orphan index row (harmless: Graph no longer
  posts for a deleted subscription), never a record intake cannot find.
The layout before issue 16 (every record in one partition ``sub``, found by id with filtered
queries that the Table service answers by scanning the partition) is migrated on first use, once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

LEGACY_PK = "sub"  # before issue 16: every record in one partition, keyed by id
INDEX_PREFIX = "~sub|"  # index rows: one partition per subscription id (never a mailbox key)
INDEX_RK = "id"
META_PK, META_RK = "~meta", "layout-v2"  # written once the legacy partition is migrated
READS_AT_ONCE = 32


@dataclass(frozen=True)
class SubscriptionRecord:
    subscription_id: str
    mailbox: str
    kind: str  # email | calendar | contacts
    resource: str
    client_state: str
    expires_at: dt.datetime
    status: str = "active"  # active | removed | failed
    last_error: str = ""
    # which notification URL Graph was given (a hash: the URL carries the function key); a change of base
    # URL or a rotated key makes the subscription stale — it is recreated, never renewed forever
    url_hash: str = ""
    etag: str | None = None

    def to_entity(self) -> Entity:
        return {
            "PartitionKey": encode_key(self.mailbox.lower()),
            "RowKey": encode_key(self.subscription_id),
            "subscription_id": self.subscription_id,
            "mailbox": self.mailbox.lower(),
            "kind": self.kind,
            "resource": self.resource,
            "client_state": self.client_state,
            "expires_at": self.expires_at,
            "status": self.status,
            "last_error": self.last_error,
            "url_hash": self.url_hash,
        }

    @classmethod
    def from_entity(cls, e: Entity) -> SubscriptionRecord:
        return cls(
            subscription_id=str(e["subscription_id"]),
            mailbox=str(e["mailbox"]),
            kind=str(e["kind"]),
            resource=str(e["resource"]),
            client_state=str(e["client_state"]),
            expires_at=e["expires_at"],
            status=str(e.get("status", "active")),
            last_error=str(e.get("last_error", "")),
            url_hash=str(e.get("url_hash", "")),
            etag=e.get("_etag"),
        )


@dataclass(frozen=True)
class Lookup:
    """Records found by id, and the ids a deadline left unread."""

    found: dict[str, SubscriptionRecord]
    unchecked: frozenset[str] = frozenset()


def _index_pk(subscription_id: str) -> str:
    return INDEX_PREFIX + encode_key(subscription_id)


class SubscriptionRepository:
    def __init__(self, table: Table) -> None:
        self._t = table
        self._migrated = False

    async def _ensure_layout(self) -> None:
        """Move records of the pre-issue-16 layout into their mailboxes' partitions, once per store
        (a marker row says it is done; each process checks it once)."""
        if self._migrated:
            return
        if await self._t.get(META_PK, META_RK) is None:
            legacy = [SubscriptionRecord.from_entity(e) async for e in self._t.partition(LEGACY_PK)]
            for rec in legacy:
                await self._write(replace(rec, etag=None))
                await self._t.delete(LEGACY_PK, encode_key(rec.subscription_id))
            await self._t.upsert({"PartitionKey": META_PK, "RowKey": META_RK, "migrated": len(legacy)})
        self._migrated = True

    async def _index(self, subscription_id: str) -> SubscriptionRecord | None:
        e = await self._t.get(_index_pk(subscription_id), INDEX_RK)
        return replace(SubscriptionRecord.from_entity(e), etag=None) if e else None

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        """The record (with its etag) by id: the index row's copy names the mailbox, then one point read."""
        await self._ensure_layout()
        try:
            copy = await self._index(subscription_id)
        except ValueError:
            return None
        if copy is None:
            return None
        e = await self._t.get(encode_key(copy.mailbox), encode_key(subscription_id))
        return SubscriptionRecord.from_entity(e) if e else None

    async def get_many(self, subscription_ids: Iterable[str]) -> dict[str, SubscriptionRecord]:
        """The stored records among `subscription_ids` (absent ids are left out)."""
        return (await self.lookup(subscription_ids)).found

    async def lookup(self, subscription_ids: Iterable[str], *, deadline: float | None = None) -> Lookup:
        """Read `subscription_ids` from their index rows: one point read each, :data:`READS_AT_ONCE` at
        a time, in the order given (a point read costs the same whatever the number of subscriptions;
        a filtered query over many ids would scan). With a `deadline` (time.monotonic()), no read
        starts after it: its ids come back as `unchecked`. Records come without an etag (the copy's)."""
        await self._ensure_layout()
        ids: list[str] = []
        for sid in dict.fromkeys(subscription_ids):
            try:
                encode_key(sid)
                encode_key(INDEX_PREFIX + sid)
            except ValueError:  # empty or longer than a key may be: cannot be stored, so absent
                continue
            ids.append(sid)
        gate = asyncio.Semaphore(READS_AT_ONCE)
        unchecked: set[str] = set()

        async def one(sid: str) -> SubscriptionRecord | None:
            async with gate:
                if deadline is not None and time.monotonic() > deadline:
                    unchecked.add(sid)
                    return None
                return await self._index(sid)

        found = await asyncio.gather(*(one(sid) for sid in ids))
        return Lookup({rec.subscription_id: rec for rec in found if rec is not None}, frozenset(unchecked))

    async def _write(self, record: SubscriptionRecord) -> str:
        copy = {**record.to_entity(), "PartitionKey": _index_pk(record.subscription_id), "RowKey": INDEX_RK}
        await self._t.upsert(copy)  # the index first: a record is never stored without it
        if record.etag:
            return await self._t.replace(record.to_entity(), etag=record.etag)
        return await self._t.upsert(record.to_entity())

    async def put(self, record: SubscriptionRecord) -> SubscriptionRecord:
        """Create or replace (with an etag on `record`: only if unchanged since read)."""
        await self._ensure_layout()
        etag = await self._write(record)
        return replace(record, etag=etag)

    async def delete(self, subscription_id: str, *, mailbox: str | None = None) -> None:
        """Idempotent. `mailbox` saves the index read when the caller knows it."""
        await self._ensure_layout()
        if mailbox is None:
            copy = await self._index(subscription_id)
            mailbox = copy.mailbox if copy else None
        if mailbox:
            await self._t.delete(encode_key(mailbox.lower()), encode_key(subscription_id))
        await self._t.delete(_index_pk(subscription_id), INDEX_RK)

    async def for_mailbox(self, mailbox: str) -> list[SubscriptionRecord]:
        """The mailbox's subscriptions: one partition query (a handful of rows)."""
        await self._ensure_layout()
        return [SubscriptionRecord.from_entity(e) async for e in self._t.partition(encode_key(mailbox.lower()))]

    async def all(self) -> list[SubscriptionRecord]:
        """Every record (the admin overview; index rows and the marker sort after every mailbox key)."""
        await self._ensure_layout()
        return [SubscriptionRecord.from_entity(e)
                async for e in self._t.query("PartitionKey lt @hi", parameters={"hi": "~"})]
