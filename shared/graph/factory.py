"""One GraphGateway per event loop (the SDK's httpx client and credential are loop-bound)."""

from __future__ import annotations

import asyncio
import weakref

from shared.config import GraphSettings
from shared.graph.gateway import GraphGateway

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GraphGateway] = weakref.WeakKeyDictionary()


def graph_gateway(settings: GraphSettings) -> GraphGateway:
    loop = asyncio.get_running_loop()
    gw = _by_loop.get(loop)
    if gw is None:
        gw = _by_loop[loop] = GraphGateway.from_settings(settings)
    return gw
