"""Validate an Entra ID bearer token on a request to our HTTP contract.

Checks, in order: a `Bearer` header; a well-formed RS256 JWT with a `kid`; the signature with the
issuer's published key (JWKS cached, refreshed on an unknown `kid`); issuer; audience; `exp`/`nbf`
with a small leeway; the required app role in `roles`; optionally an allow-list of caller app
ids. The answer is a typed :class:`Principal` or a typed :class:`AuthError` (401/403).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt

from shared.auth.errors import (
    AuthError,
    BadSignatureError,
    ClientNotAllowedError,
    ExpiredTokenError,
    MalformedTokenError,
    MissingRoleError,
    MissingTokenError,
    NotYetValidError,
    WrongAudienceError,
    WrongIssuerError,
)
from shared.auth.jwks import JwksCache
from shared.config import ApiAuthSettings
from shared.errors import ConfigurationError

ALLOWED_ALGORITHMS = ("RS256",)


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must satisfy. Empty `issuers` = the issuer from the OpenID metadata."""

    audiences: tuple[str, ...]
    required_role: str
    issuers: tuple[str, ...] = ()
    allowed_client_ids: tuple[str, ...] = ()
    leeway_seconds: int = 60

    @classmethod
    def from_settings(cls, s: ApiAuthSettings) -> TokenPolicy:
        if not s.audience:
            raise ConfigurationError("API_AUDIENCE is not set", settings=["API_AUDIENCE"])
        return cls(
            audiences=(s.audience, *_split(s.extra_audiences)),
            required_role=s.required_role,
            issuers=_split(s.issuer),
            allowed_client_ids=_split(s.allowed_client_ids),
            leeway_seconds=s.leeway_seconds,
        )


@dataclass(frozen=True)
class Principal:
    """The authenticated caller (an app, client credentials)."""

    app_id: str
    tenant_id: str
    roles: tuple[str, ...]
    subject: str
    claims: dict[str, Any] = field(repr=False, default_factory=dict)


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


class BearerValidator:
    """One per process (it holds the key cache); `await validate(authorization_header)`."""

    def __init__(self, policy: TokenPolicy, keys: JwksCache) -> None:
        self.policy = policy
        self.keys = keys

    @classmethod
    def from_settings(cls, s: ApiAuthSettings, *, session: aiohttp.ClientSession | None = None) -> BearerValidator:
        config_url = s.effective_openid_config_url
        if not (config_url or s.jwks_url):
            raise ConfigurationError("set API_TENANT_ID, API_OPENID_CONFIG_URL or API_JWKS_URL",
                                     settings=["API_OPENID_CONFIG_URL"])
        keys = JwksCache(openid_config_url=config_url, jwks_url=s.jwks_url, ttl_seconds=s.jwks_cache_seconds,
                         timeout_seconds=s.http_timeout_seconds, session=session)
        return cls(TokenPolicy.from_settings(s), keys)

    async def validate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise MalformedTokenError("the bearer token is not a JWT") from exc
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise MalformedTokenError(f"token algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not kid:
            raise MalformedTokenError("the token header has no kid")
        key = await self.keys.key(str(kid))
        issuers = self.policy.issuers
        if not issuers:
            await self.keys.ensure_metadata()
            if not self.keys.issuer:
                raise ConfigurationError("no API_ISSUER and the OpenID configuration has no issuer",
                                         settings=["API_ISSUER"])
            issuers = (self.keys.issuer,)
        try:
            claims = jwt.decode(
                token, key=key.key, algorithms=list(ALLOWED_ALGORITHMS), audience=list(self.policy.audiences),
                leeway=self.policy.leeway_seconds,
                options={"require": ["exp", "iss", "aud"], "verify_iss": False},
            )
        except jwt.InvalidSignatureError as exc:
            raise BadSignatureError("the token signature is invalid") from exc
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredTokenError("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise NotYetValidError("the token is not valid yet (nbf/iat)") from exc
        except jwt.InvalidAudienceError as exc:
            raise WrongAudienceError("the token is not for this API (audience)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise MalformedTokenError(f"the token lacks the {exc.claim} claim") from exc
        except jwt.InvalidTokenError as exc:
            raise MalformedTokenError(f"the token is invalid: {type(exc).__name__}") from exc
        if claims.get("iss") not in issuers:
            raise WrongIssuerError("the token was not issued by the expected tenant (issuer)")
        roles = claims.get("roles") or []
        if not isinstance(roles, list):
            roles = [roles]
        if self.policy.required_role not in roles:
            raise MissingRoleError(f"the calling app lacks the {self.policy.required_role} app role")
        app_id = str(claims.get("azp") or claims.get("appid") or "")
        if self.policy.allowed_client_ids and app_id not in self.policy.allowed_client_ids:
            raise ClientNotAllowedError("the calling app is not allowed")
        return Principal(app_id=app_id, tenant_id=str(claims.get("tid") or ""), roles=tuple(str(r) for r in roles),
                         subject=str(claims.get("sub") or ""), claims=claims)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise MissingTokenError("an Authorization: Bearer token is required")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingTokenError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


__all__: Sequence[str] = ("AuthError", "BearerValidator", "Principal", "TokenPolicy")
