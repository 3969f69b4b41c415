"""Outbound operations (Pega → Exchange), made idempotent by the caller's idempotency key.

`claim_idempotency_key` is an insert-if-absent: the first request with a key records its
operation id, a repeat gets the same id back (and never starts a second write). A repeat with a
different body is refused so a client bug cannot silently reuse a key.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from typing import Any

from shared.errors import SyncError
from shared.storage.errors import AlreadyExistsError
from shared.storage.keys import encode_key
from shared.storage.tables import Entity, Table

OP_RK = "op"
IDEM_PREFIX = "idem|"
CREATE_PREFIX = "create|"  # mailbox|Pega id -> the operation that creates that record in Exchange
END_PREFIX = "end|"  # mailbox|Pega id -> the operation that ends that record (cancel, close)


class IdempotencyConflictError(SyncError):
    """The idempotency key was used before with a different request."""


@dataclass(frozen=True)
class Operation:
    operation_id: str
    mailbox: str
    kind: str  # appointment | email | contact
    action: str  # create | update | cancel | send | reply | reply_all | close
    idempotency_key: str
    request_hash: str
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = "accepted"  # accepted | running | succeeded | failed
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    attempts: int = 0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    etag: str | None = None

    @property
    def settled(self) -> bool:
        """Succeeded, or failed for a reason of its own. An operation failed only because its mailbox
        kept failing past the notification frequency (`gave_up`) is not settled: it runs again when its
        message is replayed (automatically once the mailbox recovers) — its work is late, not wrong."""
        if self.status == "succeeded":
            return True
        err = self.result.get("error") if isinstance(self.result, dict) else None
        return self.status == "failed" and not (isinstance(err, dict) and err.get("code") == "gave_up")

    def to_entity(self) -> Entity:
        return {
            "PartitionKey": encode_key(self.operation_id),
            "RowKey": OP_RK,
            "operation_id": self.operation_id,
            "mailbox": self.mailbox.lower(),
            "kind": self.kind,
            "action": self.action,
            "idempotency_key": self.idempotency_key,
            "request_hash": self.request_hash,
            "payload": json.dumps(self.payload, default=str),
            "status": self.status,
            "result": json.dumps(self.result, default=str),
            "error": self.error,
            "attempts": self.attempts,
            "created_at": self.created_at or dt.datetime.now(dt.UTC),
            "updated_at": dt.datetime.now(dt.UTC),
        }

    @classmethod
    def from_entity(cls, e: Entity) -> Operation:
        return cls(
            operation_id=str(e["operation_id"]),
            mailbox=str(e["mailbox"]),
            kind=str(e["kind"]),
            action=str(e["action"]),
            idempotency_key=str(e["idempotency_key"]),
            request_hash=str(e["request_hash"]),
            payload=json.loads(e.get("payload") or "{}"),
            status=str(e.get("status", "accepted")),
            result=json.loads(e.get("result") or "{}"),
            error=str(e.get("error", "")),
            attempts=int(e.get("attempts", 0)),
            created_at=e.get("created_at"),
            updated_at=e.get("updated_at"),
            etag=e.get("_etag"),
        )


class OperationRepository:
    def __init__(self, table: Table) -> None:
        self._t = table

    async def claim_idempotency_key(self, key: str, *, operation_id: str, request_hash: str) -> tuple[str, bool]:
        """Return (operation id, created). `created` is False when the key was seen before."""
        row = {"PartitionKey": IDEM_PREFIX + encode_key(key), "RowKey": "", "operation_id": operation_id,
               "request_hash": request_hash}
        try:
            await self._t.insert(row)
            return operation_id, True
        except AlreadyExistsError:
            existing = await self._t.get(IDEM_PREFIX + encode_key(key), "")
            if existing is None:  # deleted in between: a fresh claim is correct
                await self._t.insert(row)
                return operation_id, True
            if existing.get("request_hash") != request_hash:
                raise IdempotencyConflictError("idempotency key already used for a different request") from None
            return str(existing["operation_id"]), False

    async def note_create(self, mailbox: str, pega_id: str, operation_id: str) -> None:
        """Remember which operation creates this Pega record in this mailbox: a later change of the
        record that finds no link yet waits for that operation instead of giving up."""
        await self._t.upsert({"PartitionKey": CREATE_PREFIX + encode_key(f"{mailbox.lower()}|{pega_id}"),
                              "RowKey": "", "operation_id": operation_id})

    async def create_of(self, mailbox: str, pega_id: str) -> str | None:
        e = await self._t.get(CREATE_PREFIX + encode_key(f"{mailbox.lower()}|{pega_id}"), "")
        return str(e["operation_id"]) if e else None

    async def note_end(self, mailbox: str, pega_id: str, operation_id: str) -> None:
        """Remember which operation ends (cancels, closes) this Pega record in this mailbox, before it
        runs: a change racing it that finds the Exchange item already gone knows why, even while the
        end's own answer was lost and its link is still active (chaos seed 24)."""
        await self._t.upsert({"PartitionKey": END_PREFIX + encode_key(f"{mailbox.lower()}|{pega_id}"),
                              "RowKey": "", "operation_id": operation_id})

    async def end_of(self, mailbox: str, pega_id: str) -> str | None:
        e = await self._t.get(END_PREFIX + encode_key(f"{mailbox.lower()}|{pega_id}"), "")
        return str(e["operation_id"]) if e else None

    async def get(self, operation_id: str) -> Operation | None:
        e = await self._t.get(encode_key(operation_id), OP_RK)
        return Operation.from_entity(e) if e else None

    async def put(self, op: Operation) -> Operation:
        if op.etag:
            etag = await self._t.replace(op.to_entity(), etag=op.etag)
        else:
            etag = await self._t.upsert(op.to_entity())
        return replace(op, etag=etag)
