"""What a delta round needs beyond shared.runtime's services: Graph gateway, Pega client, insights.

Created lazily, once per event loop (the SDK's httpx client, aiohttp sessions and azure-identity
credentials are loop-bound), next to `shared.runtime.services()` without editing it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.graph.factory import graph_gateway
from shared.graph.gateway import GraphGateway
from shared.pega import PegaClient, PegaMapping
from shared.pega.adapter import PegaAdapter
from shared.pega.factory import adapter_for, pega_client, release_pega_client
from shared.runtime import Services

log = logging.getLogger(__name__)

# (record, association, *, fields=<mapping.insights as a dict>, ...) -> extra Pega content written in
# the same create as the record (sentiment, suggested actions); {} when there is nothing to add
InsightHook = Callable[..., Awaitable[dict[str, Any]]]
EmailInsightHook = InsightHook  # the former name


def _crm_context(association: Any) -> Any:
    from shared.insights import CrmContext, EntityType, Opportunity

    entity = (EntityType.CONTACT if association.contact_id else EntityType.LEAD if association.lead_id
              else EntityType.ORGANIZATION if association.organization_id else EntityType.NONE)
    return CrmContext(entity_type=entity,
                      entity_id=association.contact_id or association.lead_id or association.organization_id,
                      opportunities=(Opportunity(association.opportunity_id),) if association.opportunity_id else ())


async def default_email_insights(msg: Any, association: Any, *, fields: Mapping[str, Any] | None = None,
                                 attachments: Sequence[Any] = (), settings: Any = None) -> dict[str, Any]:
    """Sentiment + suggested actions of a received email (and its attachments) as Pega fields, by the
    process's engine for the insights ``settings`` (default: INSIGHTS_* from the environment).

    Never fails the sync: any problem in the (optional) insights library is logged and yields {}.
    """
    try:
        from shared.insights import BodyType, Direction, EmailInput, to_pega_fields
        from shared.insights.engine import insights_engine

        body_type = BodyType.HTML if (msg.body_type or "").lower() == "html" else BodyType.TEXT
        insight = await insights_engine(settings).email(EmailInput(
            subject=msg.subject or "", body=msg.body or "", body_type=body_type, direction=Direction.INBOUND,
            sender=msg.sender.address if msg.sender else "", received_at=msg.received_at,
            conversation_id=msg.conversation_id, attachments=tuple(attachments),
            headers=getattr(msg, "headers", ())), _crm_context(association))
        return dict(to_pega_fields(insight, fields))
    except Exception as exc:
        log.warning("insights failed for an email (%s); syncing without them", type(exc).__name__)
        return {}


async def default_appointment_insights(event: Any, association: Any, *, fields: Mapping[str, Any] | None = None,
                                       own_domains: Sequence[str] = (), settings: Any = None) -> dict[str, Any]:
    """Sentiment of an appointment's invitation text + suggested actions, as Pega fields. An
    organizer outside our own domains makes it an inbound item. Never fails the sync."""
    try:
        from shared.insights import AppointmentInput, BodyType, to_pega_fields
        from shared.insights.engine import insights_engine

        organizer = event.organizer.address.lower() if event.organizer else ""
        external = bool(organizer) and organizer.rsplit("@", 1)[-1] not in {d.lower() for d in own_domains}
        body_type = BodyType.HTML if (event.body_type or "").lower() == "html" else BodyType.TEXT
        insight = await insights_engine(settings).appointment(AppointmentInput(
            subject=event.subject or "", body=event.body or "", body_type=body_type, organizer=organizer,
            is_organizer_external=external, start=event.start), _crm_context(association))
        return dict(to_pega_fields(insight, fields))
    except Exception as exc:
        log.warning("insights failed for an appointment (%s); syncing without them", type(exc).__name__)
        return {}


def insights_busy(settings: Any) -> bool:
    """Is the local model of the engine for these insights settings working on a job per process?"""
    try:
        from shared.insights.engine import insights_engine

        return insights_engine(settings).busy
    except Exception:  # an engine that cannot be built is not busy: the hook logs why it gives nothing
        return False


@dataclass
class SyncContext:
    gateway: GraphGateway
    pega: PegaClient
    records: PegaAdapter  # PEGA_ADAPTER: sync-service or dx-v2 (shared.pega.adapter)
    mapping: PegaMapping
    email_insights: InsightHook | None = default_email_insights
    appointment_insights: InsightHook | None = default_appointment_insights
    extra: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await release_pega_client(self.pega)


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
            pega = pega_client(s.pega)
            hooks = insight_hooks(s.insights)
            found = SyncContext(gateway=graph_gateway(s.graph, slots=services.state.graphslots), pega=pega, records=adapter_for(pega),
                                mapping=pega.mapping, email_insights=hooks["email_insights"],
                                appointment_insights=hooks["appointment_insights"])
            _by_loop[loop] = found
    return found


def insight_hooks(settings: Any) -> dict[str, InsightHook]:
    """The default hooks bound to the engine the settings select (analyzer, rules file, worker processes)."""
    import functools

    # the engine is built on the first item (inside the hook, so a bad rules file costs the insights, not the sync)
    return {"email_insights": functools.partial(default_email_insights, settings=settings),
            "appointment_insights": functools.partial(default_appointment_insights, settings=settings)}


def set_sync_context(ctx: SyncContext) -> None:
    """Install a context for the running loop (tests and the benchmark build their own)."""
    _by_loop[asyncio.get_running_loop()] = ctx


async def close_sync_context() -> None:
    found = _by_loop.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
