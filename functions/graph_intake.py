"""Graph change-notification and lifecycle intake (HTTP). Answers well inside Graph's 3 s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import azure.functions as func

from functions.http_util import NOSNIFF, json_response, problem
from shared.errors import InvalidMessageError, TransientError
from shared.ops.telemetry import server_span
from shared.runtime import Services, services
from shared.sync.notifications import (
    IntakeResult,
    accept_change_notifications,
    accept_lifecycle_notifications,
    parse_change_notifications,
    parse_lifecycle_notifications,
)

bp = func.Blueprint()
log = logging.getLogger(__name__)

BUDGET_SECONDS = 2.5  # Graph counts > 2.9 s as slow; leave room for the network
T = TypeVar("T")


def _validation(req: func.HttpRequest) -> func.HttpResponse | None:
    token = req.params.get("validationToken")
    if token is None:
        return None
    # The token arrives URL-encoded in the query; params are already decoded, echo as plain text
    # (nosniff: a browser must never render the echoed text as anything but text).
    return func.HttpResponse(token, status_code=200, mimetype="text/plain", headers=dict(NOSNIFF))


async def _within_budget(accept: Callable[[Services], Awaitable[T]]) -> T:
    """`accept` with the service objects, all inside the budget — the cold start included. The
    cold start is shielded: a request that runs out of time leaves it to finish for the next one."""
    async def run() -> T:
        svc = await asyncio.shield(services())
        return await accept(svc)

    return await asyncio.wait_for(run(), BUDGET_SECONDS)


async def _intake(what: str, accept: Callable[[Services], Awaitable[IntakeResult]]) -> func.HttpResponse:
    try:
        result = await _within_budget(accept)
    except TimeoutError:
        log.error("%s intake exceeded its budget; asking Graph to retry", what)
        return problem(503, "not stored in time", headers={"Retry-After": "5"})
    except TransientError as exc:
        log.error("%s intake could not store: %s", what, type(exc).__name__)
        return problem(503, "storage unavailable", headers={"Retry-After": "5"})
    return json_response(result.as_dict(), status=202)


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    try:
        batch = parse_change_notifications(req.get_body())
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    with server_span("POST graph/notifications", notifications=len(batch.items)):
        return await _intake("notification", lambda svc: accept_change_notifications(svc, batch))


@bp.function_name("graph_lifecycle")
@bp.route(route="graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    try:
        batch = parse_lifecycle_notifications(req.get_body())
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    return await _intake("lifecycle", lambda svc: accept_lifecycle_notifications(svc, batch))
