"""A tiny Entra ID stand-in for tests: client-credentials tokens (RS256), OpenID metadata, JWKS.

It follows the identity contract in docs/HELPERS.md (same paths and claims as the Graph
simulator) so the same code validates both; tests also mint tokens with chosen claims here.
"""

from __future__ import annotations

import functools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.proc import free_port

TENANT = "aaaaaaaa-0000-4000-8000-00000000c0de"
API_AUDIENCE = "api://pega-exchange-sync"
ROLE = "Sync.ReadWrite"


@functools.lru_cache(maxsize=1)
def _first_key() -> rsa.RSAPrivateKey:
    """Key generation costs ~0.3 s; every stub starts with the same one (rotation makes new ones)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class StubClient:
    secret: str
    roles: dict[str, list[str]]  # audience -> roles


@dataclass
class EntraStub:
    base_url: str = ""
    keys: list[tuple[str, rsa.RSAPrivateKey]] = field(default_factory=list)
    clients: dict[str, StubClient] = field(default_factory=lambda: {
        "pega-connect-rest": StubClient("sandbox-pega-secret", {API_AUDIENCE: [ROLE]}),
        "sandbox-no-role": StubClient("sandbox-no-role-secret", {}),
    })
    token_requests: int = 0
    jwks_requests: int = 0
    runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{TENANT}/v2.0"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/{TENANT}/oauth2/v2.0/token"

    @property
    def openid_config_url(self) -> str:
        return f"{self.base_url}/{TENANT}/v2.0/.well-known/openid-configuration"

    def rotate(self) -> str:
        kid = "kid-" + uuid.uuid4().hex[:8]
        self.keys.append((kid, _first_key() if not self.keys else rsa.generate_private_key(65537, 2048)))
        return kid

    def mint(self, *, kid: str | None = None, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        """A token signed with the current key (or `key`/`kid`), default claims overridden by `claims`."""
        now = int(time.time())
        cur_kid, cur_key = self.keys[-1]
        body: dict[str, Any] = {
            "iss": self.issuer, "aud": API_AUDIENCE, "tid": TENANT, "appid": "pega-connect-rest",
            "azp": "pega-connect-rest", "roles": [ROLE], "sub": "sp-pega-connect-rest", "ver": "2.0",
            "iat": now, "nbf": now, "exp": now + 3599,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or cur_key, algorithm="RS256", headers={"kid": kid or cur_kid})

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, priv in self.keys:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(priv.public_key(), as_dict=True)
            jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
            keys.append(jwk)
        return {"keys": keys}

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        client = self.clients.get(str(form.get("client_id", "")))
        if client is None or not secrets.compare_digest(client.secret, str(form.get("client_secret", ""))):
            return web.json_response({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret.",
                                      "error_codes": [7000215]}, status=401)
        scope = str(form.get("scope", ""))
        if not scope.endswith("/.default"):
            return web.json_response({"error": "invalid_scope", "error_codes": [70011]}, status=400)
        audience = scope[: -len("/.default")]
        token = self.mint(aud=audience, appid=form["client_id"], azp=form["client_id"],
                          roles=client.roles.get(audience) or None)
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": token})

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "token_endpoint": self.token_url,
                                  "jwks_uri": f"{self.base_url}/{TENANT}/discovery/v2.0/keys",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _keys(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        return web.json_response(self.jwks())

    async def start(self) -> EntraStub:
        if not self.keys:
            self.rotate()
        app = web.Application()
        app.router.add_post(f"/{TENANT}/oauth2/v2.0/token", self._token)
        app.router.add_get(f"/{TENANT}/v2.0/.well-known/openid-configuration", self._config)
        app.router.add_get(f"/{TENANT}/discovery/v2.0/keys", self._keys)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
