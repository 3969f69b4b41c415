"""Why an inbound bearer token was refused. Each error carries the HTTP status and an OAuth
`error` code for the WWW-Authenticate header (RFC 6750), and never the token itself."""

from __future__ import annotations

from shared.errors import SyncError, TransientError


class AuthError(SyncError):
    """Base: the request is not authenticated or not authorized."""

    status = 401
    code = "invalid_token"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def www_authenticate(self) -> str:
        desc = self.message.replace('"', "'")
        return f'Bearer error="{self.code}", error_description="{desc}"'


class MissingTokenError(AuthError):
    code = "invalid_request"


class MalformedTokenError(AuthError):
    pass


class BadSignatureError(AuthError):
    pass


class UnknownKeyError(AuthError):
    """The token's `kid` is not in the issuer's published keys, even after a refresh."""


class WrongIssuerError(AuthError):
    pass


class WrongAudienceError(AuthError):
    pass


class ExpiredTokenError(AuthError):
    pass


class NotYetValidError(AuthError):
    pass


class MissingRoleError(AuthError):
    """Authenticated, but the calling app lacks the required app role (403)."""

    status = 403
    code = "insufficient_scope"


class ClientNotAllowedError(AuthError):
    status = 403
    code = "insufficient_scope"


class KeysUnavailableError(TransientError):
    """The issuer's metadata or keys could not be fetched: answer 503, the caller retries."""

    status = 503
