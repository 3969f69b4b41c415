"""Validation of inbound Entra ID bearer tokens for our HTTP contract (issuer, audience, signature,
expiry, app role), with typed results and errors."""

from shared.auth.errors import (
    AuthError,
    BadSignatureError,
    ClientNotAllowedError,
    ExpiredTokenError,
    KeysUnavailableError,
    MalformedTokenError,
    MissingRoleError,
    MissingTokenError,
    NotYetValidError,
    UnknownKeyError,
    WrongAudienceError,
    WrongIssuerError,
)
from shared.auth.jwks import JwksCache
from shared.auth.validator import BearerValidator, Principal, TokenPolicy

__all__ = [
    "AuthError", "BadSignatureError", "BearerValidator", "ClientNotAllowedError", "ExpiredTokenError", "JwksCache",
    "KeysUnavailableError", "MalformedTokenError", "MissingRoleError", "MissingTokenError", "NotYetValidError",
    "Principal", "TokenPolicy", "UnknownKeyError", "WrongAudienceError", "WrongIssuerError",
]
