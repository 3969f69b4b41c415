"""The HTTP contract Pega calls (openapi.yaml): nine writes and the operation status. Thin: every
check, the durable record and the enqueue live in shared.outbound.intake.

Routes come from openapi.yaml through shared.contract, so the contract and the registered routes
cannot drift (tests/sync_outbound/test_routes.py compares them).
"""

from __future__ import annotations

import json

import azure.functions as func

from functions.http_util import NOSNIFF
from shared.contract import function_route, operation
from shared.outbound.intake import (
    ApiResponse,
    IntakeContext,
    accept,
    payload_store_for,
    status,
    validator_for,
)
from shared.runtime import services

bp = func.Blueprint()


def _route(operation_id: str) -> str:
    return function_route(operation(operation_id).path)


def _methods(operation_id: str) -> list[str]:
    return [operation(operation_id).method]


async def _context() -> IntakeContext:
    svc = await services()
    return IntakeContext(settings=svc.settings, state=svc.state, queues=svc.queues,
                         payloads=payload_store_for(svc.settings), validator=validator_for(svc.settings))


def _base_url(req: func.HttpRequest) -> str:
    """The API base (…/api) of this request, for the status URL (works behind any host name)."""
    url = req.url.split("?", 1)[0]
    cut = url.find("/pega/v1/")
    return url[:cut] if cut >= 0 else url.rstrip("/")


def _http(resp: ApiResponse) -> func.HttpResponse:
    body = json.dumps(resp.body) if resp.body is not None else None
    return func.HttpResponse(body, status_code=resp.status, headers={**NOSNIFF, **resp.headers},
                             mimetype="application/json")


async def _write(operation_id: str, req: func.HttpRequest) -> func.HttpResponse:
    ctx = await _context()
    resp = await accept(ctx, operation_id=operation_id, headers=dict(req.headers), body=req.get_body(),
                        params=dict(req.route_params), base_url=_base_url(req))
    return _http(resp)


@bp.function_name("pega_create_appointment")
@bp.route(route=_route("createAppointment"), methods=_methods("createAppointment"), auth_level=func.AuthLevel.FUNCTION)
async def pega_create_appointment(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("createAppointment", req)


@bp.function_name("pega_update_appointment")
@bp.route(route=_route("updateAppointment"), methods=_methods("updateAppointment"), auth_level=func.AuthLevel.FUNCTION)
async def pega_update_appointment(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("updateAppointment", req)


@bp.function_name("pega_cancel_appointment")
@bp.route(route=_route("cancelAppointment"), methods=_methods("cancelAppointment"), auth_level=func.AuthLevel.FUNCTION)
async def pega_cancel_appointment(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("cancelAppointment", req)


@bp.function_name("pega_send_email")
@bp.route(route=_route("sendEmail"), methods=_methods("sendEmail"), auth_level=func.AuthLevel.FUNCTION)
async def pega_send_email(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("sendEmail", req)


@bp.function_name("pega_reply_email")
@bp.route(route=_route("replyToEmail"), methods=_methods("replyToEmail"), auth_level=func.AuthLevel.FUNCTION)
async def pega_reply_email(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("replyToEmail", req)


@bp.function_name("pega_reply_all_email")
@bp.route(route=_route("replyAllToEmail"), methods=_methods("replyAllToEmail"), auth_level=func.AuthLevel.FUNCTION)
async def pega_reply_all_email(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("replyAllToEmail", req)


@bp.function_name("pega_create_contact")
@bp.route(route=_route("createContact"), methods=_methods("createContact"), auth_level=func.AuthLevel.FUNCTION)
async def pega_create_contact(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("createContact", req)


@bp.function_name("pega_update_contact")
@bp.route(route=_route("updateContact"), methods=_methods("updateContact"), auth_level=func.AuthLevel.FUNCTION)
async def pega_update_contact(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("updateContact", req)


@bp.function_name("pega_close_contact")
@bp.route(route=_route("closeContact"), methods=_methods("closeContact"), auth_level=func.AuthLevel.FUNCTION)
async def pega_close_contact(req: func.HttpRequest) -> func.HttpResponse:
    return await _write("closeContact", req)


@bp.function_name("pega_operation_status")
@bp.route(route=_route("getOperation"), methods=_methods("getOperation"), auth_level=func.AuthLevel.FUNCTION)
async def pega_operation_status(req: func.HttpRequest) -> func.HttpResponse:
    ctx = await _context()
    resp = await status(ctx, headers=dict(req.headers), operation_id=req.route_params.get("operationId", ""))
    return _http(resp)
