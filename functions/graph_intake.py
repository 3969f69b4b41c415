"""Graph change-notification and lifecycle intake (HTTP). Answers well inside Graph's 3 s."""

from __future__ import annotations

import asyncio
import logging

import azure.functions as func

from functions.http_util import json_response, problem
from shared.errors import InvalidMessageError
from shared.ops.telemetry import server_span
from shared.runtime import services
from shared.sync.notifications import (
    accept_change_notifications,
    accept_lifecycle_notifications,
    parse_change_notifications,
    parse_lifecycle_notifications,
)

bp = func.Blueprint()
log = logging.getLogger(__name__)

BUDGET_SECONDS = 2.5  # Graph counts > 2.9 s as slow; leave room for the network


def _validation(req: func.HttpRequest) -> func.HttpResponse | None:
    token = req.params.get("validationToken")
    if token is None:
        return None
    # The token arrives URL-encoded in the query; params are already decoded, echo as plain text.
    return func.HttpResponse(token, status_code=200, mimetype="text/plain")


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    try:
        items = parse_change_notifications(req.get_body())
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    svc = await services()
    with server_span("POST graph/notifications", notifications=len(items)):
        try:
            result = await asyncio.wait_for(accept_change_notifications(svc, items), BUDGET_SECONDS)
        except TimeoutError:
            log.error("notification intake exceeded its budget; asking Graph to retry")
            return problem(503, "not stored in time")
    return json_response(result.as_dict(), status=202)


@bp.function_name("graph_lifecycle")
@bp.route(route="graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    try:
        items = parse_lifecycle_notifications(req.get_body())
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    try:
        svc = await services()
        result = await asyncio.wait_for(accept_lifecycle_notifications(svc, items), BUDGET_SECONDS)
    except TimeoutError:
        return problem(503, "not stored in time")
    return json_response(result.as_dict(), status=202)
