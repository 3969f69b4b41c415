"""The one place Graph responses become typed errors.

Throttling and service trouble are TransientErrors (the queue retries, honouring Retry-After);
so are a 401 (a token that expired between the SDK's check and Graph's, or a token cache race:
the retry takes a fresh token) and a 409/412 (`ErrorIrresolvableConflict`: the item changed
between our read and our write; the retry reads it afresh). An expired delta token is its own
type because the reaction is a resync, not a retry; the rest are permanent for the request that
caused them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from shared.errors import PermanentError, TransientError


class GraphError(PermanentError):
    def __init__(self, message: str, *, status: int, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id


class GraphNotFoundError(GraphError):
    pass


class GraphAccessDeniedError(GraphError):
    pass


class GraphBadRequestError(GraphError):
    pass


class SyncStateNotFoundError(GraphError):
    """The delta token expired (410 / syncStateNotFound): start a full resync of the window."""


class GraphThrottledError(TransientError):
    def __init__(self, message: str, *, retry_after: float | None, status: int = 429) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class GraphConflictError(TransientError):
    """409/412: the item changed under us (ErrorIrresolvableConflict); retry with fresh state."""

    def __init__(self, message: str, *, retry_after: float | None = 2.0, status: int = 409) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class GraphTokenRejectedError(TransientError):
    """401: the token was refused (expired in flight, cache race); the retry asks for a fresh one.
    Credentials that stay wrong keep failing and surface through the mailbox's incident."""

    def __init__(self, message: str, *, retry_after: float | None = 5.0, status: int = 401) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class GraphUnavailableError(TransientError):
    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 0) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except ValueError:
                return None
    return None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes, *, what: str) -> Exception:
    code, message = "", ""
    try:
        err = json.loads(body or b"{}").get("error") or {}
        if isinstance(err, dict):
            code, message = str(err.get("code", "")), str(err.get("message", ""))
    except (ValueError, AttributeError):
        pass
    request_id = next((v for k, v in headers.items() if k.lower() == "request-id"), "")
    text = f"{what}: Graph {status} {code}".strip()
    if message:
        text += f" ({message[:200]})"
    if status == 429:
        return GraphThrottledError(text, retry_after=_retry_after(headers) or 5.0)
    if status in (500, 502, 503, 504) or status == 408:
        return GraphUnavailableError(text, retry_after=_retry_after(headers), status=status)
    if status == 410 or code.lower() == "syncstatenotfound" or code.lower() == "resyncrequired":
        return SyncStateNotFoundError(text, status=status, code=code, request_id=request_id)
    if status == 404:
        return GraphNotFoundError(text, status=status, code=code, request_id=request_id)
    if status in (409, 412):
        return GraphConflictError(text, retry_after=_retry_after(headers) or 2.0, status=status)
    if status == 401:
        return GraphTokenRejectedError(text, retry_after=_retry_after(headers) or 5.0)
    if status == 403:
        return GraphAccessDeniedError(text, status=status, code=code, request_id=request_id)
    if status == 400:
        return GraphBadRequestError(text, status=status, code=code, request_id=request_id)
    return GraphError(text, status=status, code=code, request_id=request_id)
