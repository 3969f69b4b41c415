"""Operations API (admin/master key) and the incident timer. Thin: shared/ops does the work.

Routes (all under /api, auth level ADMIN):
- GET  admin/health                         tenant-wide summary
- GET  admin/mailboxes/{upn}/health         one mailbox, per kind
- GET  admin/mailboxes/{upn}/dryrun?kind=&max_pages=   what the next round would sync / exclude and why
- POST admin/mailboxes/{upn}/resync         {"kind": "email"} → a full resync round is enqueued
- GET  admin/deadletters?queue=&mailbox=&include_replayed=1
- GET  admin/deadletters/{queue}/{id}       one dead letter (content fields redacted)
- POST admin/deadletters/replay             {"queue","id"} | {"mailbox"} | {"all": true}
Timer `ops_incidents` every minute: open / re-notify / close incidents (shared.ops.incidents).
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from functions.http_util import json_response, problem
from shared.admin.mailboxes import validate_upn
from shared.contract import json_body
from shared.contract.errors import ContractViolation
from shared.errors import InvalidMessageError
from shared.ops import actions, deadletters, health, incidents, telemetry
from shared.runtime import Services, services

bp = func.Blueprint()
log = logging.getLogger(__name__)


async def _svc() -> Services:
    svc = await services()
    telemetry.configure(svc.settings)
    return svc


def _body(req: func.HttpRequest) -> dict[str, Any]:
    """The JSON object of an admin request: bounded nesting, valid Unicode text (400 otherwise)."""
    try:
        doc = json_body.load(req.get_body() or b"{}")
        json_body.check_text(doc)
    except ContractViolation as exc:
        raise InvalidMessageError(f"body: {exc.message}") from None
    if not isinstance(doc, dict):
        raise InvalidMessageError("body: must be a JSON object")
    return doc


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


@bp.function_name("admin_health")
@bp.route(route="admin/health", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(await health.tenant_health(await _svc()))


@bp.function_name("admin_mailbox_health")
@bp.route(route="admin/mailboxes/{upn}/health", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_mailbox_health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        upn = validate_upn(req.route_params.get("upn", ""))
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    found = await health.mailbox_health(await _svc(), upn)
    return json_response(found) if found else problem(404, "mailbox is not onboarded")


@bp.function_name("admin_mailbox_dryrun")
@bp.route(route="admin/mailboxes/{upn}/dryrun", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_mailbox_dryrun(req: func.HttpRequest) -> func.HttpResponse:
    try:
        result = await actions.dry_run(await _svc(), req.route_params.get("upn", ""), req.params.get("kind", ""),
                                       max_pages=actions.parse_max_pages(req.params.get("max_pages")))
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    return json_response(result)


@bp.function_name("admin_mailbox_resync")
@bp.route(route="admin/mailboxes/{upn}/resync", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
async def admin_mailbox_resync(req: func.HttpRequest) -> func.HttpResponse:
    try:
        result = await actions.resync(await _svc(), req.route_params.get("upn", ""), str(_body(req).get("kind", "")))
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    return json_response(result, status=202)


@bp.function_name("admin_deadletters")
@bp.route(route="admin/deadletters", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_deadletters(req: func.HttpRequest) -> func.HttpResponse:
    letters = await deadletters.list_letters(await _svc(), queue=req.params.get("queue") or None,
                                             mailbox=req.params.get("mailbox") or None,
                                             include_replayed=_flag(req.params.get("include_replayed")))
    return json_response({"count": len(letters), "deadletters": [v.as_dict() for v in letters]})


@bp.function_name("admin_deadletter")
@bp.route(route="admin/deadletters/{queue}/{id}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_deadletter(req: func.HttpRequest) -> func.HttpResponse:
    found = await deadletters.inspect(await _svc(), req.route_params.get("queue", ""), req.route_params.get("id", ""))
    return json_response(found) if found else problem(404, "no such dead letter")


@bp.function_name("admin_deadletters_replay")
@bp.route(route="admin/deadletters/replay", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
async def admin_deadletters_replay(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = _body(req)
        report = await deadletters.replay(await _svc(), queue=body.get("queue") or None,
                                          message_id=body.get("id") or None, mailbox=body.get("mailbox") or None,
                                          all_letters=body.get("all") is True)
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    return json_response(report.as_dict())


@bp.function_name("ops_incidents")
@bp.timer_trigger(arg_name="timer", schedule="30 * * * * *", run_on_startup=False)
async def ops_incidents(timer: func.TimerRequest) -> None:
    """Every minute: incidents open (one failure notice), re-notify after a failed send, close (one recovery)."""
    done = await incidents.evaluate_all(await _svc())
    if done:
        log.info("incident evaluation: %s", [f"{e.kind}:{e.action}" for e in done])
