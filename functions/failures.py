"""Failed items and operations of a mailbox (admin/master key). Thin: shared/ops/failures does the work.

- GET  admin/mailboxes/{upn}/failures                 every failure still listed, with its cause
- POST admin/mailboxes/{upn}/failures/retry   {"key"}  retry one (item, operation or id report)
- POST admin/mailboxes/{upn}/failures/dismiss {"key"}  stop listing it
"""

from __future__ import annotations

import json

import azure.functions as func

from functions.http_util import json_response, problem
from shared.admin.mailboxes import validate_key
from shared.errors import InvalidMessageError
from shared.ops import failures
from shared.runtime import services

bp = func.Blueprint()


def _key(req: func.HttpRequest) -> str:
    try:
        doc = json.loads(req.get_body() or b"{}")
    except (ValueError, RecursionError):
        raise InvalidMessageError("body: not JSON") from None
    key = doc.get("key") if isinstance(doc, dict) else None
    if not isinstance(key, str) or not key:
        raise InvalidMessageError("key: required (a failure's key as listed)")
    return key


@bp.function_name("admin_mailbox_failures")
@bp.route(route="admin/mailboxes/{upn}/failures", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def admin_mailbox_failures(req: func.HttpRequest) -> func.HttpResponse:
    try:
        upn = validate_key(req.route_params.get("upn", ""))
        rows = await failures.list_failures(await services(), upn)
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    return json_response({"count": len(rows), "failures": rows})


@bp.function_name("admin_mailbox_failure_action")
@bp.route(route="admin/mailboxes/{upn}/failures/{action}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
async def admin_mailbox_failure_action(req: func.HttpRequest) -> func.HttpResponse:
    action = req.route_params.get("action", "")
    if action not in ("retry", "dismiss"):
        return problem(404, "action: expected retry or dismiss")
    try:
        upn = validate_key(req.route_params.get("upn", ""))
        svc = await services()
        result = await (failures.retry if action == "retry" else failures.dismiss)(svc, upn, _key(req))
    except InvalidMessageError as exc:
        return problem(400, str(exc))
    return json_response(result, status=202 if action == "retry" else 200)
