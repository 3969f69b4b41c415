"""Issue 17 item 3, revised by issue 16: the subscriptions of a notification POST are read by id with
point reads on their index rows (a filtered query over many RowKeys is a partition scan in the Table
service), a few at once, and known ones come from a short-lived cache — against Azurite, counting the
reads and queries issued."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.config import load_settings
from shared.runtime import Services
from shared.storage.state import StateStore
from shared.storage.subscriptions import SubscriptionRecord
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


async def test_get_many_reads_each_id_by_point_read_and_returns_only_stored_records(world):
    svc, counting = world
    stored = [str(uuid.uuid4()) for _ in range(30)] + ["odd/id'with#chars?"]
    for sid in stored:
        await svc.state.subscriptions.put(record(sid))
    absent = [str(uuid.uuid4()) for _ in range(70)]
    counting.queries = counting.reads = 0
    found = await svc.state.subscriptions.get_many([*stored, *absent, "", "x" * 2000])
    assert set(found) == set(stored)
    assert found["odd/id'with#chars?"].client_state == "cs-odd/id'with#chars?"
    assert counting.queries == 0
    assert counting.reads == len(stored + absent)  # the empty and the over-long id cost nothing


async def test_a_thousand_unknown_ids_cost_point_reads_and_known_ones_are_cached(world):
    svc, counting = world
    known = await svc.state.subscriptions.put(record(str(uuid.uuid4())))
    unknown = [ChangeNotification(subscription_id=str(uuid.uuid4()), client_state="x", change_type="created",
                                  resource="r", resource_id="i", etag="e", tenant_id="t1") for _ in range(999)]
    counting.queries = counting.reads = 0
    # queues=None: nothing may be enqueued for an unknown id; the known one's client state is wrong
    mine = ChangeNotification(subscription_id=known.subscription_id, client_state="wrong", change_type="created",
                              resource="r", resource_id="i", etag="e", tenant_id="t1")
    result = await accept_change_notifications(svc, [mine, *unknown])
    # each id costs at most one point read; on a loaded machine the lookup budget may run out first,
    # and the ids left are counted as not checked (their changes come with the next delta round)
    assert result.ignored["client_state_mismatch"] == 1
    assert result.ignored["unknown_subscription"] + result.ignored.get("not_checked", 0) == 999
    assert counting.queries == 0 and counting.reads == 1 + result.ignored["unknown_subscription"]
    counting.reads = 0
    again = await accept_change_notifications(svc, [mine])
    assert again.ignored == {"client_state_mismatch": 1}
    assert counting.queries == counting.reads == 0, "a known subscription is served from the cache"


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
    counting.queries = counting.reads = 0
    unknown = [ChangeNotification(subscription_id=str(uuid.uuid4()), client_state="x", change_type="created",
                                  resource="r", resource_id="i", etag="e", tenant_id="t1") for _ in range(300)]
    counted = intake.IntakeResult()
    verified = await intake._verified(svc, [ok, *unknown], counted)
    assert [rec.subscription_id for _, rec in verified] == [known.subscription_id]
    assert counted.ignored == {"not_checked": 300}
    assert counting.queries == counting.reads == 0
