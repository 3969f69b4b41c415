"""The safety-net delta poll: Pega's connector polls; we poll as a backstop to push.

Each mailbox has a schedule slot (a hash of its key, `shared.storage.mailboxes.SLOTS` of them), and
the minute tick reads only the slots due at that minute: with interval I (≤ 60) minute m visits the
slots s ≡ m (mod I), so each mailbox is looked at once every I minutes, at its own minute — the work
of a tick is proportional to the mailboxes due then (about N / I), not to the tenant, and spread
evenly over time. A visited mailbox's enabled kinds get a (coalesced) delta round unless one
completed within the last half interval (push keeps busy mailboxes fresh), so a missed notification
is found within 1.5 × I at worst. With push switched off this is the only path.

A tick also visits the slots of the ticks that never ran since the last one did (a host asleep, a
wall clock that jumped): the minute of each schedule's last tick is kept in Table storage.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from shared.runtime import Services
from shared.storage.mailboxes import KINDS, SLOTS
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)

MAILBOXES_AT_ONCE = 8


def slots_due(minute: int, interval_minutes: int) -> list[int]:
    """The schedule slots a tick at `minute` (minutes since the epoch) visits: each slot exactly once
    every `interval_minutes` (for intervals over an hour, once per interval at its minute)."""
    interval = max(1, interval_minutes)
    phase = minute % interval
    return list(range(phase, SLOTS, interval))


def slots_since(last_minute: int | None, minute: int, interval_minutes: int) -> list[int]:
    """The slots a tick at `minute` visits when the schedule's last tick ran at `last_minute`: its own
    and those of every tick missed in between, so a host that slept past its ticks (or subscriptions
    that expired meanwhile) waits for no further interval. No record of a last tick, or a gap of a whole
    interval: every slot, since nothing tells what was missed. A clock that went back: its own."""
    interval = max(1, interval_minutes)
    if last_minute is None or minute - last_minute >= interval:
        return list(range(SLOTS))
    if minute <= last_minute:
        return slots_due(minute, interval)
    visited: set[int] = set()
    for m in range(last_minute + 1, minute + 1):
        visited.update(slots_due(m, interval))
    return sorted(visited)


async def scheduled_keys(services: Services, schedule: str, *, minute: int, interval_minutes: int) -> list[str]:
    """The mailbox keys `schedule`'s tick at `minute` visits (see `slots_since`); the caller saves the
    tick with `services.state.mailboxes.save_tick` once their work is queued."""
    last = await services.state.mailboxes.last_tick(schedule)
    return [k for slot in slots_since(last, minute, interval_minutes)
            for k in await services.state.mailboxes.in_slot(slot)]


async def poll_due(services: Services, *, now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    minutes = services.settings.sync.poll_interval_minutes
    fresh_within = dt.timedelta(minutes=minutes) / 2
    minute = int(now.timestamp() // 60)
    keys = await scheduled_keys(services, "poll", minute=minute, interval_minutes=minutes)
    gate = asyncio.Semaphore(MAILBOXES_AT_ONCE)

    async def one(key: str) -> int:
        async with gate:
            mailbox = await services.state.mailboxes.get(key)
            if mailbox is None:
                await services.state.mailboxes.drop_from_schedule(key)
                return 0
            if not mailbox.active:
                return 0
            health = {h.kind: h for h in await services.state.health.for_mailbox(mailbox.key)}
            enqueued = 0
            for kind in KINDS:
                if not mailbox.enabled(kind):
                    continue
                h = health.get(kind)
                last = h.last_round_at if h else None  # not an outbound success: it read nothing
                due = last is None or now - last >= fresh_within
                if due and await enqueue_round(services, mailbox.key, kind, reason="poll"):
                    enqueued += 1
            return enqueued

    enqueued = sum(await asyncio.gather(*(one(k) for k in keys)))
    await services.state.mailboxes.save_tick("poll", minute)
    if enqueued:
        log.info("delta poll enqueued %s rounds for %s scheduled mailboxes", enqueued, len(keys))
    return enqueued
