"""Intake of Graph change and lifecycle notifications.

Graph wants a 2xx within 3 seconds, so intake does only what makes the notification durable:
check each item against its subscription's clientState (constant-time; unknown subscription, a
foreign tenant or wrong state → ignored and counted, never processed), then enqueue one
`delta.sync` per (mailbox, kind) — coalesced, so a burst becomes one round. Everything slow
happens in workers.

The notification URL carries the function key, so whoever learns it can post anything; intake
therefore bounds its own work per request whatever the body holds:
- at most :data:`MAX_NOTIFICATIONS_PER_POST` items are looked at (the rest are counted as
  `over_limit`; their changes still arrive through the next delta round or the safety-net poll);
- a subscription id that is not a GUID (Graph's ids are) is unknown without a storage read;
- the remaining distinct ids are read after a short-lived per-process cache of known
  subscriptions, one point read each on the subscription's index row, many at once (a point read
  costs the same however many subscriptions the tenant has; a filtered query over many ids would be
  answered by a partition scan) — and no new read starts after :data:`LOOKUP_SECONDS`: ids still
  unchecked then are counted as `not_checked`, so the answer leaves within the budget however slow
  storage is.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.contract import json_body
from shared.contract.errors import ContractViolation
from shared.errors import InvalidMessageError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.health import record_success
from shared.storage.subscriptions import SubscriptionRecord, SubscriptionRepository
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)

TENANT_ROW = "_tenant"  # health rows not tied to one mailbox
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
# No maximum per POST is documented for Graph webhooks (changeNotificationCollection only says
# `value` is a collection); a delivery carries a handful of items in practice. 1,000 bounds the
# worst case (1,000 distinct unknown ids = 1,000 point reads, 32 at a time, cut off by the budget).
MAX_NOTIFICATIONS_PER_POST = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
CACHE_SECONDS = 60.0
LOOKUP_SECONDS = 1.5  # no new subscription reads after this: the answer must leave within the 2.5 s budget
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class ChangeNotification:
    subscription_id: str
    client_state: str
    change_type: str
    resource: str
    resource_id: str
    etag: str
    tenant_id: str = ""
    malformed: bool = False  # a field that is not a string of valid Unicode text


@dataclass(frozen=True)
class LifecycleNotification:
    subscription_id: str
    client_state: str
    event: str
    tenant_id: str = ""
    malformed: bool = False


@dataclass
class IntakeResult:
    accepted: int = 0
    enqueued: int = 0
    coalesced: int = 0
    ignored: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "enqueued": self.enqueued, "coalesced": self.coalesced,
                "ignored": dict(self.ignored)}


@dataclass(frozen=True)
class Batch:
    """The items of one POST that intake looks at, and how many it left out (over the limit)."""

    items: list[Any]
    over_limit: int = 0


def _items(body: bytes) -> tuple[list[dict[str, Any]], int]:
    if len(body or b"") > MAX_BODY_BYTES:
        raise InvalidMessageError(f"notification body is larger than {MAX_BODY_BYTES} bytes")
    try:
        doc = json_body.load(body)
    except ContractViolation as exc:
        raise InvalidMessageError(f"notification body is not JSON: {exc.message}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise InvalidMessageError("notification body must be an object with a 'value' array")
    values = doc["value"]
    if not all(isinstance(i, dict) for i in values):
        raise InvalidMessageError("every notification in 'value' must be an object")
    return values[:MAX_NOTIFICATIONS_PER_POST], max(0, len(values) - MAX_NOTIFICATIONS_PER_POST)


class _Fields:
    """Reads string fields of one notification; anything else (a number, an object, text with a
    lone surrogate) marks the notification malformed instead of failing the whole POST."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.malformed = False

    def text(self, key: str, within: dict[str, Any] | None = None) -> str:
        value = (self.item if within is None else within).get(key)
        if value is None:
            return ""
        if not isinstance(value, str) or not json_body.is_text(value):
            self.malformed = True
            return ""
        return value


def parse_change_notifications(body: bytes) -> Batch:
    items, over = _items(body)
    out = []
    for item in items:
        f = _Fields(item)
        raw = item.get("resourceData")
        rd: dict[str, Any] = raw if isinstance(raw, dict) else {}
        n = ChangeNotification(
            subscription_id=f.text("subscriptionId"), client_state=f.text("clientState"),
            change_type=f.text("changeType"), resource=f.text("resource"), resource_id=f.text("id", rd),
            etag=f.text("@odata.etag", rd), tenant_id=f.text("tenantId"))
        out.append(replace(n, malformed=True) if f.malformed else n)
    return Batch(out, over)


def parse_lifecycle_notifications(body: bytes) -> Batch:
    items, over = _items(body)
    out = []
    for item in items:
        f = _Fields(item)
        n = LifecycleNotification(subscription_id=f.text("subscriptionId"), client_state=f.text("clientState"),
                                  event=f.text("lifecycleEvent"), tenant_id=f.text("tenantId"))
        out.append(replace(n, malformed=True) if f.malformed else n)
    return Batch(out, over)


def state_matches(record: SubscriptionRecord | None, client_state: str) -> bool:
    if record is None or not record.client_state:
        return False
    try:
        return hmac.compare_digest(record.client_state.encode(), client_state.encode())
    except UnicodeEncodeError:  # not valid text: cannot be the secret we set
        return False


# ---------------------------------------------------------------- known subscriptions


class KnownSubscriptions:
    """Subscriptions read in the last `ttl` seconds, so a burst of notifications for the same few
    subscriptions costs no storage reads. Only found records are kept: an unknown id is read
    again next time (a subscription may have been stored a moment after Graph's first POST)."""

    def __init__(self, *, ttl: float = CACHE_SECONDS, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._found: dict[str, tuple[float, SubscriptionRecord]] = {}

    def get(self, subscription_id: str, *, now: float) -> SubscriptionRecord | None:
        hit = self._found.get(subscription_id)
        if hit is None or now - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, record: SubscriptionRecord, *, now: float) -> None:
        if len(self._found) >= self.max_entries:
            self._found = {k: v for k, v in self._found.items() if now - v[0] <= self.ttl}
            if len(self._found) >= self.max_entries:
                self._found.clear()
        self._found[record.subscription_id] = (now, record)


_known: weakref.WeakKeyDictionary[SubscriptionRepository, KnownSubscriptions] = weakref.WeakKeyDictionary()


def known_subscriptions(repo: SubscriptionRepository) -> KnownSubscriptions:
    found = _known.get(repo)
    if found is None:
        found = _known[repo] = KnownSubscriptions()
    return found


async def _lookup(services: Services, ids: list[str]) -> tuple[dict[str, SubscriptionRecord], set[str]]:
    """The records of `ids` (cache first, then point reads in the order given) and the ids left
    unchecked because the lookup time ran out — so a POST is answered in time whatever it holds
    and however loaded storage is."""
    repo = services.state.subscriptions
    cache = known_subscriptions(repo)
    started = now = time.monotonic()
    out: dict[str, SubscriptionRecord] = {}
    missing: list[str] = []
    for sid in ids:
        hit = cache.get(sid, now=now)
        if hit is not None:
            out[sid] = hit
        else:
            missing.append(sid)
    if not missing:
        return out, set()
    found = await repo.lookup(missing, deadline=started + LOOKUP_SECONDS)
    for sid, rec in found.found.items():
        cache.put(rec, now=now)
        out[sid] = rec
    return out, set(found.unchecked)


async def _count_ignored(services: Services, ignored: Counter[str]) -> None:
    if ignored:
        await services.state.health.update(TENANT_ROW, "intake", record_success(skipped=dict(ignored)))


def _tenant_ok(services: Services, tenant_id: str) -> bool:
    """The notification names our Graph tenant (GRAPH_TENANT_ID; unchecked while it is not set)."""
    ours = services.settings.graph.tenant_id
    return not ours or tenant_id.strip().lower() == ours.strip().lower()


async def _verified(services: Services, items: Sequence[ChangeNotification | LifecycleNotification],
                    result: IntakeResult) -> list[tuple[Any, SubscriptionRecord]]:
    """The items whose subscription we own and whose clientState matches; the rest are counted."""
    candidates = []
    for n in items:
        if n.malformed:
            result.ignored["malformed"] += 1
        elif not _tenant_ok(services, n.tenant_id):
            result.ignored["foreign_tenant"] += 1
        elif not _GUID.fullmatch(n.subscription_id):
            result.ignored["unknown_subscription"] += 1
        else:
            candidates.append(n)
    ordered = list(dict.fromkeys(n.subscription_id for n in candidates))  # distinct, in order of appearance
    subs, unchecked = await _lookup(services, ordered) if ordered else ({}, set())
    out: list[tuple[Any, SubscriptionRecord]] = []
    for n in candidates:
        rec = subs.get(n.subscription_id)
        if n.subscription_id in unchecked:
            result.ignored["not_checked"] += 1
        elif rec is None:
            result.ignored["unknown_subscription"] += 1
        elif not state_matches(rec, n.client_state):
            result.ignored["client_state_mismatch"] += 1
        else:
            out.append((n, rec))
    return out


def _start(batch: Batch | Sequence[Any]) -> tuple[Sequence[Any], IntakeResult]:
    result = IntakeResult()
    if isinstance(batch, Batch):
        if batch.over_limit:
            result.ignored["over_limit"] += batch.over_limit
        return batch.items, result
    return batch, result


async def accept_change_notifications(services: Services, batch: Batch | Sequence[ChangeNotification]
                                      ) -> IntakeResult:
    items, result = _start(batch)
    verified = await _verified(services, items, result)
    result.accepted = len(verified)
    for mailbox, kind in sorted({(rec.mailbox, rec.kind) for _, rec in verified}):
        if await enqueue_round(services, mailbox, kind, reason="notification"):
            result.enqueued += 1
        else:
            result.coalesced += 1
    if result.ignored:
        log.warning("notification intake ignored %s", dict(result.ignored))
    await _count_ignored(services, result.ignored)
    return result


async def accept_lifecycle_notifications(services: Services, batch: Batch | Sequence[LifecycleNotification]
                                         ) -> IntakeResult:
    items, result = _start(batch)
    sends = []
    for n, rec in await _verified(services, items, result):
        if n.event not in LIFECYCLE_EVENTS:
            result.ignored["unknown_lifecycle_event"] += 1
            continue
        result.accepted += 1
        sends.append(services.queues.send(names.SUBSCRIPTION_WORK, Envelope(type="subscription.lifecycle", body={
            "subscription_id": n.subscription_id, "event": n.event, "mailbox": rec.mailbox, "kind": rec.kind})))
    await asyncio.gather(*sends)
    result.enqueued = len(sends)
    if result.ignored:
        log.warning("lifecycle intake ignored %s", dict(result.ignored))
    await _count_ignored(services, result.ignored)
    return result
