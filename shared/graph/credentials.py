"""App-only credentials for Graph, by configured kind (secret, certificate, managed identity).

Managed identity uses the federated-credential pattern (graph.md §8): the app registration trusts
the function app's managed identity, and a ClientAssertionCredential trades an MI token for
api://AzureADTokenExchange into a Graph token — no secret anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from shared.config import CredentialKind, GraphSettings
from shared.errors import ConfigurationError

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
RENEW_AT_MOST_EVERY_SECONDS = 30.0
log = logging.getLogger(__name__)


class RenewableCredential(AsyncTokenCredential):
    """A credential whose token cache can be thrown away.

    azure-identity hands out its cached token until the token's own expiry as the client's clock
    sees it. When Graph refuses that token (401: a clock skew between the host and Entra, or the
    app's credentials were reset), every retry would present the same refused token for up to an
    hour. `renew()` replaces the inner credential — and with it the cache — so the retry (through
    the queue) asks Entra for a new token. Renewals are spaced so a token that keeps being refused
    (wrong tenant, revoked consent) does not turn into a storm of token requests.
    """

    def __init__(self, build: Callable[[], AsyncTokenCredential], *,
                 min_interval: float = RENEW_AT_MOST_EVERY_SECONDS) -> None:
        self._build = build
        self._inner = build()
        self._retired: list[AsyncTokenCredential] = []
        self._min_interval = min_interval
        self._renewed_at = float("-inf")
        self.renewals = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return await self._inner.get_token(*scopes, **kwargs)

    async def renew(self) -> bool:
        """Drop the cached token (True), unless a renewal happened within the interval (False)."""
        now = time.monotonic()
        if now - self._renewed_at < self._min_interval:
            return False
        self._renewed_at = now
        # the old credential may be serving a request right now: it is closed with the gateway
        self._retired.append(self._inner)
        self._inner = self._build()
        self.renewals += 1
        log.info("graph token refused: the cached token is dropped, the next request gets a new one")
        return True

    async def close(self) -> None:
        for cred in [*self._retired, self._inner]:
            await cred.close()
        self._retired.clear()

    async def __aenter__(self) -> RenewableCredential:
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.close()


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
