"""Dead letters: list, inspect and replay (one, per mailbox, all) through Azurite's real queues and
tables — nothing lost, nothing duplicated, a replay that fails again is a dead letter again."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from shared.errors import PermanentError
from shared.ops import deadletters as ops_dl
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.storage.deadletters import DeadLetter


async def drain(services, queue, handler):
    """Process everything on the queue once, like the queue trigger would."""
    client = services.queues.client(queue)
    outcomes = []
    while True:
        batch = [m async for m in client.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30)]
        if not batch:
            return outcomes
        for m in batch:
            outcomes.append(await run_message(queue=queue, text=m.content, dequeue_count=m.dequeue_count,
                                              handlers={"delta.sync": handler, "outbound.op": handler},
                                              deadletters=services.state.deadletters, sender=services.queues))
            await client.delete_message(m)


async def depth(services, queue) -> list[str]:
    client = services.queues.client(queue)
    return [m.content for m in await client.peek_messages(max_messages=32)]


async def seed(services, queue, mailbox, n, *, type_="delta.sync"):
    envs = [Envelope(type=type_, body={"mailbox": mailbox, "kind": "email", "reason": "poll",
                                       "subject": "Quarterly numbers for Contoso", "operation_id": f"op-{i}"})
            for i in range(n)]

    async def broken(env):
        raise PermanentError("Pega 500 while writing case ORG-WORK A-1")

    for env in envs:
        out = await run_message(queue=queue, text=env.dumps(), dequeue_count=1, handlers={type_: broken},
                                deadletters=services.state.deadletters, sender=services.queues)
        assert out.status == "dead_lettered"
    return envs


async def test_list_inspect_and_replay_without_loss_or_duplication(services, queue_name):
    q = queue_name
    await services.queues.ensure(q)
    a, b = "alex@contoso.example", "blair@contoso.example"
    env_a = await seed(services, q, a, 5)
    env_b = await seed(services, q, b, 3)

    listed = await ops_dl.list_letters(services, queue=q)
    assert len(listed) == 8 and {v.id for v in listed} == {e.id for e in env_a + env_b}
    assert len(await ops_dl.list_letters(services, mailbox=a)) >= 5
    assert {v.id for v in await ops_dl.list_letters(services, queue=q, mailbox=a)} == {e.id for e in env_a}

    shown = await ops_dl.inspect(services, q, env_a[0].id)
    assert shown["cause"].startswith("PermanentError: Pega 500") and shown["mailbox"] == a
    assert shown["message"]["body"]["subject"].startswith("<redacted")  # content never shown by default
    assert shown["message"]["body"]["mailbox"] == a and shown["message"]["id"] == env_a[0].id
    assert await ops_dl.inspect(services, q, "nope") is None

    # one: exact text re-enqueued once; a second replay of the same letter is refused
    r1 = await ops_dl.replay(services, queue=q, message_id=env_a[0].id)
    r2 = await ops_dl.replay(services, queue=q, message_id=env_a[0].id)
    assert len(r1.replayed) == 1 and not r2.replayed and r2.skipped[0]["reason"] == "already replayed"
    assert await depth(services, q) == [env_a[0].dumps()]

    # per mailbox, by two operators at once: each remaining letter of the mailbox enqueued exactly once
    ra, rb = await asyncio.gather(ops_dl.replay(services, queue=q, mailbox=a),
                                  ops_dl.replay(services, queue=q, mailbox=a))
    assert len(ra.replayed) + len(rb.replayed) == 4
    assert Counter(await depth(services, q)) == Counter(e.dumps() for e in env_a)

    # processing: one of them fails again → a dead letter again, with its new cause
    processed: Counter[str] = Counter()
    still_broken = env_a[2].id

    async def handler(env):
        if env.id == still_broken:
            raise PermanentError("Pega 400: field Priority is invalid")
        processed[env.id] += 1

    await drain(services, q, handler)
    pending = await ops_dl.list_letters(services, queue=q)
    assert {v.id for v in pending} == {still_broken} | {e.id for e in env_b}
    again = next(v for v in pending if v.id == still_broken)
    assert "field Priority is invalid" in again.cause and again.replayed_at is None

    # all: B's letters and the re-failed one; afterwards nothing pending, every message processed once
    everything = await ops_dl.replay(services, queue=q, all_letters=True)
    assert len(everything.replayed) == 4
    still_broken = ""
    await drain(services, q, handler)
    assert await ops_dl.list_letters(services, queue=q) == []
    assert processed == Counter({e.id: 1 for e in env_a + env_b})
    history = await ops_dl.list_letters(services, queue=q, include_replayed=True)
    assert len(history) == 8 and all(v.replayed_at is not None for v in history)


async def test_a_replay_that_fails_again_before_it_is_marked_stays_pending(services, queue_name):
    """The race: the replayed message is processed and dead-lettered anew before the replay marks it."""
    q = queue_name
    [env] = await seed(services, q, "alex@contoso.example", 1)

    class FastFailingQueues:
        def __init__(self, inner):
            self.inner = inner

        async def send_raw(self, queue, text):
            await self.inner.send_raw(queue, text)
            await services.state.deadletters.add(DeadLetter(queue=queue, message_id=env.id, message=text,
                                                            cause="PermanentError: failed again", attempts=1))

    racing = dataclasses.replace(services, queues=FastFailingQueues(services.queues))
    report = await ops_dl.replay(racing, queue=q, message_id=env.id)
    assert len(report.replayed) == 1
    [letter] = await ops_dl.list_letters(services, queue=q)
    assert letter.cause == "PermanentError: failed again" and letter.replayed_at is None


async def test_a_failed_enqueue_leaves_the_letter_pending(services, queue_name):
    q = queue_name
    [env] = await seed(services, q, "alex@contoso.example", 1)

    class BrokenQueues:
        async def send_raw(self, queue, text):
            raise OSError("storage unreachable")

    report = await ops_dl.replay(dataclasses.replace(services, queues=BrokenQueues()), queue=q, message_id=env.id)
    assert report.failed and not report.replayed
    [letter] = await ops_dl.list_letters(services, queue=q)
    assert letter.replayed_at is None and letter.replaying_at is None
    assert len((await ops_dl.replay(services, queue=q, message_id=env.id)).replayed) == 1
