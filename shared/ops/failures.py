"""Failed items and operations for operators: list them, retry them, dismiss them.

Every row of the failures table (shared.storage.failures) is listed in the mailbox's health until
it is resolved: by its own retry succeeding, by an operator's retry here, or by an operator's
dismissal (a record that should not sync, say). Retry does what the kind of failure needs:
- an inbound item → its `delta.item` message again (read as it is now, planned, applied);
- a failed operation → back to `accepted` with a fresh set of tries, and its message again;
- a refused Exchange-id report → an `outbound.report` message (only the report is repeated).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shared.errors import InvalidMessageError
from shared.ops.privacy import sanitize_error
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.failures import INBOUND, OPERATION, PEGA_REPORT, Failure
from shared.sync.item_retry import item_envelope


def view(f: Failure) -> dict[str, Any]:
    return {"key": f.key, "direction": f.direction, "kind": f.kind, "item_id": f.item_id, "stage": f.stage,
            "status": f.status, "cause": sanitize_error(f.cause), "attempts": f.attempts,
            "exchange_id": f.exchange_id, "pega_id": f.pega_id,
            "first_failed_at": f.first_failed_at.isoformat() if f.first_failed_at else None,
            "last_failed_at": f.last_failed_at.isoformat() if f.last_failed_at else None}


async def _key(services: Services, upn: str) -> str:
    mailbox = await services.state.mailboxes.get(upn)
    if mailbox is None:
        raise InvalidMessageError("upn: mailbox is not onboarded")
    return mailbox.key


async def list_failures(services: Services, upn: str) -> list[dict[str, Any]]:
    rows = await services.state.failures.for_mailbox(await _key(services, upn))
    return [view(f) for f in sorted(rows, key=lambda f: (f.kind, f.last_failed_at or f.first_failed_at or 0))]


async def _find(services: Services, upn: str, key: str) -> Failure:
    parts = key.split("|", 2)
    if len(parts) != 3 or not all(parts):
        raise InvalidMessageError("key: expected '<direction>|<kind>|<id>' as listed in the mailbox's failures")
    found = await services.state.failures.get(await _key(services, upn), parts[0], parts[1], parts[2])
    if found is None:
        raise InvalidMessageError("key: no such failure for this mailbox (resolved already?)")
    return found


async def retry(services: Services, upn: str, key: str) -> dict[str, Any]:
    f = await _find(services, upn, key)
    if f.direction == INBOUND:
        await services.queues.send(names.DELTA_WORK, item_envelope(f.mailbox, f.kind, f.folder, f.item_id))
        return {"key": key, "retry": "item re-read and synced"}
    if f.stage == OPERATION:
        op = await services.state.operations.get(f.item_id)
        if op is None:
            await services.state.failures.resolve(f.mailbox, f.direction, f.kind, f.item_id)
            raise InvalidMessageError("key: the operation no longer exists")
        if op.status == "failed":
            await services.state.operations.put(dataclasses.replace(op, status="accepted", attempts=0))
        await services.queues.send(names.OUTBOUND_OPS, Envelope(type="outbound.operation",
                                                                body={"operation_id": op.operation_id}))
        return {"key": key, "retry": "operation run again"}
    if f.stage == PEGA_REPORT:
        from shared.outbound.worker import REPORT_ENVELOPE

        await services.queues.send(names.OUTBOUND_OPS, Envelope(type=REPORT_ENVELOPE, body={
            "mailbox": f.mailbox, "kind": f.kind, "pega_id": f.pega_id, "exchange_id": f.exchange_id}))
        return {"key": key, "retry": "Exchange id reported to Pega again"}
    raise InvalidMessageError("key: this failure cannot be retried; dismiss it")


async def dismiss(services: Services, upn: str, key: str) -> dict[str, Any]:
    f = await _find(services, upn, key)
    await services.state.failures.resolve(f.mailbox, f.direction, f.kind, f.item_id)
    return {"key": key, "dismissed": True}
