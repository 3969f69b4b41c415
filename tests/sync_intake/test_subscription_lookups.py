"""Issue 17 item 3: the subscriptions of a notification POST are read in batches, not one by one,
and known ones come from a short-lived cache — against Azurite, counting the queries issued."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.config import load_settings
from shared.runtime import Services
from shared.storage.state import StateStore
from shared.storage.subscriptions import IDS_PER_QUERY, SubscriptionRecord
from shared.storage.tables import TableNames
from shared.sync.notifications import ChangeNotification, accept_change_notifications


class CountingTable:
    """The real table, with its queries and point reads counted."""

    def __init__(self, table: Any) -> None:
        self._t = table
        self.queries = 0
        self.reads = 0

    def query(self, *args: Any, **kw: Any) -> Any:
        self.queries += 1
        return self._t.query(*args, **kw)

    async def get(self, *args: Any, **kw: Any) -> Any:
        self.reads += 1
        return await self._t.get(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


@pytest.fixture
async def world(azurite_conn) -> AsyncIterator[tuple[Services, CountingTable]]:
    settings = load_settings({"AzureWebJobsStorage": azurite_conn, "GRAPH_TENANT_ID": "t1"})
    state = await StateStore.open(settings.storage, names=TableNames(prefix="lk" + uuid.uuid4().hex[:8]))
    counting = CountingTable(state.subscriptions._t)
    state.subscriptions._t = counting  # type: ignore[assignment]
    yield Services(settings=settings, state=state, queues=None), counting  # type: ignore[arg-type]
    await state.close()


def record(sid: str) -> SubscriptionRecord:
    return SubscriptionRecord(subscription_id=sid, mailbox=f"r-{sid[:6]}@contoso.example", kind="email",
                              resource="/users/x/messages", client_state="cs-" + sid,
                              expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))


async def test_get_many_reads_in_batches_and_returns_only_stored_records(world):
    svc, counting = world
    stored = [str(uuid.uuid4()) for _ in range(30)] + ["odd/id'with#chars?"]
    for sid in stored:
        await svc.state.subscriptions.put(record(sid))
    absent = [str(uuid.uuid4()) for _ in range(70)]
    counting.queries = counting.reads = 0
    found = await svc.state.subscriptions.get_many([*stored, *absent, "", "x" * 2000])
    assert set(found) == set(stored)
    assert found["odd/id'with#chars?"].client_state == "cs-odd/id'with#chars?"
    assert counting.reads == 0
    assert counting.queries == math.ceil(len(stored + absent) / IDS_PER_QUERY)


async def test_a_thousand_unknown_ids_cost_batched_queries_and_known_ones_are_cached(world):
    svc, counting = world
    known = await svc.state.subscriptions.put(record(str(uuid.uuid4())))
    unknown = [ChangeNotification(subscription_id=str(uuid.uuid4()), client_state="x", change_type="created",
                                  resource="r", resource_id="i", etag="e", tenant_id="t1") for _ in range(999)]
    counting.queries = counting.reads = 0
    # queues=None: nothing may be enqueued for an unknown id; the known one's client state is wrong
    mine = ChangeNotification(subscription_id=known.subscription_id, client_state="wrong", change_type="created",
                              resource="r", resource_id="i", etag="e", tenant_id="t1")
    result = await accept_change_notifications(svc, [mine, *unknown])
    assert result.ignored == {"unknown_subscription": 999, "client_state_mismatch": 1}
    assert counting.reads == 0 and counting.queries == math.ceil(1000 / IDS_PER_QUERY)
    counting.queries = 0
    again = await accept_change_notifications(svc, [mine])
    assert again.ignored == {"client_state_mismatch": 1}
    assert counting.queries == 0, "a known subscription is served from the cache"


async def test_lookups_stop_at_their_time_limit_and_the_rest_is_counted_not_checked(world, monkeypatch):
    """However slow storage is, the answer leaves within the budget: no new batch after the limit
    (0 here), unchecked items counted; a subscription already known still counts at once."""
    import shared.sync.notifications as intake

    svc, counting = world
    known = await svc.state.subscriptions.put(record(str(uuid.uuid4())))
    ok = ChangeNotification(subscription_id=known.subscription_id, client_state=known.client_state,
                            change_type="created", resource="r", resource_id="i", etag="e", tenant_id="t1")
    wrong = ChangeNotification(subscription_id=known.subscription_id, client_state="wrong", change_type="created",
                               resource="r", resource_id="i", etag="e", tenant_id="t1")
    await accept_change_notifications(svc, [wrong])  # now cached
    monkeypatch.setattr(intake, "LOOKUP_SECONDS", 0.0)
    counting.queries = 0
    unknown = [ChangeNotification(subscription_id=str(uuid.uuid4()), client_state="x", change_type="created",
                                  resource="r", resource_id="i", etag="e", tenant_id="t1") for _ in range(300)]
    counted = intake.IntakeResult()
    verified = await intake._verified(svc, [ok, *unknown], counted)
    assert [rec.subscription_id for _, rec in verified] == [known.subscription_id]
    assert counted.ignored == {"not_checked": 300}
    assert counting.queries == 0
