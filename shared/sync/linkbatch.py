"""Page-sized link reads and writes over the foundation's link table.

A backfill page of 200 items would otherwise cost 200 single-entity reads and 200 two-row
transactions (each followed by a read-back) — the dominant cost of a backfill on the sandbox.
Here: reads as filtered queries of up to 14 RowKeys each (Azure Tables allows at most 15
comparisons per filter), and creates as entity-group transactions of up to 100 rows (50 links,
both directions of each link in the same transaction, so a link never exists one way only).

It uses the row layout of shared.storage.links (`Link._row`, `_index_row`, `GRAPH_PREFIX`) and
the repository's table; `LinkRepository.by_graph_ids` / `create_many` would be the proper home
(requested from the foundation owner). Every failure of a batch falls back to the per-link path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.storage.errors import StorageError
from shared.storage.keys import encode_key
from shared.storage.links import GRAPH_PREFIX, Link, LinkRepository

log = logging.getLogger(__name__)

_READ_CHUNK = 14
_WRITE_CHUNK_LINKS = 50


def _table(repo: LinkRepository) -> Any:
    return getattr(repo, "_t", None)


async def by_graph_ids(repo: LinkRepository, mailbox: str, graph_ids: Sequence[str]) -> dict[str, Link | None]:
    """The links of these Exchange ids (None where there is none)."""
    out: dict[str, Link | None] = dict.fromkeys(graph_ids)
    table = _table(repo)
    ids = list(dict.fromkeys(graph_ids))
    if table is None:
        for gid in ids:
            out[gid] = await repo.by_graph_id(mailbox, gid)
        return out
    pk = encode_key(mailbox.lower())
    for i in range(0, len(ids), _READ_CHUNK):
        chunk = ids[i:i + _READ_CHUNK]
        params: dict[str, Any] = {"pk": pk}
        terms = []
        for j, gid in enumerate(chunk):
            params[f"r{j}"] = GRAPH_PREFIX + encode_key(gid)
            terms.append(f"RowKey eq @r{j}")
        async for e in table.query(f"PartitionKey eq @pk and ( {' or '.join(terms)} )", parameters=params):
            link = Link.from_entity(e)
            out[link.graph_id] = link
    return out


async def create_many(repo: LinkRepository, links: Sequence[Link]) -> list[Link]:
    """Create new links in transactions; returns the links that could NOT be created that way
    (an existing row in their batch), for the caller's per-link path."""
    table = _table(repo)
    if table is None or not links:
        return list(links)
    left: list[Link] = []
    for i in range(0, len(links), _WRITE_CHUNK_LINKS):
        chunk = list(links[i:i + _WRITE_CHUNK_LINKS])
        ops: list[tuple[str, dict[str, Any]]] = []
        for link in chunk:
            ops.append(("create", link._row()))
            ops.append(("create", link._index_row()))
        try:
            await table.transact(ops)
        except StorageError as exc:
            log.info("batched link create fell back to single links: %s", type(exc).__name__)
            left.extend(chunk)
    return left
