"""One queue message → one run of an accepted operation, with its failure rules.

State machine of an Operation: accepted → running → succeeded | failed (and back to accepted
when a run must be retried). A run starts only from `accepted`, by an ETag-guarded write to
`running`, under a short lease renewed by a heartbeat while the executor works
(shared.storage.leases): duplicate messages (replays, host retries) never run an operation twice
at once, however long a run takes (a large upload); a `running` operation whose lease is still
renewed defers the duplicate, one whose worker died is taken over within SYNC_LEASE_SECONDS (the
recovery timer re-enqueues it, shared.sync.recovery). Outcomes:

- success → succeeded with the result (exchangeId, ...), mailbox health records a success, the
  payload blob (if any) is deleted;
- PermanentError (Graph 400/403/404, a body that cannot apply) → failed with the reason, visible
  in GET /operations/{id} and listed in the mailbox's health (failures) until an operator retries
  or dismisses it; the message is then done (never dead-lettered silently, never retried
  uselessly). A Pega answer to the id report never fails an operation whose Exchange side is done
  (shared.outbound.common.report_to_pega);
- TransientError (429/5xx/timeouts) → back to accepted and re-raised with a delay (Graph's
  Retry-After, else an exponential backoff): run_message re-enqueues the message invisible for
  that long; after MAX_ATTEMPTS runs the operation fails;
- anything else → back to accepted and re-raised (host retry), failed after MAX_UNEXPECTED runs
  (before the host's maxDequeueCount would poison the message and leave the operation hanging).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shared.errors import InvalidMessageError, PermanentError, TransientError
from shared.graph.errors import GraphThrottledError
from shared.outbound import appointments, contacts, emails
from shared.outbound.common import NotLinkedYet, OutboundRequest, ReportTarget, WaitingForCreate, report_to_pega
from shared.outbound.context import WorkerContext
from shared.outbound.intake import ENVELOPE_TYPE
from shared.outbound.kinds import by_kind_action
from shared.outbound.payloads import is_blob_ref
from shared.pega.models import RecordKind
from shared.queues.envelope import Envelope
from shared.storage.errors import ConcurrencyError
from shared.storage.failures import FAILED, OPERATION, OUTBOUND, Failure
from shared.storage.health import record_failure, record_success
from shared.storage.leases import Lease
from shared.storage.operations import Operation
from shared.sync.timezones import parse_iso_utc

log = logging.getLogger(__name__)

Executor = Callable[[WorkerContext, OutboundRequest], Awaitable[dict[str, Any]]]

EXECUTORS: dict[tuple[str, str], Executor] = {
    ("appointment", "create"): appointments.create,
    ("appointment", "update"): appointments.update,
    ("appointment", "cancel"): appointments.cancel,
    ("email", "send"): emails.send,
    ("email", "reply"): emails.reply,
    ("email", "reply_all"): emails.reply_all,
    ("contact", "create"): contacts.create,
    ("contact", "update"): contacts.update,
    ("contact", "close"): contacts.close,
}

OP_SCOPE = "op"
REPORT_ENVELOPE = "outbound.report"  # shared.ops.failures: repeat a refused Exchange-id report
MAX_ATTEMPTS = 30
MAX_UNEXPECTED = 3
MAX_BACKOFF = 300
HEALTH_QUIET = 60.0  # seconds: successes within this of the last recorded one are not written
THROTTLED_WAIT = 5.0  # seconds, when a 429 names no Retry-After


def is_throttling(exc: BaseException) -> bool:
    """A service said "later" (HTTP 429): waiting as told is no failed attempt of the operation."""
    return isinstance(exc, GraphThrottledError) or (isinstance(exc, TransientError)
                                                    and getattr(exc, "status", None) == 429)


def backoff(attempts: int) -> float:
    """Seconds before retrying an operation that failed transiently without a Retry-After."""
    return float(min(MAX_BACKOFF, 2 ** max(1, attempts)))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _load_request(ctx: WorkerContext, op: Operation) -> OutboundRequest:
    p = op.payload
    body = p.get("body")
    if is_blob_ref(body):
        body = await ctx.payloads.get(body)
    if not isinstance(body, dict):
        raise PermanentError("the stored request body is not an object")
    return OutboundRequest(op=op, operation_id=str(p.get("operation") or by_kind_action(op.kind, op.action).operation_id),
                           pega_id=str(p.get("pegaId") or ""), params=dict(p.get("params") or {}), body=body,
                           changed_at=parse_iso_utc(p.get("changedAt")))


async def _claim(ctx: WorkerContext, op: Operation) -> Operation | None:
    """accepted → running (attempts+1) if nobody else did first; None if another run owns it."""
    try:
        return await ctx.state.operations.put(dataclasses.replace(op, status="running", attempts=op.attempts + 1))
    except ConcurrencyError:
        return None


async def _finish(ctx: WorkerContext, op: Operation, **changes: Any) -> Operation:
    """Write the outcome; re-read and re-apply if the row moved under us (a replay re-enqueued it) —
    unless another run settled it meanwhile: a run that took over an operation whose first run only
    looked dead (its lease expired by the clock) must not write `accepted` over that run's `succeeded`
    (chaos seed 434); the settled row is returned as it is."""
    for _ in range(5):
        try:
            return await ctx.state.operations.put(dataclasses.replace(op, **changes))
        except ConcurrencyError:
            fresh = await ctx.state.operations.get(op.operation_id)
            if fresh is None:
                raise
            if fresh.settled:
                log.info("operation %s was settled by another run (%s); this run's outcome is dropped",
                         op.operation_id, fresh.status)
                return fresh
            op = fresh
    raise TransientError("the operation row keeps changing", retry_after=1.0)


async def _health(ctx: WorkerContext, op: Operation, change: Any) -> None:
    try:
        kind = by_kind_action(op.kind, op.action).mailbox_kind
        await ctx.state.health.update(op.mailbox, kind, change)
    except Exception as exc:  # health is bookkeeping: never fail the operation over it
        log.warning("could not update health of %s: %s", op.mailbox, type(exc).__name__)


async def op_lease(ctx: WorkerContext, operation_id: str) -> Lease:
    table = await ctx.state.tables.ensure(ctx.state.tables.names.roundlease)
    return Lease(table, OP_SCOPE, operation_id, duration=dt.timedelta(seconds=ctx.settings.sync.lease_seconds),
                 data={"operation_id": operation_id})


async def run_operation(ctx: WorkerContext, operation_id: str) -> str:
    """Run one operation; returns its status afterwards (or raises for a retry)."""
    op = await ctx.state.operations.get(operation_id)
    if op is None:
        raise PermanentError(f"operation {operation_id} does not exist")
    if op.settled:
        return op.status
    lease = await op_lease(ctx, operation_id)
    # a live run elsewhere renews its lease: LeaseBusyError (transient, with Retry-After) defers this duplicate
    async with lease.held():
        return await _run_claimed(ctx, operation_id)


async def _run_claimed(ctx: WorkerContext, operation_id: str) -> str:
    op = await ctx.state.operations.get(operation_id)  # re-read under the lease
    if op is None:
        raise PermanentError(f"operation {operation_id} does not exist")
    if op.settled:
        return op.status
    if op.status == "running":
        op = dataclasses.replace(op, status="accepted")  # the previous run died (its lease expired): take over
    elif op.status == "failed":  # given up during an incident, replayed after it: a fresh set of attempts
        op = dataclasses.replace(op, status="accepted", attempts=0)
    claimed = await _claim(ctx, op)
    if claimed is None:
        raise TransientError(f"operation {operation_id} was claimed concurrently", retry_after=2.0)
    op = claimed
    executor = EXECUTORS.get((op.kind, op.action))
    try:
        if executor is None:
            raise PermanentError(f"no executor for {op.kind}.{op.action}")
        mb = await ctx.state.mailboxes.get(op.mailbox)
        if mb is None or not mb.active:
            raise PermanentError(f"mailbox {op.mailbox} was offboarded after the request was accepted")
        req = await _load_request(ctx, op)
        result = await executor(ctx, req)
    except PermanentError as exc:
        await _fail(ctx, op, exc)
        return "failed"
    except (WaitingForCreate, GraphThrottledError) as exc:
        # waiting — for another operation, or for Graph's Retry-After — is not an attempt of this one: its
        # budget stays whole (a throttling storm used to exhaust it: "retries_exhausted" for work that was
        # never refused). The notification-frequency guard still bounds how long a mailbox may keep failing.
        await _finish(ctx, op, status="accepted", attempts=max(0, op.attempts - 1),
                      error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    except TransientError as exc:
        if is_throttling(exc):
            # Pega's 429 is the same "later" as Graph's: no attempt spent, and no backoff that grows
            # with them (chaos seeds 130, 132: seven 1-s throttles then one 502 meant a 256 s wait)
            await _finish(ctx, op, status="accepted", attempts=max(0, op.attempts - 1),
                          error=f"{type(exc).__name__}: {exc}"[:1000])
            if exc.retry_after is None:
                raise TransientError(str(exc), retry_after=THROTTLED_WAIT) from exc
            raise
        if op.attempts >= MAX_ATTEMPTS:
            await _fail(ctx, op, exc, code="retries_exhausted")
            return "failed"
        await _finish(ctx, op, status="accepted", error=f"{type(exc).__name__}: {exc}"[:1000])
        if not isinstance(exc, NotLinkedYet | GraphThrottledError):
            await _health(ctx, op, record_failure(str(exc), throttled=False, transient=True))
        if exc.retry_after is None:
            # retry through a delayed re-enqueue (bounded by MAX_ATTEMPTS), not the host's quick
            # dequeue retries, which end in the poison queue with the operation left `accepted`
            raise TransientError(str(exc), retry_after=backoff(op.attempts)) from exc
        raise
    except Exception as exc:
        if op.attempts >= MAX_UNEXPECTED:
            await _fail(ctx, op, exc, code="internal_error")
            return "failed"
        await _finish(ctx, op, status="accepted", error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    if req.duplicates:
        result = {**result, "duplicatePegaRecords": list(req.duplicates)}
    retried = bool(op.error) or op.attempts > 1
    await _finish(ctx, op, status="succeeded", result=result, error="")
    if retried:  # an operator's retry of a failed operation (or a run after failures): nothing left to show
        await ctx.state.failures.resolve(op.mailbox, OUTBOUND, _mailbox_kind(op), op.operation_id)
    await _success_health(ctx, op)
    body = op.payload.get("body")
    if is_blob_ref(body):
        await ctx.payloads.delete(body)
    if result.get("skipped"):  # done without a write: say why (a fixed phrase of the executor, no content)
        log.info("operation %s (%s.%s) succeeded without a write: %s", op.operation_id, op.kind, op.action,
                 result["skipped"])
    elif result.get("patched") == []:  # field names only
        log.info("operation %s (%s.%s) succeeded without a write: nothing differed (to Pega %s, withheld %s, "
                 "already decided %s)", op.operation_id, op.kind, op.action, result.get("toPega"),
                 result.get("withheld"), result.get("alreadyDecided"))
    else:
        log.info("operation %s (%s.%s) succeeded", op.operation_id, op.kind, op.action)
    return "succeeded"


def _mailbox_kind(op: Operation) -> str:
    return by_kind_action(op.kind, op.action).mailbox_kind


async def _success_health(ctx: WorkerContext, op: Operation) -> None:
    """Record a success, but not once per operation of a burst: all of a mailbox's operations share
    one health row, and 20 concurrent ETag-guarded writes to it mostly collide. A success changes
    what an operator sees only after a failure or once the last recorded success is getting old."""
    try:
        kind = by_kind_action(op.kind, op.action).mailbox_kind
        current = await ctx.state.health.get(op.mailbox, kind)
    except Exception as exc:
        log.warning("could not read health of %s: %s", op.mailbox, type(exc).__name__)
        return
    fresh = current.last_success_at is not None and (_now() - current.last_success_at).total_seconds() < HEALTH_QUIET
    if current.consecutive_failures == 0 and fresh:
        return
    await _health(ctx, op, record_success(synced=1))


def _code_of(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    name = type(exc).__module__
    if "graph" in name:
        return "exchange_error"
    if "pega" in name:
        return "pega_error"
    return "invalid_request" if status == 400 else "operation_failed"


async def _fail(ctx: WorkerContext, op: Operation, exc: BaseException, *, code: str = "") -> None:
    message = f"{exc}"[:1000] or type(exc).__name__
    detail = {"code": code or _code_of(exc), "message": message}
    result: dict[str, Any] = {**op.result, "error": detail}
    # health first: whoever sees the operation failed also finds it listed (until retried or dismissed)
    await _health(ctx, op, record_failure(message))
    await _record_failed(ctx, op, message)
    await _finish(ctx, op, status="failed", error=message, result=result)
    log.warning("operation %s (%s.%s) failed: %s", op.operation_id, op.kind, op.action, detail["code"])


async def _record_failed(ctx: WorkerContext, op: Operation, message: str) -> None:
    try:
        await ctx.state.failures.record(Failure(
            mailbox=op.mailbox, direction=OUTBOUND, kind=_mailbox_kind(op), item_id=op.operation_id,
            stage=OPERATION, cause=f"{op.kind}.{op.action}: {message}", status=FAILED,
            pega_id=str(op.payload.get("pegaId") or "")))
    except Exception as exc:  # the operation row still says failed; never lose that over bookkeeping
        log.warning("could not list failed operation %s: %s", op.operation_id, type(exc).__name__)


async def give_up(ctx: WorkerContext, operation_id: str, exc: BaseException) -> None:
    """The ops guard gave up on the mailbox (failing longer than the notification frequency) and
    dead-letters the message: the operation must say so too, not stay `accepted`."""
    op = await ctx.state.operations.get(operation_id)
    if op is None or op.status in ("succeeded", "failed"):
        return
    message = f"{exc}"[:1000] or type(exc).__name__
    await _record_failed(ctx, op, message)
    await _finish(ctx, op, status="failed", error=message,
                  result={**op.result, "error": {"code": "gave_up", "message": message}})


def queue_handlers(services: Any, ctx: WorkerContext, *, clock: Any = None, notifier: Any = None
                   ) -> dict[str, Callable[[Envelope], Awaitable[None]]]:
    """The `handlers` for run_message on `outbound-ops`: ops tracing, metrics and the notification-
    frequency guard (shared.ops.hooks) around run_operation; when the guard gives up on the mailbox
    (and the message becomes a dead letter) the operation is marked failed with that reason.
    `services` is shared.runtime.services or a Services; `clock`/`notifier` are for tests."""
    from shared.ops.hooks import outbound_handlers
    from shared.ops.incidents import GaveUpError

    async def run(envelope: Envelope) -> str:
        return await run_operation(ctx, operation_id_of(envelope))

    guarded = outbound_handlers(services, run, clock=clock, notifier=notifier)[ENVELOPE_TYPE]

    async def handle(envelope: Envelope) -> None:
        try:
            await guarded(envelope)
        except GaveUpError as exc:
            await give_up(ctx, operation_id_of(envelope), exc)
            raise

    async def report(envelope: Envelope) -> None:
        await repeat_report(ctx, envelope)

    return {ENVELOPE_TYPE: handle, REPORT_ENVELOPE: report}


async def repeat_report(ctx: WorkerContext, envelope: Envelope) -> None:
    """An operator's retry of a refused Exchange-id report (shared.ops.failures): only the report."""
    body = envelope.body
    mailbox, kind, pega_id, exchange_id = (str(body.get(k) or "") for k in ("mailbox", "kind", "pega_id",
                                                                             "exchange_id"))
    record_kind = {"calendar": RecordKind.APPOINTMENT, "email": RecordKind.EMAIL}.get(kind, RecordKind.CONTACT)
    if not (mailbox and pega_id and exchange_id):
        raise InvalidMessageError("outbound.report needs body.mailbox, body.pega_id and body.exchange_id")
    result = await report_to_pega(ctx, ReportTarget(mailbox, pega_id), record_kind, exchange_id)
    if result.get("reportedToPega") or result.get("pegaReport") == "case_resolved":
        await ctx.state.failures.resolve(mailbox, OUTBOUND, kind, pega_id)


def operation_id_of(envelope: Envelope) -> str:
    if envelope.type != ENVELOPE_TYPE:
        raise InvalidMessageError(f"unexpected message type {envelope.type!r}")
    value = envelope.body.get("operation_id")
    if not isinstance(value, str) or not value:
        raise InvalidMessageError("the message has no operation_id")
    return value
