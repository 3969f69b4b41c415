"""Deletions a fresh delta round cannot report, found by reconciliation.

A delta round that starts without a token — the first one, an expired token, an admin resync, the
calendar window moving on once a day — returns what exists NOW, never what was deleted since the
last completed round. Without reconciliation those deletions are lost: the Pega appointment or
contact stays Open/Active forever. So a fresh round remembers every id it saw (a compact set,
saved with each page so a round continued by another invocation keeps it), and when it reaches its
deltaLink every ACTIVE link in scope it did not see is verified by immutable id (JSON-batched
GETs, bounded): gone (404, or in Deleted Items / an unwatched folder) → cancel/close through the
normal apply path, delete safety included; still there (moved out of the window) → planned like any
changed item — and so is one created after the round began to list the calendar (our own Pega →
Exchange create, at the same moment): it was not seen because it did not exist yet, and calling it
deleted cancelled a live meeting's Pega appointment (chaos seed 370). The set remembers when the
listing began (`started_at`) for that test.

Email needs none of this: a removed mail keeps its Pega email case (removed_kept_in_pega).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.storage.keys import encode_key
from shared.storage.links import Link
from shared.storage.tables import Table
from shared.sync.planner import META_FOLDER
from shared.sync.source import DEDICATED_CONTACTS
from shared.sync.timezones import parse_iso_utc

CHUNK_CHARS = 30_000  # one string property (64 KiB max, UTF-16) holds 2,500 ids of 12 characters
MAX_CHUNKS = 60  # ~150,000 ids per folder: beyond that the round skips reconciliation (and says so)
RECONCILE_MAX = 5_000  # verifications per round; the rest waits for the next fresh round


def _short(item_id: str) -> str:
    """9 bytes of SHA-256 as 12 base64 characters: collisions are negligible at mailbox sizes."""
    return base64.b64encode(hashlib.sha256(item_id.encode()).digest()[:9]).decode()


@dataclass
class SeenSet:
    """The ids a fresh round has seen so far in one folder, persisted beside the cursors."""

    table: Table
    mailbox: str
    kind: str
    folder: str
    ids: set[str] = field(default_factory=set)
    overflow: bool = False
    started_at: dt.datetime | None = None  # when this fresh listing began (set by the first save)

    @property
    def pk(self) -> str:
        return encode_key("seen|" + self.mailbox.lower())

    @property
    def rk(self) -> str:
        return encode_key(f"{self.kind}|{self.folder}")

    def add(self, item_ids: Iterable[str]) -> None:
        self.ids.update(_short(i) for i in item_ids)

    def saw(self, item_id: str) -> bool:
        return _short(item_id) in self.ids

    async def load(self) -> bool:
        """True when a fresh round of this folder is under way (its set was saved)."""
        e = await self.table.get(self.pk, self.rk)
        if e is None:
            return False
        text = "".join(str(e.get(f"c{i}") or "") for i in range(MAX_CHUNKS))
        self.ids = {text[i:i + 12] for i in range(0, len(text), 12)}
        self.overflow = bool(e.get("overflow", False))
        started = e.get("started_at")
        self.started_at = started if isinstance(started, dt.datetime) else None
        return True

    async def save(self) -> None:
        text = "".join(sorted(self.ids))
        chunks = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
        if len(chunks) > MAX_CHUNKS:
            self.overflow = True
            chunks = []
        if self.started_at is None:
            self.started_at = dt.datetime.now(dt.UTC)
        entity = {"PartitionKey": self.pk, "RowKey": self.rk, "overflow": self.overflow,
                  "count": len(self.ids), "started_at": self.started_at, **{f"c{i}": c for i, c in enumerate(chunks)}}
        await self.table.upsert(entity)

    async def clear(self) -> None:
        self.ids = set()
        self.started_at = None
        await self.table.delete(self.pk, self.rk)


def in_scope(link: Link, *, kind: str, window_start: dt.datetime | None, window_end: dt.datetime | None,
             folder: str = "", dedicated_id: str = "") -> bool:
    """Which active links a fresh round of this folder should have seen: events that overlap the
    round's calendar window (by the times last synced); contacts last synced from this folder (with
    a dedicated contact folder configured, the two folders are reconciled each for its own)."""
    if link.state != "active":
        return False
    if kind == "contacts":
        last = str(link.snapshot.get(META_FOLDER) or "")
        if not dedicated_id or not last:
            return True
        return (last == dedicated_id) == (folder == DEDICATED_CONTACTS)
    if kind != "calendar":
        return True
    start, end = parse_iso_utc(link.snapshot.get("start")), parse_iso_utc(link.snapshot.get("end"))
    if start is None or end is None or window_start is None or window_end is None:
        return True  # unknown times: verify (a GET costs less than a lost deletion)
    return start < window_end and end > window_start
