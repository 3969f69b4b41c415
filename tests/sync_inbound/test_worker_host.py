"""The delta worker under the local Functions host: queue message → round → Pega; a throttled mailbox is
deferred by Retry-After (a visibility delay) while another mailbox's round goes straight through."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.config import load_settings
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.sender import QueueSender
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from tests.plugins.app_host import fast_host_json, start_app_host
from tests.sync_inbound.conftest import sync_settings_env

DANA = {"address": "dana@fabrikam.example", "name": "Dana"}


async def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def host(graph_sim, pega_sim, pega_control, azurite_conn, tmp_path):
    env = sync_settings_env(graph_sim, pega_sim, azurite_conn)
    h = start_app_host(azurite_conn, settings=env, app="tests.sync_inbound.host_app:app",
                       host_json=fast_host_json(tmp_path))
    settings = load_settings(env)
    state = await StateStore.open(settings.storage)
    queues = QueueSender.from_settings(settings.storage)
    try:
        yield h, state, queues, settings
    finally:
        h.stop()
        await queues.close()
        await state.close()


async def test_queue_message_runs_a_round_and_a_throttled_mailbox_does_not_block_another(
        host, graph_sim, pega_control) -> None:
    _, state, queues, settings = host
    slow = (await graph_sim.control.new_user())["userPrincipalName"]
    fast = (await graph_sim.control.new_user())["userPrincipalName"]
    for upn in (slow, fast):
        await state.mailboxes.put(Mailbox.with_defaults(upn, "alex", settings.sync))
        await graph_sim.control.inbound_mail(upn, subject=f"hello {upn[:6]}", body="hi", **{"from": DANA})
    fault = await graph_sim.control.add_fault(path=f"users/{slow}/mailFolders/.*/messages/delta", status=429,
                                              retry_after=4, count=1)
    try:
        t0 = time.monotonic()
        for upn in (slow, fast):
            await queues.send(names.DELTA_WORK, Envelope(type="delta.sync", body={
                "mailbox": upn, "kind": "email", "reason": "notification", "full_resync": False}))

        async def subjects():
            return {r["content"]["Subject"] for r in await pega_control.records("email")}

        await wait_for(lambda: _has(subjects, f"hello {fast[:6]}"))
        # an ordering, not a stopwatch: when the other mailbox's mail is in Pega the throttled one's is not
        # (it is deferred by its Retry-After), so the throttled mailbox did not block the other
        assert f"hello {slow[:6]}" not in await subjects(), "the other mailbox was not blocked by the throttled one"
        await wait_for(lambda: _has(subjects, f"hello {slow[:6]}"))
        slow_done = time.monotonic() - t0
        assert slow_done >= 3.5, "the throttled mailbox waited for Retry-After (queue visibility delay)"
        async def recovered():
            h = await state.health.get(slow, "email")
            return h if h.last_success_at is not None else None

        health = await wait_for(recovered)
        assert health.throttled == 1 and health.consecutive_failures == 0
    finally:
        await graph_sim.control.call("DELETE", f"faults/{fault['id']}")


async def _has(fetch, subject: str) -> bool:
    return subject in await fetch()
