"""Graph change-notification subscriptions we own, keyed by subscription id.

Notification intake looks the subscriptions of a POST up by id to check their clientState
secret (:meth:`SubscriptionRepository.get_many`: batched filtered queries, not one read per id);
the subscription manager lists them per mailbox to renew or recreate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

PK = "sub"
# The Table service allows at most 15 discrete comparisons in one $filter: PartitionKey + 14 RowKeys.
IDS_PER_QUERY = 14
QUERIES_AT_ONCE = 8


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
            "PartitionKey": PK,
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


class SubscriptionRepository:
    def __init__(self, table: Table) -> None:
        self._t = table

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        e = await self._t.get(PK, encode_key(subscription_id))
        return SubscriptionRecord.from_entity(e) if e else None

    async def get_many(self, subscription_ids: Iterable[str]) -> dict[str, SubscriptionRecord]:
        """The stored records among `subscription_ids` (absent ids are left out)."""
        return (await self.lookup(subscription_ids)).found

    async def lookup(self, subscription_ids: Iterable[str], *, deadline: float | None = None) -> Lookup:
        """Read `subscription_ids` with one filtered query per :data:`IDS_PER_QUERY` ids,
        :data:`QUERIES_AT_ONCE` at a time, in the order given. With a `deadline` (time.monotonic()),
        no query starts after it: its ids come back as `unchecked`."""
        keys: dict[str, str] = {}
        for sid in dict.fromkeys(subscription_ids):
            try:
                keys[sid] = encode_key(sid)
            except ValueError:  # empty or longer than a key may be: cannot be stored, so absent
                continue
        ids = list(keys)
        gate = asyncio.Semaphore(QUERIES_AT_ONCE)
        unchecked: set[str] = set()
        # (the SDK substitutes @names in space-separated words: keep the parentheses apart)

        async def one(chunk: list[str]) -> list[SubscriptionRecord]:
            params = {"pk": PK, **{f"r{i}": keys[sid] for i, sid in enumerate(chunk)}}
            rows = " or ".join(f"RowKey eq @r{i}" for i in range(len(chunk)))
            async with gate:
                if deadline is not None and time.monotonic() > deadline:
                    unchecked.update(chunk)
                    return []
                return [SubscriptionRecord.from_entity(e)
                        async for e in self._t.query(f"PartitionKey eq @pk and ( {rows} )", parameters=params)]

        found = await asyncio.gather(*(one(ids[i:i + IDS_PER_QUERY]) for i in range(0, len(ids), IDS_PER_QUERY)))
        return Lookup({rec.subscription_id: rec for batch in found for rec in batch}, frozenset(unchecked))

    async def put(self, record: SubscriptionRecord) -> SubscriptionRecord:
        if record.etag:
            etag = await self._t.replace(record.to_entity(), etag=record.etag)
        else:
            etag = await self._t.upsert(record.to_entity())
        return replace(record, etag=etag)

    async def delete(self, subscription_id: str) -> None:
        await self._t.delete(PK, encode_key(subscription_id))

    async def for_mailbox(self, mailbox: str) -> list[SubscriptionRecord]:
        return [
            SubscriptionRecord.from_entity(e)
            async for e in self._t.query("PartitionKey eq @pk and mailbox eq @mb",
                                         parameters={"pk": PK, "mb": mailbox.lower()})
        ]

    async def all(self) -> list[SubscriptionRecord]:
        return [SubscriptionRecord.from_entity(e) async for e in self._t.partition(PK)]
