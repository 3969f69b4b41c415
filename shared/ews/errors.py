"""The one place that maps exchangelib's errors to the engine's typed exceptions.

The EWS classes subclass the engine's existing ones where the engine already decides on them, so
the round and the queue treat both backends alike: throttling (ErrorServerBusy with its
BackOffMilliseconds hint) → a TransientError with retry_after (the queue defers, as with Graph's
Retry-After); an invalid sync state → SyncStateNotFoundError (the round starts a full resync).
"""

from __future__ import annotations

from shared.errors import PermanentError, TransientError
from shared.graph.errors import GraphNotFoundError, GraphThrottledError, SyncStateNotFoundError

DEFAULT_BACK_OFF = 30.0  # seconds, when Exchange gives no hint


class EwsThrottledError(GraphThrottledError):
    """ErrorServerBusy (or a busy transport): retry after `retry_after` seconds."""


class EwsUnavailableError(TransientError):
    """Timeouts, connection failures, 5xx without a SOAP answer."""


class EwsSyncStateInvalidError(SyncStateNotFoundError):
    """ErrorInvalidSyncStateData: the stored sync state is no longer accepted."""


class EwsNotFoundError(GraphNotFoundError):
    """The item or folder does not exist (any more)."""


class EwsAccessError(PermanentError):
    """Wrong credentials, impersonation refused, no such mailbox: an administrator must act."""


class EwsError(PermanentError):
    """Any other EWS error that retrying will not fix."""


NOT_FOUND = {"ErrorItemNotFound", "ErrorFolderNotFound", "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
             "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", "ErrorInvalidIdMalformed"}
ACCESS = {"ErrorImpersonateUserDenied", "ErrorNonExistentMailbox", "ErrorAccessDenied",
          "ErrorImpersonationDenied", "UnauthorizedError", "ErrorMissingEmailAddress", "ErrorMailboxMoveInProgress"}
TRANSIENT = {"ErrorTimeoutExpired", "ErrorInternalServerTransientError", "ErrorMailboxStoreUnavailable",
             "ErrorConnectionFailed", "TransportError", "RateLimitError", "ErrorTooManyObjectsOpened",
             "ErrorExceededConnectionCount", "ErrorServerBusy", "ErrorBatchProcessingStopped", "CASError",
             "RedirectError"}


def map_error(exc: BaseException, *, what: str) -> Exception:
    """exchangelib / transport exception → typed engine exception (never carries content)."""
    name = type(exc).__name__
    if name == "ErrorServerBusy":
        back_off = getattr(exc, "back_off", None)
        return EwsThrottledError(f"EWS {what}: server busy", retry_after=float(back_off or DEFAULT_BACK_OFF),
                                 status=500)
    if name == "ErrorInvalidSyncStateData":
        return EwsSyncStateInvalidError(f"EWS {what}: sync state invalid", status=410,
                                        code="ErrorInvalidSyncStateData")
    if name in NOT_FOUND:
        return EwsNotFoundError(f"EWS {what}: {name}", status=404, code=name)
    if name in ACCESS:
        return EwsAccessError(f"EWS {what}: {name}")
    if name in TRANSIENT or isinstance(exc, (TimeoutError, ConnectionError, OSError)):
        return EwsUnavailableError(f"EWS {what}: {name}", retry_after=None)
    return EwsError(f"EWS {what}: {name}")
