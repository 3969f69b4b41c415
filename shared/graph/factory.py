"""One GraphGateway per event loop (the SDK's httpx client and credential are loop-bound)."""

from __future__ import annotations

import asyncio
import weakref

from shared.config import GraphSettings
from shared.graph.gateway import GraphGateway
from shared.storage.tables import Table

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GraphGateway] = weakref.WeakKeyDictionary()


def graph_gateway(settings: GraphSettings, *, slots: Table | None) -> GraphGateway:
    """`slots`: the state store's `graphslots` table, so the per-mailbox limit holds across instances
    (every production caller passes it; the first call of a loop builds its gateway)."""
    loop = asyncio.get_running_loop()
    gw = _by_loop.get(loop)
    if gw is None:
        gw = _by_loop[loop] = GraphGateway.from_settings(settings, slots=slots)
    elif slots is not None and settings.shared_mailbox_slots:
        gw.use_slots(slots)  # services re-opened on this loop (the CLI's direct mode): the old table is closed
    return gw
