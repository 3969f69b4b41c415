"""App-only credentials for Graph, by configured kind (secret, certificate, managed identity).

Managed identity uses the federated-credential pattern (graph.md §8): the app registration trusts
the function app's managed identity, and a ClientAssertionCredential trades an MI token for
api://AzureADTokenExchange into a Graph token — no secret anywhere.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials_async import AsyncTokenCredential

from shared.config import CredentialKind, GraphSettings
from shared.errors import ConfigurationError

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _common(settings: GraphSettings) -> dict[str, Any]:
    kw: dict[str, Any] = {"authority": settings.authority_host}
    if settings.ca_bundle:
        kw["connection_verify"] = settings.ca_bundle
    if settings.authority_host.startswith("https://127.0.0.1") or settings.authority_host.startswith(
        "https://localhost"
    ):
        kw["disable_instance_discovery"] = True
    return kw


def graph_credential(settings: GraphSettings) -> AsyncTokenCredential:
    if not settings.configured:
        raise ConfigurationError("GRAPH_TENANT_ID and GRAPH_CLIENT_ID must be set to call Graph",
                                 settings=["GRAPH_TENANT_ID", "GRAPH_CLIENT_ID"])
    from azure.identity import aio

    kw = _common(settings)
    if settings.credential_kind is CredentialKind.SECRET:
        return aio.ClientSecretCredential(settings.tenant_id, settings.client_id, str(settings.client_secret), **kw)
    if settings.credential_kind is CredentialKind.CERTIFICATE:
        return aio.CertificateCredential(settings.tenant_id, settings.client_id,
                                         certificate_path=settings.certificate_path,
                                         password=settings.certificate_password, **kw)
    from azure.identity import ManagedIdentityCredential

    # ClientAssertionCredential (aio too) calls a plain callable; the MI token is cached by the
    # credential and fetched about once an hour, so the short blocking call is acceptable.
    mi = ManagedIdentityCredential(client_id=settings.managed_identity_client_id)

    def assertion() -> str:
        return mi.get_token("api://AzureADTokenExchange/.default").token

    return aio.ClientAssertionCredential(settings.tenant_id, settings.client_id, assertion, **kw)
