"""GET /api/health (anonymous): is storage reachable, which version, sandbox or real."""

from __future__ import annotations

import json

import azure.functions as func

from shared.health_check import check

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    report = await check()
    return func.HttpResponse(json.dumps(report.as_dict()), status_code=200 if report.ok else 503,
                             mimetype="application/json")
