"""Issue 17 item 9: the Graph simulator models Entra's federated identity credentials.

An app registration trusts exactly the issuer + subject + audience of each of its federated
credentials. The product's managed-identity path (shared.graph.credentials, kind
`managed_identity`) runs for real here: azure-identity's ManagedIdentityCredential reads the
simulator's App Service managed-identity endpoint, and ClientAssertionCredential exchanges that
token for a Graph token of the sync app.
"""

from __future__ import annotations

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError

from sandbox.graph.seed import (
    AGENT_CLIENT_ID,
    AGENT_CLIENT_SECRET,
    FEDERATION_AUDIENCE,
    IDENTITY_HEADER,
    MANAGED_IDENTITY_CLIENT_ID,
    MANAGED_IDENTITY_PRINCIPAL_ID,
    OTHER_IDENTITY_CLIENT_ID,
    PEGA_CLIENT_ID,
    SYNC_CLIENT_ID,
)
from shared.config import CredentialKind, GraphSettings
from shared.graph.credentials import GRAPH_SCOPE, graph_credential
from tests.plugins.graph_sim import GraphSim


@pytest.fixture
def identity_endpoint(graph_sim: GraphSim, monkeypatch: pytest.MonkeyPatch) -> str:
    """What App Service sets for a function app with a managed identity, pointed at the simulator."""
    url = f"{graph_sim.base_url}/msi/token"
    monkeypatch.setenv("IDENTITY_ENDPOINT", url)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    return url


def _settings(graph_sim: GraphSim, mi_client_id: str, client_id: str = SYNC_CLIENT_ID) -> GraphSettings:
    return GraphSettings(tenant_id=graph_sim.tenant_id, client_id=client_id,
                         credential_kind=CredentialKind.MANAGED_IDENTITY, managed_identity_client_id=mi_client_id,
                         authority_host=graph_sim.authority, ca_bundle=str(graph_sim.ca_path),
                         base_url=graph_sim.graph_url)


async def _product_token(settings: GraphSettings) -> str:
    cred = graph_credential(settings)
    try:
        return (await cred.get_token(GRAPH_SCOPE)).token
    finally:
        await cred.close()


async def _exchange(graph_sim: GraphSim, client_id: str, assertion: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{graph_sim.base_url}/{graph_sim.tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "scope": GRAPH_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})


async def _mi_token(graph_sim: GraphSim, client_id: str, resource: str = FEDERATION_AUDIENCE) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{graph_sim.base_url}/msi/token", params={
            "api-version": "2019-08-01", "resource": resource, "client_id": client_id},
            headers={"X-IDENTITY-HEADER": IDENTITY_HEADER})
    r.raise_for_status()
    return str(r.json()["access_token"])


async def test_the_products_managed_identity_path_gets_a_graph_token_of_the_sync_app(graph_sim, identity_endpoint):
    token = await _product_token(_settings(graph_sim, MANAGED_IDENTITY_CLIENT_ID))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["appid"] == SYNC_CLIENT_ID and claims["aud"] == "https://graph.microsoft.com"
    assert "Mail.ReadWrite" in claims["roles"]
    # and Graph accepts it
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{graph_sim.graph_url}/users/alex@contoso.example",
                           headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


async def test_a_managed_identity_the_app_does_not_trust_is_refused(graph_sim, identity_endpoint):
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        await _product_token(_settings(graph_sim, OTHER_IDENTITY_CLIENT_ID))


async def test_a_token_of_this_tenant_for_the_exchange_audience_is_not_a_key_to_every_app(graph_sim):
    """Before: any token of the tenant with aud api://AzureADTokenExchange was accepted as the
    assertion of ANY client — here the user-agent app's own token would have become the sync app."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{graph_sim.base_url}/{graph_sim.tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": AGENT_CLIENT_ID, "client_secret": AGENT_CLIENT_SECRET,
            "scope": f"{FEDERATION_AUDIENCE}/.default"})
    r.raise_for_status()
    stolen = r.json()["access_token"]
    refused = await _exchange(graph_sim, SYNC_CLIENT_ID, stolen)
    assert refused.status_code == 400 and refused.json()["error_codes"] == [70021]


async def test_the_trusted_identity_works_only_for_the_app_that_trusts_it_and_only_for_its_audience(graph_sim):
    good = await _mi_token(graph_sim, MANAGED_IDENTITY_CLIENT_ID)
    assert jwt.decode(good, options={"verify_signature": False})["sub"] == MANAGED_IDENTITY_PRINCIPAL_ID
    assert (await _exchange(graph_sim, SYNC_CLIENT_ID, good)).status_code == 200
    other_app = await _exchange(graph_sim, PEGA_CLIENT_ID, good)
    assert other_app.status_code == 400 and other_app.json()["error_codes"] == [70021]
    wrong_audience = await _mi_token(graph_sim, MANAGED_IDENTITY_CLIENT_ID, resource="https://graph.microsoft.com")
    refused = await _exchange(graph_sim, SYNC_CLIENT_ID, wrong_audience)
    assert refused.status_code == 400 and refused.json()["error_codes"] == [70021]


async def test_a_credential_added_through_the_control_api_binds_its_own_subject(graph_sim):
    await graph_sim.control.call("POST", "clients", {
        "clientId": "fic-app", "roles": {"https://graph.microsoft.com": ["Mail.ReadWrite"]},
        "federatedCredentials": [{"name": "other", "subject": "eeeeeeee-0000-4000-8000-0000000000b2"}]})
    other = await _mi_token(graph_sim, OTHER_IDENTITY_CLIENT_ID)
    assert (await _exchange(graph_sim, "fic-app", other)).status_code == 200
    mine = await _mi_token(graph_sim, MANAGED_IDENTITY_CLIENT_ID)
    assert (await _exchange(graph_sim, "fic-app", mine)).json()["error_codes"] == [70021]


async def test_the_managed_identity_endpoint_wants_its_header(graph_sim):
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{graph_sim.base_url}/msi/token", params={
            "api-version": "2019-08-01", "resource": FEDERATION_AUDIENCE, "client_id": MANAGED_IDENTITY_CLIENT_ID})
    assert r.status_code == 401
