"""Fixtures for the Microsoft Graph simulator (sandbox/graph), shared by every suite.

Session fixture ``graph_sim`` starts one simulator on free ports and yields a :class:`GraphSim`
with its URLs, the tenant id, the CA to trust, and helpers that build the REAL azure-identity
credential and msgraph-sdk client against it. Build credentials/clients inside each test (they
bind to the running event loop); ``graph_client``/``agent_client`` fixtures do that for you.
Isolate tests by creating a fresh mailbox with ``await graph_sim.control.new_user()`` instead of
resetting shared state.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sandbox.graph.seed import (
    AGENT_CLIENT_ID,
    AGENT_CLIENT_SECRET,
    SYNC_CLIENT_ID,
    SYNC_CLIENT_SECRET,
    TENANT_ID,
)
from sandbox.proc import ROOT, Service, free_port, python_module, start

if TYPE_CHECKING:
    from azure.identity.aio import ClientSecretCredential
    from msgraph import GraphServiceClient

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class SimControl:
    """A small async client for the simulator's /_sim/ control API (see docs/graph-simulator.md)."""

    base_url: str
    timeout: float = 10.0

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout) as http:
            resp = await http.request(method, f"/_sim/{path.lstrip('/')}", json=body, params=params or None)
        if resp.status_code >= 400:
            raise AssertionError(f"/_sim/{path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    async def new_user(self, display_name: str | None = None, *, domain: str = "contoso.example") -> dict[str, Any]:
        """A fresh mailbox (unique UPN) so tests do not share state or throttling budgets."""
        upn = f"u{uuid.uuid4().hex[:10]}@{domain}"
        return await self.call("POST", "users", {"userPrincipalName": upn, "displayName": display_name or upn})

    async def inbound_mail(self, user: str, **message: Any) -> dict[str, Any]:
        return await self.call("POST", f"users/{user}/inbound-mail", message)

    async def meeting_messages(self, organizer: str | None = None) -> list[dict[str, Any]]:
        """Meeting requests/updates/cancellations/responses sent, per event (iCalUId)."""
        params = {"organizer": organizer} if organizer else {}
        return list((await self.call("GET", "meeting-messages", **params))["value"])

    async def outbound_mail(self, **filters: str) -> list[dict[str, Any]]:
        """Every message Exchange generated itself (kind=request/update/cancel/response/ndr/...)."""
        return list((await self.call("GET", "outbound-mail", **filters))["value"])

    async def touch(self, user: str, item_id: str) -> dict[str, Any]:
        return await self.call("POST", f"users/{user}/items/{item_id}/touch")

    async def advance_clock(self, seconds: float) -> dict[str, Any]:
        return await self.call("POST", "clock", {"advanceSeconds": seconds})

    async def add_fault(self, **rule: Any) -> dict[str, Any]:
        return await self.call("POST", "faults", rule)

    async def clear_faults(self) -> None:
        await self.call("DELETE", "faults")

    async def notification_faults(self, **faults: Any) -> dict[str, Any]:
        return await self.call("POST", "faults/notifications", faults)

    async def expire_delta_tokens(self, user: str | None = None) -> dict[str, Any]:
        return await self.call("POST", "delta/expire", {"user": user} if user else {})

    async def replay_next_delta(self, user: str) -> None:
        await self.call("POST", "delta/replay", {"user": user})

    async def request_counts(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "requests"))["value"])

    async def set_throttle(self, **limits: Any) -> dict[str, Any]:
        return await self.call("POST", "throttle", limits)

    async def subscriptions(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "subscriptions"))["value"])

    async def lifecycle(self, subscription_id: str, event: str) -> dict[str, Any]:
        return await self.call("POST", f"subscriptions/{subscription_id}/lifecycle", {"event": event})

    async def notifications(self) -> dict[str, Any]:
        return dict(await self.call("GET", "notifications"))

    async def configure_notifications(self, **config: Any) -> dict[str, Any]:
        return dict(await self.call("POST", "notifications", config))

    async def state(self) -> dict[str, Any]:
        return dict(await self.call("GET", "state"))

    async def reset(self) -> None:
        await self.call("POST", "reset")


@dataclass
class GraphSim:
    """A running simulator. ``base_url`` is plain http (Graph at ``graph_url``); ``authority`` is https."""

    base_url: str
    authority: str
    ca_path: Path
    tenant_id: str = TENANT_ID
    service: Service | None = field(default=None, repr=False)

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def control(self) -> SimControl:
        return SimControl(self.base_url)

    def credential(self, client_id: str = SYNC_CLIENT_ID, client_secret: str = SYNC_CLIENT_SECRET
                   ) -> ClientSecretCredential:
        """The real azure-identity async credential, pointed at the simulator's https authority."""
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(self.tenant_id, client_id, client_secret, authority=self.authority,
                                      connection_verify=str(self.ca_path))

    def client_and_credential(self, client_id: str = SYNC_CLIENT_ID, client_secret: str = SYNC_CLIENT_SECRET
                              ) -> tuple[GraphServiceClient, ClientSecretCredential]:
        """A real msgraph-sdk GraphServiceClient whose adapter talks to this simulator, and its credential
        (close the credential when done: ``await credential.close()``)."""
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph import GraphRequestAdapter, GraphServiceClient

        credential = self.credential(client_id, client_secret)
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"])
        adapter = GraphRequestAdapter(auth)
        adapter.base_url = self.graph_url
        return GraphServiceClient(request_adapter=adapter), credential

    def client(self, client_id: str = SYNC_CLIENT_ID, client_secret: str = SYNC_CLIENT_SECRET) -> GraphServiceClient:
        """Like client_and_credential() when the caller does not need to close the credential."""
        return self.client_and_credential(client_id, client_secret)[0]

    def sync_client(self) -> GraphServiceClient:
        return self.client(SYNC_CLIENT_ID, SYNC_CLIENT_SECRET)

    def agent_client(self) -> GraphServiceClient:
        """Acts as the user (stands in for Outlook): client ``sandbox-user-agent``."""
        return self.client(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)

    async def token(self, client_id: str = SYNC_CLIENT_ID, client_secret: str = SYNC_CLIENT_SECRET,
                    scope: str = GRAPH_SCOPE) -> str:
        """A raw access token from the token endpoint (for httpx/aiohttp calls the SDK cannot express)."""
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token", data={
                "client_id": client_id, "client_secret": client_secret, "scope": scope,
                "grant_type": "client_credentials"})
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    async def http(self, client_id: str = SYNC_CLIENT_ID, client_secret: str = SYNC_CLIENT_SECRET
                   ) -> httpx.AsyncClient:
        """An httpx client with base_url = graph_url and a bearer token (caller closes it)."""
        token = await self.token(client_id, client_secret)
        return httpx.AsyncClient(base_url=self.graph_url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})


def start_graph_sim() -> GraphSim:
    port, tls_port = free_port(), free_port()
    cert_dir = ROOT / ".sandbox" / f"graph-certs-{port}"
    svc = start("graph-sim", python_module("sandbox.graph", "--port", str(port), "--tls-port", str(tls_port),
                                           "--cert-dir", str(cert_dir), "--log-level", "WARNING"),
                wait_ports=[port, tls_port], ports={"http": port, "https": tls_port})
    return GraphSim(base_url=f"http://127.0.0.1:{port}", authority=f"https://127.0.0.1:{tls_port}",
                    ca_path=cert_dir / "ca.pem", service=svc)


def attach_graph_sim(base_url: str) -> GraphSim:
    """A GraphSim for a simulator that is already running (e.g. `make run`'s on 7200)."""
    health = httpx.get(f"{base_url.rstrip('/')}/_sim/health", timeout=10).json()
    return GraphSim(base_url=base_url.rstrip("/"), authority=health["authority"], ca_path=Path(health["caPath"]),
                    tenant_id=health["tenantId"])


@pytest.fixture(scope="session")
def graph_sim() -> Iterator[GraphSim]:
    """One Graph simulator for the session (free ports; stopped at the end). Set GRAPH_SIM_URL to use a
    running one instead (tests then share its state)."""
    existing = os.environ.get("GRAPH_SIM_URL")
    if existing:
        yield attach_graph_sim(existing)
        return
    sim = start_graph_sim()
    try:
        yield sim
    finally:
        if sim.service is not None:
            sim.service.stop()
        shutil.rmtree(sim.ca_path.parent, ignore_errors=True)


@pytest.fixture
async def graph_client(graph_sim: GraphSim) -> AsyncIterator[GraphServiceClient]:
    """msgraph-sdk client authenticated as the sync service app."""
    client, credential = graph_sim.client_and_credential(SYNC_CLIENT_ID, SYNC_CLIENT_SECRET)
    yield client
    await credential.close()


@pytest.fixture
async def agent_client(graph_sim: GraphSim) -> AsyncIterator[GraphServiceClient]:
    """msgraph-sdk client authenticated as ``sandbox-user-agent`` (the user's Outlook)."""
    client, credential = graph_sim.client_and_credential(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    yield client
    await credential.close()


@pytest.fixture
async def sim_user(graph_sim: GraphSim) -> dict[str, Any]:
    """A fresh, empty mailbox for one test."""
    return await graph_sim.control.new_user()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
