"""Fixtures for the Pega → Exchange suite: one app host (tests/sync_outbound/outbound_app.py) for
the session, wired to the Graph simulator (Graph + Entra), the Pega simulator and Azurite.

The host trusts the simulator's Entra issuer. Its JWKS URL points at a static copy of the
simulator's keys plus one test key, so a test can mint an *expired* token with a signature the
host accepts (the simulator only issues fresh tokens): expiry is then the only thing wrong.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from sandbox.ews.seed import SERVICE_PASSWORD as EWS_SERVICE_PASSWORD
from sandbox.ews.seed import SERVICE_USER as EWS_SERVICE_USER
from sandbox.graph.seed import (
    API_AUDIENCE,
    NO_ROLE_CLIENT_ID,
    NO_ROLE_CLIENT_SECRET,
    PEGA_CLIENT_ID,
    PEGA_CLIENT_SECRET,
    SYNC_CLIENT_ID,
    SYNC_CLIENT_SECRET,
    TENANT_ID,
)
from sandbox.proc import free_port, python_module, start
from shared.config import load_settings
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from tests.plugins.app_host import AppHost, fast_host_json, start_app_host

API_SCOPE = f"{API_AUDIENCE}/.default"
TEST_KID = "outbound-tests-key"


@dataclass
class Issuer:
    """The simulator's Entra issuer as the host sees it, plus a test key the host also trusts."""

    url: str
    key: rsa.RSAPrivateKey

    def mint(self, *, audience: str = API_AUDIENCE, roles: tuple[str, ...] = ("Sync.ReadWrite",),
             lifetime: int = 3600, issued_ago: int = 0) -> str:
        now = int(time.time()) - issued_ago
        claims = {"aud": audience, "iss": self.url, "iat": now, "nbf": now, "exp": now + lifetime,
                  "tid": TENANT_ID, "appid": PEGA_CLIENT_ID, "azp": PEGA_CLIENT_ID, "roles": list(roles),
                  "sub": str(uuid.uuid4()), "ver": "2.0"}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": TEST_KID})


@pytest.fixture(scope="session")
def issuer(graph_sim, tmp_path_factory) -> Iterator[tuple[Issuer, str]]:
    """(Issuer, JWKS URL): a static file server publishing the simulator's keys + the test key."""
    keys = httpx.get(f"{graph_sim.base_url}/{TENANT_ID}/discovery/v2.0/keys", timeout=10).json()["keys"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": TEST_KID, "use": "sig", "alg": "RS256"})
    root = tmp_path_factory.mktemp("jwks")
    (root / "keys.json").write_text(json.dumps({"keys": [*keys, jwk]}))
    port = free_port()
    svc = start("jwks-files", python_module("http.server", str(port), "--bind", "127.0.0.1", "--directory",
                                            str(root)), wait_ports=[port])
    try:
        yield Issuer(f"{graph_sim.base_url}/{TENANT_ID}/v2.0", key), f"http://127.0.0.1:{port}/keys.json"
    finally:
        svc.stop()


def host_settings(conn: str, graph_sim: Any, pega_sim: Any, jwks_url: str, ews_sim: Any = None,
                  pega_adapter: str = "dx-v2") -> dict[str, str]:
    ews = {"EWS_URL": ews_sim.endpoint, "EWS_USERNAME": EWS_SERVICE_USER, "EWS_PASSWORD": EWS_SERVICE_PASSWORD,
           "EWS_AUTH_TYPE": "ntlm", "EWS_TIMEOUT_SECONDS": "20"} if ews_sim is not None else {}
    return {**ews,
        "GRAPH_TENANT_ID": TENANT_ID, "GRAPH_CLIENT_ID": SYNC_CLIENT_ID, "GRAPH_CLIENT_SECRET": SYNC_CLIENT_SECRET,
        "GRAPH_AUTHORITY_HOST": graph_sim.authority, "GRAPH_BASE_URL": graph_sim.graph_url,
        "GRAPH_CA_BUNDLE": str(graph_sim.ca_path), "GRAPH_TIMEOUT_SECONDS": "20",
        "API_TENANT_ID": TENANT_ID, "API_AUDIENCE": API_AUDIENCE, "API_REQUIRED_ROLE": "Sync.ReadWrite",
        "API_OPENID_CONFIG_URL": f"{graph_sim.base_url}/{TENANT_ID}/v2.0/.well-known/openid-configuration",
        "API_JWKS_URL": jwks_url, "API_LEEWAY_SECONDS": "5",
        "PEGA_BASE_URL": pega_sim.base_url, "PEGA_CLIENT_ID": pega_sim.client_id,
        "PEGA_CLIENT_SECRET": pega_sim.client_secret, "PEGA_USERNAME": pega_sim.username,
        "PEGA_PASSWORD": pega_sim.password, "PEGA_TIMEOUT_SECONDS": "10", "PEGA_ADAPTER": pega_adapter,
    }


@pytest.fixture(scope="session")
def outbound_host(azurite_conn, graph_sim, pega_sim, ews_sim, issuer, tmp_path_factory,
                  host_pega_adapter) -> Iterator[AppHost]:
    """The host serves Exchange Online (Graph) and on-premises (EWS) reps, like a hybrid deployment."""
    _, jwks_url = issuer
    host_json = fast_host_json(tmp_path_factory.mktemp("outbound-host"), batchSize=16, maxDequeueCount=5)
    h = start_app_host(azurite_conn, settings=host_settings(azurite_conn, graph_sim, pega_sim, jwks_url, ews_sim,
                                                            host_pega_adapter),
                       host_json=host_json, app="tests.sync_outbound.outbound_app:app")
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
async def state(azurite_conn) -> AsyncIterator[StateStore]:
    s = await StateStore.open(load_settings({"AzureWebJobsStorage": azurite_conn}).storage)
    yield s
    await s.close()


@dataclass
class Rep:
    """A fresh mailbox in the Graph simulator, onboarded in our state with its own Pega operator id."""

    upn: str
    operator: str
    user_id: str


@pytest.fixture
def backend() -> str:
    """The mailbox backend of `rep`. A suite runs for both with
    `pytestmark = pytest.mark.parametrize("backend", ["graph", "ews"])` and reads Outlook through
    the `outlook` fixture (tests/sync_outbound/outlook.py)."""
    return "graph"


@pytest.fixture
async def rep(request: pytest.FixtureRequest, backend: str, graph_sim, state) -> Rep:
    if backend == "ews":
        only = request.node.get_closest_marker("graph_only")
        if only is not None:
            pytest.skip(f"Graph only: {only.args[0] if only.args else ''}")
        return await _onprem(request.getfixturevalue("ews_sim"), state)
    user = await graph_sim.control.new_user("Rep")
    upn = str(user["userPrincipalName"]).lower()
    operator = "op-" + uuid.uuid4().hex[:10]
    await state.mailboxes.put(Mailbox(upn=upn, pega_operator=operator))
    return Rep(upn=upn, operator=operator, user_id=str(user["id"]))


@pytest.fixture
def outlook(request: pytest.FixtureRequest, backend: str, graph_sim, graph_http) -> Any:
    """What the rep sees in Outlook, read independently of the product, for the rep's backend."""
    from tests.sync_outbound.outlook import EwsOutlook, GraphOutlook

    if backend == "ews":
        return EwsOutlook(request.getfixturevalue("ews_sim"))
    return GraphOutlook(graph_sim, graph_http)


@pytest.fixture
async def onprem_rep(ews_sim, state) -> Rep:
    """A fresh mailbox in the EWS simulator (Exchange Server on-premises), onboarded with backend ews."""
    return await _onprem(ews_sim, state)


async def _onprem(ews_sim: Any, state: StateStore) -> Rep:
    upn = ews_sim.new_mailbox()
    operator = "op-" + uuid.uuid4().hex[:10]
    await state.mailboxes.put(Mailbox(upn=upn, pega_operator=operator, backend="ews"))
    return Rep(upn=upn, operator=operator, user_id=upn)


class Api:
    """Calls the contract on the host like Pega's Connect-REST would (token + function key + key)."""

    def __init__(self, host: AppHost, graph_sim: Any, issuer: Issuer) -> None:
        self.host = host
        self.graph_sim = graph_sim
        self.issuer = issuer
        self._token: str | None = None

    async def token(self, client_id: str = PEGA_CLIENT_ID, secret: str = PEGA_CLIENT_SECRET,
                    scope: str = API_SCOPE) -> str:
        return await self.graph_sim.token(client_id, secret, scope)

    async def default_token(self) -> str:
        if self._token is None:
            self._token = await self.token()
        return self._token

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = "default",
                   key: str | None = "default", idem: str | None = "new", raw: bytes | None = None,
                   content_type: str = "application/json") -> tuple[int, dict[str, str], Any]:
        headers: dict[str, str] = {"Content-Type": content_type}
        if token == "default":
            token = await self.default_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key == "default":
            key = self.host.function_key
        if key:
            headers["x-functions-key"] = key
        if idem == "new":
            idem = str(uuid.uuid4())
        if idem:
            headers["Idempotency-Key"] = idem
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with aiohttp.ClientSession() as s, s.request(method, f"{self.host.url}/{path.lstrip('/')}",
                                                           data=data, headers=headers) as r:
            text = await r.text()
            try:
                parsed: Any = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return r.status, dict(r.headers), parsed

    async def operation(self, op_id: str) -> dict[str, Any]:
        status, _, body = await self.call("GET", f"pega/v1/operations/{op_id}", idem=None)
        assert status == 200, body
        return dict(body)

    async def wait(self, op_id: str, *, within: float = 30.0, states: tuple[str, ...] = ("succeeded", "failed")
                   ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            op = await self.operation(op_id)
            if op["status"] in states:
                return op
            if time.monotonic() > deadline:
                raise AssertionError(f"operation {op_id} still {op['status']} after {within}s: {op}")
            await asyncio.sleep(0.1)

    async def submit(self, method: str, path: str, body: Any, **kw: Any) -> str:
        status, headers, resp = await self.call(method, path, body, **kw)
        assert status == 202, (status, resp)
        assert headers.get("Location", "").endswith(f"/pega/v1/operations/{resp['operationId']}")
        return str(resp["operationId"])

    async def run(self, method: str, path: str, body: Any, *, within: float = 30.0, **kw: Any) -> dict[str, Any]:
        """Submit and wait until the operation has finished; assert it succeeded."""
        op = await self.wait(await self.submit(method, path, body, **kw), within=within)
        assert op["status"] == "succeeded", {k: op.get(k) for k in ("status", "error", "lastError", "code", "result")}
        return op


@pytest.fixture
def api(outbound_host, graph_sim, issuer) -> Api:
    return Api(outbound_host, graph_sim, issuer[0])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def graph_http(graph_sim) -> AsyncIterator[httpx.AsyncClient]:
    """Reads Graph as the user's Outlook would (the user-agent app), with immutable ids."""
    from sandbox.graph.seed import AGENT_CLIENT_ID, AGENT_CLIENT_SECRET

    client = await graph_sim.http(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    client.headers["Prefer"] = 'IdType="ImmutableId"'
    yield client
    await client.aclose()


@pytest.fixture
def no_role_token_args() -> tuple[str, str]:
    return NO_ROLE_CLIENT_ID, NO_ROLE_CLIENT_SECRET


async def new_pega_contact(pega_records, first: str = "Dana", last: str = "Lopez") -> str:
    """A contact record in the Pega simulator, created as the integration user (no call-out)."""
    m = pega_records.m
    rec = await pega_records.client.sa_create(m.sa.contact_path, {m.contact.first_name: first,
                                                                  m.contact.last_name: last})
    return rec.id


def id_report_fault(pega_adapter: str, pega_id: str) -> dict[str, str]:
    """Where the outbound worker's Exchange-id report reaches Pega, per adapter (a fault rule's target):
    a case action PATCH (dx-v2) or the contract's PUT .../external-id (sync-service)."""
    if pega_adapter == "sync-service":
        return {"method": "PUT", "path_contains": f"{pega_id}/external-id"}
    return {"method": "PATCH", "path_contains": f"{pega_id}/actions"}
