"""The one place where Pega's answers become the service's typed errors.

Transient (429, 5xx, timeouts, connection failures) -> :class:`PegaTransientError`, a
TransientError carrying `retry_after`, so the queue retries later. A stale eTag that survives the
client's one re-read (409/412: the record keeps changing under us) is a concurrency condition,
not a verdict on the change: :class:`PegaConflictError` is transient too, so the queue retries the
work with fresh state and the change is never dropped. Everything a retry cannot fix (400, 401
after a fresh token, 403, 404, 422) -> a PermanentError subclass that names what Pega said.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

from shared.errors import PermanentError, TransientError


class PegaTransientError(TransientError):
    """Pega is throttling, failing or slow; retry after `retry_after` seconds when given."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class PegaPermanentError(PermanentError):
    """Base of Pega answers a retry cannot fix. `status` is the HTTP status, `details` Pega's messages."""

    def __init__(self, message: str, *, status: int | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


class PegaBadRequestError(PegaPermanentError):
    """400: the request does not fit this Pega implementation (often a mapping problem)."""


class PegaAuthError(PegaPermanentError):
    """401 with a fresh token, or a refused token request: credentials are wrong."""


class PegaForbiddenError(PegaPermanentError):
    """403: the operator lacks a role (PegaRULES:PegaAPI) or access to the record."""


class PegaNotFoundError(PegaPermanentError):
    """404: unknown record, case type, data view or action."""


class PegaFieldDroppedError(PegaPermanentError):
    """Pega accepted a write but did not store a field the sync depends on (DX API v2 drops, without an
    error, every field missing from the case type's AllowedStartingFields or the action's view).

    Raised when the external id is missing after a create: going on would make every replay of the
    item create another record. A retry cannot fix it; the Pega side must (docs/pega-setup.md). The
    record that was created is named in the message so an administrator can withdraw it."""

    def __init__(self, message: str, *, record_id: str, fields: list[str], case_type: str = "") -> None:
        super().__init__(message, status=None, details=[f"dropped: {', '.join(fields)}"])
        self.record_id = record_id
        self.fields = fields
        self.case_type = case_type


class PegaConflictError(PegaTransientError):
    """409/412: the record changed again between our re-read and the retried write. Retried
    through the queue (fresh read, fresh eTag), never counted as a failed item."""

    def __init__(self, message: str, *, status: int | None = 409, retry_after: float | None = 2.0) -> None:
        super().__init__(message, status=status, retry_after=retry_after)


class PegaValidationError(PegaPermanentError):
    """422 (and 423/424): Pega refused the values."""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_details(body: Any) -> list[str]:
    """Human-readable messages from a v2 (`errorDetails`) or v1 (`errors`) Pega error body."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return [text[:200]] if text else []
    out: list[str] = []
    if isinstance(body, dict):
        if body.get("localizedValue"):
            out.append(str(body["localizedValue"]))
        for d in body.get("errorDetails") or []:
            if isinstance(d, dict):
                field = d.get("erroneousInputOutputFieldInPage") or d.get("erroneousInputOutputIdentifier")
                msg = str(d.get("localizedValue") or d.get("message") or "")
                out.append(f"{field}: {msg}" if field else msg)
        for e in body.get("errors") or []:
            if isinstance(e, dict):
                out.append(f"{e.get('ID', '')}: {e.get('message', '')}".strip(": "))
        err = body.get("error")
        if isinstance(err, dict):  # the sync-service contract: {"error": {"code", "message", "field"}}
            msg = str(err.get("message") or err.get("code") or "")
            out.append(f"{err['field']}: {msg}" if err.get("field") else msg)
        if body.get("error_description"):
            out.append(str(body["error_description"]))
    return [m for m in out if m]


_BY_STATUS: dict[int, type[PegaPermanentError]] = {
    400: PegaBadRequestError,
    401: PegaAuthError,
    403: PegaForbiddenError,
    404: PegaNotFoundError,
    422: PegaValidationError,
    423: PegaValidationError,
    424: PegaValidationError,
}


def error_for_status(
    status: int, *, what: str, body: Any = None, retry_after: str | None = None
) -> PegaTransientError | PegaPermanentError:
    """Map one non-2xx Pega answer to its typed error. `what` names the call (never secrets or bodies)."""
    details = error_details(body)
    message = f"Pega {what} failed with HTTP {status}" + (f": {'; '.join(details)}" if details else "")
    if status == 429 or status >= 500 or status == 408:
        return PegaTransientError(message, status=status, retry_after=parse_retry_after(retry_after))
    if status in (409, 412):
        return PegaConflictError(message, status=status, retry_after=parse_retry_after(retry_after) or 2.0)
    cls = _BY_STATUS.get(status, PegaPermanentError)
    return cls(message, status=status, details=details)


def timeout_error(what: str, timeout: float) -> PegaTransientError:
    return PegaTransientError(f"Pega {what} timed out after {timeout:g}s")


def connection_error(what: str, exc: BaseException) -> PegaTransientError:
    return PegaTransientError(f"Pega {what} could not connect: {type(exc).__name__}")
