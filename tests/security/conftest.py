"""One running local host (the real function_app) for the hostile-input and fuzz tests.

The host trusts the Graph simulator as its Entra ID (bearer tokens for the Pega API), knows its
Graph tenant (GRAPH_TENANT_ID, for the notification tenant check) and reaches the Graph and Pega
simulators. Only the HTTP triggers run: the rounds intake enqueues stay in the queue, so tests
can see exactly what was accepted. Each host has an Azurite of its own: the fuzz test onboards
mailboxes with generated names and piles up their rounds, which no other test should ever see.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
from azure.storage.queue.aio import QueueClient
from yarl import URL

from sandbox.graph.seed import API_AUDIENCE, PEGA_CLIENT_ID, PEGA_CLIENT_SECRET, SYNC_CLIENT_ID, SYNC_CLIENT_SECRET
from sandbox.proc import azurite_connection_string, start_azurite
from shared.config import load_settings
from shared.storage.state import StateStore
from shared.storage.subscriptions import SubscriptionRecord
from tests.plugins.app_host import AppHost, fast_host_json, start_app_host

WORKERS_OFF = ("delta_worker", "outbound_worker", "delta_poll", "subscription_manager", "subscription_worker",
               "ops_incidents", "poison_delta_work", "poison_outbound_ops", "poison_subscription_work",
               "insight_worker", "poison_insight_work")


def host_settings(graph_sim: Any, pega_sim: Any) -> dict[str, str]:
    tenant = graph_sim.tenant_id
    return {
        "GRAPH_TENANT_ID": tenant, "GRAPH_CLIENT_ID": SYNC_CLIENT_ID, "GRAPH_CLIENT_SECRET": SYNC_CLIENT_SECRET,
        "GRAPH_AUTHORITY_HOST": graph_sim.authority, "GRAPH_BASE_URL": graph_sim.graph_url,
        "GRAPH_CA_BUNDLE": str(graph_sim.ca_path), "GRAPH_TIMEOUT_SECONDS": "10",
        "PEGA_BASE_URL": pega_sim.base_url, "PEGA_CLIENT_ID": pega_sim.client_id,
        "PEGA_CLIENT_SECRET": pega_sim.client_secret, "PEGA_USERNAME": pega_sim.username,
        "PEGA_PASSWORD": pega_sim.password, "PEGA_TIMEOUT_SECONDS": "10",
        "API_TENANT_ID": tenant, "API_AUDIENCE": API_AUDIENCE, "API_REQUIRED_ROLE": "Sync.ReadWrite",
        "API_OPENID_CONFIG_URL": f"{graph_sim.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
    }


@pytest.fixture(scope="session")
def security_conn() -> Iterator[str]:
    """Azurite for this suite alone."""
    svc = start_azurite()
    try:
        yield azurite_connection_string(svc)
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def secure_host(security_conn: str, graph_sim: Any, pega_sim: Any, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[AppHost]:
    h = start_app_host(security_conn, settings=host_settings(graph_sim, pega_sim),
                       host_json=fast_host_json(tmp_path_factory.mktemp("secure-host")), disable=WORKERS_OFF)
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="session")
def fuzz_host(graph_sim: Any, pega_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppHost]:
    """Another host on another Azurite: the mailboxes and rounds the fuzz creates stay out of the
    queues the hostile-input tests read."""
    storage = start_azurite()
    try:
        h = start_app_host(azurite_connection_string(storage), settings=host_settings(graph_sim, pega_sim),
                           host_json=fast_host_json(tmp_path_factory.mktemp("fuzz-host")), disable=WORKERS_OFF)
        try:
            yield h
        finally:
            h.stop()
    finally:
        storage.stop()


@pytest.fixture
async def state(security_conn: str) -> AsyncIterator[StateStore]:
    s = await StateStore.open(load_settings({"AzureWebJobsStorage": security_conn}).storage)
    yield s
    await s.close()


@pytest.fixture
async def subscription(state: StateStore) -> SubscriptionRecord:
    mailbox = f"rep-{uuid.uuid4().hex[:8]}@contoso.example"
    rec = SubscriptionRecord(subscription_id=str(uuid.uuid4()), mailbox=mailbox, kind="email",
                             resource=f"/users/{mailbox}/mailFolders('inbox')/messages",
                             client_state="cs-" + uuid.uuid4().hex,
                             expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    return await state.subscriptions.put(rec)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def send(host: AppHost, method: str, path: str, *, body: bytes | None = None, key: str | None = None,
               headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Reply:
    """One raw HTTP request to the running host (`path` is sent as given: already encoded)."""
    hdrs = {"Content-Type": "application/json", "x-functions-key": key or host.function_key, **(headers or {})}
    url = f"{host.url}/{path.lstrip('/')}"
    async with aiohttp.ClientSession() as s, s.request(method, URL(url, encoded=True), data=body,
                                                       headers=hdrs, params=params) as r:
        return Reply(r.status, dict(r.headers), await r.text())


async def queued_rounds(conn: str, mailbox: str, queue: str = "delta-work") -> list[dict[str, Any]]:
    out = []
    async with QueueClient.from_connection_string(conn, queue) as q:
        try:
            for m in await q.peek_messages(max_messages=32):
                env = json.loads(base64.b64decode(m.content))
                if env["body"].get("mailbox") == mailbox:
                    out.append(env)
        except Exception:
            return []
    return out


def notification(sub: SubscriptionRecord, *, tenant: str, item: str = "AAMkAD1", **overrides: Any) -> dict[str, Any]:
    n = {"subscriptionId": sub.subscription_id, "clientState": sub.client_state, "changeType": "created",
         "resource": f"Users/x/Messages/{item}", "tenantId": tenant,
         "subscriptionExpirationDateTime": "2030-01-01T00:00:00.000Z",
         "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": item, "@odata.etag": 'W/"ck"'}}
    n.update(overrides)
    return n


@pytest.fixture(scope="session")
def pega_token(graph_sim: Any) -> str:
    """A bearer token Pega's Connect-REST client would present (the simulator is our Entra ID)."""
    r = httpx.post(f"{graph_sim.base_url}/{graph_sim.tenant_id}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": PEGA_CLIENT_ID, "client_secret": PEGA_CLIENT_SECRET,
        "scope": f"{API_AUDIENCE}/.default"})
    r.raise_for_status()
    return str(r.json()["access_token"])


def pega_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
