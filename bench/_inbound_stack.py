"""The sandbox stack for the Exchange → Pega benchmarks: Azurite, Graph simulator, Pega simulator on
free ports, plus in-process Services and a SyncContext pointed at them."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.graph.seed import SYNC_CLIENT_ID, SYNC_CLIENT_SECRET, TENANT_ID
from sandbox.pega.config import (
    INTEGRATION_CLIENT_ID,
    INTEGRATION_CLIENT_SECRET,
    INTEGRATION_OPERATOR,
    INTEGRATION_PASSWORD,
)
from sandbox.proc import ROOT, Service, azurite_connection_string, free_port, python_module, start, start_azurite


@dataclass
class Stack:
    conn: str
    graph_base: str
    authority: str
    ca_path: str
    pega_base: str
    services: list[Service]

    def env(self) -> dict[str, str]:
        """The product's settings for the stack; INSIGHTS_* from the bench's environment pass through
        (e.g. INSIGHTS_ANALYZER=vader or INSIGHTS_ENABLED=false to measure without the sentence model)."""
        return {**{k: v for k, v in os.environ.items() if k.startswith("INSIGHTS_")},
            "AzureWebJobsStorage": self.conn,
            "GRAPH_TENANT_ID": TENANT_ID, "GRAPH_CLIENT_ID": SYNC_CLIENT_ID, "GRAPH_CLIENT_SECRET": SYNC_CLIENT_SECRET,
            "GRAPH_AUTHORITY_HOST": self.authority, "GRAPH_BASE_URL": f"{self.graph_base}/v1.0",
            "GRAPH_CA_BUNDLE": self.ca_path, "GRAPH_TIMEOUT_SECONDS": "60",
            "PEGA_BASE_URL": self.pega_base, "PEGA_CLIENT_ID": INTEGRATION_CLIENT_ID,
            "PEGA_CLIENT_SECRET": INTEGRATION_CLIENT_SECRET, "PEGA_USERNAME": INTEGRATION_OPERATOR,
            "PEGA_PASSWORD": INTEGRATION_PASSWORD, "PEGA_TIMEOUT_SECONDS": "60",
        }

    async def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(base_url=self.graph_base, timeout=30) as http:
            r = await http.request(method, f"/_sim/{path}", json=body)
            r.raise_for_status()
            return r.json()

    async def new_user(self) -> str:
        upn = f"bench{uuid.uuid4().hex[:8]}@contoso.example"
        await self.sim("POST", "users", {"userPrincipalName": upn, "displayName": upn})
        return upn

    async def seed_mail(self, upn: str, n: int) -> None:
        """n received mails in the Inbox, a mix of known and unknown senders (the simulator's bulk seeding)."""
        senders = [{"address": "dana@fabrikam.example", "name": "Dana"}, {"address": "lee@northwind.example"},
                   {"address": "buyer@fabrikam.example"}, {"address": "someone@unknown-co.example"}]
        async with httpx.AsyncClient(base_url=self.graph_base, timeout=300) as http:
            for k, sender in enumerate(senders):
                count = n // len(senders) + (1 if k < n % len(senders) else 0)
                if count:
                    r = await http.post(f"/_sim/users/{upn}/inbound-mail", json={
                        "subject": f"Order from {sender['address']}", "count": count, "from": sender,
                        "body": "Hello, about our order: thanks, we are happy with it."})
                    r.raise_for_status()

    async def pega_requests(self) -> int:
        """API requests the Pega simulator has answered (its own counters; /_sim/ not included)."""
        async with httpx.AsyncClient(base_url=self.pega_base, timeout=30) as http:
            r = await http.get("/_sim/requests")
            r.raise_for_status()
            return int(r.json()["total"])

    async def graph_requests(self, upn: str) -> int:
        rows = (await self.sim("GET", "requests"))["value"]
        return sum(int(r["requests"]) for r in rows
                   if r.get("userPrincipalName") == upn and r.get("app") == SYNC_CLIENT_ID)


@contextlib.contextmanager
def sandbox_stack() -> Iterator[Stack]:
    started: list[Service] = []
    try:
        az = start_azurite()
        started.append(az)
        gport, tport, pport = free_port(), free_port(), free_port()
        cert_dir = ROOT / ".sandbox" / f"graph-certs-{gport}"
        started.append(start("graph-sim", python_module("sandbox.graph", "--port", str(gport), "--tls-port", str(tport),
                                                        "--cert-dir", str(cert_dir), "--log-level", "WARNING"),
                             wait_ports=[gport, tport]))
        started.append(start("pega-sim", python_module("sandbox.pega", "--port", str(pport), "--service-url", "",
                                                       "--token-url", "http://127.0.0.1:9/unset"),
                             wait_ports=[pport], env={"PEGA_MAPPING_FILE": "", "PEGA_CLIENT_ID": "",
                                                      "PEGA_USERNAME": ""}))
        yield Stack(azurite_connection_string(az), f"http://127.0.0.1:{gport}", f"https://127.0.0.1:{tport}",
                    str(cert_dir / "ca.pem"), f"http://127.0.0.1:{pport}", started)
    finally:
        for svc in reversed(started):
            svc.stop()


@contextlib.asynccontextmanager
async def sync_services(stack: Stack) -> AsyncIterator[tuple[Any, Any]]:
    """(Services, SyncContext) for the stack, closed afterwards."""
    from shared.config import load_settings
    from shared.graph.gateway import GraphGateway
    from shared.pega import PegaClient, PegaRecords
    from shared.queues.sender import QueueSender
    from shared.runtime import Services
    from shared.storage.state import StateStore
    from shared.storage.tables import TableNames
    from shared.sync.context import SyncContext

    settings = load_settings(stack.env())
    state = await StateStore.open(settings.storage, names=TableNames(prefix="bench" + uuid.uuid4().hex[:6]))
    services = Services(settings=settings, state=state, queues=QueueSender.from_settings(settings.storage))
    pega = PegaClient(settings.pega)
    ctx = SyncContext(gateway=GraphGateway.from_settings(settings.graph), pega=pega, records=PegaRecords(pega),
                      mapping=pega.mapping)
    try:
        yield services, ctx
    finally:
        await ctx.gateway.close()
        await pega.close()
        await services.close()
