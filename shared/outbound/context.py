"""What an executor needs, built once per event loop: settings, state, Graph, Pega, payload blobs."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from shared.config import Settings
from shared.ews.writes import routed
from shared.graph.factory import graph_gateway
from shared.graph.gateway import GraphGateway
from shared.outbound.payloads import PayloadStore
from shared.pega.adapter import PegaAdapter
from shared.pega.factory import pega_adapter
from shared.pega.mapping import PegaMapping, load_mapping
from shared.storage.state import StateStore


@dataclass
class WorkerContext:
    settings: Settings
    state: StateStore
    graph: GraphGateway
    payloads: PayloadStore
    pega: PegaAdapter | None  # None when PEGA_BASE_URL is not set (ids are then not reported back)
    mapping: PegaMapping
    # per-mailbox cache of the dedicated contact folder id (SYNC_CONTACT_FOLDER)
    contact_folders: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


_contexts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WorkerContext] = weakref.WeakKeyDictionary()


def pega_records(settings: Settings) -> PegaAdapter | None:
    if not settings.pega.configured:
        return None
    return pega_adapter(settings.pega)  # over the loop's shared client (shared/pega/factory.py)


def worker_context(settings: Settings, state: StateStore) -> WorkerContext:
    """The loop's context (Graph gateway, Pega client and blob client are loop-bound)."""
    from shared.outbound.intake import payload_store_for

    loop = asyncio.get_running_loop()
    ctx = _contexts.get(loop)
    if ctx is None or ctx.state is not state:
        pega = pega_records(settings)
        ctx = _contexts[loop] = WorkerContext(
            settings=settings, state=state, graph=routed(settings, state, graph_gateway(settings.graph, slots=state.graphslots)),
            payloads=payload_store_for(settings), pega=pega,
            mapping=pega.m if pega is not None else load_mapping(settings.pega.mapping_file),
        )
    return ctx
