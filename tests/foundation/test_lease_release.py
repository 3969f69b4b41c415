"""Releasing a lease (shared.storage.leases) against Azurite: the common case costs one request, and a
rerun someone asked for while the lease was held is never lost — whether the holder's heartbeat saw
it or not — and a lease taken over elsewhere is left to its new holder."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.config import load_settings
from shared.storage.leases import Lease
from shared.storage.state import StateStore
from shared.storage.tables import Table, TableNames


@dataclass
class Recorded:
    on: bool = False
    seen: list[str] = field(default_factory=list)

    def hook(self, request: Any) -> None:
        if self.on:
            self.seen.append(request.http_request.method)


@dataclass
class Leases:
    table: Table
    requests: Recorded
    reruns: list[str] = field(default_factory=list)

    def lease(self, key: str = "m@x|email") -> Lease:
        async def rerun(how: str) -> None:
            self.reruns.append(how)

        return Lease(self.table, "round", key, duration=dt.timedelta(seconds=30), on_rerun=rerun)

    async def row(self, lease: Lease) -> dict[str, Any] | None:
        return await self.table.get(lease.pk, lease.rk)


@pytest.fixture
async def leases(azurite_conn: str, unique_name: str) -> AsyncIterator[Leases]:
    requests = Recorded()
    state = await StateStore.open(load_settings({"AzureWebJobsStorage": azurite_conn}).storage,
                                  names=TableNames(prefix=unique_name), request_hook=requests.hook)
    table = await state.tables.ensure(state.tables.names.roundlease)
    yield Leases(table, requests)
    await state.close()


async def test_releasing_an_untouched_lease_is_one_conditional_delete(leases: Leases) -> None:
    held = leases.lease()
    await held.acquire()
    leases.requests.on = True
    await held.release()
    leases.requests.on = False
    assert leases.requests.seen == ["DELETE"], "no read before the delete when nobody touched the row"
    assert await leases.row(held) is None
    assert leases.reruns == []


@pytest.mark.parametrize("full", [False, True])
async def test_a_rerun_asked_while_held_is_enqueued_at_release(leases: Leases, full: bool) -> None:
    held = leases.lease()
    await held.acquire()
    assert not await leases.lease().acquire_or_hand_over(full=full), "busy: handed over to the holder"
    await held.release()
    assert leases.reruns == ["full" if full else "normal"]
    assert await leases.row(held) is None


async def test_a_rerun_the_heartbeat_saw_is_enqueued_once_at_release(leases: Leases) -> None:
    held = leases.lease()
    await held.acquire()
    assert not await leases.lease().acquire_or_hand_over()
    await held.renew()  # the heartbeat meets the changed row and keeps the request
    assert held.rerun == "normal"
    await held.release()
    assert leases.reruns == ["normal"]
    assert await leases.row(held) is None


async def test_a_lease_taken_over_elsewhere_is_left_to_its_new_holder(leases: Leases) -> None:
    held = leases.lease()
    await held.acquire()
    row = await leases.row(held)
    assert row is not None
    await leases.table.replace({**{k: v for k, v in row.items() if not k.startswith("_")}, "owner": "someone-else"},
                               etag=str(row["_etag"]))
    await held.release()
    after = await leases.row(held)
    assert after is not None and after["owner"] == "someone-else"
    assert leases.reruns == []
