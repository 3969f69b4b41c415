"""The issuer's signing keys: OpenID metadata -> JWKS, cached, refreshed when an unknown `kid` appears.

Entra rolls its keys; a token signed with a new key must not fail until the cache expires, so an
unknown `kid` triggers one refresh (rate-limited, so garbage `kid`s cannot make us hammer the
issuer). Fetch failures become KeysUnavailableError (503) rather than a 401 that would hide an
outage behind "bad token".
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

from shared.auth.errors import KeysUnavailableError, UnknownKeyError

log = logging.getLogger(__name__)


class JwksCache:
    def __init__(
        self,
        *,
        openid_config_url: str = "",
        jwks_url: str = "",
        ttl_seconds: float = 3600,
        min_refresh_interval: float = 10.0,
        timeout_seconds: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not (openid_config_url or jwks_url):
            raise ValueError("need an OpenID configuration URL or a JWKS URL")
        self._config_url = openid_config_url
        self._jwks_url = jwks_url
        self._ttl = ttl_seconds
        self._min_interval = min_refresh_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session = session
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._unknown_refresh_at = -1e9
        self._lock = asyncio.Lock()
        self.issuer: str | None = None  # from the metadata, when read
        self.fetches = 0

    async def _get_json(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        try:
            async with session.get(url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise KeysUnavailableError(f"{url} answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KeysUnavailableError(f"cannot read {url}: {type(exc).__name__}") from exc
        if not isinstance(body, dict):
            raise KeysUnavailableError(f"{url} did not return a JSON object")
        return body

    async def refresh(self) -> None:
        session = self._session or aiohttp.ClientSession()
        try:
            jwks_url = self._jwks_url
            if self._config_url:
                meta = await self._get_json(session, self._config_url)
                self.issuer = str(meta.get("issuer") or "") or None
                jwks_url = jwks_url or str(meta.get("jwks_uri") or "")
            if not jwks_url:
                raise KeysUnavailableError("the OpenID configuration has no jwks_uri")
            body = await self._get_json(session, jwks_url)
        finally:
            if self._session is None:
                await session.close()
        keys: dict[str, jwt.PyJWK] = {}
        for raw in body.get("keys") or []:
            if not isinstance(raw, dict) or not raw.get("kid") or raw.get("use", "sig") != "sig":
                continue
            try:
                keys[str(raw["kid"])] = jwt.PyJWK(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                log.warning("skipping an unusable signing key %s: %s", raw.get("kid"), type(exc).__name__)
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.fetches += 1

    async def ensure_metadata(self) -> None:
        if self._fetched_at == 0.0:
            async with self._lock:
                if self._fetched_at == 0.0:
                    await self.refresh()

    async def key(self, kid: str) -> jwt.PyJWK:
        now = time.monotonic()
        if self._fetched_at and now - self._fetched_at < self._ttl and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            now = time.monotonic()
            stale = not self._fetched_at or now - self._fetched_at >= self._ttl
            unknown = not stale and kid not in self._keys and now - self._unknown_refresh_at >= self._min_interval
            if unknown:  # at most one refresh per interval for kids we do not know
                self._unknown_refresh_at = now
            if stale or unknown:
                await self.refresh()
        found = self._keys.get(kid)
        if found is None:
            raise UnknownKeyError("the token was signed with a key the issuer does not publish")
        return found
