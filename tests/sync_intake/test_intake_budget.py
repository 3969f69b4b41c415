"""Issue 11 item 12: intake stays inside its budget, and a round is never claimed without its message.

- The cold start (`services()`: clients and tables) runs inside the 2.5 s budget, so storage that
  does not answer gives Graph a 503 in time instead of a 500 much later.
- A cancellation between the coalescer's pending row and the queue send (the budget running out)
  no longer orphans the row; a claim whose sender died expires after 30 s, and a failed send
  gives the claim up at once — so neither notifications nor the poll are suppressed for minutes.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from azure.storage.queue.aio import QueueClient

from shared.config import load_settings
from shared.errors import TransientError
from shared.queues.envelope import Envelope
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from shared.sync.coalesce import pending_key
from shared.sync.rounds import enqueue_round
from tests.sync_intake.test_notification_intake import WORKERS_OFF


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers (storage that hangs)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


async def test_a_cold_start_against_hanging_storage_answers_503_within_the_budget(blackhole, app_host_factory,
                                                                                 tmp_path):
    from tests.plugins.app_host import fast_host_json

    base = f"http://127.0.0.1:{blackhole}/devstoreaccount1"
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            f"BlobEndpoint={base};QueueEndpoint={base};TableEndpoint={base};")
    host = app_host_factory(conn, settings={"STORAGE_TIMEOUT_SECONDS": "5"}, host_json=fast_host_json(tmp_path),
                            disable=WORKERS_OFF)
    body = {"value": [{"subscriptionId": str(uuid.uuid4()), "clientState": "x", "tenantId": "t"}]}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        for route in ("graph/notifications", "graph/lifecycle"):
            async with s.post(f"{host.url}/{route}", params={"code": host.function_key}, json=body) as r:
                assert r.status == 503, await r.text()
                assert (await r.json())["error"] == "not stored in time"
                assert r.headers["Retry-After"]


# ---------------------------------------------------------------- the coalescer's claim and the send


class GatedSender:
    """The real queue sender, held at the door: `entered` is set when a send starts, which then
    waits for `gate` (or fails once when `fail_next`)."""

    def __init__(self, real: QueueSender) -> None:
        self.real = real
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.fail_next = False

    async def send(self, queue: str, envelope: Envelope, **kw: Any) -> Any:
        self.entered.set()
        if self.fail_next:
            self.fail_next = False
            raise TransientError("queue unavailable")
        await self.gate.wait()
        return await self.real.send(queue, envelope, **kw)


@pytest.fixture
async def world(azurite_conn) -> AsyncIterator[tuple[Services, GatedSender]]:
    settings = load_settings({"AzureWebJobsStorage": azurite_conn})
    state = await StateStore.open(settings.storage, names=TableNames(prefix="co" + uuid.uuid4().hex[:8]))
    real = QueueSender.from_settings(settings.storage)
    sender = GatedSender(real)
    svc = Services(settings=settings, state=state, queues=sender)  # type: ignore[arg-type]
    yield svc, sender
    await real.close()
    await state.close()


async def rounds(conn: str, mailbox: str) -> list[dict[str, Any]]:
    async with QueueClient.from_connection_string(conn, "delta-work") as q:
        try:
            found = []
            for m in await q.peek_messages(max_messages=32):
                env = json.loads(base64.b64decode(m.content))
                if env["body"].get("mailbox") == mailbox:
                    found.append(env)
            return found
        except Exception:
            return []


async def until(check: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.1)


async def test_a_cancellation_between_claim_and_send_still_sends_the_round(world, azurite_conn):
    svc, sender = world
    mailbox = f"rep-{uuid.uuid4().hex[:8]}@contoso.example"
    task = asyncio.create_task(enqueue_round(svc, mailbox, "email", reason="notification"))
    await sender.entered.wait()  # the pending row is written, the send has begun
    task.cancel()  # the intake budget runs out right here
    with pytest.raises(asyncio.CancelledError):
        await task
    sender.gate.set()
    (env,) = await until(lambda: rounds(azurite_conn, mailbox), "the round of the cancelled request in the queue")
    assert env["body"]["reason"] == "notification"
    # the claim stands for a round that really is queued: the next notification coalesces with it
    assert await enqueue_round(svc, mailbox, "email", reason="notification") is False


async def test_a_claim_whose_sender_died_expires_after_30_seconds(world, azurite_conn):
    svc, sender = world
    sender.gate.set()
    mailbox = f"rep-{uuid.uuid4().hex[:8]}@contoso.example"
    table = svc.state.tables.table(svc.state.tables.names.coalesce)
    pk, rk = pending_key(mailbox, "email")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=31)
    await table.insert({"PartitionKey": pk, "RowKey": rk, "requested_at": old, "sent": False})  # died mid-way
    assert await enqueue_round(svc, mailbox, "email", reason="poll") is True
    assert len(await rounds(azurite_conn, mailbox)) == 1


async def test_a_sent_claim_still_coalesces_for_its_full_window(world):
    svc, sender = world
    sender.gate.set()
    mailbox = f"rep-{uuid.uuid4().hex[:8]}@contoso.example"
    table = svc.state.tables.table(svc.state.tables.names.coalesce)
    pk, rk = pending_key(mailbox, "email")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=31)
    await table.insert({"PartitionKey": pk, "RowKey": rk, "requested_at": old, "sent": True})
    assert await enqueue_round(svc, mailbox, "email", reason="notification") is False


async def test_a_failed_send_gives_the_claim_up_at_once(world, azurite_conn):
    svc, sender = world
    sender.gate.set()
    sender.fail_next = True
    mailbox = f"rep-{uuid.uuid4().hex[:8]}@contoso.example"
    with pytest.raises(TransientError):
        await enqueue_round(svc, mailbox, "email", reason="notification")
    assert await enqueue_round(svc, mailbox, "email", reason="notification") is True  # Graph's retry
    assert len(await rounds(azurite_conn, mailbox)) == 1
