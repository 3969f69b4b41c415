"""One PegaClient per event loop, shared by both sync directions (one session, one token cache).

The client's aiohttp session is loop-bound, like the Graph gateway (shared/graph/factory.py).
"""

from __future__ import annotations

import asyncio
import weakref

from shared.config import PegaSettings
from shared.pega.client import PegaClient

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PegaClient] = weakref.WeakKeyDictionary()


def pega_client(settings: PegaSettings) -> PegaClient:
    loop = asyncio.get_running_loop()
    client = _by_loop.get(loop)
    if client is None:
        client = _by_loop[loop] = PegaClient(settings)
    return client


async def release_pega_client(client: PegaClient) -> None:
    """Close `client`; if it is the loop's shared one, the next caller gets a fresh client."""
    loop = asyncio.get_running_loop()
    if _by_loop.get(loop) is client:
        del _by_loop[loop]
    await client.close()
