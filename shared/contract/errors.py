"""The one error of the contract layer: a request that does not match it, naming the field."""

from __future__ import annotations

from shared.errors import InvalidMessageError


class ContractViolation(InvalidMessageError):
    """A request does not match the contract. `field` is a dotted path (or a header name)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
