"""Graph's per-mailbox concurrency limit held across every instance, with storage the app already has.

Outlook lets one app run at most 4 requests at once against one mailbox; a fifth is answered 429
(`MailboxConcurrency`). An in-process semaphore keeps one instance under the limit, but on Flex
Consumption several instances (and, locally, several worker processes) work for the same mailbox:
a delta round on one, an outbound send on another, an insight worker on a third.

The 4 slots of a mailbox are 4 rows of the `graphslots` table (PartitionKey = the mailbox, RowKey =
the slot number). An instance claims a row before it uses a slot it does not yet hold (insert, or
take over a row whose `expires` has passed), keeps it while it stays busy, and gives it back
(delete, ETag-guarded) when it has been idle for `idle_release` seconds. So the storage cost is per
burst of work on a mailbox, not per Graph request: a busy mailbox pays one renewal per slot every
`hold - renew_margin` seconds.

Why a slot can never expire under a request in flight: a slot is renewed, before a request starts,
whenever less than `renew_margin` (the Graph request timeout plus a margin) is left, and a request
cannot outlive its timeout. A holder that dies stops renewing and its rows expire within `hold`.

When every slot is held by other instances the request is not sent: :class:`MailboxBusyError` (a
throttling error with a Retry-After) lets the queue defer the work, exactly as Graph's own 429
would, without spending a request of the mailbox's budget. Within this instance, requests wait for
a slot it holds (an asyncio wait, no polling).

Turns: an instance that stays busy never goes idle for `idle_release`, so without more it would keep
all 4 slots for as long as its work lasts (a 10,000-mail backfill) while every other instance's work
on that mailbox — a rep's send from Pega — is deferred again and again. So a slot whose renewal comes due
while the instance has other requests in flight is given back instead of renewed, and for `give_way`
seconds (longer than the deferred work's Retry-After) the instance claims no new slot while it
still has some in use: a deferred instance that comes back then finds a free row. At most one slot
is given back per `give_way`, so a busy instance keeps at least three quarters of its slots when no
one else wants them, and nobody waits longer than about one renewal period plus a retry. (The rows of an instance that died stay until they expire, up to
`hold`: chaos seed 24's restarted host had its rounds deferred every 2 s until its killed
predecessor's four rows ran out. Nothing is lost; a shorter `hold` would cost more renewals.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.graph.errors import GraphThrottledError
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.keys import encode_key
from shared.storage.tables import Table

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER = 2.0  # seconds: another instance's idle slots are given back within `idle_release`


class MailboxBusyError(GraphThrottledError):
    """Every Graph slot of the mailbox is held by other instances: defer, as after a 429."""

    def __init__(self, message: str = "every Graph slot of this mailbox is in use by another instance", *,
                 retry_after: float | None = BUSY_RETRY_AFTER) -> None:
        super().__init__(message, retry_after=retry_after, status=429)


@dataclass
class _Held:
    etag: str
    expires: dt.datetime
    free_since: float = 0.0


@dataclass
class _Mailbox:
    pk: str
    held: dict[int, _Held] = field(default_factory=dict)
    free: list[int] = field(default_factory=list)  # held and not in use; the last freed is reused first
    busy: int = 0
    give_way_until: float = 0.0  # (clock) no new claim while requests are in flight: a slot was just given back
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    reaper: asyncio.Task[None] | None = None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SharedMailboxLimiter:
    """At most `limit` Graph requests in flight per mailbox across all instances sharing `table`."""

    def __init__(self, limit: int, table: Table, *, renew_margin: float = 40.0, idle_release: float = 5.0,
                 give_way: float = BUSY_RETRY_AFTER + 1.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], dt.datetime] = _utcnow) -> None:
        self.limit = limit
        self.give_way = give_way
        self.table = table
        self.renew_margin = dt.timedelta(seconds=renew_margin)
        self.hold = 2 * self.renew_margin
        self.idle_release = idle_release
        self.owner = uuid.uuid4().hex
        self._clock = clock
        self._wall = wall
        self._boxes: dict[str, _Mailbox] = {}
        self.peak: dict[str, int] = {}
        self.storage_ops = 0  # claims, renewals and releases sent (for the scale bench and the tests)

    def slot(self, mailbox: str) -> _SharedSlot:
        key = mailbox.lower()
        box = self._boxes.get(key)
        if box is None:
            box = self._boxes[key] = _Mailbox(pk=encode_key(key))
        return _SharedSlot(self, key, box)

    def held(self, mailbox: str) -> int:
        box = self._boxes.get(mailbox.lower())
        return len(box.held) if box else 0

    # -- storage ------------------------------------------------------------------------------

    def _row(self, box: _Mailbox, index: int, expires: dt.datetime) -> dict[str, object]:
        return {"PartitionKey": box.pk, "RowKey": str(index), "owner": self.owner, "expires": expires}

    async def _claim(self, box: _Mailbox) -> int | None:
        """Claim a slot row this instance does not hold: a new row, or one whose holder stopped renewing."""
        now = self._wall()
        for index in range(self.limit):
            if index in box.held:
                continue
            expires = now + self.hold
            try:
                self.storage_ops += 1
                etag = await self.table.insert(self._row(box, index, expires))
            except AlreadyExistsError:
                self.storage_ops += 1
                current = await self.table.get(box.pk, str(index))
                if current is None:
                    continue  # given back meanwhile: the next call's insert takes it
                until = current.get("expires")
                if isinstance(until, dt.datetime) and until > now:
                    continue  # held by a live instance
                try:
                    self.storage_ops += 1
                    etag = await self.table.replace(self._row(box, index, expires), etag=str(current["_etag"]))
                except (ConcurrencyError, NotFoundError):
                    continue  # another instance took it first
            box.held[index] = _Held(etag=etag, expires=expires)
            return index
        return None

    def _turn_over(self, box: _Mailbox, index: int) -> bool:
        """Give this slot back rather than renew it (see "Turns" above): its renewal is due, other
        requests of this instance are in flight, and no slot was given back in the last `give_way`."""
        return (box.busy > 0 and box.held[index].expires - self._wall() < self.renew_margin
                and self._clock() >= box.give_way_until)

    async def _fresh(self, box: _Mailbox, index: int) -> bool:
        """Renew the slot if less than `renew_margin` is left; False if it was lost meanwhile."""
        held = box.held[index]
        now = self._wall()
        if held.expires - now >= self.renew_margin:
            return True
        expires = now + self.hold
        try:
            self.storage_ops += 1
            held.etag = await self.table.replace(self._row(box, index, expires), etag=held.etag)
            held.expires = expires
            return True
        except (ConcurrencyError, NotFoundError):
            log.warning("a Graph mailbox slot expired and was taken over (event loop stalled?)")
            del box.held[index]
            return False

    async def _give_back(self, box: _Mailbox, index: int) -> None:
        held = box.held.pop(index)
        try:
            self.storage_ops += 1
            await self.table.delete(box.pk, str(index), etag=held.etag)
        except Exception as exc:  # storage trouble, a closed client: the row expires on its own
            log.info("a Graph mailbox slot was left to expire: %s", type(exc).__name__)

    # -- slots --------------------------------------------------------------------------------

    async def acquire(self, key: str, box: _Mailbox) -> int:
        async with box.cond:
            while True:
                while box.free:
                    index = box.free.pop()
                    if self._turn_over(box, index):
                        await self._give_back(box, index)
                        box.give_way_until = self._clock() + self.give_way
                        continue
                    try:
                        fresh = await self._fresh(box, index)
                    except Exception:
                        box.free.append(index)  # still ours as far as we know; the queue retries the work
                        raise
                    if fresh:
                        break
                else:
                    index = -1
                if index < 0 and len(box.held) < self.limit and (box.busy == 0 or self._clock() >= box.give_way_until):
                    claimed = await self._claim(box)
                    index = -1 if claimed is None else claimed
                if index >= 0:
                    box.busy += 1
                    self.peak[key] = max(self.peak.get(key, 0), box.busy)
                    return index
                if box.busy == 0:
                    raise MailboxBusyError()
                await box.cond.wait()  # a request of this instance gives a slot back

    async def release(self, box: _Mailbox, index: int) -> None:
        async with box.cond:
            box.busy -= 1
            if index in box.held:
                box.held[index].free_since = self._clock()
                box.free.append(index)
            box.cond.notify()
            if box.reaper is None or box.reaper.done():
                box.reaper = asyncio.create_task(self._reap(box))

    async def _reap(self, box: _Mailbox) -> None:
        """Give back slots idle for `idle_release` seconds, so other instances can have them."""
        while True:
            await asyncio.sleep(self.idle_release)
            async with box.cond:
                cutoff = self._clock() - self.idle_release
                idle = [i for i in box.free if box.held[i].free_since <= cutoff]
                for index in idle:
                    box.free.remove(index)
                    await self._give_back(box, index)
                if not box.free:
                    return

    def abandon(self) -> None:
        """Stop giving slots back (the table is being replaced); the rows expire on their own."""
        for box in self._boxes.values():
            if box.reaper is not None:
                box.reaper.cancel()
        self._boxes.clear()

    async def close(self) -> None:
        """Give back every slot this instance holds (shutdown); rows left behind expire on their own."""
        for box in self._boxes.values():
            if box.reaper is not None:
                box.reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await box.reaper
            async with box.cond:
                for index in list(box.free):
                    box.free.remove(index)
                    await self._give_back(box, index)


class _SharedSlot:
    def __init__(self, owner: SharedMailboxLimiter, key: str, box: _Mailbox) -> None:
        self.owner, self.key, self.box = owner, key, box
        self.index = -1

    async def __aenter__(self) -> None:
        self.index = await self.owner.acquire(self.key, self.box)

    async def __aexit__(self, *exc: object) -> None:
        await self.owner.release(self.box, self.index)
