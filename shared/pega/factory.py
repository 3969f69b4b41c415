"""One PegaClient per event loop, shared by both sync directions (one session, one token cache),
and the adapter the engine speaks over it (PEGA_ADAPTER, shared.pega.adapter).

The client's aiohttp session is loop-bound, like the Graph gateway (shared/graph/factory.py).
"""

from __future__ import annotations

import asyncio
import weakref

from shared.config import PegaSettings
from shared.pega.adapter import PegaAdapter
from shared.pega.client import PegaClient

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PegaClient] = weakref.WeakKeyDictionary()


def pega_client(settings: PegaSettings) -> PegaClient:
    loop = asyncio.get_running_loop()
    client = _by_loop.get(loop)
    if client is None:
        client = _by_loop[loop] = PegaClient(settings)
    return client


def adapter_for(client: PegaClient, name: str | None = None) -> PegaAdapter:
    """The adapter named by `name` (default: the client's PEGA_ADAPTER setting) over `client`."""
    from shared.pega.records import PegaRecords
    from shared.pega.service import SyncServiceRecords

    chosen = name or client.settings.adapter
    if chosen == "sync-service":
        return SyncServiceRecords(client)
    return PegaRecords(client)


def pega_adapter(settings: PegaSettings) -> PegaAdapter:
    """The loop's shared client, wrapped in the configured adapter."""
    return adapter_for(pega_client(settings))


async def release_pega_client(client: PegaClient) -> None:
    """Close `client`; if it is the loop's shared one, the next caller gets a fresh client."""
    loop = asyncio.get_running_loop()
    if _by_loop.get(loop) is client:
        del _by_loop[loop]
    await client.close()
