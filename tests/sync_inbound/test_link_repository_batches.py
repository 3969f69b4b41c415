"""LinkRepository.by_graph_ids / create_many against Azurite: many ids per query, transactions of
at most 100 operations with both rows of a link together, a failing batch handed back whole."""

from __future__ import annotations

import uuid

import pytest

from shared.config import load_settings
from shared.storage.links import Link, LinkRepository
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from tests.sync_inbound.conftest import drop_tables


@pytest.fixture
async def links(azurite_conn):
    settings = load_settings({"AzureWebJobsStorage": azurite_conn})
    state = await StateStore.open(settings.storage, names=TableNames(prefix="lk" + uuid.uuid4().hex[:10]))
    try:
        yield state.links
    finally:
        await drop_tables(state)
        await state.close()


def _link(i: int, mailbox: str = "Rep@Contoso.example") -> Link:
    return Link(mailbox=mailbox, kind="email", graph_id=f"AAMk/{i}+x=", pega_id=f"E-{i}", graph_hash=f"h{i}",
                snapshot={"subject": f"s{i}"})


async def test_create_many_writes_both_rows_in_batches_and_hands_back_a_failing_batch(links: LinkRepository):
    mb = "rep@contoso.example"
    first = [_link(i) for i in range(120)]  # 240 rows: three transactions (100, 100, 40)
    assert await links.create_many(first) == []
    found = await links.by_graph_ids(mb, [lk.graph_id for lk in first] + ["missing"])
    assert len(found) == 121 and found["missing"] is None
    assert {gid: (lk.pega_id if lk else None) for gid, lk in found.items() if gid != "missing"} == {
        lk.graph_id: lk.pega_id for lk in first}
    indexed = await links.by_pega_id(mb, "E-119")  # the index row was written too
    assert indexed is not None and indexed.graph_id == "AAMk/119+x="

    # a batch with one existing link fails as a whole and comes back; nothing of it is half written
    again = [_link(i) for i in range(200, 210)] + [_link(5)]
    assert [lk.graph_id for lk in await links.create_many(again)] == [lk.graph_id for lk in again]
    assert await links.by_pega_id(mb, "E-200") is None
    assert (await links.by_graph_ids(mb, ["AAMk/200+x="]))["AAMk/200+x="] is None

    with pytest.raises(ValueError):
        await links.create_many([_link(1, "a@x.example"), _link(2, "b@x.example")])


async def test_create_returns_the_link_with_its_etag(links: LinkRepository):
    created = await links.create(_link(1))
    assert created.etag
    assert (await links.update(created)).etag != created.etag
