"""Id links between an Exchange item (immutable id) and a Pega record, looked up both ways.

Both rows of a link live in the mailbox's partition so that they are written in one table
transaction: a link can never exist in one direction only. Each link keeps what was last
written on each side (Graph changeKey, Pega eTag, content hashes and the mapped-field snapshot)
— the basis of echo suppression, "change = content change" and field-level merges.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from typing import Any

from shared.storage.errors import NotFoundError
from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

GRAPH_PREFIX = "g|"
PEGA_PREFIX = "p|"


@dataclass(frozen=True)
class Link:
    mailbox: str
    kind: str  # email | event | contact
    graph_id: str
    pega_id: str
    graph_change_key: str = ""
    graph_hash: str = ""
    pega_etag: str = ""
    pega_hash: str = ""
    snapshot: dict[str, Any] = field(default_factory=dict)
    state: str = "active"  # active | closed
    updated_at: dt.datetime | None = None
    etag: str | None = None

    def _row(self) -> Entity:
        return {
            "PartitionKey": encode_key(self.mailbox.lower()),
            "RowKey": GRAPH_PREFIX + encode_key(self.graph_id),
            "mailbox": self.mailbox.lower(),
            "kind": self.kind,
            "graph_id": self.graph_id,
            "pega_id": self.pega_id,
            "graph_change_key": self.graph_change_key,
            "graph_hash": self.graph_hash,
            "pega_etag": self.pega_etag,
            "pega_hash": self.pega_hash,
            "snapshot": json.dumps(self.snapshot, sort_keys=True, default=str),
            "state": self.state,
            "updated_at": dt.datetime.now(dt.UTC),
        }

    def _index_row(self) -> Entity:
        return {
            "PartitionKey": encode_key(self.mailbox.lower()),
            "RowKey": PEGA_PREFIX + encode_key(self.pega_id),
            "graph_id": self.graph_id,
            "kind": self.kind,
        }

    @classmethod
    def from_entity(cls, e: Entity) -> Link:
        return cls(
            mailbox=str(e["mailbox"]),
            kind=str(e["kind"]),
            graph_id=str(e["graph_id"]),
            pega_id=str(e["pega_id"]),
            graph_change_key=str(e.get("graph_change_key", "")),
            graph_hash=str(e.get("graph_hash", "")),
            pega_etag=str(e.get("pega_etag", "")),
            pega_hash=str(e.get("pega_hash", "")),
            snapshot=json.loads(e.get("snapshot") or "{}"),
            state=str(e.get("state", "active")),
            updated_at=e.get("updated_at"),
            etag=e.get("_etag"),
        )


class LinkRepository:
    def __init__(self, table: Table) -> None:
        self._t = table

    async def by_graph_id(self, mailbox: str, graph_id: str) -> Link | None:
        e = await self._t.get(encode_key(mailbox.lower()), GRAPH_PREFIX + encode_key(graph_id))
        return Link.from_entity(e) if e else None

    async def by_pega_id(self, mailbox: str, pega_id: str) -> Link | None:
        idx = await self._t.get(encode_key(mailbox.lower()), PEGA_PREFIX + encode_key(pega_id))
        if idx is None:
            return None
        return await self.by_graph_id(mailbox, str(idx["graph_id"]))

    async def create(self, link: Link) -> Link:
        """Both directions atomically; AlreadyExistsError if either side is already linked."""
        await self._t.transact([("create", link._row()), ("create", link._index_row())])
        fresh = await self.by_graph_id(link.mailbox, link.graph_id)
        if fresh is None:  # only if deleted concurrently between the two calls
            raise NotFoundError(f"link {link.graph_id} vanished right after creation")
        return fresh

    async def update(self, link: Link) -> Link:
        """Replace the link if unchanged since read (ConcurrencyError otherwise). The Pega id is fixed."""
        if not link.etag:
            raise ValueError("update needs the etag of the link as read")
        etag = await self._t.replace(link._row(), etag=link.etag)
        return replace(link, etag=etag)

    async def delete(self, link: Link) -> None:
        pk = encode_key(link.mailbox.lower())
        await self._t.delete(pk, PEGA_PREFIX + encode_key(link.pega_id))
        await self._t.delete(pk, GRAPH_PREFIX + encode_key(link.graph_id))

    async def list(self, mailbox: str, *, kind: str | None = None) -> list[Link]:
        filt = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params: dict[str, Any] = {"pk": encode_key(mailbox.lower()), "lo": GRAPH_PREFIX, "hi": "g}"}
        if kind:
            filt += " and kind eq @kind"
            params["kind"] = kind
        return [Link.from_entity(e) async for e in self._t.query(filt, parameters=params)]
