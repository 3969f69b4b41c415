"""Issue 16: no storage read that grows with the tenant on a per-notification, per-API-call or
per-tick path. Two tenants of different size against Azurite; every HTTP request the Table SDK sends
is counted (a raw request hook on the real client), and the count per call must not depend on N —
counts, not timings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.subscriptions import ENSURE_EVERY_MINUTES, ensure_due
from shared.config import load_settings
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.mailboxes import KINDS, SLOTS, Mailbox, slot_of
from shared.storage.state import StateStore
from shared.storage.subscriptions import SubscriptionRecord
from shared.storage.tables import TableNames
from shared.sync.notifications import ChangeNotification, accept_change_notifications
from shared.sync.poll import poll_due, slots_due, slots_since

SMALL, LARGE = 6, 120
TICK_REQUESTS = 2  # a schedule tick reads and saves the minute of its last tick


@dataclass
class Requests:
    """Every request the Table client sends (method and URL), counted while `on`."""

    on: bool = False
    seen: list[tuple[str, str]] = field(default_factory=list)

    def hook(self, request: Any) -> None:
        if self.on:
            self.seen.append((request.http_request.method, request.http_request.url))

    def start(self) -> None:
        self.seen.clear()
        self.on = True

    def stop(self) -> int:
        self.on = False
        return len(self.seen)


class RecordingQueues:
    """Stands in for the queue sender: this test counts Table requests; sends are recorded."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    async def send(self, queue: str, envelope: Envelope, *, delay_seconds: int = 0) -> str:
        self.sent[envelope.type] += 1
        return str(uuid.uuid4())

    async def close(self) -> None:
        return None


@dataclass
class Tenant:
    svc: Services
    requests: Requests
    queues: RecordingQueues
    mailboxes: list[Mailbox]
    subs: list[SubscriptionRecord]


async def _tenant(conn: str, n: int) -> Tenant:
    settings = load_settings({"AzureWebJobsStorage": conn, "GRAPH_TENANT_ID": "t1", "SYNC_POLL_INTERVAL_MINUTES": "15"})
    requests = Requests()
    state = await StateStore.open(settings.storage, names=TableNames(prefix="sc" + uuid.uuid4().hex[:10]),
                                  request_hook=requests.hook)
    queues = RecordingQueues()
    svc = Services(settings=settings, state=state, queues=queues)  # type: ignore[arg-type]
    mailboxes, subs = [], []
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    for i in range(n):
        oid = str(uuid.uuid4())
        mb = await state.mailboxes.put(Mailbox(upn=f"rep{i}@contoso.example", pega_operator=f"op{i}", user_id=oid,
                                               state_key=oid))
        mailboxes.append(mb)
        for kind in KINDS:
            subs.append(await state.subscriptions.put(SubscriptionRecord(
                subscription_id=str(uuid.uuid4()), mailbox=mb.key, kind=kind, resource=f"/users/{oid}/{kind}",
                client_state=f"cs-{i}-{kind}", expires_at=expires)))
    return Tenant(svc, requests, queues, mailboxes, subs)


@pytest.fixture
async def tenants(azurite_conn) -> AsyncIterator[tuple[Tenant, Tenant]]:
    small, large = await _tenant(azurite_conn, SMALL), await _tenant(azurite_conn, LARGE)
    yield small, large
    for t in (small, large):
        await t.svc.state.close()


async def _count(t: Tenant, call: Any) -> int:
    t.requests.start()
    await call()
    return t.requests.stop()


async def test_a_notification_costs_the_same_storage_requests_whatever_the_tenant_size(tenants):
    costs = []
    for t in tenants:
        sub = t.subs[-1]
        n = ChangeNotification(subscription_id=sub.subscription_id, client_state=sub.client_state,
                               change_type="created", resource="r", resource_id="i", etag="e", tenant_id="t1")
        costs.append(await _count(t, lambda n=n, t=t: accept_change_notifications(t.svc, [n])))
        assert t.queues.sent["delta.sync"] == 1
    # one index point read, the coalescer's claim and its mark: no listing, no partition scan
    assert costs[0] == costs[1] <= 3, costs


async def test_pega_api_operator_lookup_and_subscription_listing_are_point_reads(tenants):
    for t in tenants:
        await t.svc.state.mailboxes.by_operator("op0")  # the one-time index check of this process
    by_op, per_mailbox, by_id = [], [], []
    for t in tenants:
        last = t.mailboxes[-1]

        async def lookup(t: Tenant = t, last: Mailbox = last) -> None:
            found = await t.svc.state.mailboxes.by_operator(last.pega_operator)
            assert found is not None and found.key == last.key
        by_op.append(await _count(t, lookup))

        async def listing(t: Tenant = t, last: Mailbox = last) -> None:
            assert len(await t.svc.state.subscriptions.for_mailbox(last.key)) == len(KINDS)
        per_mailbox.append(await _count(t, listing))

        async def one(t: Tenant = t) -> None:
            assert (await t.svc.state.subscriptions.get(t.subs[-1].subscription_id)) is not None
        by_id.append(await _count(t, one))
    assert by_op[0] == by_op[1] == 2, by_op
    assert per_mailbox[0] == per_mailbox[1] == 1, per_mailbox
    assert by_id[0] == by_id[1] == 2, by_id


async def test_an_operator_index_finds_only_the_current_owner(tenants):
    t = tenants[0]
    mb = await t.svc.state.mailboxes.get(t.mailboxes[0].key)
    assert mb is not None
    await t.svc.state.mailboxes.put(dataclasses.replace(mb, pega_operator="renamed"))
    assert await t.svc.state.mailboxes.by_operator("op0") is None  # the stale index row finds nothing
    assert (await t.svc.state.mailboxes.by_operator("renamed")).key == mb.key  # type: ignore[union-attr]
    assert await t.svc.state.mailboxes.by_operator("x" * 2000) is None


async def test_a_poll_tick_reads_only_the_due_slots_and_costs_the_same_per_due_mailbox(tenants):
    base = int(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC).timestamp() // 60)
    minute = base + (slot_of(tenants[0].mailboxes[0].key) - base) % 15  # a minute the small tenant has work
    now = dt.datetime.fromtimestamp(minute * 60, dt.UTC)
    per_due = []
    for t in tenants:
        await t.svc.state.mailboxes.save_tick("poll", minute - 2)
        await poll_due(t.svc, now=now - dt.timedelta(minutes=1))  # the one-time schedule check of this process
        due = {slot for slot in slots_due(minute, 15)}
        expect = [m for m in t.mailboxes if slot_of(m.key) in due]
        t.queues.sent.clear()
        cost = await _count(t, lambda t=t: poll_due(t.svc, now=now))
        assert t.queues.sent["delta.sync"] == len(KINDS) * len(expect)
        queries = [url for _, url in t.requests.seen if "filter=" in url]
        assert len(queries) == len(due) + len(expect)  # the due slots and each due mailbox's health: no listing
        per_due.append((cost - len(due) - TICK_REQUESTS) / max(1, len(expect)))
    # per due mailbox: its point read, its health partition, and per kind a claim and its mark
    assert per_due[0] == per_due[1] == 2 + 2 * len(KINDS), per_due


async def test_every_mailbox_is_visited_once_per_interval(tenants):
    t = tenants[1]
    for interval in (1, 7, 15, 60, 90):
        visits: Counter[int] = Counter()
        for minute in range(10_000, 10_000 + interval):
            visits.update(slots_due(minute, interval))
        assert set(visits) == set(range(SLOTS)) if interval <= SLOTS else set(visits) <= set(range(SLOTS))
        assert set(visits.values()) == {1}
    seen: Counter[str] = Counter()
    await t.svc.state.mailboxes.save_tick("subscriptions", -1)  # ticks ran before: none was missed
    for minute in range(0, ENSURE_EVERY_MINUTES):
        t.queues.sent.clear()
        await ensure_due(t.svc, now=dt.datetime.fromtimestamp(minute * 60, dt.UTC))
        seen["sent"] += t.queues.sent["subscriptions.ensure"]
    assert seen["sent"] == LARGE  # each active mailbox once in ten minutes


async def test_the_first_tick_after_the_host_slept_past_expiry_ensures_every_mailbox(tenants):
    """Chaos seed 3 (CI): the stack's clock jumped a week, past every subscription's expiry. The
    subscription timer then ensured only the mailboxes of that minute's slot, so the others got no
    notifications for up to ten minutes and their changes waited for the poll. A tick now also does
    the slots of the ticks that never ran."""
    t = tenants[1]
    minute = int(dt.datetime(2026, 12, 5, 23, 59, tzinfo=dt.UTC).timestamp() // 60)
    await t.svc.state.mailboxes.save_tick("subscriptions", minute - 1)
    await ensure_due(t.svc, now=dt.datetime.fromtimestamp(minute * 60, dt.UTC))
    t.queues.sent.clear()
    await ensure_due(t.svc, now=dt.datetime.fromtimestamp(minute * 60, dt.UTC) + dt.timedelta(days=7, minutes=1))
    assert t.queues.sent["subscriptions.ensure"] == LARGE


async def test_a_missed_poll_tick_is_made_up_by_the_next(tenants):
    """A tick that never ran (the host busy or asleep that minute) leaves its slots to the next one,
    not to the next interval: a missed notification is still found within 1.5 intervals."""
    t = tenants[1]
    minute = int(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC).timestamp() // 60)
    await t.svc.state.mailboxes.save_tick("poll", minute - 1)
    await poll_due(t.svc, now=dt.datetime.fromtimestamp(minute * 60, dt.UTC))
    t.queues.sent.clear()
    await poll_due(t.svc, now=dt.datetime.fromtimestamp((minute + 2) * 60, dt.UTC))  # minute + 1 never ticked
    due = set(slots_due(minute + 1, 15)) | set(slots_due(minute + 2, 15))
    assert t.queues.sent["delta.sync"] == len(KINDS) * sum(1 for m in t.mailboxes if slot_of(m.key) in due)
    assert t.queues.sent["delta.sync"] > 0


@given(last=st.one_of(st.none(), st.integers(0, 10_000)), minute=st.integers(0, 10_000),
       interval=st.sampled_from([1, 2, 7, 10, 15, 60, 90, 1440]))
def test_a_tick_visits_its_own_slots_and_every_missed_ticks(last, minute, interval):
    got = slots_since(last, minute, interval)
    assert got == sorted(set(got)) and set(got) <= set(range(SLOTS))
    assert set(slots_due(minute, interval)) <= set(got)
    if last is not None and last < minute:
        missed = set().union(*(slots_due(m, interval) for m in range(max(last + 1, minute - interval), minute + 1)))
        assert missed <= set(got)
        if minute - last < interval:  # and nothing beyond: a tick's work stays a tick's
            assert set(got) == set().union(*(slots_due(m, interval) for m in range(last + 1, minute + 1)))
    if last is not None and last >= minute:
        assert got == slots_due(minute, interval)


async def test_stores_written_before_issue_16_are_migrated_on_first_use(azurite_conn):
    """Legacy layout: subscriptions in one partition `sub`, mailboxes without operator index or schedule
    rows. The first read moves and builds them once; nothing is lost."""
    settings = load_settings({"AzureWebJobsStorage": azurite_conn, "GRAPH_TENANT_ID": "t1"})
    names = TableNames(prefix="mg" + uuid.uuid4().hex[:10])
    state = await StateStore.open(settings.storage, names=names)
    try:
        subs_t, mbx_t = state.tables.table(names.subscriptions), state.tables.table(names.mailboxes)
        oid = str(uuid.uuid4())
        legacy_mb = Mailbox(upn="old@contoso.example", pega_operator="old-op", user_id=oid, state_key=oid, backend="ews")
        await mbx_t.upsert(legacy_mb.to_entity())  # as the old code wrote it: no index, no schedule row
        rec = SubscriptionRecord(subscription_id=str(uuid.uuid4()), mailbox=oid, kind="email", resource="/r",
                                 client_state="cs", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        await subs_t.upsert({**rec.to_entity(), "PartitionKey": "sub"})
        fresh = await StateStore.open(settings.storage, names=names)  # a new process
        try:
            assert (await fresh.subscriptions.get_many([rec.subscription_id]))[rec.subscription_id].client_state == "cs"
            assert [r.subscription_id for r in await fresh.subscriptions.for_mailbox(oid)] == [rec.subscription_id]
            assert [e async for e in subs_t.partition("sub")] == []
            assert (await fresh.mailboxes.by_operator("old-op")).key == oid  # type: ignore[union-attr]
            assert oid in await fresh.mailboxes.in_slot(slot_of(oid))
            assert [m.key for m in await fresh.mailboxes.on_backend("ews")] == [oid]
            await fresh.subscriptions.delete(rec.subscription_id)
            assert await fresh.subscriptions.get(rec.subscription_id) is None
            assert await fresh.subscriptions.for_mailbox(oid) == []
        finally:
            await fresh.close()
    finally:
        await state.close()


async def test_storage_calls_take_no_thread_hop(azurite_conn):
    """With proxy environment variables honoured, aiohttp looked up ~/.netrc and the proxy variables in
    a worker thread on every request: two thread hops per storage call (issue 16's profile)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            Counting.submitted += 1
            return super().submit(*args, **kwargs)

    settings = load_settings({"AzureWebJobsStorage": azurite_conn})
    state = await StateStore.open(settings.storage, names=TableNames(prefix="th" + uuid.uuid4().hex[:10]))
    executor = Counting(max_workers=1)
    asyncio.get_running_loop().set_default_executor(executor)
    from shared.outbound.payloads import PayloadStore

    payloads = PayloadStore(settings.storage)  # the claim check of large outbound bodies (Blob storage)
    try:
        for i in range(10):
            assert await state.mailboxes.get(f"nobody{i}@contoso.example") is None
        assert Counting.submitted == 0, "table requests"
        for i in range(5):
            ref = await payloads.put(f"th-{uuid.uuid4().hex}", {"n": i})
            assert await payloads.get(ref) == {"n": i}
            await payloads.delete(ref)
        assert Counting.submitted == 0, "blob requests"
    finally:
        await payloads.close()
        await state.close()


async def test_only_an_inbound_round_makes_the_safety_net_poll_wait(tenants):
    """Chaos seed 55: after the subscriptions expired, the poll was the only way changes came in,
    and it skipped a kind whose Health row showed a success seconds old — a Pega -> Exchange
    operation's, which reads nothing from the mailbox. Those changes waited another interval."""
    from shared.storage.health import record_success

    t = tenants[1]
    base = int(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC).timestamp() // 60)
    minute = base + (slot_of(t.mailboxes[0].key) - base) % 15
    now = dt.datetime.fromtimestamp(minute * 60, dt.UTC)
    await t.svc.state.mailboxes.save_tick("poll", minute - 2)
    await poll_due(t.svc, now=now - dt.timedelta(minutes=1))  # the one-time schedule check of this process
    expect = [m for m in t.mailboxes if slot_of(m.key) in set(slots_due(minute, 15))]
    assert len(expect) >= 2
    first, second = expect[0], expect[1]
    for kind in KINDS:  # read up to date 20 minutes ago; Pega -> Exchange operations succeeded just now
        await t.svc.state.health.update(first.key, kind, record_success(round_completed=True,
                                                                        now=now - dt.timedelta(minutes=20)))
        await t.svc.state.health.update(first.key, kind, record_success(synced=1, now=now - dt.timedelta(seconds=5)))
    # a kind read up to date seconds ago is not polled again
    await t.svc.state.health.update(second.key, "email", record_success(round_completed=True,
                                                                        now=now - dt.timedelta(seconds=5)))
    t.queues.sent.clear()
    await poll_due(t.svc, now=now)
    assert t.queues.sent["delta.sync"] == len(KINDS) * len(expect) - 1


async def test_an_incident_tick_reads_only_the_failing_rows(tenants):
    """The incident timer listed every mailbox and read each one's health every minute (1 + N
    requests); now it reads the watch index and, per failing row, its health and its mailbox."""
    from shared.ops.incidents import evaluate_all
    from shared.storage.health import record_failure, record_success

    now = dt.datetime.now(dt.UTC)
    costs = []
    for t in tenants:
        for mb in t.mailboxes:  # every mailbox has health rows; two of them are failing
            await t.svc.state.health.update(mb.key, "email", record_success(round_completed=True, now=now))
        for mb in t.mailboxes[:2]:
            await t.svc.state.health.update(mb.key, "calendar", record_failure("Graph 503", transient=True, now=now))
        await evaluate_all(t.svc, now=now)  # the one-time index check of this process
        costs.append(await _count(t, lambda t=t: evaluate_all(t.svc, now=now)))
    assert costs[0] == costs[1] == 1 + 2 * 2, costs  # the index; per failing row its health and its mailbox


async def test_the_watch_index_lists_every_failing_row_whatever_the_interleaving(tenants):
    """Concurrent failures and successes on the same rows: every row that ends failing (or with an
    incident open) is listed; the timer drops index rows of rows that ended healthy."""
    import asyncio
    import random

    from shared.ops.incidents import evaluate_all
    from shared.storage.health import record_failure, record_success, watched

    t = tenants[0]
    repo = t.svc.state.health
    rng = random.Random(16)
    rows = [(mb.key, kind) for mb in t.mailboxes[:3] for kind in ("email", "contacts")]
    now = dt.datetime.now(dt.UTC)
    for _ in range(4):
        writes = [repo.update(key, kind, record_failure("x", transient=True, now=now) if rng.random() < 0.5
                              else record_success(now=now)) for key, kind in rows for _ in range(4)]  # fmt: skip
        rng.shuffle(writes)
        await asyncio.gather(*writes)
        listed = {(e.mailbox, e.kind) for e in await repo.watch_list()}
        failing = {(key, kind) for key, kind in rows if watched(await repo.get(key, kind))}
        assert failing <= listed, failing - listed
    await evaluate_all(t.svc, now=now)
    assert {(e.mailbox, e.kind) for e in await repo.watch_list()} == failing


async def test_rows_failing_before_the_watch_index_are_listed(azurite_conn):
    from shared.storage.health import Health

    settings = load_settings({"AzureWebJobsStorage": azurite_conn, "GRAPH_TENANT_ID": "t1"})
    names = TableNames(prefix="wi" + uuid.uuid4().hex[:10])
    state = await StateStore.open(settings.storage, names=names)
    try:
        now = dt.datetime.now(dt.UTC)
        legacy = Health(mailbox="old@contoso.example", kind="email", failing_since=now, consecutive_failures=3,
                        last_failure_at=now)
        await state.tables.table(names.health).upsert(legacy.to_entity())  # as the old code wrote it: no index row
        fresh = await StateStore.open(settings.storage, names=names)  # a new process
        try:
            assert [(e.mailbox, e.kind) for e in await fresh.health.watch_list()] == [("old@contoso.example", "email")]
        finally:
            await fresh.close()
    finally:
        await state.close()


async def test_an_index_row_read_before_a_row_failed_again_is_not_dropped(tenants):
    """The timer (or a recovering writer) read the index row, then the row failed again: its delete,
    conditional on what it read, must leave the row listed."""
    from shared.storage.health import record_failure, record_success

    t = tenants[0]
    repo, key = t.svc.state.health, t.mailboxes[0].key
    now = dt.datetime.now(dt.UTC)
    await repo.update(key, "email", record_failure("x", transient=True, now=now))
    [seen] = [e for e in await repo.watch_list() if e.mailbox == key]
    await repo.update(key, "email", record_success(now=now))  # healthy: its own delete drops the index row
    await repo.update(key, "email", record_failure("y", transient=True, now=now))  # failing again: a new index row
    await repo.unwatch(seen)  # the stale reader's delete
    assert [e.kind for e in await repo.watch_list() if e.mailbox == key] == ["email"]


async def test_the_ews_event_timer_finds_on_premises_mailboxes_through_their_index(tenants):
    """The EWS event timer (every 15 s) listed every mailbox to find the on-premises ones."""
    costs = []
    for t in tenants:
        onprem = [await t.svc.state.mailboxes.put(dataclasses.replace(mb, backend="ews", etag=None))
                  for mb in t.mailboxes[:2]]
        await t.svc.state.mailboxes.on_backend("ews")  # the one-time index check of this process

        async def listing(t: Tenant = t, onprem: list[Mailbox] = onprem) -> None:
            assert sorted(m.key for m in await t.svc.state.mailboxes.on_backend("ews")) == sorted(m.key for m in onprem)
        costs.append(await _count(t, listing))
    assert costs[0] == costs[1] == 1 + 2, costs
    t = tenants[0]
    moved = await t.svc.state.mailboxes.get(t.mailboxes[0].key)
    await t.svc.state.mailboxes.put(dataclasses.replace(moved, backend="graph"))  # type: ignore[arg-type]
    assert [m.key for m in await t.svc.state.mailboxes.on_backend("ews")] == [t.mailboxes[1].key]


async def test_pending_rounds_are_spread_over_a_partition_per_mailbox(tenants):
    """All pending rows sat in one partition ("pending"), which serves ~2,000 operations a second:
    a large tenant's notification peaks (three coalescer operations per change) would reach it."""
    t = tenants[1]
    for mb in t.mailboxes[:5]:
        for kind in KINDS:
            assert await t.svc.state.coalescer.request(mb.key, kind) is not None
    table = t.svc.state.tables.table(t.svc.state.tables.names.coalesce)
    rows = [e async for e in table.query("PartitionKey ge 'pending'")]
    assert len(rows) == 5 * len(KINDS)
    assert len({e["PartitionKey"] for e in rows}) == 5


async def test_a_recovery_is_saved_when_its_index_clean_up_fails(tenants):
    """The index row is dropped after the health write; a storage fault there must not undo the
    caller's success (its incident close, resume and recovery notice ran after it)."""
    from shared.storage.errors import StorageUnavailableError
    from shared.storage.health import record_failure, record_success

    t = tenants[0]
    repo, key = t.svc.state.health, t.mailboxes[1].key
    now = dt.datetime.now(dt.UTC)
    await repo.update(key, "contacts", record_failure("x", transient=True, now=now))

    async def unavailable(entry: Any) -> None:
        raise StorageUnavailableError("storage timed out")

    repo.unwatch = unavailable  # type: ignore[method-assign]
    try:
        saved = await repo.update(key, "contacts", record_success(now=now))
    finally:
        del repo.unwatch
    assert saved.consecutive_failures == 0 and (await repo.get(key, "contacts")).consecutive_failures == 0
    assert ("contacts" in [e.kind for e in await repo.watch_list() if e.mailbox == key])  # left behind: a superset


async def test_a_row_dropped_while_its_mailbox_was_missing_is_listed_by_its_next_failure(tenants):
    from shared.ops.incidents import evaluate_all
    from shared.storage.health import record_failure

    t = tenants[0]
    repo, ghost = t.svc.state.health, f"{uuid.uuid4()}"
    now = dt.datetime.now(dt.UTC)
    await repo.update(ghost, "email", record_failure("x", transient=True, now=now))  # before its mailbox row exists
    await evaluate_all(t.svc, now=now)
    assert ghost not in {e.mailbox for e in await repo.watch_list()}
    await t.svc.state.mailboxes.put(Mailbox(upn="late@contoso.example", pega_operator="late", user_id=ghost,
                                            state_key=ghost))
    await repo.update(ghost, "email", record_failure("y", transient=True, now=now))  # still failing
    assert ghost in {e.mailbox for e in await repo.watch_list()}
