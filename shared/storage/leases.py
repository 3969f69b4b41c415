"""Short leases with heartbeats: "one worker at a time" that recovers in seconds after a crash.

A delta round (per mailbox and kind) and an outbound operation each run under a lease row. The
holder renews it every `heartbeat` seconds while it works, so the lease can be short (default 30
s) and still never expire under a live worker however long the work takes (40 delta pages, a
large upload): the lease lives exactly as long as its holder. A holder that dies (SIGKILL, a lost
instance) stops renewing; within `duration` the lease is free again, and
:func:`abandoned` lets a timer find such rows and re-enqueue their work at once instead of
waiting for the queue's visibility timeout (10 minutes on the Functions host).

Before every step that writes (applying a page), the holder calls :meth:`Lease.check`: a lease
that was lost (a renewal failed, someone took over) stops the work before it writes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import TransientError
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.keys import decode_key, encode_key
from shared.storage.tables import Table

log = logging.getLogger(__name__)

DEFAULT_DURATION = dt.timedelta(seconds=30)


class LeaseBusyError(TransientError):
    """Another worker holds the lease (or just took it over)."""


class LeaseLostError(LeaseBusyError):
    """This worker's lease expired or was taken over: stop before writing anything more."""


@dataclass(frozen=True)
class AbandonedLease:
    scope: str  # round | op
    key: str
    data: dict[str, Any]
    etag: str
    rerun: str = ""  # a rerun the dead holder was asked for ("normal" | "full")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stronger(a: str, b: str) -> str:
    """Of two rerun requests the stronger one: a full resync beats a normal round beats none."""
    order = {"": 0, "normal": 1, "full": 2}
    return a if order.get(a, 0) >= order.get(b, 0) else b


class Lease:
    """One lease row: PartitionKey = scope ("round", "op"), RowKey = the key it protects."""

    def __init__(self, table: Table, scope: str, key: str, *, duration: dt.timedelta = DEFAULT_DURATION,
                 data: dict[str, Any] | None = None,
                 on_rerun: Callable[[str], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._t = table
        self._clock = clock
        # Until when this holder may be sure the lease is still its own, by its own monotonic clock: the
        # last successful write's start + 80 % of the duration. A starved event loop (a loaded host) may
        # miss heartbeats; past this moment another instance may have taken over, so `check` stops.
        self._valid_until = float("-inf")
        self.scope = scope
        self.key = key
        self.pk = scope
        self.rk = encode_key(key)
        self.duration = duration
        self.data = dict(data or {})
        self.owner = uuid.uuid4().hex
        self.on_rerun = on_rerun
        self.rerun = ""  # "" | "normal" | "full": asked (by callers that found it busy) to run once more
        self._etag: str | None = None
        self._lost: BaseException | None = None

    @property
    def heartbeat(self) -> float:
        return max(0.2, self.duration.total_seconds() / 3)

    def _row(self, now: dt.datetime) -> dict[str, Any]:
        return {"PartitionKey": self.pk, "RowKey": self.rk, "owner": self.owner, "expires": now + self.duration,
                "rerun": self.rerun, **{f"d_{k}": v for k, v in self.data.items()}}

    def _note_rerun(self, row: dict[str, Any]) -> None:
        self.rerun = _stronger(self.rerun, str(row.get("rerun") or ""))

    async def acquire(self, *, now: dt.datetime | None = None) -> None:
        """Take the lease, or take over one whose holder stopped renewing; LeaseBusyError otherwise
        (with a Retry-After of the time left, so the queue defers instead of burning retries)."""
        now = now or _now()
        started = self._clock()
        for _ in range(3):
            try:
                self._etag = await self._t.insert(self._row(now))
                self._valid_from(started)
                return
            except AlreadyExistsError:
                pass
            current = await self._t.get(self.pk, self.rk)
            if current is None:
                continue
            expires = current.get("expires")
            if isinstance(expires, dt.datetime) and expires > now:
                wait = max(1.0, (expires - now).total_seconds())
                raise LeaseBusyError(f"a {self.scope} of this key is already running", retry_after=min(wait, 60.0))
            try:
                self._etag = await self._t.replace(self._row(now), etag=str(current["_etag"]))
                self._valid_from(started)
                log.info("took over an abandoned %s lease", self.scope)
                return
            except (ConcurrencyError, NotFoundError) as exc:
                raise LeaseBusyError(f"a {self.scope} of this key just started elsewhere", retry_after=2.0) from exc
        raise LeaseBusyError(f"the {self.scope} lease keeps changing", retry_after=2.0)

    async def acquire_or_hand_over(self, *, full: bool = False, now: dt.datetime | None = None) -> bool:
        """Take the lease (True) — or, when a live holder has it, ask the holder to run once more when it
        is done (False): the caller's work is then in the holder's hands and nothing waits in the queue.
        (A delta round requested while another round of the mailbox runs; `full`: a full resync.)"""
        want = "full" if full else "normal"
        for _ in range(6):
            try:
                await self.acquire(now=now)
                return True
            except LeaseBusyError:
                pass
            current = await self._t.get(self.pk, self.rk)
            if current is None:
                continue  # released meanwhile: take it
            if _stronger(str(current.get("rerun") or ""), want) == str(current.get("rerun") or ""):
                return False  # the holder was already asked (for as much)
            try:
                await self._t.merge({"PartitionKey": self.pk, "RowKey": self.rk, "rerun": want},
                                    etag=str(current["_etag"]))
                return False
            except (ConcurrencyError, NotFoundError):
                continue  # renewed or released meanwhile: look again
        raise LeaseBusyError(f"the {self.scope} lease keeps changing", retry_after=2.0)

    async def renew(self, *, now: dt.datetime | None = None) -> None:
        if self._etag is None:
            return
        started = self._clock()
        for _ in range(4):
            try:
                self._etag = await self._t.replace(self._row(now or _now()), etag=self._etag)
                self._valid_from(started)
                return
            except (ConcurrencyError, NotFoundError) as exc:
                current = await self._t.get(self.pk, self.rk)
                if current is None or current.get("owner") != self.owner:
                    self._lost = exc
                    raise LeaseLostError(f"the {self.scope} lost its lease (taken over elsewhere)",
                                         retry_after=2.0) from exc
                self._note_rerun(current)  # someone asked for a rerun: keep it, and the lease
                self._etag = str(current["_etag"])
        raise LeaseBusyError(f"the {self.scope} lease keeps changing", retry_after=2.0)

    def _valid_from(self, started: float) -> None:
        self._valid_until = started + 0.8 * self.duration.total_seconds()

    def check(self) -> None:
        """Raise LeaseLostError if a heartbeat found the lease gone, or if no renewal succeeded for
        long enough that another instance may hold it now (missed heartbeats): write nothing more."""
        if self._lost is None and self._etag is not None and self._clock() > self._valid_until:
            self._lost = LeaseLostError(f"the {self.scope} lease was not renewed in time")
        if self._lost is not None:
            raise LeaseLostError(f"the {self.scope} lost its lease", retry_after=2.0) from self._lost

    async def release(self) -> None:
        """Let go. A rerun someone asked for is enqueued first (`on_rerun`); if that fails the row is
        kept, so it expires and the recovery timer enqueues the work instead — never lost."""
        if self._etag is None or self._lost is not None:
            return
        try:
            if not self.rerun:
                # the common case in one request: nobody touched the row since our last write. A rerun
                # asked for meanwhile (a merge) or a takeover changed its ETag: then read and look.
                try:
                    await self._t.delete(self.pk, self.rk, etag=self._etag)
                    return
                except ConcurrencyError:
                    pass
            current = await self._t.get(self.pk, self.rk)
            if current is None or current.get("owner") != self.owner:
                return
            self._note_rerun(current)
            self._etag = str(current["_etag"])
            if self.rerun and self.on_rerun is not None:
                await self.on_rerun(self.rerun)
                self.rerun = ""
            for _ in range(4):
                try:
                    await self._t.delete(self.pk, self.rk, etag=self._etag)
                    return
                except ConcurrencyError:
                    current = await self._t.get(self.pk, self.rk)
                    if current is None or current.get("owner") != self.owner:
                        return
                    self._etag = str(current["_etag"])
                    if current.get("rerun") and self.on_rerun is not None:  # asked again just now
                        await self.on_rerun(str(current["rerun"]))
        except Exception as exc:  # storage or queue trouble: the row expires and recovery takes over
            log.info("%s lease release left to expiry: %s", self.scope, type(exc).__name__)
        finally:
            self._etag = None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.renew()
            except LeaseLostError:
                log.warning("%s lease lost; the work stops before its next write", self.scope)
                return
            except Exception as exc:  # storage hiccup: try again at the next beat, the lease still runs
                log.info("%s lease renewal failed: %s", self.scope, type(exc).__name__)

    @contextlib.asynccontextmanager
    async def beating(self) -> AsyncIterator[Lease]:
        """Renew the (acquired) lease in the background while the body runs."""
        beat = asyncio.create_task(self._beat())
        try:
            yield self
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Lease]:
        """Acquire, renew in the background while the body runs, release at the end."""
        await self.acquire()
        try:
            async with self.beating():
                yield self
        finally:
            await self.release()


async def abandoned(table: Table, *, now: dt.datetime | None = None) -> list[AbandonedLease]:
    """Leases whose holder stopped renewing. The table holds only live leases (released rows are
    deleted), so this query stays as small as the work in flight."""
    now = now or _now()
    out: list[AbandonedLease] = []
    async for e in table.query("expires lt @now", parameters={"now": now}):
        data = {k[2:]: v for k, v in e.items() if k.startswith("d_")}
        out.append(AbandonedLease(scope=str(e["PartitionKey"]), key=decode_key(str(e["RowKey"])), data=data,
                                  etag=str(e["_etag"]), rerun=str(e.get("rerun") or "")))
    return out


async def forget(table: Table, lease: AbandonedLease) -> bool:
    """Delete an abandoned lease row (only if nobody renewed or took it meanwhile)."""
    try:
        await table.delete(lease.scope, encode_key(lease.key), etag=lease.etag)
        return True
    except ConcurrencyError:
        return False
