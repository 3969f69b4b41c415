"""The state store against Azurite: ETag races, links both ways, idempotency keys, dead letters."""

import asyncio
import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import load_settings
from shared.storage.cursors import Cursor
from shared.storage.deadletters import DeadLetter
from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.health import record_failure, record_success
from shared.storage.keys import decode_key, encode_key
from shared.storage.links import Link
from shared.storage.mailboxes import Mailbox
from shared.storage.operations import IdempotencyConflictError
from shared.storage.state import StateStore
from shared.storage.tables import TableNames


@pytest.fixture
async def store(azurite_conn, unique_name):
    s = await StateStore.open(load_settings({"AzureWebJobsStorage": azurite_conn}).storage,
                              names=TableNames(prefix=unique_name))
    yield s
    await s.close()


@given(st.text(min_size=1, max_size=200))
def test_key_encoding_round_trips_and_avoids_forbidden_characters(value):
    enc = encode_key(value)
    assert decode_key(enc) == value
    assert not set(enc) & {"/", "\\", "#", "?"}
    assert not any(ord(c) < 0x20 for c in enc)


async def test_concurrent_update_with_stale_etag_gives_typed_conflict(store):
    mb = await store.mailboxes.put(Mailbox(upn="Alex@Contoso.example", pega_operator="alex"))
    first = dataclasses.replace(mb, past_days=10)
    second = dataclasses.replace(mb, past_days=20)
    await store.mailboxes.put(first)
    with pytest.raises(ConcurrencyError):
        await store.mailboxes.put(second)
    assert (await store.mailboxes.get("alex@contoso.example")).past_days == 10


async def test_link_lookup_both_ways_with_awkward_ids(store):
    graph_id = "AAMkAD/abc+def==?#x"
    pega_id = "PEGASA-WORK-EMAIL E-1001"
    await store.links.create(Link(mailbox="alex@contoso.example", kind="email", graph_id=graph_id, pega_id=pega_id,
                                  graph_change_key="ck1", snapshot={"subject": "Hi"}))
    by_graph = await store.links.by_graph_id("alex@contoso.example", graph_id)
    by_pega = await store.links.by_pega_id("ALEX@contoso.example", pega_id)
    assert by_graph is not None and by_pega is not None
    assert by_graph.pega_id == pega_id and by_pega.graph_id == graph_id
    assert by_pega.snapshot == {"subject": "Hi"}
    assert await store.links.by_graph_id("alex@contoso.example", "other") is None
    assert await store.links.by_pega_id("blair@contoso.example", pega_id) is None


async def test_a_second_link_for_either_side_is_refused_atomically(store):
    await store.links.create(Link(mailbox="m@x", kind="event", graph_id="g1", pega_id="p1"))
    with pytest.raises(AlreadyExistsError):
        await store.links.create(Link(mailbox="m@x", kind="event", graph_id="g2", pega_id="p1"))
    # the failed transaction left no half-link behind
    assert await store.links.by_graph_id("m@x", "g2") is None
    assert (await store.links.by_pega_id("m@x", "p1")).graph_id == "g1"


async def test_link_update_is_optimistic(store):
    link = await store.links.create(Link(mailbox="m@x", kind="contact", graph_id="g", pega_id="p"))
    await store.links.update(dataclasses.replace(link, graph_change_key="k2"))
    with pytest.raises(ConcurrencyError):
        await store.links.update(dataclasses.replace(link, graph_change_key="k3"))
    assert (await store.links.by_graph_id("m@x", "g")).graph_change_key == "k2"


async def test_cursor_two_writers_cannot_both_win(store):
    c = await store.cursors.save(Cursor(mailbox="m@x", kind="email", folder="inbox", delta_link="d1"))
    await store.cursors.save(dataclasses.replace(c, delta_link="d2"))
    with pytest.raises(ConcurrencyError):
        await store.cursors.save(dataclasses.replace(c, delta_link="d3"))
    with pytest.raises(AlreadyExistsError):
        await store.cursors.save(Cursor(mailbox="m@x", kind="email", folder="inbox"))
    assert (await store.cursors.get("m@x", "email", "inbox")).delta_link == "d2"


async def test_idempotency_key_returns_the_first_operation(store):
    op1, created1 = await store.operations.claim_idempotency_key("key-1", operation_id="op-a", request_hash="h")
    op2, created2 = await store.operations.claim_idempotency_key("key-1", operation_id="op-b", request_hash="h")
    assert (op1, created1, op2, created2) == ("op-a", True, "op-a", False)
    with pytest.raises(IdempotencyConflictError):
        await store.operations.claim_idempotency_key("key-1", operation_id="op-c", request_hash="other")


async def test_idempotency_key_race_has_one_winner(store):
    results = await asyncio.gather(*[
        store.operations.claim_idempotency_key("race", operation_id=f"op-{i}", request_hash="h") for i in range(8)
    ])
    assert sum(1 for _, created in results if created) == 1
    assert len({op for op, _ in results}) == 1


async def test_health_counters_survive_concurrent_writers(store):
    await asyncio.gather(*[store.health.update("m@x", "email", record_success(synced=1, skipped={"draft": 1}))
                           for _ in range(10)])
    h = await store.health.get("m@x", "email")
    assert (h.synced, h.skipped, h.skip_reasons) == (10, 10, {"draft": 10})
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await store.health.update("m@x", "email", record_failure("Boom", now=t0))
    await store.health.update("m@x", "email", record_failure("Boom again", now=t0 + dt.timedelta(minutes=5)))
    h = await store.health.get("m@x", "email")
    assert h.consecutive_failures == 2 and h.failing_since == t0 and h.last_error == "Boom again"
    await store.health.update("m@x", "email", record_success())
    h = await store.health.get("m@x", "email")
    assert h.consecutive_failures == 0 and h.failing_since is None


async def test_dead_letters_keep_the_cause_and_are_idempotent(store):
    await store.deadletters.note_failure("q", "id1", "ValueError: bad", 3)
    assert await store.deadletters.last_failure("q", "id1") == ("ValueError: bad", 3)
    letter = DeadLetter(queue="q", message_id="id1", message="{}", cause="ValueError: bad", attempts=3)
    await store.deadletters.add(letter)
    await store.deadletters.add(letter)
    assert [d.message_id for d in await store.deadletters.list("q")] == ["id1"]
    assert await store.deadletters.last_failure("q", "id1") is None


async def test_deletes_are_idempotent(store):
    await store.mailboxes.delete("nobody@x")
    await store.subscriptions.delete("no-such-subscription")
    link = Link(mailbox="m@x", kind="email", graph_id="gone", pega_id="gone")
    await store.links.delete(link)


async def test_mailbox_lookup_by_operator(store):
    await store.mailboxes.put(Mailbox(upn="blair@contoso.example", pega_operator="blair"))
    assert (await store.mailboxes.by_operator("blair")).upn == "blair@contoso.example"
    assert await store.mailboxes.by_operator("nobody") is None
