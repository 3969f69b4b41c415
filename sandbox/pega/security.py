"""Who is calling: OAuth 2.0 client-credentials tokens (DX API v2) and Basic auth (SA API v1)."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.pega.config import SimConfig
from sandbox.pega.errors import oauth_error, v1_error, v2_error
from sandbox.pega.store import Actor


@dataclass
class IssuedToken:
    client_id: str
    operator: str
    expires_at: float


@dataclass
class TokenBook:
    """Access tokens the simulator issued (opaque strings), with their expiry."""

    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    issued: int = 0

    def issue(self, client_id: str, operator: str, ttl: int) -> str:
        token = "pega-sim-" + secrets.token_urlsafe(24)
        self.tokens[token] = IssuedToken(client_id, operator, time.time() + ttl)
        self.issued += 1
        return token

    def check(self, token: str) -> IssuedToken | None:
        t = self.tokens.get(token)
        if t is None or t.expires_at <= time.time():
            return None
        return t

    def revoke_all(self) -> int:
        n = len(self.tokens)
        self.tokens.clear()
        return n


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, pwd = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, pwd


async def token_endpoint(request: web.Request) -> web.Response:
    """POST /prweb/PRRestService/oauth2/v1/token (client credentials in Basic or in the form)."""
    cfg: SimConfig = request.app["config"]
    book: TokenBook = request.app["tokens"]
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "only client_credentials is supported by the simulator")
    creds = _basic(request) or (str(form.get("client_id", "")), str(form.get("client_secret", "")))
    client = cfg.oauth_clients.get(creds[0])
    if client is None or not secrets.compare_digest(client.secret, creds[1]):
        return oauth_error(401, "invalid_client", "Client authentication failed")
    token = book.issue(creds[0], client.operator, cfg.token_ttl_seconds)
    return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": cfg.token_ttl_seconds})


def bearer_actor(request: web.Request) -> Actor | web.Response:
    """The caller of a DX API v2 endpoint, or the 401 answer."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return v2_error(401, "Unauthorized", "Authentication is required", code="Error_Unauthorized")
    issued = request.app["tokens"].check(header[7:].strip())
    if issued is None:
        return v2_error(401, "Unauthorized", "The access token is invalid or expired", code="Error_Unauthorized")
    return Actor(operator=issued.operator, client_id=issued.client_id)


def basic_actor(request: web.Request) -> Actor | web.Response:
    """The caller of an SA API v1 endpoint (Basic; operator needs PegaRULES:PegaAPI), or the error."""
    cfg: SimConfig = request.app["config"]
    creds = _basic(request)
    user = cfg.basic_users.get(creds[0]) if creds else None
    if creds is None or user is None or not secrets.compare_digest(user.password, creds[1]):
        resp = v1_error(401, "Pega_API_001", "Invalid credentials")
        resp.headers["WWW-Authenticate"] = 'Basic realm="PegaRULES"'
        return resp
    if not user.api_role:
        return v1_error(403, "Pega_API_002", "Operator does not have the PegaRULES:PegaAPI role")
    return Actor(operator=creds[0])
