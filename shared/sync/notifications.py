"""Intake of Graph change and lifecycle notifications.

Graph wants a 2xx within 3 seconds, so intake does only what makes the notification durable:
check each item against its subscription's clientState (constant-time; unknown subscription or
wrong state → ignored and counted, never processed), then enqueue one `delta.sync` per
(mailbox, kind) — coalesced, so a burst becomes one round. Everything slow happens in workers.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidMessageError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.health import record_success
from shared.storage.subscriptions import SubscriptionRecord
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)

TENANT_ROW = "_tenant"  # health rows not tied to one mailbox
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


@dataclass(frozen=True)
class ChangeNotification:
    subscription_id: str
    client_state: str
    change_type: str
    resource: str
    resource_id: str
    etag: str


@dataclass(frozen=True)
class LifecycleNotification:
    subscription_id: str
    client_state: str
    event: str


@dataclass
class IntakeResult:
    accepted: int = 0
    enqueued: int = 0
    coalesced: int = 0
    ignored: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "enqueued": self.enqueued, "coalesced": self.coalesced,
                "ignored": dict(self.ignored)}


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise InvalidMessageError("notification body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise InvalidMessageError("notification body must be an object with a 'value' array")
    items = [i for i in doc["value"] if isinstance(i, dict)]
    if len(items) != len(doc["value"]):
        raise InvalidMessageError("every notification in 'value' must be an object")
    return items


def parse_change_notifications(body: bytes) -> list[ChangeNotification]:
    out = []
    for item in _items(body):
        raw = item.get("resourceData")
        rd: dict[str, Any] = raw if isinstance(raw, dict) else {}
        out.append(ChangeNotification(
            subscription_id=str(item.get("subscriptionId") or ""),
            client_state=str(item.get("clientState") or ""),
            change_type=str(item.get("changeType") or ""),
            resource=str(item.get("resource") or ""),
            resource_id=str(rd.get("id") or ""),
            etag=str(rd.get("@odata.etag") or ""),
        ))
    return out


def parse_lifecycle_notifications(body: bytes) -> list[LifecycleNotification]:
    return [LifecycleNotification(subscription_id=str(i.get("subscriptionId") or ""),
                                  client_state=str(i.get("clientState") or ""),
                                  event=str(i.get("lifecycleEvent") or ""))
            for i in _items(body)]


def state_matches(record: SubscriptionRecord | None, client_state: str) -> bool:
    if record is None or not record.client_state:
        return False
    return hmac.compare_digest(record.client_state.encode(), client_state.encode())


async def _lookup(services: Services, ids: set[str]) -> dict[str, SubscriptionRecord | None]:
    return {sid: (await services.state.subscriptions.get(sid) if sid else None) for sid in ids}


async def _count_ignored(services: Services, ignored: Counter[str]) -> None:
    if ignored:
        await services.state.health.update(TENANT_ROW, "intake", record_success(skipped=dict(ignored)))


async def _verified(services: Services, items: Sequence[ChangeNotification | LifecycleNotification],
                    result: IntakeResult) -> list[tuple[Any, SubscriptionRecord]]:
    """The items whose subscription we own and whose clientState matches; the rest are counted."""
    subs = await _lookup(services, {n.subscription_id for n in items})
    out: list[tuple[Any, SubscriptionRecord]] = []
    for n in items:
        rec = subs.get(n.subscription_id)
        if rec is None:
            result.ignored["unknown_subscription"] += 1
        elif not state_matches(rec, n.client_state):
            result.ignored["client_state_mismatch"] += 1
        else:
            out.append((n, rec))
    return out


async def accept_change_notifications(services: Services, items: list[ChangeNotification]) -> IntakeResult:
    result = IntakeResult()
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


async def accept_lifecycle_notifications(services: Services, items: list[LifecycleNotification]) -> IntakeResult:
    result = IntakeResult()
    for n, rec in await _verified(services, items, result):
        if n.event not in LIFECYCLE_EVENTS:
            result.ignored["unknown_lifecycle_event"] += 1
            continue
        result.accepted += 1
        await services.queues.send(names.SUBSCRIPTION_WORK, Envelope(type="subscription.lifecycle", body={
            "subscription_id": n.subscription_id, "event": n.event, "mailbox": rec.mailbox, "kind": rec.kind}))
        result.enqueued += 1
    await _count_ignored(services, result.ignored)
    return result
