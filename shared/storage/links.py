"""Id links between an Exchange item (immutable id) and a Pega record, looked up both ways.

Both rows of a link live in the mailbox's partition so that they are written in one table
transaction: a link can never exist in one direction only. Each link keeps what was last
written on each side (Graph changeKey, Pega eTag, content hashes and the mapped-field snapshot)
— the basis of echo suppression, "change = content change" and field-level merges.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.storage.errors import NotFoundError, StorageError
from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

GRAPH_PREFIX = "g|"
PEGA_PREFIX = "p|"

log = logging.getLogger(__name__)

# Azure Tables: at most 15 comparisons per filter (PartitionKey + 14 RowKeys), at most 100
# operations per entity-group transaction (50 links, both rows of each link in the same one).
READ_CHUNK = 14
WRITE_CHUNK_LINKS = 50


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

    async def by_graph_ids(self, mailbox: str, graph_ids: Sequence[str]) -> dict[str, Link | None]:
        """The links of these Exchange ids of one mailbox (None where there is none): filtered
        queries of up to 14 RowKeys each instead of one read per id."""
        out: dict[str, Link | None] = dict.fromkeys(graph_ids)
        ids = list(dict.fromkeys(graph_ids))
        pk = encode_key(mailbox.lower())
        for i in range(0, len(ids), READ_CHUNK):
            params: dict[str, Any] = {"pk": pk}
            terms = []
            for j, gid in enumerate(ids[i:i + READ_CHUNK]):
                params[f"r{j}"] = GRAPH_PREFIX + encode_key(gid)
                terms.append(f"RowKey eq @r{j}")
            async for e in self._t.query(f"PartitionKey eq @pk and ( {' or '.join(terms)} )", parameters=params):
                link = Link.from_entity(e)
                if link.graph_id in out:
                    out[link.graph_id] = link
        return out

    async def create_many(self, links: Sequence[Link]) -> list[Link]:
        """Create new links of ONE mailbox in transactions of up to 100 operations (both rows of a
        link always in the same transaction). Returns the links that could NOT be created that way
        (a batch failed as a whole, e.g. one of its rows exists) for the caller's per-link path."""
        if len({link.mailbox.lower() for link in links}) > 1:
            raise ValueError("create_many takes the links of one mailbox (one partition)")
        left: list[Link] = []
        for i in range(0, len(links), WRITE_CHUNK_LINKS):
            chunk = list(links[i:i + WRITE_CHUNK_LINKS])
            ops: list[tuple[str, dict[str, Any]]] = []
            for link in chunk:
                ops.append(("create", link._row()))
                ops.append(("create", link._index_row()))
            try:
                await self._t.transact(ops)
            except StorageError as exc:
                log.info("batched link create fell back to single links: %s", type(exc).__name__)
                left.extend(chunk)
        return left

    async def by_pega_id(self, mailbox: str, pega_id: str) -> Link | None:
        idx = await self._t.get(encode_key(mailbox.lower()), PEGA_PREFIX + encode_key(pega_id))
        if idx is None:
            return None
        return await self.by_graph_id(mailbox, str(idx["graph_id"]))

    async def create(self, link: Link) -> Link:
        """Both directions atomically; AlreadyExistsError if either side is already linked.
        The table transaction returns no etags, so the link is read back once for its etag."""
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
