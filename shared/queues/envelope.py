"""The versioned JSON envelope every queue message carries.

A schema'd envelope lets a worker tell "malformed, dead-letter now with the reason" from "valid
but failed, let the host retry", and carries what travels with work across the queue: a stable
id (for failure notes and dedupe), the trace context, and when the work was first requested
(for end-to-end latency).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidMessageError

SCHEMA_VERSION = 1


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    created: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    traceparent: str | None = Field(default=None, max_length=128)
    attempt: int = Field(default=0, ge=0, le=1000)
    body: dict[str, Any] = Field(default_factory=dict)

    def dumps(self) -> str:
        return self.model_dump_json()

    @classmethod
    def loads(cls, text: str | bytes) -> Envelope:
        """Parse and validate; InvalidMessageError says precisely what is wrong."""
        try:
            raw = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessageError(f"message is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidMessageError("message is not a JSON object")
        if raw.get("v") != SCHEMA_VERSION:
            raise InvalidMessageError(f"unsupported envelope version {raw.get('v')!r} (expected {SCHEMA_VERSION})")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "envelope"
            raise InvalidMessageError(f"invalid envelope field '{where}': {first.get('msg')}") from None


def json_schema() -> dict[str, Any]:
    return Envelope.model_json_schema()
