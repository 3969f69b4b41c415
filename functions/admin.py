"""Admin API (admin/master key): onboard, inspect and offboard mailboxes."""

from __future__ import annotations

import azure.functions as func

from functions.http_util import answering, json_response, problem
from shared.admin.mailboxes import OperatorTakenError, describe, offboard, onboard, parse_request, validate_key
from shared.errors import InvalidMessageError, TransientError
from shared.runtime import services

bp = func.Blueprint()


@bp.function_name("admin_mailbox")
@bp.route(route="admin/mailboxes/{upn}", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_mailbox(req: func.HttpRequest) -> func.HttpResponse:
    upn = req.route_params.get("upn", "")
    try:
        validate_key(upn)
        svc = await services()
        if req.method == "PUT":
            mailbox, created = await onboard(svc, upn, parse_request(req.get_body()))
            return json_response(await describe(svc, mailbox.key), status=201 if created else 200)
        if req.method == "DELETE":
            return func.HttpResponse(status_code=204 if await offboard(svc, upn) else 404)
    except OperatorTakenError as exc:
        return problem(409, str(exc))
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    except TransientError as exc:
        return problem(503, f"try again later: {type(exc).__name__}")
    found = await describe(svc, upn)
    return json_response(found) if found else problem(404, "mailbox is not onboarded")


@bp.function_name("admin_mailboxes")
@bp.route(route="admin/mailboxes", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_mailboxes(req: func.HttpRequest) -> func.HttpResponse:
    svc = await services()
    out = [await describe(svc, m.key) for m in await svc.state.mailboxes.list(active_only=False)]
    return json_response({"mailboxes": out})


@bp.function_name("admin_doctor")
@bp.route(route="admin/doctor", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answering
async def admin_doctor(req: func.HttpRequest) -> func.HttpResponse:
    """The readiness checklist (shared.admin.doctor); `?probe=0` writes no Pega probe records.
    200 whatever the verdict: `ok` and each check's status are in the body."""
    from shared.admin.doctor import run_doctor

    svc = await services()
    report = await run_doctor(svc, probe=req.params.get("probe") != "0")
    return json_response(report.as_dict())
