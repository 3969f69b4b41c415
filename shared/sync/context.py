"""What a delta round needs beyond shared.runtime's services: Graph gateway, Pega client, insights.

Created lazily, once per event loop (the SDK's httpx client, aiohttp sessions and azure-identity
credentials are loop-bound), next to `shared.runtime.services()` without editing it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.graph.factory import graph_gateway
from shared.graph.gateway import GraphGateway
from shared.pega import PegaClient, PegaMapping, PegaRecords
from shared.runtime import Services

log = logging.getLogger(__name__)

# (email record, association) -> extra Pega content for the email case (sentiment, suggested actions)
EmailInsightHook = Callable[[Any, Any], Awaitable[dict[str, Any]]]


async def default_email_insights(msg: Any, association: Any) -> dict[str, Any]:
    """Sentiment + suggested actions of a received email as Pega fields (shared.insights).

    Never fails the sync: any problem in the (optional) insights library is logged and yields {}.
    """
    try:
        from shared.insights import (
            BodyType,
            CrmContext,
            Direction,
            EmailInput,
            EntityType,
            Opportunity,
            analyze_email,
            to_pega_fields,
        )

        entity = (EntityType.CONTACT if association.contact_id else EntityType.LEAD if association.lead_id
                  else EntityType.ORGANIZATION if association.organization_id else EntityType.NONE)
        ctx = CrmContext(entity_type=entity,
                         entity_id=association.contact_id or association.lead_id or association.organization_id,
                         opportunities=(Opportunity(association.opportunity_id),) if association.opportunity_id else ())
        body_type = BodyType.HTML if (msg.body_type or "").lower() == "html" else BodyType.TEXT
        insight = await analyze_email(EmailInput(
            subject=msg.subject or "", body=msg.body or "", body_type=body_type, direction=Direction.INBOUND,
            sender=msg.sender.address if msg.sender else "", received_at=msg.received_at,
            conversation_id=msg.conversation_id), ctx)
        return dict(to_pega_fields(insight))
    except Exception as exc:
        log.warning("insights failed for an email (%s); syncing without them", type(exc).__name__)
        return {}


@dataclass
class SyncContext:
    gateway: GraphGateway
    pega: PegaClient
    records: PegaRecords
    mapping: PegaMapping
    email_insights: EmailInsightHook | None = default_email_insights
    extra: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.pega.close()


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SyncContext] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def sync_context(services: Services) -> SyncContext:
    """The loop's SyncContext, created on first use from the services' settings."""
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is not None:
        return found
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        found = _by_loop.get(loop)
        if found is None:
            s = services.settings
            pega = PegaClient(s.pega)
            found = SyncContext(gateway=graph_gateway(s.graph), pega=pega, records=PegaRecords(pega),
                                mapping=pega.mapping)
            _by_loop[loop] = found
    return found


def set_sync_context(ctx: SyncContext) -> None:
    """Install a context for the running loop (tests and the benchmark build their own)."""
    _by_loop[asyncio.get_running_loop()] = ctx


async def close_sync_context() -> None:
    found = _by_loop.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
