"""Process-wide service objects (state store, queue sender), created lazily per event loop.

The queue sender carries the W3C trace context into every envelope (shared/ops/telemetry).

Azure SDK async clients are bound to the loop they were created on; the Functions worker runs
one loop, tests run one per test. Keying by loop keeps both correct without globals at import.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from shared.config import Settings, get_settings
from shared.queues.sender import QueueSender
from shared.storage.state import StateStore


@dataclass
class Services:
    settings: Settings
    state: StateStore
    queues: QueueSender

    async def close(self) -> None:
        await self.queues.close()
        await self.state.close()


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Services] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def services(settings: Settings | None = None) -> Services:
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is not None:
        return found
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        found = _by_loop.get(loop)
        if found is None:
            from shared.ops.queue_tracing import TracingQueueSender
            from shared.ops.telemetry import configure

            s = settings or get_settings()
            configure(s)  # once per process; off unless APPLICATIONINSIGHTS_CONNECTION_STRING is set
            found = Services(settings=s, state=await StateStore.open(s.storage),
                             queues=TracingQueueSender.from_settings(s.storage))
            _by_loop[loop] = found
    return found


async def close_services() -> None:
    loop = asyncio.get_running_loop()
    found = _by_loop.pop(loop, None)
    if found is not None:
        await found.close()
