"""Per-mailbox, per-kind sync health: what an operator (and the failure notifier) needs.

Counters are updated read-modify-write under the entity's ETag; a lost race re-reads and
re-applies the same delta after a short jittered pause (bounded tries: contention is per mailbox
and kind, a few concurrent workers at most).

The incident timer must find the rows that are failing or have an incident open without reading
every mailbox's health each minute (issue 16: that was 1 + N requests a minute). So a *watch* index
(partition :data:`WATCH_PK`, a row per watched (mailbox, kind)) is kept by :meth:`HealthRepository.update`
on the transitions only, and it is a superset of the watched rows whatever the interleaving:
- every write that leaves a row watched (re)writes its index row *before* the health write (a crash
  between the two leaves an extra index row, which the timer drops; a row the timer dropped while its
  mailbox was missing is listed again by its next failure);
- a row ceasing to be watched loses its index row *after* the health write, and only if that index row
  is unchanged since it was read before the write (its ETag): a writer that made the row watched again
  in between rewrote the index row, so the delete fails and the row stays listed.
A healthy mailbox's rounds cost no index request at all; a failing one's, one upsert per failure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

log = logging.getLogger(__name__)

_MAX_TRIES = 16
# the watch index's partition: "%w" is never the output of encode_key (it escapes '%' as %25), so no
# mailbox's partition can be named so
WATCH_PK = "%watch"
WATCH_MARKER = ("%meta", "watch-index-v1")  # the index was built for rows written before it


def watched(h: Health) -> bool:
    """Failing or with an incident open: a row the incident timer must look at."""
    return (h.failing_since is not None and h.consecutive_failures > 0) or h.incident_open


@dataclass(frozen=True)
class WatchEntry:
    mailbox: str
    kind: str
    etag: str | None = None


def _watch_rk(mailbox: str, kind: str) -> str:
    return encode_key(f"{mailbox.lower()}\n{kind}")  # the newline is escaped (%0A): unambiguous


@dataclass(frozen=True)
class Health:
    mailbox: str
    kind: str
    last_success_at: dt.datetime | None = None  # of either direction: what an operator reads as "synced"
    last_round_at: dt.datetime | None = None  # the last completed Exchange -> Pega round: what the poll reads
    last_failure_at: dt.datetime | None = None
    last_error: str = ""
    failing_since: dt.datetime | None = None
    consecutive_failures: int = 0
    synced: int = 0
    skipped: int = 0
    failed: int = 0  # items and operations that failed (each is also listed in the failures table)
    throttled: int = 0
    retries: int = 0  # rounds/runs that failed transiently and were retried (not failed work)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    incident_open: bool = False
    incident_notified_at: dt.datetime | None = None
    etag: str | None = None

    def to_entity(self) -> Entity:
        e: Entity = {
            "PartitionKey": encode_key(self.mailbox.lower()),
            "RowKey": self.kind,
            "mailbox": self.mailbox.lower(),
            "kind": self.kind,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "synced": self.synced,
            "skipped": self.skipped,
            "failed": self.failed,
            "throttled": self.throttled,
            "retries": self.retries,
            "skip_reasons": json.dumps(self.skip_reasons, sort_keys=True),
            "incident_open": self.incident_open,
        }
        for name in ("last_success_at", "last_round_at", "last_failure_at", "failing_since", "incident_notified_at"):
            v = getattr(self, name)
            if v is not None:
                e[name] = v
        return e

    @classmethod
    def from_entity(cls, e: Entity) -> Health:
        return cls(
            mailbox=str(e["mailbox"]),
            kind=str(e["kind"]),
            last_success_at=e.get("last_success_at"),
            last_round_at=e.get("last_round_at"),
            last_failure_at=e.get("last_failure_at"),
            last_error=str(e.get("last_error", "")),
            failing_since=e.get("failing_since"),
            consecutive_failures=int(e.get("consecutive_failures", 0)),
            synced=int(e.get("synced", 0)),
            skipped=int(e.get("skipped", 0)),
            failed=int(e.get("failed", 0)),
            throttled=int(e.get("throttled", 0)),
            retries=int(e.get("retries", 0)),
            skip_reasons=json.loads(e.get("skip_reasons") or "{}"),
            incident_open=bool(e.get("incident_open", False)),
            incident_notified_at=e.get("incident_notified_at"),
            etag=e.get("_etag"),
        )


def record_success(*, synced: int = 0, skipped: dict[str, int] | None = None, failed: int = 0,
                   round_completed: bool = False, now: dt.datetime | None = None) -> Callable[[Health], Health]:
    """A round or run that completed. `failed`: items of it that failed on their own (parked and
    listed in the failures table; the round itself went on). `round_completed`: an Exchange -> Pega
    round read the mailbox up to date — only that makes the safety-net poll wait (a Pega -> Exchange
    operation's success shares the row but has read nothing)."""
    def apply(h: Health) -> Health:
        reasons = dict(h.skip_reasons)
        for reason, n in (skipped or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
        t = now or dt.datetime.now(dt.UTC)
        return replace(h, last_success_at=t, last_round_at=t if round_completed else h.last_round_at,
                       consecutive_failures=0,
                       failing_since=None, synced=h.synced + synced, failed=h.failed + failed,
                       skipped=h.skipped + sum((skipped or {}).values()), skip_reasons=reasons)
    return apply


# Failures further apart than this are not one outage (the host was stopped, the wall clock jumped):
# the next one starts a new streak. Far above any retry spacing (backoff ≤ 5 min, Retry-After is
# honoured by the queue) so a sustained outage is always one streak.
STREAK_GAP = dt.timedelta(hours=1)


def record_failure(error: str, *, throttled: bool = False, transient: bool = False, failed_items: int = 1,
                   now: dt.datetime | None = None, streak_gap: dt.timedelta = STREAK_GAP) -> Callable[[Health], Health]:
    """A failed round or operation. `transient`: it will be retried (counted in `retries`, not in
    `failed`, which counts work that did not make it); `failed_items`: how many items failed.

    The failing streak (`failing_since`, `consecutive_failures`) is what the notification frequency
    measures, so it must mean "failing all along": a failure more than `streak_gap` after the
    previous one starts a new streak instead of making an old single failure look like a long outage.
    """
    def apply(h: Health) -> Health:
        t = now or dt.datetime.now(dt.UTC)
        retried = transient or throttled
        stale = h.last_failure_at is not None and t - h.last_failure_at > streak_gap
        since = t if stale or h.failing_since is None else h.failing_since
        return replace(h, last_failure_at=t, last_error=error[:1000], failing_since=since,
                       consecutive_failures=(0 if stale else h.consecutive_failures) + 1,
                       failed=h.failed + (0 if retried else failed_items),
                       retries=h.retries + (1 if retried else 0),
                       throttled=h.throttled + (1 if throttled else 0))
    return apply


class HealthRepository:
    def __init__(self, table: Table) -> None:
        self._t = table
        self._watch_built = False

    async def get(self, mailbox: str, kind: str) -> Health:
        e = await self._t.get(encode_key(mailbox.lower()), kind)
        return Health.from_entity(e) if e else Health(mailbox=mailbox.lower(), kind=kind)

    async def for_mailbox(self, mailbox: str) -> list[Health]:
        return [Health.from_entity(e) async for e in self._t.partition(encode_key(mailbox.lower()))]

    async def update(self, mailbox: str, kind: str, change: Callable[[Health], Health]) -> Health:
        """Apply `change` atomically with respect to other writers of the same row (and keep the
        watch index, see the module docstring)."""
        for attempt in range(_MAX_TRIES):
            current = await self.get(mailbox, kind)
            new = change(current)
            was, now = watched(current), watched(new)
            index_etag: str | None = None
            if now:  # every write of a watched row (re)writes its index row: one request per failure
                await self._t.upsert(self._watch_entity(mailbox, kind))
            elif was:
                row = await self._t.get(WATCH_PK, _watch_rk(mailbox, kind))
                index_etag = str(row["_etag"]) if row is not None and row.get("_etag") else None
            try:
                if current.etag:
                    etag = await self._t.replace(new.to_entity(), etag=current.etag)
                else:
                    etag = await self._t.insert(new.to_entity())
            except (ConcurrencyError, AlreadyExistsError):
                # lost the race: back off a little (jittered) so a crowd of writers spreads out
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                continue
            if index_etag is not None:
                try:
                    await self.unwatch(WatchEntry(mailbox.lower(), kind, index_etag))
                except Exception as exc:  # the write is saved: an index row left behind is dropped by the timer
                    log.info("health watch index row of a %s left behind (%s)", kind, type(exc).__name__)
            return replace(new, etag=etag)
        raise ConcurrencyError(f"health of {mailbox}/{kind}: too much contention")

    async def watch_list(self) -> list[WatchEntry]:
        """The watched (mailbox, kind) pairs and perhaps a few that no longer are (the caller checks
        the health row and calls :meth:`unwatch`): one query of the index partition."""
        await self._build_watch_once()
        return [WatchEntry(str(e["mailbox"]), str(e["kind"]), e.get("_etag")) async for e in self._t.partition(WATCH_PK)]

    async def unwatch(self, entry: WatchEntry) -> None:
        """Drop an index row, only if unchanged since ``entry`` was read (a concurrent writer may have
        made its row watched again)."""
        try:
            await self._t.delete(WATCH_PK, _watch_rk(entry.mailbox, entry.kind), etag=entry.etag)
        except ConcurrencyError:
            pass

    def _watch_entity(self, mailbox: str, kind: str) -> Entity:
        return {"PartitionKey": WATCH_PK, "RowKey": _watch_rk(mailbox, kind), "mailbox": mailbox.lower(), "kind": kind}

    async def _build_watch_once(self) -> None:
        """Index rows for the rows that were watched before the index existed: one scan, once per store."""
        if self._watch_built:
            return
        if await self._t.get(*WATCH_MARKER) is None:
            async for e in self._t.query("consecutive_failures gt 0 or incident_open eq true"):
                if e.get("PartitionKey") not in (WATCH_PK, WATCH_MARKER[0]) and "kind" in e and watched(Health.from_entity(e)):
                    await self._t.upsert(self._watch_entity(str(e["mailbox"]), str(e["kind"])))
            await self._t.upsert({"PartitionKey": WATCH_MARKER[0], "RowKey": WATCH_MARKER[1]})
        self._watch_built = True
