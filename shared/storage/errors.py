"""The one place that maps Azure Storage errors to typed exceptions.

Callers never catch azure-core exceptions: a lost optimistic-concurrency race is
:class:`ConcurrencyError`, an insert of an existing key is :class:`AlreadyExistsError`, a missing
entity is :class:`NotFoundError`, and network trouble is :class:`StorageUnavailableError` (a
TransientError, so queue work is retried by the host rather than in-process).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.exceptions import HttpResponseError as _HttpResponseError
from azure.data.tables import TableTransactionError

from shared.errors import SyncError, TransientError


class StorageError(SyncError):
    """Base of state-store errors."""


class NotFoundError(StorageError):
    pass


class AlreadyExistsError(StorageError):
    pass


class ConcurrencyError(StorageError):
    """The entity changed since it was read (ETag mismatch): re-read and re-apply."""


class StorageUnavailableError(TransientError, StorageError):
    pass


@contextlib.contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Translate azure-core exceptions raised inside the block; `what` names the operation."""
    try:
        yield
    except TableTransactionError as exc:
        code = str(getattr(exc, "error_code", "") or "")
        if "AlreadyExists" in code:
            raise AlreadyExistsError(f"{what}: already exists") from exc
        if "ConditionNotSatisfied" in code or "ConditionNotMet" in code:
            raise ConcurrencyError(f"{what}: changed since read") from exc
        if "NotFound" in code:
            raise NotFoundError(f"{what}: not found") from exc
        raise StorageError(f"{what}: transaction failed ({code or 'unknown'})") from exc
    except ResourceModifiedError as exc:
        raise ConcurrencyError(f"{what}: changed since read") from exc
    except ResourceExistsError as exc:
        raise AlreadyExistsError(f"{what}: already exists") from exc
    except ResourceNotFoundError as exc:
        raise NotFoundError(f"{what}: not found") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailableError(f"{what}: storage unreachable ({type(exc).__name__})") from exc
    except _HttpResponseError as exc:
        status = getattr(exc, "status_code", None)
        if status == 412:
            raise ConcurrencyError(f"{what}: changed since read") from exc
        if status == 409:
            raise AlreadyExistsError(f"{what}: conflict") from exc
        if status == 404:
            raise NotFoundError(f"{what}: not found") from exc
        if status in (408, 429, 500, 502, 503, 504):
            raise StorageUnavailableError(f"{what}: storage busy ({status})") from exc
        raise StorageError(f"{what}: storage error {status}") from exc
    except AzureError as exc:
        raise StorageUnavailableError(f"{what}: {type(exc).__name__}") from exc
