"""Exchange → Pega tests against the real stand-ins: Graph simulator and Pega simulator over HTTP,
state in Azurite (tables isolated per test by a unique prefix), the real GraphGateway and PegaClient.

`inbound` gives a fresh Graph mailbox onboarded in our state store, an `agent` httpx client that
acts as the user's Outlook, and helpers to run rounds and inspect Pega and the link table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from sandbox.graph.seed import AGENT_CLIENT_ID, AGENT_CLIENT_SECRET, SYNC_CLIENT_ID, SYNC_CLIENT_SECRET
from shared.config import PrivatePolicy, load_settings
from shared.graph.gateway import GraphGateway
from shared.pega import PegaClient, PegaRecords
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.links import Link
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from shared.sync.context import SyncContext
from shared.sync.inbound import RoundReport, run_delta_round


def sync_settings_env(graph_sim: Any, pega_sim: Any, conn: str, **extra: str) -> dict[str, str]:
    p = pega_sim.settings()
    env = {
        "AzureWebJobsStorage": conn,
        "GRAPH_TENANT_ID": graph_sim.tenant_id, "GRAPH_CLIENT_ID": SYNC_CLIENT_ID,
        "GRAPH_CLIENT_SECRET": SYNC_CLIENT_SECRET, "GRAPH_AUTHORITY_HOST": graph_sim.authority,
        "GRAPH_BASE_URL": graph_sim.graph_url, "GRAPH_CA_BUNDLE": str(graph_sim.ca_path),
        "GRAPH_TIMEOUT_SECONDS": "10",
        "PEGA_BASE_URL": p.base_url, "PEGA_CLIENT_ID": p.client_id, "PEGA_CLIENT_SECRET": p.client_secret or "",
        "PEGA_USERNAME": p.username, "PEGA_PASSWORD": p.password or "", "PEGA_TIMEOUT_SECONDS": "10",
    }
    env.update(extra)
    return env


@dataclass
class Inbound:
    services: Services
    ctx: SyncContext
    upn: str
    graph: Any  # GraphSim
    pega_control: Any  # PegaSimControl
    agent: httpx.AsyncClient  # acts as the user (Outlook)

    async def onboard(self, **overrides: Any) -> Mailbox:
        mb = Mailbox.with_defaults(self.upn, "alex", self.services.settings.sync)
        mb = replace(mb, **overrides)
        return await self.services.state.mailboxes.put(mb)

    async def run(self, kind: str, **kw: Any) -> RoundReport:
        kw.setdefault("reason", "poll")
        return await run_delta_round(self.services, mailbox=self.upn, kind=kind, context=self.ctx, **kw)

    async def links(self, kind: str) -> list[Link]:
        return await self.services.state.links.list(self.upn, kind=kind)

    async def pega_records(self, kind: str) -> list[dict[str, Any]]:
        return list(await self.pega_control.records(kind))

    async def pega_record(self, record_id: str) -> dict[str, Any]:
        return dict(await self.pega_control.record(record_id))

    async def user_call(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.agent.request(method, f"/users/{self.upn}/{path.lstrip('/')}",
                                     headers={"Prefer": 'IdType="ImmutableId"'}, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None


@pytest.fixture
async def inbound(graph_sim: Any, pega_sim: Any, pega_control: Any, azurite_conn: str, request: Any,
                  tmp_path: Any) -> AsyncIterator[Inbound]:
    extra: dict[str, str] = {}
    marker = request.node.get_closest_marker("pega_mapping")
    if marker is not None:  # @pytest.mark.pega_mapping({...}): a mapping file overriding these parts
        path = tmp_path / "mapping.json"
        path.write_text(json.dumps(marker.args[0]))
        extra["PEGA_MAPPING_FILE"] = str(path)
    settings = load_settings(sync_settings_env(graph_sim, pega_sim, azurite_conn, **extra))
    state = await StateStore.open(settings.storage, names=TableNames(prefix="si" + uuid.uuid4().hex[:10]))
    queues = QueueSender.from_settings(settings.storage)
    services = Services(settings=settings, state=state, queues=queues)
    pega = PegaClient(settings.pega)
    ctx = SyncContext(gateway=GraphGateway.from_settings(settings.graph), pega=pega, records=PegaRecords(pega),
                      mapping=pega.mapping)
    user = await graph_sim.control.new_user("Rep " + uuid.uuid4().hex[:4])
    agent = await graph_sim.http(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    try:
        yield Inbound(services, ctx, str(user["userPrincipalName"]), graph_sim, pega_control, agent)
    finally:
        await agent.aclose()
        await ctx.gateway.close()
        await pega.close()
        for name in [*state.tables.names.all(), state.tables.names.prefix + "roundlease"]:
            try:
                await state.tables._service.delete_table(name)
            except Exception:
                pass
        await services.close()


@pytest.fixture
def private_full() -> dict[str, Any]:
    return {"private_policy": PrivatePolicy.FULL}
