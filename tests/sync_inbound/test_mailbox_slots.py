"""Graph's 4-requests-per-mailbox limit held across instances (shared/graph/mailbox_slots.py).

Two gateways stand for two Functions instances: separate processes' worth of state (own limiter,
own HTTP client) sharing only the Azurite `graphslots` table, against the Graph simulator, which
answers a fifth concurrent request of one app on one mailbox with 429 MailboxConcurrency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sandbox.graph.seed import SYNC_CLIENT_ID
from shared.config import load_settings
from shared.graph.errors import GraphThrottledError
from shared.graph.gateway import GraphGateway
from shared.graph.mailbox_slots import MailboxBusyError, SharedMailboxLimiter
from shared.storage.state import StateStore
from shared.storage.tables import Table, TableNames
from tests.sync_inbound.conftest import drop_tables, sync_settings_env
from tests.sync_outbound.test_pega_sim_e2e import until


class Instances:
    def __init__(self, settings: Any, table: Table) -> None:
        self.settings, self.table = settings, table
        self.gateways: list[GraphGateway] = []

    def new(self, *, shared: bool = True, wall: Callable[[], dt.datetime] | None = None,
            idle_release: float = 3600.0, give_way: float | None = None) -> GraphGateway:
        """A gateway as an instance builds it. Idle slots are kept for the test's length unless it says
        otherwise, so what a test asserts about the rows never depends on how fast the machine is."""
        gw = GraphGateway.from_settings(self.settings.graph, slots=self.table if shared else None)
        if isinstance(gw.limiter, SharedMailboxLimiter):
            gw.limiter = SharedMailboxLimiter(gw.limiter.limit, self.table, renew_margin=gw.limiter.renew_margin.total_seconds(),
                                              idle_release=idle_release, **({"wall": wall} if wall else {}),
                                              **({"give_way": give_way} if give_way is not None else {}))
        self.gateways.append(gw)
        return gw

    async def rows(self, mailbox: str) -> list[dict[str, Any]]:
        from shared.storage.keys import encode_key

        return [r async for r in self.table.partition(encode_key(mailbox.lower()))]


@pytest.fixture
async def instances(graph_sim: Any, pega_sim: Any, azurite_conn: str) -> AsyncIterator[Instances]:
    settings = load_settings(sync_settings_env(graph_sim, pega_sim, azurite_conn))
    state = await StateStore.open(settings.storage, names=TableNames(prefix="gs" + uuid.uuid4().hex[:10]))
    found = Instances(settings, state.graphslots)
    try:
        yield found
    finally:
        for gw in found.gateways:
            await gw.close()
        await drop_tables(state)
        await state.close()


async def _slow_user(graph_sim: Any, delay_ms: int) -> str:
    """A fresh mailbox whose message list takes `delay_ms`, holding a concurrency slot as a slow Exchange would."""
    uid = str((await graph_sim.control.new_user())["id"])
    await graph_sim.control.add_fault(path=f"users/{uid}/messages$", kind="delay", delayMs=delay_ms, method="GET")
    return uid


@pytest.fixture
async def slow_mailbox(graph_sim: Any) -> AsyncIterator[str]:
    try:
        yield await _slow_user(graph_sim, 300)
    finally:
        await graph_sim.control.clear_faults()


async def _claim_all(gw: GraphGateway, mailbox: str) -> None:
    """Make `gw` claim all 4 slots of the mailbox: 4 holders keep theirs until all 4 are in (however slow
    the machine, no request finishes early and lets the next one reuse its slot), then let go; the
    slots stay held, idle."""
    all_in, done = asyncio.Event(), asyncio.Event()
    inside = 0

    async def hold() -> None:
        nonlocal inside
        async with gw.limiter.slot(mailbox):
            inside += 1
            if inside == 4:
                all_in.set()
            await done.wait()

    holders = [asyncio.create_task(hold()) for _ in range(4)]
    await asyncio.wait_for(all_in.wait(), 120)  # a safety net for a broken limiter, not a synchronisation
    done.set()
    await asyncio.gather(*holders)


async def _burst(gateways: list[GraphGateway], mailbox: str, each: int) -> list[str]:
    """`each` concurrent GETs per gateway; the outcome of every request."""
    async def one(gw: GraphGateway) -> str:
        try:
            await gw.get_json(f"users/{mailbox}/messages", mailbox=mailbox, params={"$top": "1"})
            return "ok"
        except MailboxBusyError:
            return "deferred"
        except GraphThrottledError:
            return "throttled by graph"

    return list(await asyncio.gather(*(one(gw) for gw in gateways for _ in range(each))))


async def _throttled(graph_sim: Any, mailbox: str) -> int:
    rows = [r for r in await graph_sim.control.request_counts() if r["app"] == SYNC_CLIENT_ID and r["mailbox"] == mailbox]
    return sum(int(r["throttled"]) for r in rows)


async def test_per_instance_limits_alone_let_two_instances_overrun_the_mailbox(instances, graph_sim) -> None:
    """The situation the shared slots exist for: each instance keeps its own 4, together they send 8.
    (Requests of 3 s, so the 8 overlap on a loaded machine too.)"""
    mailbox = await _slow_user(graph_sim, 3000)
    try:
        a, b = instances.new(shared=False), instances.new(shared=False)
        outcomes = await _burst([a, b], mailbox, 4)
        assert outcomes.count("throttled by graph") > 0, outcomes
        assert await _throttled(graph_sim, mailbox) > 0
    finally:
        await graph_sim.control.clear_faults()


async def test_two_instances_never_run_more_than_four_requests_on_one_mailbox(instances, slow_mailbox, graph_sim) -> None:
    a, b = instances.new(), instances.new()
    outcomes = await _burst([a, b], slow_mailbox, 6)
    assert "throttled by graph" not in outcomes, outcomes
    assert await _throttled(graph_sim, slow_mailbox) == 0
    assert outcomes.count("ok") >= 4  # an instance holding slots queues its extra requests behind them
    assert a.limiter.held(slow_mailbox) + b.limiter.held(slow_mailbox) <= 4
    assert max(a.limiter.peak.get(slow_mailbox, 0), 0) + max(b.limiter.peak.get(slow_mailbox, 0), 0) <= 4
    rows = await instances.rows(slow_mailbox)
    assert 1 <= len(rows) <= 4 and {r["RowKey"] for r in rows} <= {"0", "1", "2", "3"}


async def test_an_instance_waits_for_its_own_slots_instead_of_failing(instances, slow_mailbox, graph_sim) -> None:
    a = instances.new()
    outcomes = await _burst([a], slow_mailbox, 10)
    assert outcomes == ["ok"] * 10
    assert 1 <= a.limiter.peak[slow_mailbox] <= 4
    assert await _throttled(graph_sim, slow_mailbox) == 0


async def test_a_busy_mailbox_defers_with_a_retry_after_and_costs_no_graph_request(instances, slow_mailbox,
                                                                                    graph_sim) -> None:
    a, b = instances.new(), instances.new()
    await _claim_all(a, slow_mailbox)  # held by a (idle, kept for the test's length)
    before = sum(int(r["requests"]) for r in await graph_sim.control.request_counts() if r["mailbox"] == slow_mailbox)
    with pytest.raises(MailboxBusyError) as caught:
        await b.get_json(f"users/{slow_mailbox}/messages", mailbox=slow_mailbox)
    assert caught.value.retry_after and caught.value.retry_after > 0
    after = sum(int(r["requests"]) for r in await graph_sim.control.request_counts() if r["mailbox"] == slow_mailbox)
    assert after == before


async def test_slots_given_back_at_close_are_free_for_another_instance(instances, slow_mailbox) -> None:
    a = instances.new()
    await _claim_all(a, slow_mailbox)
    assert len(await instances.rows(slow_mailbox)) == 4
    await a.close()
    instances.gateways.remove(a)
    assert await instances.rows(slow_mailbox) == []
    b = instances.new()
    assert await _burst([b], slow_mailbox, 4) == ["ok"] * 4


async def test_idle_slots_are_given_back_without_a_close(instances, slow_mailbox) -> None:
    a = instances.new(idle_release=0.0)
    await _burst([a], slow_mailbox, 3)
    box = a.limiter._boxes[slow_mailbox.lower()]
    assert box.reaper is not None
    await asyncio.wait_for(box.reaper, 30)
    assert a.limiter.held(slow_mailbox) == 0
    assert await instances.rows(slow_mailbox) == []


async def test_the_slots_of_an_instance_that_died_are_taken_over_once_they_expire(instances, slow_mailbox) -> None:
    dead = instances.new()
    await _claim_all(dead, slow_mailbox)  # never closed: its rows stay, unrenewed
    expiries = [r["expires"] for r in await instances.rows(slow_mailbox)]
    later = min(expiries) - dt.timedelta(seconds=1)  # b's clock: every row still live
    b = instances.new(wall=lambda: later)
    with pytest.raises(MailboxBusyError):
        await b.get_json(f"users/{slow_mailbox}/messages", mailbox=slow_mailbox)
    later = max(expiries) + dt.timedelta(seconds=1)  # every row expired
    assert await _burst([b], slow_mailbox, 4) == ["ok"] * 4
    assert {r["owner"] for r in await instances.rows(slow_mailbox)} == {b.limiter.owner}


async def test_a_slot_is_renewed_before_a_request_when_its_time_runs_short(instances, slow_mailbox) -> None:
    now = dt.datetime.now(dt.UTC)
    a = instances.new(wall=lambda: now)
    await _burst([a], slow_mailbox, 1)
    (row,) = await instances.rows(slow_mailbox)
    first = row["expires"]
    now = now + a.limiter.hold - a.limiter.renew_margin + dt.timedelta(seconds=1)
    await _burst([a], slow_mailbox, 1)
    (row,) = await instances.rows(slow_mailbox)
    assert row["expires"] > first and row["owner"] == a.limiter.owner
    assert row["expires"] - now >= a.limiter.renew_margin  # a request started now cannot outlive it


async def test_a_slot_taken_over_after_a_stall_is_dropped_not_shared(instances, slow_mailbox) -> None:
    """An instance whose loop stalled past its slot's expiry finds the row taken: it stops using that
    slot (claims another or defers) rather than run a fifth request beside the new holder's four."""
    now = dt.datetime.now(dt.UTC)
    a = instances.new(wall=lambda: now)
    await _burst([a], slow_mailbox, 1)
    later = now + a.limiter.hold + dt.timedelta(seconds=1)
    b = instances.new(wall=lambda: later)
    await _claim_all(b, slow_mailbox)  # b takes slot 0 over and claims 1-3
    now = later
    with pytest.raises(MailboxBusyError):
        await a.get_json(f"users/{slow_mailbox}/messages", mailbox=slow_mailbox)
    assert a.limiter.held(slow_mailbox) == 0


async def test_the_loops_gateway_follows_services_reopened_on_the_same_loop(graph_sim, pega_sim, azurite_conn,
                                                                           slow_mailbox) -> None:
    """The CLI's direct mode opens and closes its services, then opens them again on the same event loop:
    the loop's gateway must take its slots from the open store, not from the closed one."""
    from shared.graph import factory

    settings = load_settings(sync_settings_env(graph_sim, pega_sim, azurite_conn))
    names = TableNames(prefix="gs" + uuid.uuid4().hex[:10])
    first = await StateStore.open(settings.storage, names=names)
    gw = factory.graph_gateway(settings.graph, slots=first.graphslots)
    try:
        await gw.get_json(f"users/{slow_mailbox}/messages", mailbox=slow_mailbox)
        await first.close()
        second = await StateStore.open(settings.storage, names=names)
        try:
            assert factory.graph_gateway(settings.graph, slots=second.graphslots) is gw
            await gw.get_json(f"users/{slow_mailbox}/messages", mailbox=slow_mailbox)
            assert isinstance(gw.limiter, SharedMailboxLimiter) and gw.limiter.table is second.graphslots
        finally:
            await drop_tables(second)
            await second.close()
    finally:
        factory._by_loop.pop(asyncio.get_running_loop(), None)
        await gw.close()


async def test_rounds_reuse_the_slot_they_hold_without_a_storage_request(inbound) -> None:
    """The slots cost storage per burst of work, not per Graph request: once a mailbox's slot is held,
    its next rounds (each a few Graph requests) send no claim, renewal or release to the table."""
    await inbound.onboard()
    await inbound.run("email")
    limiter = inbound.ctx.gateway.limiter
    assert isinstance(limiter, SharedMailboxLimiter)
    limiter.idle_release = 3600.0  # the slot stays held however slow the machine is between rounds
    (index,) = limiter._boxes[inbound.upn.lower()].held
    claimed_at = limiter._boxes[inbound.upn.lower()].held[index].expires - limiter.hold
    limiter._wall = lambda: claimed_at  # no renewal falls due however long the rounds take (renewals: above)
    before = limiter.storage_ops
    for i in range(3):
        await inbound.inbound_mail(subject=f"Order {i}")
        assert (await inbound.run("email")).synced == 1
    assert limiter.storage_ops == before
    assert limiter.held(inbound.upn) == 1



async def test_a_busy_instance_gives_a_slot_back_for_another_to_take_its_turn(instances, slow_mailbox) -> None:
    """An instance that stays busy on a mailbox (a backfill) never idles long enough to give its slots
    back, so another instance's work there (a rep's send) was deferred every 2 s for as long as that
    lasted. A slot whose renewal comes due while the instance has other requests in flight is given
    back, and the instance waits for its own slots instead of claiming a new one: the other gets in."""
    now = dt.datetime.now(dt.UTC)
    # a turn lasts the test's length, so what it asserts never depends on how fast the machine is
    a, b = instances.new(wall=lambda: now, give_way=3600.0), instances.new(wall=lambda: now)
    in_flight = [a.limiter.slot(slow_mailbox) for _ in range(4)]
    for request in in_flight:  # a's four requests in flight: busy, never idle
        await request.__aenter__()
    with pytest.raises(MailboxBusyError):
        async with b.limiter.slot(slow_mailbox):
            pass

    now = now + a.limiter.hold - a.limiter.renew_margin + dt.timedelta(seconds=1)  # renewals due
    await in_flight.pop().__aexit__(None, None, None)  # one of a's requests ends, three go on
    next_of_a = asyncio.create_task(a.limiter.slot(slow_mailbox).__aenter__())

    async def given_back() -> bool:
        return len(await instances.rows(slow_mailbox)) == 3

    await until(given_back)
    async with b.limiter.slot(slow_mailbox):  # b's deferred work comes back: its turn
        assert a.limiter.held(slow_mailbox) == 3
        assert {r["owner"] for r in await instances.rows(slow_mailbox)} == {a.limiter.owner, b.limiter.owner}
        assert not next_of_a.done()  # a waits for its own slots meanwhile: never a fifth request
        await in_flight.pop().__aexit__(None, None, None)
        await asyncio.wait_for(next_of_a, 60)  # a safety net for a broken limiter, not a synchronisation
    assert a.limiter.held(slow_mailbox) == 3  # one slot given back per turn, the others renewed
    for request in in_flight:
        await request.__aexit__(None, None, None)
