"""A contract request → a durable, queued Operation (202), or a 4xx that names what is wrong.

Order of checks (cheap and unauthenticated first, nothing stored before all pass):
bearer token (401/403) → Content-Type (415) → size (413) → Idempotency-Key (400) → JSON and
schema (400, `error.field` = dotted path) → path parameters (400) → operator/mailbox (403) →
idempotency claim (409 on a reused key with another body) → body stored (blob when large) →
Operation row (status accepted) → queue message → 202 with the operation id and status URL.

The same Idempotency-Key with the same request returns the first operation (`idempotentReplay`)
and never writes twice. A replay of an operation still `accepted` is queued again: if the first
request's enqueue failed after the row was written, the retry is what gets it moving; the worker
ignores duplicates (it runs an operation only from `accepted`, under an ETag-guarded claim).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.auth import AuthError, BearerValidator
from shared.config import Settings
from shared.contract import (
    IDEMPOTENCY_KEY_HEADER,
    ContractViolation,
    check_idempotency_key,
    json_body,
    validate_request,
)
from shared.errors import TransientError
from shared.ops.privacy import mailbox_id
from shared.outbound.kinds import BY_KIND_ACTION, OpKind, by_operation_id
from shared.outbound.payloads import PayloadStore, canonical_json, fits_inline
from shared.queues.envelope import Envelope
from shared.queues.names import OUTBOUND_OPS
from shared.queues.sender import QueueSender
from shared.storage.mailboxes import Mailbox
from shared.storage.operations import IdempotencyConflictError, Operation
from shared.storage.state import StateStore

log = logging.getLogger(__name__)

ENVELOPE_TYPE = "outbound.operation"
STATUS_PATH = "pega/v1/operations/"
_PEGA_ID_MAX = 255


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A refusal in the contract's Error shape: {"error": {"code", "message", "field"?}}."""

    def __init__(self, status: int, code: str, message: str, *, field: str = "",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = dict(headers or {})

    def response(self) -> ApiResponse:
        detail: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            detail["field"] = self.field
        return ApiResponse(self.status, {"error": detail}, self.headers)


@dataclass
class IntakeContext:
    settings: Settings
    state: StateStore
    queues: QueueSender
    payloads: PayloadStore
    validator: BearerValidator


def header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


# ---------------------------------------------------------------- per-loop singletons

_validators: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BearerValidator] = weakref.WeakKeyDictionary()
_payloads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PayloadStore] = weakref.WeakKeyDictionary()


def validator_for(settings: Settings) -> BearerValidator:
    """One validator (and JWKS cache) per event loop: its aiohttp session is loop-bound."""
    loop = asyncio.get_running_loop()
    v = _validators.get(loop)
    if v is None:
        v = _validators[loop] = BearerValidator.from_settings(settings.api)
    return v


def payload_store_for(settings: Settings) -> PayloadStore:
    loop = asyncio.get_running_loop()
    p = _payloads.get(loop)
    if p is None:
        p = _payloads[loop] = PayloadStore(settings.storage)
    return p


# ---------------------------------------------------------------- checks


async def authenticate(ctx: IntakeContext, headers: Mapping[str, str]) -> None:
    try:
        await ctx.validator.validate(header(headers, "Authorization"))
    except AuthError as exc:
        code = "insufficient_role" if exc.status == 403 else "invalid_token"
        hdrs = {"WWW-Authenticate": exc.www_authenticate}
        raise ApiError(exc.status, code, exc.message, headers=hdrs) from None
    except TransientError as exc:  # the issuer's keys cannot be read right now
        raise ApiError(503, "unavailable", f"cannot validate tokens right now: {exc}",
                       headers={"Retry-After": "5"}) from None


def _check_media_and_size(ctx: IntakeContext, headers: Mapping[str, str], body: bytes) -> None:
    limit = ctx.settings.api.max_body_bytes
    declared = header(headers, "Content-Length")
    if (declared and declared.isdigit() and int(declared) > limit) or len(body) > limit:
        raise ApiError(413, "payload_too_large", f"the request body exceeds {limit} bytes")
    ctype = (header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", "the request body must be application/json",
                       field="Content-Type")


def _parse_json(body: bytes) -> Any:
    """JSON with bounded nesting (deep nesting would raise RecursionError, a 500)."""
    try:
        return json_body.load(body)
    except ContractViolation as exc:
        raise ApiError(400, "invalid_request", exc.message, field=exc.field) from None


def _check_path_params(params: Mapping[str, str]) -> None:
    for name, value in params.items():
        if not value or len(value) > _PEGA_ID_MAX or any(ord(c) < 0x20 for c in value):
            raise ApiError(400, "invalid_request", f"path parameter {name} must be 1-{_PEGA_ID_MAX} characters "
                                                   "without control characters", field=name)


async def resolve_mailbox(state: StateStore, body: Mapping[str, Any], kind: OpKind) -> Mailbox:
    """The onboarded mailbox of the rep named by `operator` (authoritative when given) or `mailbox`
    (403 when unknown, offboarded, or the kind is disabled for it)."""
    operator = body.get("operator")
    upn = str(body.get("mailbox") or "").lower()
    mb: Mailbox | None
    if operator:
        mb = _operators_mailbox(await state.mailboxes.all_by_operator(str(operator)), str(operator), upn)
        if upn and mb.upn.lower() != upn:
            # Pega's operator e-mail may be a primary SMTP address other than the UPN: the operator's
            # onboarded mailbox is authoritative.
            log.info("operator %s: mailbox %s given, onboarded mailbox %s used", mailbox_id(str(operator)),
                     mailbox_id(upn), mailbox_id(mb.upn))
    else:
        mb = await state.mailboxes.get(upn)
        if mb is None:
            raise ApiError(403, "mailbox_not_onboarded", f"mailbox {upn!r} is not onboarded", field="mailbox")
    if not mb.active:
        raise ApiError(403, "mailbox_not_onboarded", f"mailbox {mb.upn!r} is {mb.status}",
                       field="operator" if operator else "mailbox")
    if not mb.enabled(kind.mailbox_kind):
        raise ApiError(403, "sync_disabled", f"{kind.mailbox_kind} sync is disabled for mailbox {mb.upn!r}",
                       field="operator" if operator else "mailbox")
    return mb


def _operators_mailbox(found: list[Mailbox], operator: str, upn: str) -> Mailbox:
    """The one mailbox an operator's request goes to. An active mailbox wins over offboarded rows of
    the same operator; two active mailboxes naming one operator (an onboarding mistake) are never
    guessed between — a write to the wrong rep's mailbox is worse than a refusal — unless the
    request's `mailbox` names one of them."""
    if not found:
        raise ApiError(403, "mailbox_not_onboarded", f"operator {operator!r} has no onboarded mailbox",
                       field="operator")
    active = [m for m in found if m.active]
    if len(active) <= 1:
        return active[0] if active else found[0]
    named = [m for m in active if upn and upn in (m.upn.lower(), m.key.lower())]
    if len(named) == 1:
        return named[0]
    raise ApiError(409, "operator_ambiguous", f"operator {operator!r} is assigned to {len(active)} onboarded "
                   "mailboxes: give `mailbox`, or onboard each rep with their own operator id", field="operator")


def request_hash(operation_id: str, params: Mapping[str, str], body: Any) -> str:
    raw = canonical_json({"operation": operation_id, "params": dict(params), "body": body})
    return hashlib.sha256(raw).hexdigest()


def record_pega_id(kind: OpKind, params: Mapping[str, str], body: Mapping[str, Any]) -> str:
    """The Pega record the operation is about: the path's `pegaId`, else the body's."""
    return str(params.get("pegaId") or body.get("pegaId") or "")


def status_url(base_url: str, operation_id: str) -> str:
    return f"{base_url.rstrip('/')}/{STATUS_PATH}{operation_id}"


def accepted_body(op: Operation, base_url: str, *, replay: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "status": op.status,
                           "statusUrl": status_url(base_url, op.operation_id)}
    if replay:
        out["idempotentReplay"] = True
    return out


# ---------------------------------------------------------------- the two entry points


async def accept(ctx: IntakeContext, *, operation_id: str, headers: Mapping[str, str], body: bytes,
                 params: Mapping[str, str], base_url: str) -> ApiResponse:
    """Handle one write request of the contract (`operation_id` as in openapi.yaml)."""
    kind = by_operation_id(operation_id)
    try:
        await authenticate(ctx, headers)
        _check_media_and_size(ctx, headers, body)
        try:
            key = check_idempotency_key(header(headers, IDEMPOTENCY_KEY_HEADER))
        except ContractViolation as exc:
            raise ApiError(400, "invalid_request", exc.message, field=exc.field) from None
        doc = _parse_json(body)
        try:
            validate_request(operation_id, doc)
        except ContractViolation as exc:
            raise ApiError(400, "invalid_request", exc.message, field=exc.field) from None
        _check_path_params(params)
        mailbox = await resolve_mailbox(ctx.state, doc, kind)
        return await _record(ctx, kind, key, doc, dict(params), mailbox, base_url)
    except ApiError as exc:
        if exc.status >= 500:
            log.warning("%s refused with %s: %s", operation_id, exc.status, exc.message)
        return exc.response()
    except TransientError as exc:  # storage busy or unreachable: nothing half-done is visible, retry
        log.warning("%s not recorded: %s", operation_id, type(exc).__name__)
        return ApiError(503, "unavailable", "the request could not be recorded right now; retry with the same "
                                            "Idempotency-Key", headers={"Retry-After": "5"}).response()


async def _record(ctx: IntakeContext, kind: OpKind, key: str, doc: dict[str, Any], params: dict[str, str],
                  mailbox: Mailbox, base_url: str) -> ApiResponse:
    ops = ctx.state.operations
    rhash = request_hash(kind.operation_id, params, doc)
    try:
        op_id, created = await ops.claim_idempotency_key(key, operation_id=uuid.uuid4().hex, request_hash=rhash)
    except IdempotencyConflictError:
        raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was already used for a different "
                                                      "request", field=IDEMPOTENCY_KEY_HEADER) from None
    if not created:
        existing = await _recorded(ctx, op_id)
        if existing is not None:
            if existing.status == "accepted":
                await _enqueue(ctx, existing.operation_id)
            log.info("idempotent replay of operation %s (%s)", op_id, existing.status)
            return ApiResponse(202, accepted_body(existing, base_url, replay=True),
                               {"Location": status_url(base_url, op_id)})
        # the first request claimed the key but stopped before recording: finish its work now
    pega_id = record_pega_id(kind, params, doc)
    stored: Any = doc
    if not fits_inline(doc):
        stored = await ctx.payloads.put(op_id, doc)
    op = Operation(
        operation_id=op_id, mailbox=mailbox.key, kind=kind.kind, action=kind.action, idempotency_key=key,
        request_hash=rhash, status="accepted",
        payload={"operation": kind.operation_id, "pegaId": pega_id, "params": params,
                 "changedAt": doc.get("changedAt"), "body": stored},
        created_at=dt.datetime.now(dt.UTC),
    )
    op = await ops.put(op)
    if kind.action in ("create", "send", "reply", "reply_all") and pega_id:  # each makes a new Exchange item
        await ops.note_create(mailbox.key, pega_id, op_id)
    elif kind.action in ("cancel", "close") and pega_id:  # each ends the record's Exchange item
        await ops.note_end(mailbox.key, pega_id, op_id)
    await _enqueue(ctx, op_id)
    log.info("accepted %s as operation %s", kind.operation_id, op_id)
    return ApiResponse(202, accepted_body(op, base_url, replay=not created),
                       {"Location": status_url(base_url, op_id)})


async def _recorded(ctx: IntakeContext, op_id: str) -> Operation | None:
    """The operation of a claimed key. A concurrent first request may still be writing it: wait
    briefly rather than write it a second time (which could reset a run already under way)."""
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4):
        await asyncio.sleep(delay)
        found = await ctx.state.operations.get(op_id)
        if found is not None:
            return found
    return None


async def _enqueue(ctx: IntakeContext, operation_id: str) -> None:
    await ctx.queues.send(OUTBOUND_OPS, Envelope(type=ENVELOPE_TYPE, body={"operation_id": operation_id}))


async def status(ctx: IntakeContext, *, headers: Mapping[str, str], operation_id: str) -> ApiResponse:
    """GET /pega/v1/operations/{operationId}."""
    try:
        await authenticate(ctx, headers)
        if not operation_id or len(operation_id) > 64 or not all(c.isalnum() or c in "_-" for c in operation_id):
            raise ApiError(404, "not_found", "no such operation", field="operationId")
        op = await ctx.state.operations.get(operation_id)
        if op is None:
            raise ApiError(404, "not_found", "no such operation", field="operationId")
        return ApiResponse(200, describe(op))
    except ApiError as exc:
        return exc.response()


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value or "")


def describe(op: Operation) -> dict[str, Any]:
    """The contract's Operation shape."""
    kind = BY_KIND_ACTION.get((op.kind, op.action))
    err = op.result.get("error") if op.status == "failed" else None
    if op.status == "failed" and not err:
        err = {"code": "exchange_error", "message": op.error or "failed"}
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "operation": kind.operation_id if kind else f"{op.kind}.{op.action}",
        "pegaId": str(op.payload.get("pegaId") or ""),
        "mailbox": op.mailbox,
        "status": op.status,
        "exchangeId": op.result.get("exchangeId"),
        "reportedToPega": op.result.get("reportedToPega") if op.status == "succeeded" else None,
        "pegaReport": report if isinstance(report := op.result.get("pegaReport"), dict) else None,
        "skipped": str(op.result["skipped"]) if op.status == "succeeded" and op.result.get("skipped") else None,
        "attempts": op.attempts,
        "error": err,
        "createdAt": _iso(op.created_at),
        "updatedAt": _iso(op.updated_at),
    }
    return out
