"""Page-sized link reads and writes for a delta round.

A backfill page of 200 items would otherwise cost 200 single-entity reads and 200 two-row
transactions (each followed by a read-back) — the dominant cost of a backfill on the sandbox.
LinkRepository.by_graph_ids reads with filtered queries of up to 14 RowKeys; create_many writes
entity-group transactions of up to 50 links (both rows of each link in the same transaction, so
a link never exists one way only). Every failed batch comes back for the per-link path.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.storage.links import Link, LinkRepository


async def by_graph_ids(repo: LinkRepository, mailbox: str, graph_ids: Sequence[str]) -> dict[str, Link | None]:
    """The links of these Exchange ids (None where there is none)."""
    return await repo.by_graph_ids(mailbox, graph_ids)


async def create_many(repo: LinkRepository, links: Sequence[Link]) -> list[Link]:
    """Create new links in transactions; returns the links that could NOT be created that way
    (an existing row in their batch), for the caller's per-link path."""
    if not links:
        return []
    return await repo.create_many(links)
