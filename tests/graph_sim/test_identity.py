"""The simulator as the sandbox's Entra ID: token endpoint, metadata, keys, and Graph auth."""

from __future__ import annotations

import datetime as dt

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.graph import (
    API_AUDIENCE,
    NO_ROLE_CLIENT_ID,
    NO_ROLE_CLIENT_SECRET,
    PEGA_CLIENT_ID,
    PEGA_CLIENT_SECRET,
    SYNC_CLIENT_ID,
)
from tests.plugins.graph_sim import GRAPH_SCOPE, GraphSim


async def _token_response(sim: GraphSim, **form: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token", data=form)


async def _verify(sim: GraphSim, token: str, audience: str) -> dict:
    async with httpx.AsyncClient(timeout=10) as http:
        meta = (await http.get(f"{sim.base_url}/{sim.tenant_id}/v2.0/.well-known/openid-configuration")).json()
        jwks = (await http.get(meta["jwks_uri"])).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=meta["issuer"])


async def test_real_credential_gets_verifiable_graph_token(graph_sim: GraphSim) -> None:
    cred = graph_sim.credential()
    try:
        tok = await cred.get_token(GRAPH_SCOPE)
    finally:
        await cred.close()
    claims = await _verify(graph_sim, tok.token, "https://graph.microsoft.com")
    assert claims["iss"] == f"{graph_sim.base_url}/{graph_sim.tenant_id}/v2.0"
    assert claims["tid"] == graph_sim.tenant_id
    assert claims["appid"] == claims["azp"] == SYNC_CLIENT_ID
    assert set(claims["roles"]) == {"Mail.ReadWrite", "Mail.Send", "Calendars.ReadWrite", "Contacts.ReadWrite"}
    assert claims["exp"] - claims["iat"] == 3599


async def test_pega_client_gets_api_role_and_no_role_client_gets_none(graph_sim: GraphSim) -> None:
    pega = await graph_sim.token(PEGA_CLIENT_ID, PEGA_CLIENT_SECRET, scope=f"{API_AUDIENCE}/.default")
    claims = await _verify(graph_sim, pega, API_AUDIENCE)
    assert claims["roles"] == ["Sync.ReadWrite"]
    assert claims["aud"] == API_AUDIENCE
    norole = await graph_sim.token(NO_ROLE_CLIENT_ID, NO_ROLE_CLIENT_SECRET, scope=f"{API_AUDIENCE}/.default")
    assert "roles" not in await _verify(graph_sim, norole, API_AUDIENCE)


async def test_wrong_secret_is_401_with_aadsts_body(graph_sim: GraphSim) -> None:
    resp = await _token_response(graph_sim, client_id=SYNC_CLIENT_ID, client_secret="nope",
                                 grant_type="client_credentials", scope=GRAPH_SCOPE)
    assert resp.status_code == 401
    body = resp.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215:")
    assert "\r\nTrace ID: " in body["error_description"] and body["trace_id"] and body["correlation_id"]
    cred = graph_sim.credential(SYNC_CLIENT_ID, "nope")
    with pytest.raises(ClientAuthenticationError):
        try:
            await cred.get_token(GRAPH_SCOPE)
        finally:
            await cred.close()


@pytest.mark.parametrize(("form", "status", "code"), [
    ({"client_id": "unknown-app", "client_secret": "x"}, 400, 700016),
    ({"client_id": SYNC_CLIENT_ID, "client_secret": "sandbox-sync-secret", "scope": "Mail.Read"}, 400, 1002012),
    ({"client_id": SYNC_CLIENT_ID, "client_secret": "sandbox-sync-secret", "scope": "api://nobody/.default"},
     400, 500011),
])
async def test_token_endpoint_errors(graph_sim: GraphSim, form: dict, status: int, code: int) -> None:
    data = {"grant_type": "client_credentials", "scope": GRAPH_SCOPE, **form}
    resp = await _token_response(graph_sim, **data)
    assert resp.status_code == status
    assert resp.json()["error_codes"] == [code]


async def test_graph_rejects_missing_or_wrong_audience_tokens(graph_sim: GraphSim) -> None:
    async with httpx.AsyncClient(base_url=graph_sim.graph_url, timeout=10) as http:
        resp = await http.get("/users/alex@contoso.example", headers={"client-request-id": "abc-123"})
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert resp.headers["request-id"] == resp.json()["error"]["innerError"]["request-id"]
        assert resp.headers["client-request-id"] == "abc-123"
        api_token = await graph_sim.token(PEGA_CLIENT_ID, PEGA_CLIENT_SECRET, scope=f"{API_AUDIENCE}/.default")
        resp = await http.get("/users/alex@contoso.example", headers={"Authorization": f"Bearer {api_token}"})
        assert resp.status_code == 401
        assert "audience" in resp.json()["error"]["message"].lower()


async def test_me_is_rejected_for_app_tokens_and_users_resolve_by_upn_or_id(graph_sim: GraphSim, graph_client
                                                                            ) -> None:
    by_upn = await graph_client.users.by_user_id("alex@contoso.example").get()
    by_id = await graph_client.users.by_user_id(by_upn.id).get()
    assert by_id.user_principal_name == "alex@contoso.example"
    http = await graph_sim.http()
    async with http:
        assert (await http.get("/me/messages")).status_code == 400
        missing = await http.get("/users/nobody@contoso.example")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ErrorInvalidUser"


async def test_client_assertion_with_registered_certificate(graph_sim: GraphSim, tmp_path) -> None:
    """The real CertificateCredential (PS256 client assertion) works once the cert is registered."""
    from azure.identity.aio import CertificateCredential

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cert-app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) + cert_pem
    path = tmp_path / "cert.pem"
    path.write_bytes(pem)
    await graph_sim.control.call("POST", "clients", {"clientId": "cert-app", "certificatePem": cert_pem.decode(),
                                                     "roles": {"https://graph.microsoft.com": ["Mail.ReadWrite"]}})
    cred = CertificateCredential(graph_sim.tenant_id, "cert-app", certificate_path=str(path),
                                 authority=graph_sim.authority, connection_verify=str(graph_sim.ca_path))
    try:
        tok = await cred.get_token(GRAPH_SCOPE)
    finally:
        await cred.close()
    assert (await _verify(graph_sim, tok.token, "https://graph.microsoft.com"))["roles"] == ["Mail.ReadWrite"]
    other = tmp_path / "other.pem"
    key2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other.write_bytes(key2.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()) + cert_pem)
    bad = CertificateCredential(graph_sim.tenant_id, "cert-app", certificate_path=str(other),
                                authority=graph_sim.authority, connection_verify=str(graph_sim.ca_path))
    with pytest.raises(ClientAuthenticationError):
        try:
            await bad.get_token(GRAPH_SCOPE)
        finally:
            await bad.close()
