"""Items parked by a delta round, retried on their own — one bad item never blocks a mailbox.

When one item of a page cannot be gathered or applied, the round records it (a failures row,
listed in health until resolved) and moves on; the cursor advances past the page. The item itself
is retried by a `delta.item` message: read as it is NOW (GET by immutable id, so a later edit or a
deletion is seen), planned and applied alone, under the same round lease as any round of that
mailbox and kind. Transient failures back off through the queue (at most ITEM_MAX_ATTEMPTS
tries); a permanent failure, or the last try, dead-letters the message — replayable from the dead
letters, which gives the item a fresh set of tries. Success deletes the failures row.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import describe as describe_error
from shared.runtime import Services
from shared.storage.deadletters import DeadLetter
from shared.storage.failures import DEAD_LETTERED, INBOUND, RETRYING, Failure
from shared.storage.leases import LeaseBusyError

log = logging.getLogger(__name__)

LEASE_WAIT_MIN, LEASE_WAIT_MAX = 2.0, 8.0  # seconds a retry waits for a running round of its mailbox and kind

ENVELOPE_TYPE = "delta.item"
ITEM_MAX_ATTEMPTS = 8
MAX_BACKOFF = 300.0


def backoff(attempts: int) -> float:
    return float(min(MAX_BACKOFF, 2 ** max(1, attempts)))


def item_envelope(mailbox: str, kind: str, folder: str, item_id: str) -> Envelope:
    return Envelope(type=ENVELOPE_TYPE, body={"mailbox": mailbox.lower(), "kind": kind, "folder": folder,
                                              "item_id": item_id})


async def park(services: Services, *, mailbox: str, kind: str, folder: str, item_id: str, stage: str,
               error: BaseException) -> None:
    """Record the failed item and schedule its retry (or dead-letter it at once when retrying cannot
    help). Called before the round saves its cursor, so a parked item is never lost."""
    cause = describe_error(error)
    transient = isinstance(error, TransientError)
    failure = await services.state.failures.record(Failure(
        mailbox=mailbox, direction=INBOUND, kind=kind, item_id=item_id, stage=stage, cause=cause,
        status=RETRYING if transient else DEAD_LETTERED, folder=folder, exchange_id=item_id))
    envelope = item_envelope(mailbox, kind, folder, item_id)
    if transient:
        delay = max(1.0, float(getattr(error, "retry_after", None) or 0.0), backoff(failure.attempts))
        await services.queues.send(names.DELTA_WORK, envelope, delay_seconds=int(delay + 0.999))
        return
    await services.state.deadletters.add(DeadLetter(queue=names.DELTA_WORK, message_id=envelope.id,
                                                    message=envelope.dumps(), cause=cause, attempts=1))


async def retry_item(services: Services, envelope: Envelope, *, context: Any = None) -> str:
    """Handle one `delta.item` message. Returns what happened (for logs and tests); raises a
    TransientError (deferred by the queue) or PermanentError (dead-lettered) when it fails again."""
    from shared.sync.inbound import run_item

    body = envelope.body
    mailbox, kind, folder, item_id = (str(body.get(k) or "") for k in ("mailbox", "kind", "folder", "item_id"))
    if not (mailbox and kind in ("email", "calendar", "contacts") and item_id):
        raise PermanentError("delta.item needs body.mailbox, body.kind (email|calendar|contacts) and body.item_id")
    failures = services.state.failures
    current = await failures.get(mailbox, INBOUND, kind, item_id)
    if current is not None and current.status == DEAD_LETTERED:
        # replayed from the dead letters: a fresh set of tries
        await failures.resolve(mailbox, INBOUND, kind, item_id)
        current = None
    try:
        outcome = await run_item(services, mailbox=mailbox, kind=kind, folder=folder, item_id=item_id,
                                 context=context)
    except LeaseBusyError as exc:
        # A round of this mailbox and kind is running: wait for it (not a failed try). Rounds take well
        # under a second, so a few seconds, jittered — the lease's remaining life (up to its 30 s) made
        # the retry come back just as the next timer-driven rounds started, again and again (chaos seed 104).
        raise LeaseBusyError(str(exc), retry_after=random.uniform(LEASE_WAIT_MIN, LEASE_WAIT_MAX)) from exc
    except Exception as exc:
        cause = describe_error(exc)
        transient = isinstance(exc, TransientError)
        row = await failures.record(Failure(
            mailbox=mailbox, direction=INBOUND, kind=kind, item_id=item_id, stage="retry", cause=cause,
            status=RETRYING, folder=folder, exchange_id=item_id))
        if transient and row.attempts < ITEM_MAX_ATTEMPTS:
            delay = max(float(getattr(exc, "retry_after", None) or 0.0), backoff(row.attempts))
            raise TransientError(cause, retry_after=delay) from exc
        await failures.mark(mailbox, INBOUND, kind, item_id, status=DEAD_LETTERED, cause=cause)
        log.warning("parked %s item dead-lettered after %s tries: %s", kind, row.attempts, type(exc).__name__)
        raise PermanentError(f"item {item_id[-12:]} of {kind} failed {row.attempts} times: {cause}") from exc
    await failures.resolve(mailbox, INBOUND, kind, item_id)
    return outcome
