"""Sales Automation API v1 under /prweb/api/v1: authenticate, and create/get/update of
contacts, organizations, leads, accounts and opportunities with `{"content": {...}}` bodies.

The exact SA URLs were not retrievable (wire-shapes §15), so entity routes are modelled on v1
generic cases: POST returns 201 `{ID, nextAssignmentID, pxObjClass}` with an eTag; PUT needs
`If-Match` (missing -> 403 Pega_API_020, stale -> 412 Pega_API_021) and returns 204 with a new
eTag; unknown ids -> 404 Pega_API_011.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.pega.errors import v1_error
from sandbox.pega.faults import Faults
from sandbox.pega.security import basic_actor
from sandbox.pega.store import Store, iso

BASE = "/prweb/api/v1"


async def authenticate(request: web.Request) -> web.Response:
    actor = basic_actor(request)
    if isinstance(actor, web.Response):
        return actor
    return web.Response(status=200, text="", content_type="text/plain")


async def _content(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return v1_error(400, "Pega_API_005", "The request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        return v1_error(400, "Pega_API_006", "The request body must be {\"content\": {...}}")
    return body["content"]


def _kind(request: web.Request) -> str | None:
    return request.app["store"].kind_of_sa_path(request.match_info["entity"])


async def create_entity(request: web.Request) -> web.Response:
    actor = basic_actor(request)
    if isinstance(actor, web.Response):
        return actor
    kind = _kind(request)
    if kind is None:
        return v1_error(404, "Pega_API_010", "Unknown resource")
    content = await _content(request)
    if isinstance(content, web.Response):
        return content
    store: Store = request.app["store"]
    rec = store.create(kind, content, actor)
    resp = web.json_response({"ID": rec.id, "nextAssignmentID": "", "pxObjClass": "Pega-API-CaseManagement-Case"},
                             status=201)
    resp.headers["etag"] = rec.etag
    return resp


async def get_entity(request: web.Request) -> web.Response:
    actor = basic_actor(request)
    if isinstance(actor, web.Response):
        return actor
    kind = _kind(request)
    store: Store = request.app["store"]
    rec = store.get(request.match_info["record_id"])
    if kind is None or rec is None or rec.kind != kind:
        return v1_error(404, "Pega_API_011", "The requested resource could not be found")
    resp = web.json_response({
        "ID": rec.id, "pxObjClass": rec.obj_class, "caseTypeID": rec.obj_class, "status": rec.status,
        "createTime": iso(rec.created_at), "createdBy": rec.created_by,
        "lastUpdateTime": iso(rec.updated_at), "lastUpdatedBy": rec.updated_by,
        "content": {**rec.content, "pyID": rec.business_id, "pzInsKey": rec.id},
    })
    resp.headers["etag"] = rec.etag
    return resp


async def update_entity(request: web.Request) -> web.Response:
    actor = basic_actor(request)
    if isinstance(actor, web.Response):
        return actor
    kind = _kind(request)
    store: Store = request.app["store"]
    faults: Faults = request.app["faults"]
    rec = store.get(request.match_info["record_id"])
    if kind is None or rec is None or rec.kind != kind:
        return v1_error(404, "Pega_API_011", "The requested resource could not be found")
    if_match = request.headers.get("If-Match")
    if not if_match:
        return v1_error(403, "Pega_API_020", "If-Match header is required")
    if faults.take(request.method, request.path, stale=True):
        store.touch(rec)
    if if_match != rec.etag:
        return v1_error(412, "Pega_API_021", "Unauthorized access: If-Match does not match ETag")
    content = await _content(request)
    if isinstance(content, web.Response):
        return content
    store.update(rec, content, actor, append_lists=True)
    resp = web.Response(status=204)
    resp.headers["etag"] = rec.etag
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/authenticate", authenticate)
    app.router.add_post(f"{BASE}/{{entity}}", create_entity)
    app.router.add_get(f"{BASE}/{{entity}}/{{record_id}}", get_entity)
    app.router.add_put(f"{BASE}/{{entity}}/{{record_id}}", update_entity)
