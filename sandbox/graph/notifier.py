"""Change-notification delivery and lifecycle events, in background tasks.

Changes are turned into notifications the moment they happen and POSTed in batches (``{"value":
[...]}``) per notification URL within tens of milliseconds, never inside the API request that made
the change. A delivery that is not answered with 2xx within 3 s is retried with backoff. The
documented slow-endpoint rules apply over a sliding sample: >=10% slow responses delays deliveries,
>=15% drops them and sends a ``missed`` lifecycle event. A ticker on the simulator clock sends
``reauthorizationRequired`` before expiry and removes expired subscriptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import ClientError, ClientTimeout

from sandbox.graph.clock import iso, iso7
from sandbox.graph.store import Change
from sandbox.graph.subscriptions import Subscription

log = logging.getLogger(__name__)
RESOURCE_NAMES = {"message": "Messages", "event": "Events", "contact": "Contacts"}
ODATA_TYPES = {"message": "#Microsoft.Graph.Message", "event": "#Microsoft.Graph.Event",
               "contact": "#Microsoft.Graph.Contact"}


@dataclass
class NotifierConfig:
    batch_window_ms: int = 20
    response_timeout_seconds: float = 3.0
    slow_threshold_ms: int = 2900
    retry_base_seconds: float = 1.0
    retry_max_delay_seconds: float = 600.0
    retry_window_seconds: float = 4 * 3600.0
    slow_min_sample: int = 100
    slow_sample_window_seconds: float = 600.0
    slow_delay_ratio: float = 0.10
    slow_drop_ratio: float = 0.15
    slow_delay_seconds: float = 600.0
    reauthorization_lead_seconds: float = 3600.0
    tick_seconds: float = 0.2
    max_per_mailbox: int = 1000

    def update(self, data: dict[str, Any]) -> None:
        for k, v in data.items():
            if k in self.__dataclass_fields__:
                setattr(self, k, type(getattr(self, k))(v))


@dataclass
class Pending:
    sub_id: str
    payload: dict[str, Any]
    attempts: int = 0
    first_at: float = field(default_factory=time.monotonic)


@dataclass
class _Endpoint:
    samples: deque[tuple[float, bool]] = field(default_factory=deque)  # (when, slow)
    dropping: bool = False

    def ratio(self, cfg: NotifierConfig, now: float) -> tuple[int, float]:
        while self.samples and self.samples[0][0] < now - cfg.slow_sample_window_seconds:
            self.samples.popleft()
        n = len(self.samples)
        return n, (sum(1 for _, s in self.samples if s) / n) if n else 0.0


class Notifier:
    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.config = NotifierConfig()
        self.subscriptions: dict[str, Subscription] = {}
        self.queues: dict[str, list[Pending]] = defaultdict(list)
        self.endpoints: dict[str, _Endpoint] = defaultdict(_Endpoint)
        self.log: deque[dict[str, Any]] = deque(maxlen=2000)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def reset(self) -> None:
        self.config = NotifierConfig()
        self.subscriptions.clear()
        self.queues.clear()
        self.endpoints.clear()
        self.log.clear()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._dispatch_loop()), asyncio.create_task(self._tick_loop())]

    async def stop(self) -> None:
        for t in [*self._tasks, *self._workers.values(), *self._background]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._workers.values(), *self._background, return_exceptions=True)

    # ---- producing -------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        item = change.item
        for sub in list(self.subscriptions.values()):
            if sub.user_id != item.owner or sub.kind != item.kind:
                continue
            ctype = self._effective_type(sub, change)
            if ctype is None or ctype not in sub.change_types:
                continue
            if ctype == "deleted" and change.change_type == "moved":
                rest = change.old_rest_id or item.rest_id
            else:
                rest = item.rest_id
            item_id = item.uid if sub.immutable_ids else rest
            resource = f"Users/{item.owner}/{RESOURCE_NAMES[item.kind]}/{item_id}"
            payload = {
                "subscriptionId": sub.id, "subscriptionExpirationDateTime": iso7(sub.expiration),
                "changeType": ctype, "resource": resource, "tenantId": self.sim.tenant_id,
                "clientState": sub.client_state,
                "resourceData": {"@odata.type": ODATA_TYPES[item.kind], "@odata.id": resource,
                                 "@odata.etag": item.etag, "id": item_id},
            }
            self.enqueue(sub.notification_url, Pending(sub.id, payload))

    @staticmethod
    def _effective_type(sub: Subscription, change: Change) -> str | None:
        if change.change_type != "moved":
            if sub.folder_id is not None and sub.folder_id != change.folder_id:
                return None
            return change.change_type
        if sub.folder_id is None:
            return "updated"
        if sub.folder_id == change.old_folder_id:
            return "deleted"
        if sub.folder_id == change.folder_id:
            return "created"
        return None

    def enqueue(self, url: str, pending: Pending) -> None:
        faults = self.sim.faults.notifications
        if faults.drop_rate and random.random() < faults.drop_rate:
            self._record(url, [pending], "dropped-fault", None, 0.0)
            return
        self.queues[url].append(pending)
        if faults.duplicate_rate and random.random() < faults.duplicate_rate:
            self.queues[url].append(Pending(pending.sub_id, dict(pending.payload)))
        self._wake.set()

    # ---- delivering ------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.config.batch_window_ms / 1000)
            for url in list(self.queues):
                if self.queues[url] and (url not in self._workers or self._workers[url].done()):
                    self._workers[url] = asyncio.create_task(self._drain(url))

    async def _drain(self, url: str) -> None:
        while self.queues.get(url):
            batch = self.queues.pop(url)
            faults = self.sim.faults.notifications
            if faults.reorder and len(batch) > 1:
                batch.reverse()
            if faults.delay_ms:
                await asyncio.sleep(faults.delay_ms / 1000)
            await self._deliver(url, batch)

    async def _deliver(self, url: str, batch: list[Pending]) -> None:
        cfg = self.config
        ep = self.endpoints[url]
        n, ratio = ep.ratio(cfg, time.monotonic())
        if n >= cfg.slow_min_sample and ratio >= cfg.slow_drop_ratio:
            self._record(url, batch, "dropped-slow", None, 0.0)
            if not ep.dropping:
                ep.dropping = True
                for sub_id in {p.sub_id for p in batch}:
                    sub = self.subscriptions.get(sub_id)
                    if sub is not None:
                        self.lifecycle(sub, "missed")
            return
        ep.dropping = False
        if n >= cfg.slow_min_sample and ratio >= cfg.slow_delay_ratio:
            await asyncio.sleep(cfg.slow_delay_seconds)
        body = json.dumps({"value": [p.payload for p in batch]}).encode()
        started = time.monotonic()
        status: int | None = None
        try:
            assert self.sim.http is not None
            async with self.sim.http.post(url, data=body, headers={"Content-Type": "application/json"},
                                          timeout=ClientTimeout(total=cfg.response_timeout_seconds)) as resp:
                status = resp.status
                await resp.read()
        except (TimeoutError, ClientError, OSError):
            status = None
        elapsed = time.monotonic() - started
        slow = status is None or elapsed * 1000 > cfg.slow_threshold_ms
        ep.samples.append((time.monotonic(), slow))
        ok = status is not None and 200 <= status < 300 and elapsed <= cfg.response_timeout_seconds
        if ok:
            self._record(url, batch, "delivered", status, elapsed)
            return
        retry = [p for p in batch if time.monotonic() - p.first_at < cfg.retry_window_seconds]
        self._record(url, batch, "retrying" if retry else "expired", status, elapsed)
        if retry:
            for p in retry:
                p.attempts += 1
            delay = min(cfg.retry_max_delay_seconds, cfg.retry_base_seconds * 2 ** (retry[0].attempts - 1))
            task = asyncio.create_task(self._requeue_later(url, retry, delay))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _requeue_later(self, url: str, batch: list[Pending], delay: float) -> None:
        await asyncio.sleep(delay)
        self.queues[url][:0] = batch
        self._wake.set()

    def _record(self, url: str, batch: list[Pending], outcome: str, status: int | None, elapsed: float) -> None:
        self.log.append({"url": url, "outcome": outcome, "status": status, "elapsedMs": round(elapsed * 1000, 1),
                         "count": len(batch), "at": iso(self.sim.clock.now()),
                         "subscriptionIds": sorted({p.sub_id for p in batch}),
                         "attempt": max((p.attempts for p in batch), default=0) + 1,
                         "changes": [{"changeType": p.payload.get("changeType"),
                                      "id": (p.payload.get("resourceData") or {}).get("id"),
                                      "lifecycleEvent": p.payload.get("lifecycleEvent")} for p in batch]})

    # ---- lifecycle -------------------------------------------------------------------------

    def lifecycle(self, sub: Subscription, event: str) -> bool:
        """Send a lifecycle notification in the background; False when the subscription has no URL."""
        if not sub.lifecycle_url:
            return False
        payload = {"subscriptionId": sub.id, "subscriptionExpirationDateTime": iso7(sub.expiration),
                   "tenantId": self.sim.tenant_id, "clientState": sub.client_state, "lifecycleEvent": event,
                   "resource": sub.resource}
        url = sub.lifecycle_url
        task = asyncio.create_task(self._post_lifecycle(url, Pending(sub.id, payload)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    async def _post_lifecycle(self, url: str, pending: Pending) -> None:
        body = json.dumps({"value": [pending.payload]}).encode()
        for attempt in range(3):
            started = time.monotonic()
            try:
                assert self.sim.http is not None
                async with self.sim.http.post(url, data=body, headers={"Content-Type": "application/json"},
                                              timeout=ClientTimeout(total=self.config.response_timeout_seconds)
                                              ) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        self._record(url, [pending], "delivered", resp.status, time.monotonic() - started)
                        return
            except (TimeoutError, ClientError, OSError):
                pass
            pending.attempts = attempt + 1
            await asyncio.sleep(self.config.retry_base_seconds * 2 ** attempt)
        self._record(url, [pending], "expired", None, 0.0)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_seconds)
            try:
                self.tick()
            except Exception:
                log.exception("subscription ticker failed")

    def tick(self) -> None:
        now = self.sim.clock.now()
        lead = self.config.reauthorization_lead_seconds
        for sub in list(self.subscriptions.values()):
            if now >= sub.expiration:
                log.info("subscription %s expired", sub.id)
                self.subscriptions.pop(sub.id, None)
            elif not sub.reauth_sent and (sub.expiration - now).total_seconds() <= lead:
                sub.reauth_sent = True
                self.lifecycle(sub, "reauthorizationRequired")

    def remove(self, sub_id: str, *, notify: bool = True) -> bool:
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            return False
        if notify:
            self.lifecycle(sub, "subscriptionRemoved")
        return True

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"config": asdict(self.config),
                "endpoints": {u: {"samples": ep.ratio(self.config, now)[0],
                                  "slowRatio": round(ep.ratio(self.config, now)[1], 3), "dropping": ep.dropping}
                              for u, ep in self.endpoints.items()},
                "queued": {u: len(q) for u, q in self.queues.items() if q}}
