"""Delta cursors: where each mailbox's delta round stands, per kind and folder.

A cursor is saved only after the effects of the page it follows are durable, so a crash
replays a page (harmless: processing is idempotent) and never skips one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table


@dataclass(frozen=True)
class Cursor:
    mailbox: str
    kind: str  # email | calendar | contacts
    folder: str  # well-known name or folder id; "calendarView" for calendar
    next_link: str = ""  # inside a round
    delta_link: str = ""  # between rounds
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    rounds_completed: int = 0
    last_round_at: dt.datetime | None = None
    # Email folders: read without the receivedDateTime $filter, because a filtered first round of this
    # folder reached Graph's cap (shared.sync.source.FILTERED_DELTA_CAP); later full resyncs stay unfiltered.
    unfiltered: bool = False
    initial_items: int = 0  # items seen so far in the current filtered first round (to detect the cap)
    etag: str | None = None

    @property
    def row_key(self) -> str:
        return encode_key(f"{self.kind}|{self.folder}")

    def to_entity(self) -> Entity:
        e: Entity = {
            "PartitionKey": encode_key(self.mailbox.lower()),
            "RowKey": self.row_key,
            "mailbox": self.mailbox.lower(),
            "kind": self.kind,
            "folder": self.folder,
            "next_link": self.next_link,
            "delta_link": self.delta_link,
            "rounds_completed": self.rounds_completed,
            "unfiltered": self.unfiltered,
            "initial_items": self.initial_items,
        }
        for name in ("window_start", "window_end", "last_round_at"):
            value = getattr(self, name)
            if value is not None:
                e[name] = value
        return e

    @classmethod
    def from_entity(cls, e: Entity) -> Cursor:
        return cls(
            mailbox=str(e["mailbox"]),
            kind=str(e["kind"]),
            folder=str(e["folder"]),
            next_link=str(e.get("next_link", "")),
            delta_link=str(e.get("delta_link", "")),
            window_start=e.get("window_start"),
            window_end=e.get("window_end"),
            rounds_completed=int(e.get("rounds_completed", 0)),
            last_round_at=e.get("last_round_at"),
            unfiltered=bool(e.get("unfiltered", False)),
            initial_items=int(e.get("initial_items", 0)),
            etag=e.get("_etag"),
        )


class CursorRepository:
    def __init__(self, table: Table) -> None:
        self._t = table

    async def get(self, mailbox: str, kind: str, folder: str) -> Cursor | None:
        e = await self._t.get(encode_key(mailbox.lower()), encode_key(f"{kind}|{folder}"))
        return Cursor.from_entity(e) if e else None

    async def save(self, cursor: Cursor) -> Cursor:
        """Insert, or replace if unchanged since read: two workers on one cursor cannot both win."""
        if cursor.etag:
            etag = await self._t.replace(cursor.to_entity(), etag=cursor.etag)
        else:
            etag = await self._t.insert(cursor.to_entity())
        return replace(cursor, etag=etag)

    async def delete(self, cursor: Cursor) -> None:
        await self._t.delete(encode_key(cursor.mailbox.lower()), cursor.row_key)

    async def list(self, mailbox: str) -> list[Cursor]:
        return [Cursor.from_entity(e) async for e in self._t.partition(encode_key(mailbox.lower()))]
