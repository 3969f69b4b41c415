"""Failed work an operator must see until it is resolved: items and operations, per mailbox.

A failure used to be visible only as the mailbox's `last_error` (overwritten by the next
transient error) and a `failed` counter. That hid the one thing an operator needs: WHICH item or
operation did not make it, why, and whether it is still being retried. A row here is written when
an item of a delta round cannot be synced (it is parked and retried on its own), when an outbound
operation ends `failed`, or when Pega refuses to take the Exchange id of a record it created; it is
deleted the moment the item, operation or report succeeds (or an operator dismisses it). Health
lists every row, so nothing that failed is ever silent.

Partition: the mailbox; RowKey: ``direction|kind|id`` — a mailbox's failures are one partition read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.keys import decode_key, encode_key
from shared.storage.tables import Entity, Table

INBOUND = "inbound"
OUTBOUND = "outbound"

RETRYING = "retrying"  # parked: a queue message retries it on its own
DEAD_LETTERED = "dead_lettered"  # retries exhausted or permanent: replay from the dead letters
FAILED = "failed"  # an operation that ended failed (retry or dismiss through the admin API)

# stages
GATHER = "gather"  # reading what the item needs (series master, Pega state, association, ...)
APPLY = "apply"  # the Pega write
PEGA_REPORT = "pega_report"  # telling Pega the Exchange id of a record it created
OPERATION = "operation"  # a Pega → Exchange operation


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Failure:
    mailbox: str
    direction: str  # inbound | outbound
    kind: str  # email | calendar | contacts (the mailbox kind the item belongs to)
    item_id: str  # Exchange id (inbound items), operation id or Pega id (outbound)
    stage: str
    cause: str
    status: str = RETRYING
    folder: str = ""  # inbound: the folder the item was read from (email: inbox | sentitems)
    exchange_id: str = ""
    pega_id: str = ""
    attempts: int = 1
    first_failed_at: dt.datetime | None = None
    last_failed_at: dt.datetime | None = None
    etag: str | None = None

    @property
    def key(self) -> str:
        """The id an operator uses to name this failure (admin API: dismiss)."""
        return f"{self.direction}|{self.kind}|{self.item_id}"

    def to_entity(self) -> Entity:
        return {
            "PartitionKey": encode_key(self.mailbox.lower()),
            "RowKey": encode_key(self.key),
            "mailbox": self.mailbox.lower(),
            "direction": self.direction,
            "kind": self.kind,
            "item_id": self.item_id,
            "stage": self.stage,
            "cause": self.cause[:2000],
            "status": self.status,
            "folder": self.folder,
            "exchange_id": self.exchange_id,
            "pega_id": self.pega_id,
            "attempts": self.attempts,
            "first_failed_at": self.first_failed_at or _now(),
            "last_failed_at": self.last_failed_at or _now(),
        }

    @classmethod
    def from_entity(cls, e: Entity) -> Failure:
        return cls(
            mailbox=str(e.get("mailbox") or decode_key(e["PartitionKey"])),
            direction=str(e["direction"]), kind=str(e["kind"]), item_id=str(e["item_id"]), stage=str(e["stage"]),
            cause=str(e.get("cause", "")), status=str(e.get("status", RETRYING)), folder=str(e.get("folder", "")),
            exchange_id=str(e.get("exchange_id", "")), pega_id=str(e.get("pega_id", "")),
            attempts=int(e.get("attempts", 1)), first_failed_at=e.get("first_failed_at"),
            last_failed_at=e.get("last_failed_at"), etag=e.get("_etag"),
        )


class FailureRepository:
    def __init__(self, table: Table) -> None:
        self._t = table

    async def record(self, failure: Failure) -> Failure:
        """Insert, or count one more attempt on the existing row (its first failure time is kept)."""
        for _ in range(8):
            current = await self.get(failure.mailbox, failure.direction, failure.kind, failure.item_id)
            try:
                if current is None:
                    new = replace(failure, first_failed_at=failure.first_failed_at or _now(), last_failed_at=_now())
                    return replace(new, etag=await self._t.insert(new.to_entity()))
                new = replace(failure, attempts=current.attempts + 1, first_failed_at=current.first_failed_at,
                              last_failed_at=_now(), folder=failure.folder or current.folder,
                              exchange_id=failure.exchange_id or current.exchange_id,
                              pega_id=failure.pega_id or current.pega_id)
                return replace(new, etag=await self._t.replace(new.to_entity(), etag=str(current.etag)))
            except (AlreadyExistsError, ConcurrencyError):
                continue
        raise ConcurrencyError(f"failure row {failure.key}: too much contention")

    async def get(self, mailbox: str, direction: str, kind: str, item_id: str) -> Failure | None:
        e = await self._t.get(encode_key(mailbox.lower()), encode_key(f"{direction}|{kind}|{item_id}"))
        return Failure.from_entity(e) if e else None

    async def mark(self, mailbox: str, direction: str, kind: str, item_id: str, *, status: str,
                   cause: str | None = None) -> None:
        """Change the status of an existing row (no-op when it was resolved meanwhile)."""
        current = await self.get(mailbox, direction, kind, item_id)
        if current is None:
            return
        try:
            await self._t.replace(replace(current, status=status, cause=cause or current.cause).to_entity(),
                                  etag=str(current.etag))
        except ConcurrencyError:
            pass  # it moved on (another attempt, or resolved): that writer's state wins

    async def resolve(self, mailbox: str, direction: str, kind: str, item_id: str) -> None:
        """The item, operation or report succeeded: the failure is gone. Idempotent."""
        await self._t.delete(encode_key(mailbox.lower()), encode_key(f"{direction}|{kind}|{item_id}"))

    async def dismiss(self, mailbox: str, key: str) -> bool:
        """An operator closes a failure by its key (`direction|kind|id`); False if there is none."""
        pk, rk = encode_key(mailbox.lower()), encode_key(key)
        if await self._t.get(pk, rk) is None:
            return False
        await self._t.delete(pk, rk)
        return True

    async def for_mailbox(self, mailbox: str) -> list[Failure]:
        return [Failure.from_entity(e) async for e in self._t.partition(encode_key(mailbox.lower()))]
