"""Deliver contract calls to our service in the background, the way Connect-REST would.

Changes are queued and sent by one background task, in order, so the simulator's own API never
waits for (or fails because of) the service. Each call gets an Entra bearer token (client
credentials against the configured token URL, cached until shortly before expiry), the function
key and one Idempotency-Key that stays the same across its retries. Connection errors, 408, 429
and 5xx are retried with doubling backoff (Retry-After honoured, capped) up to `max_attempts`;
other answers end the call. Every attempt is recorded for /_sim/outbound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from sandbox.pega.config import OutboundConfig
from sandbox.pega.contract_calls import CallBuilder, ContractCall
from sandbox.pega.store import Actor, Change

log = logging.getLogger(__name__)
_seq = itertools.count(1)


@dataclass
class Attempt:
    at: float
    status: int | None
    error: str | None
    duration_ms: float


@dataclass
class OutboundCall:
    id: int
    operation_id: str
    method: str
    url: str
    path: str
    idempotency_key: str
    record_id: str
    body: dict[str, Any]
    actor: str
    state: str = "pending"  # pending | delivered | failed | skipped
    reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    response: Any = None  # the delivered call's JSON answer (our service's operation id and status URL)

    def dump(self) -> dict[str, Any]:
        return asdict(self)


class EntraToken:
    """Client-credentials token for our API audience from the (simulated) Entra token endpoint."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._expires = 0.0
        self._key: tuple[str, str, str] | None = None
        self.fetched = 0

    def invalidate(self) -> None:
        self._token = None

    async def get(self, session: aiohttp.ClientSession, cfg: OutboundConfig) -> str:
        key = (cfg.token_url, cfg.client_id, cfg.scope)
        if self._token and self._key == key and time.monotonic() < self._expires - 60:
            return self._token
        async with session.post(
            cfg.token_url,
            data={"grant_type": "client_credentials", "client_id": cfg.client_id,
                  "client_secret": cfg.client_secret, "scope": cfg.scope},
            timeout=aiohttp.ClientTimeout(total=cfg.timeout_seconds),
        ) as resp:
            payload = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(payload, dict) or "access_token" not in payload:
                raise RuntimeError(f"token endpoint answered {resp.status}: {str(payload)[:200]}")
        self._token = str(payload["access_token"])
        self._expires = time.monotonic() + float(payload.get("expires_in", 3599))
        self._key = key
        self.fetched += 1
        return self._token


class Outbound:
    """Listens to store changes and delivers the matching contract calls."""

    def __init__(self, cfg: OutboundConfig, builder: CallBuilder) -> None:
        self.cfg = cfg
        self.builder = builder
        self.calls: list[OutboundCall] = []
        self.queue: asyncio.Queue[OutboundCall] = asyncio.Queue()
        self.token = EntraToken()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="pega-sim-outbound")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session:
            await self._session.close()

    def clear(self) -> None:
        """Forget every call, the one being delivered (or waiting out its backoff) included: a reset
        must not leave an old call ahead of the next test's in the one delivery line."""
        self.calls.clear()
        while not self.queue.empty():
            self.queue.get_nowait()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            self._task = asyncio.create_task(self._run(), name="pega-sim-outbound")

    # -------------------------------------------------------------- intake

    def excluded(self, actor: Actor) -> bool:
        return (actor.client_id is not None and actor.client_id in self.cfg.integration_client_ids) or (
            actor.operator in self.cfg.integration_operators
        )

    def on_change(self, change: Change) -> None:
        """Store listener: never raises, never blocks."""
        if not self.cfg.enabled or self.excluded(change.actor):
            return
        try:
            calls = self.builder.calls_for(change)
        except Exception:  # a bad record must not break the simulator's own API
            log.exception("could not build the contract call for %s", change.record.id)
            return
        for call in calls:
            self._enqueue(call, change.actor)

    def _enqueue(self, call: ContractCall, actor: Actor) -> None:
        base = self.cfg.service_base_url.rstrip("/")
        oc = OutboundCall(
            id=next(_seq), operation_id=call.operation_id, method=call.method, url=base + call.path if base else "",
            path=call.path, idempotency_key=str(uuid.uuid4()), record_id=call.record_id, body=call.body,
            actor=actor.operator,
        )
        self.calls.append(oc)
        if len(self.calls) > 5000:
            del self.calls[: len(self.calls) - 5000]
        if not base:
            oc.state, oc.reason = "skipped", "no service_base_url configured"
            return
        self.queue.put_nowait(oc)

    # -------------------------------------------------------------- delivery

    async def _run(self) -> None:
        while True:
            call = await self.queue.get()
            try:
                await self._deliver(call)
            except Exception as exc:  # keep the worker alive whatever happens
                call.state, call.reason = "failed", f"{type(exc).__name__}: {exc}"
                log.exception("outbound call %s failed unexpectedly", call.id)

    async def _deliver(self, call: OutboundCall) -> None:
        assert self._session is not None
        cfg = self.cfg
        for attempt in range(1, max(1, cfg.max_attempts) + 1):
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                token = await self.token.get(self._session, cfg)
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": call.idempotency_key,
                           "Content-Type": "application/json", "Accept": "application/json"}
                if cfg.function_key:
                    headers["x-functions-key"] = cfg.function_key
                async with self._session.request(
                    call.method, call.url, json=call.body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=cfg.timeout_seconds),
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    if status < 300 and raw:
                        with contextlib.suppress(ValueError):
                            call.response = json.loads(raw)
                    ra = resp.headers.get("Retry-After")
                    retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
                if status == 401:
                    self.token.invalidate()
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            call.attempts.append(Attempt(time.time(), status, error, round((time.monotonic() - started) * 1000, 1)))
            if status is not None and status < 300:
                call.state = "delivered"
                return
            retryable = status is None or status in (401, 408, 429) or status >= 500
            if not retryable or attempt >= cfg.max_attempts:
                call.state = "failed"
                call.reason = error or f"HTTP {status}"
                log.warning("outbound %s %s failed after %d attempt(s): %s", call.method, call.path, attempt,
                            call.reason)
                return
            delay = min(cfg.max_backoff_seconds, cfg.backoff_seconds * (2 ** (attempt - 1)))
            if retry_after is not None:
                delay = min(cfg.max_backoff_seconds, max(delay, retry_after))
            await asyncio.sleep(delay)
