"""Typed errors shared across the service. Each carries what an operator needs to act."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigurationError(SyncError):
    """A setting is missing or invalid; raised at start, naming the setting."""

    def __init__(self, message: str, *, settings: list[str] | None = None) -> None:
        super().__init__(message)
        self.settings = settings or []


class InvalidMessageError(SyncError):
    """A queue message or request body does not match its schema; retrying cannot help."""


class TransientError(SyncError):
    """Worth retrying later (throttling, 5xx, timeouts). `retry_after` in seconds when known."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(SyncError):
    """Retrying will not help (400/403/404 from a service, a mapping that cannot apply)."""
