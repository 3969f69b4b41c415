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

from functions.http_util import answering, json_response, problem
from shared.admin.mailboxes import validate_key
from shared.contract import json_body
from shared.contract.errors import ContractViolation
from shared.errors import InvalidMessageError
from shared.ops import actions, deadletters, health, incidents, telemetry
from shared.runtime import Services, services

bp = func.Blueprint()
log = logging.getLogger(__name__)
_MAX_NAME = 256  # queue names, message ids and mailbox filters are far shorter; keys allow 1 KiB


async def _svc() -> Services:
    svc = await services()
    telemetry.configure(svc.settings)
    return svc


def _text(value: Any, name: str, *, required: bool = False, empty_is_absent: bool = False) -> str | None:
    """A route, query or body value that names something: a string of valid text, 1-256
    characters without control characters (a table key could not hold more, nor should it)."""
    if value is None or (value == "" and empty_is_absent):
        if required:
            raise InvalidMessageError(f"{name}: required")
        return None
    if (not isinstance(value, str) or not 1 <= len(value) <= _MAX_NAME or not json_body.is_text(value)
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)):
        raise InvalidMessageError(f"{name}: must be text of 1-{_MAX_NAME} characters without control characters")
    return value


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


def _flag(value: str | None, name: str) -> bool:
    """A yes/no query parameter: absent is no; given, it must say which."""
    if value is None:
        return False
    flag = value.lower()
    if flag not in ("0", "1", "true", "false", "yes", "no"):
        raise InvalidMessageError(f"{name}: must be 1/0, true/false or yes/no")
    return flag in ("1", "true", "yes")


@bp.function_name("admin_health")
@bp.route(route="admin/health", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(await health.tenant_health(await _svc()))


@bp.function_name("admin_mailbox_health")
@bp.route(route="admin/mailboxes/{upn}/health", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_mailbox_health(req: func.HttpRequest) -> func.HttpResponse:
    upn = validate_key(req.route_params.get("upn", ""))
    found = await health.mailbox_health(await _svc(), upn)
    return json_response(found) if found else problem(404, "mailbox is not onboarded")


@bp.function_name("admin_mailbox_dryrun")
@bp.route(route="admin/mailboxes/{upn}/dryrun", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_mailbox_dryrun(req: func.HttpRequest) -> func.HttpResponse:
    result = await actions.dry_run(await _svc(), req.route_params.get("upn", ""), req.params.get("kind", ""),
                                   max_pages=actions.parse_max_pages(req.params.get("max_pages")))
    return json_response(result)


@bp.function_name("admin_mailbox_resync")
@bp.route(route="admin/mailboxes/{upn}/resync", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_mailbox_resync(req: func.HttpRequest) -> func.HttpResponse:
    kind = _text(_body(req).get("kind"), "kind", required=True) or ""
    result = await actions.resync(await _svc(), req.route_params.get("upn", ""), kind)
    return json_response(result, status=202)


@bp.function_name("admin_deadletters")
@bp.route(route="admin/deadletters", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_deadletters(req: func.HttpRequest) -> func.HttpResponse:
    include_replayed = _flag(req.params.get("include_replayed"), "include_replayed")
    letters = await deadletters.list_letters(await _svc(),
                                             queue=_text(req.params.get("queue"), "queue", empty_is_absent=True),
                                             mailbox=_text(req.params.get("mailbox"), "mailbox", empty_is_absent=True),
                                             include_replayed=include_replayed)
    return json_response({"count": len(letters), "deadletters": [v.as_dict() for v in letters]})


@bp.function_name("admin_deadletter")
@bp.route(route="admin/deadletters/{queue}/{id}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_deadletter(req: func.HttpRequest) -> func.HttpResponse:
    queue = _text(req.route_params.get("queue"), "queue", required=True) or ""
    message_id = _text(req.route_params.get("id"), "id", required=True) or ""
    found = await deadletters.inspect(await _svc(), queue, message_id)
    return json_response(found) if found else problem(404, "no such dead letter")


@bp.function_name("admin_deadletters_replay")
@bp.route(route="admin/deadletters/replay", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_deadletters_replay(req: func.HttpRequest) -> func.HttpResponse:
    body = _body(req)
    report = await deadletters.replay(await _svc(), queue=_text(body.get("queue"), "queue"),
                                      message_id=_text(body.get("id"), "id"),
                                      mailbox=_text(body.get("mailbox"), "mailbox"),
                                      all_letters=body.get("all") is True)
    return json_response(report.as_dict())


@bp.function_name("ops_incidents")
@bp.timer_trigger(arg_name="timer", schedule="30 * * * * *", run_on_startup=False)
async def ops_incidents(timer: func.TimerRequest) -> None:
    """Every minute: incidents open (one failure notice), re-notify after a failed send, close (one recovery)."""
    done = await incidents.evaluate_all(await _svc())
    if done:
        log.info("incident evaluation: %s", [f"{e.kind}:{e.action}" for e in done])
