"""Dead letters: messages that cannot be processed, kept with their cause, never dropped.

Two kinds of rows share the table:
- failure notes (`fail|<queue>`, keyed by envelope id): the latest exception of a message that
  is still being retried, so that when the host moves it to `<queue>-poison` its cause is known;
- dead letters (`dead|<queue>`, keyed by envelope id): the message text, the cause, the number
  of attempts, and whether/when it was replayed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

FAIL = "fail|"
DEAD = "dead|"


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str
    message: str
    cause: str
    attempts: int
    dead_at: dt.datetime | None = None
    replayed_at: dt.datetime | None = None

    def to_entity(self) -> Entity:
        e: Entity = {
            "PartitionKey": DEAD + encode_key(self.queue),
            "RowKey": encode_key(self.message_id),
            "queue": self.queue,
            "message_id": self.message_id,
            "message": self.message[:30000],
            "cause": self.cause[:2000],
            "attempts": self.attempts,
            "dead_at": self.dead_at or dt.datetime.now(dt.UTC),
        }
        if self.replayed_at is not None:
            e["replayed_at"] = self.replayed_at
        return e

    @classmethod
    def from_entity(cls, e: Entity) -> DeadLetter:
        return cls(queue=str(e["queue"]), message_id=str(e["message_id"]), message=str(e["message"]),
                   cause=str(e["cause"]), attempts=int(e.get("attempts", 0)), dead_at=e.get("dead_at"),
                   replayed_at=e.get("replayed_at"))


class DeadLetterRepository:
    def __init__(self, table: Table) -> None:
        self._t = table

    async def note_failure(self, queue: str, message_id: str, cause: str, attempt: int) -> None:
        await self._t.upsert({"PartitionKey": FAIL + encode_key(queue), "RowKey": encode_key(message_id),
                              "cause": cause[:2000], "attempts": attempt, "at": dt.datetime.now(dt.UTC)})

    async def last_failure(self, queue: str, message_id: str) -> tuple[str, int] | None:
        e = await self._t.get(FAIL + encode_key(queue), encode_key(message_id))
        return (str(e["cause"]), int(e.get("attempts", 0))) if e else None

    async def clear_failure(self, queue: str, message_id: str) -> None:
        await self._t.delete(FAIL + encode_key(queue), encode_key(message_id))

    async def add(self, letter: DeadLetter) -> None:
        """Idempotent: the same message dead-lettered twice is one record."""
        await self._t.upsert(letter.to_entity())
        await self.clear_failure(letter.queue, letter.message_id)

    async def get(self, queue: str, message_id: str) -> DeadLetter | None:
        e = await self._t.get(DEAD + encode_key(queue), encode_key(message_id))
        return DeadLetter.from_entity(e) if e else None

    async def list(self, queue: str) -> list[DeadLetter]:
        return [DeadLetter.from_entity(e) async for e in self._t.partition(DEAD + encode_key(queue))]

    async def mark_replayed(self, letter: DeadLetter) -> None:
        await self._t.merge({"PartitionKey": DEAD + encode_key(letter.queue), "RowKey": encode_key(letter.message_id),
                             "replayed_at": dt.datetime.now(dt.UTC)})

    async def remove(self, queue: str, message_id: str) -> None:
        await self._t.delete(DEAD + encode_key(queue), encode_key(message_id))
