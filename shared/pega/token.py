"""OAuth 2.0 client-credentials tokens for DX API v2, cached per client and refreshed early.

One provider per Pega instance: concurrent callers share one token request (a lock), the token is
refreshed `skew` seconds before `expires_in` runs out, and `invalidate()` lets the client force
one refresh after a 401.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Protocol

import aiohttp

from shared.pega.errors import PegaAuthError, connection_error, error_for_status, timeout_error

log = logging.getLogger(__name__)


class TokenSource(Protocol):
    async def get_token(self, *, force: bool = False) -> str: ...

    def invalidate(self) -> None: ...


class OAuthClientCredentials:
    """Token from `{base}/prweb/PRRestService/oauth2/v1/token` (Basic client credentials)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 30.0,
        skew: float = 60.0,
    ) -> None:
        self._session = session
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._skew = skew
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.requests = 0  # tokens fetched; tests and diagnostics read it

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0

    async def get_token(self, *, force: bool = False) -> str:
        if not force and self._valid():
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if not force and self._valid():
                return self._token  # type: ignore[return-value]
            self._token, self._expires_at = await self._fetch()
            return self._token

    def _valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._expires_at - self._skew

    async def _fetch(self) -> tuple[str, float]:
        basic = base64.b64encode(f"{self._client_id}:{self._secret}".encode()).decode()
        self.requests += 1
        try:
            async with self._session.post(
                self._url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                body = await resp.read()
                if resp.status in (400, 401, 403):
                    raise PegaAuthError(
                        f"Pega token request refused with HTTP {resp.status} (check PEGA_CLIENT_ID/PEGA_CLIENT_SECRET)",
                        status=resp.status,
                    )
                if resp.status >= 300:
                    raise error_for_status(resp.status, what="token request", body=body,
                                           retry_after=resp.headers.get("Retry-After"))
                payload = await resp.json(content_type=None)
        except TimeoutError as exc:
            raise timeout_error("token request", self._timeout) from exc
        except aiohttp.ClientError as exc:
            raise connection_error("token request", exc) from exc
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token:
            raise PegaAuthError("Pega token response has no access_token")
        expires_in = float(payload.get("expires_in") or 3600)
        log.debug("Pega token fetched, expires in %ss", expires_in)
        return str(token), time.monotonic() + expires_in
