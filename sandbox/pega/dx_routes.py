"""DX API v2 under /prweb/api/application/v2: cases, case actions with eTags, data views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.pega.casetypes import CaseTypeBook
from sandbox.pega.dataviews import QueryError, check_count_query, data_view_exists, data_view_rows, run_query
from sandbox.pega.errors import v2_error
from sandbox.pega.faults import Faults
from sandbox.pega.security import bearer_actor
from sandbox.pega.store import Record, Store, iso

BASE = "/prweb/api/application/v2"


def case_info(store: Store, rec: Record) -> dict[str, Any]:
    actions = [{"name": "Edit details", "ID": store.mapping.actions.update, "type": "Case",
                "links": {"open": {"rel": "self", "href": f"/cases/{rec.id}/actions/{store.mapping.actions.update}",
                                   "type": "GET", "title": "Get case action details"}}}]
    if rec.kind == "appointment":
        actions.append({"name": "Cancel appointment", "ID": store.mapping.actions.cancel_appointment, "type": "Case"})
    resolved = rec.status.startswith("Resolved")
    stage_id, stage_label = ("PRIM2", "Resolved") if resolved else ("PRIM1", "Open")
    return {
        "ID": rec.id, "businessID": rec.business_id, "caseTypeID": rec.obj_class, "caseTypeName": rec.kind.title(),
        "name": rec.kind.title(), "status": rec.status, "stageID": stage_id, "stageLabel": stage_label,
        "stages": _stages(rec, stage_id), "sla": {"goal": "", "deadline": ""}, "caseTypeIcon": "cmicons/pycase.svg",
        "owner": rec.created_by, "createdBy": rec.created_by, "lastUpdatedBy": rec.updated_by,
        "createTime": iso(rec.created_at), "lastUpdateTime": iso(rec.updated_at), "urgency": "10",
        "content": {**rec.content, "pxCreateOperator": rec.created_by, "pxUpdateOperator": rec.updated_by,
                    "pxCreateDateTime": iso(rec.created_at), "pxUpdateDateTime": iso(rec.updated_at)},
        "availableActions": [] if rec.status.startswith("Resolved") else actions,
        "assignments": [], "hasNewAttachments": False, "associations": {"follows": False},
    }


def _stages(rec: Record, current: str) -> list[dict[str, Any]]:
    """The case life cycle as recorded DX API v2 responses list it: Create, Open, Resolved."""
    out = []
    for sid, name, transition in (("PRIM0", "Create", "create"), ("PRIM1", "Open", "automatic"),
                                  ("PRIM2", "Resolved", "resolution")):
        order = ("PRIM0", "PRIM1", "PRIM2")
        status = "active" if sid == current else "completed" if order.index(sid) < order.index(current) else "future"
        out.append({"ID": sid, "name": name, "type": "Primary", "transitionType": transition, "visited_status": status,
                    "links": {"open": {"rel": "self", "href": f"/cases/{rec.id}/stages/{sid}", "type": "PUT",
                                       "title": "Jump to this stage"}}})
    return out


def _case_response(store: Store, rec: Record, *, status: int = 200, top_id: bool = False,
                   view_type: str = "none") -> web.Response:
    body: dict[str, Any] = {"data": {"caseInfo": case_info(store, rec),
                                     "referencedUsers": {rec.created_by: {"UserName": rec.created_by}}}}
    if top_id:
        body["ID"] = rec.id
        assignment = f"ASSIGN-WORKLIST {rec.id}!{rec.kind.upper()}_FLOW"
        body["nextAssignmentInfo"] = {
            "context": "self", "className": rec.obj_class, "ID": assignment,
            "links": {"open": {"rel": "self", "href": f"/assignments/{assignment}", "type": "GET",
                               "title": "Get assignment details"}},
        }
    if view_type != "none":
        body["uiResources"] = {"resources": {"views": {}, "fields": {}}, "components": [], "root": {},
                               "context_data": {}, "actionButtons": {}}
    resp = web.json_response(body, status=status)
    resp.headers["etag"] = rec.etag
    return resp


async def _json(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return v2_error(400, "Invalid inputs", "The request body is not valid JSON", code="Error_Invalid_Inputs")
    if not isinstance(body, dict):
        return v2_error(400, "Invalid inputs", "The request body must be a JSON object", code="Error_Invalid_Inputs")
    return body


async def create_case(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    body = await _json(request)
    if isinstance(body, web.Response):
        return body
    store: Store = request.app["store"]
    case_type = body.get("caseTypeID")
    if not case_type:
        return v2_error(400, "Invalid inputs", "caseTypeID is required", field="caseTypeID")
    kind = store.kind_of_case_type(str(case_type))
    if kind is None:
        return v2_error(400, "Invalid inputs", f"Case type {case_type} is not valid", field="caseTypeID",
                        code="Error_Invalid_CaseType")
    content = body.get("content") or {}
    if not isinstance(content, dict):
        return v2_error(400, "Invalid inputs", "content must be an object", field="content")
    book: CaseTypeBook = request.app["casetypes"]
    kept, dropped = book.starting(kind, content)  # real DX v2 drops what AllowedStartingFields lacks, silently
    rec = store.create(kind, kept, actor)
    _note_dropped(request, rec, "create", dropped)
    return _case_response(store, rec, status=201, top_id=True, view_type=request.query.get("viewType", "page"))


def _note_dropped(request: web.Request, rec: Record, verb: str, dropped: list[str]) -> None:
    """Keep the names of dropped fields for /_sim/dropped (never an error to the caller, like Pega)."""
    if dropped:
        request.app["dropped"].append({"caseID": rec.id, "caseTypeID": rec.obj_class, "verb": verb,
                                       "fields": dropped})


async def get_case(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    store: Store = request.app["store"]
    rec = store.get(request.match_info["case_id"])
    if rec is None or rec.kind not in ("appointment", "email", "task"):
        return v2_error(404, "Not found", "The case could not be found", code="Error_Case_Not_Found")
    return _case_response(store, rec, view_type=request.query.get("viewType", "page"))


async def case_action(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    store: Store = request.app["store"]
    faults: Faults = request.app["faults"]
    rec = store.get(request.match_info["case_id"])
    if rec is None or rec.kind not in ("appointment", "email", "task"):
        return v2_error(404, "Not found", "The case could not be found", code="Error_Case_Not_Found")
    action = request.match_info["action_id"]
    m = store.mapping
    if action not in (m.actions.update, m.actions.cancel_appointment) or (
        action == m.actions.cancel_appointment and rec.kind != "appointment"
    ):
        return v2_error(404, "Not found", f"Action {action} is not available for this case", code="Error_Action_Not_Found")
    if rec.status.startswith("Resolved"):
        return v2_error(400, "Invalid inputs", f"Action {action} is not available: the case is resolved",
                        code="Error_Case_Resolved")
    if_match = request.headers.get("If-Match")
    if not if_match:
        return v2_error(412, "Precondition Failed", "If-Match header with the case eTag is required",
                        code="Error_Missing_ETag")
    if faults.take(request.method, request.path, stale=True):
        store.touch(rec)
    if if_match != rec.etag:
        return v2_error(409, "Conflict", "The case was updated by another operation", code="Error_Conflict")
    body = await _json(request)
    if isinstance(body, web.Response):
        return body
    content = body.get("content") or {}
    if not isinstance(content, dict):
        return v2_error(400, "Invalid inputs", "content must be an object", field="content")
    book: CaseTypeBook = request.app["casetypes"]
    changes, dropped = book.for_action(rec.kind, action, content)  # only the fields of the action's view
    _note_dropped(request, rec, f"action:{action}", dropped)
    if action == m.actions.cancel_appointment:
        changes[m.appointment.status] = m.status.appointment_cancelled
    store.update(rec, changes, actor, verb=f"action:{action}")
    return _case_response(store, rec, view_type=request.query.get("viewType", "page"))


async def data_view(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    store: Store = request.app["store"]
    if not data_view_exists(store, request.match_info["data_view_id"]):
        return v2_error(404, "Not found", "The data view could not be found", code="Error_DataView_Not_Found")
    body = await _json(request) if request.can_read_body else {}
    if isinstance(body, web.Response):
        return body
    rows = data_view_rows(store, request.match_info["data_view_id"], body) or []
    try:
        result = run_query(rows, body)
    except (QueryError, TypeError, ValueError) as exc:
        return v2_error(400, "Invalid inputs", str(exc), code="Error_Invalid_Inputs",
                        field=getattr(exc, "field", ""))
    result["fetchDateTime"] = iso_now()
    return web.json_response(result)


async def data_view_count(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    store: Store = request.app["store"]
    if not data_view_exists(store, request.match_info["data_view_id"]):
        return v2_error(404, "Not found", "The data view could not be found", code="Error_DataView_Not_Found")
    body = await _json(request) if request.can_read_body else {}
    if isinstance(body, web.Response):
        return body
    rows = data_view_rows(store, request.match_info["data_view_id"], body) or []
    body.pop("paging", None)
    try:
        check_count_query(body)
        result = run_query(rows, body)
    except (QueryError, TypeError, ValueError) as exc:
        return v2_error(400, "Invalid inputs", str(exc), field=getattr(exc, "field", ""))
    return web.json_response({"fetchDateTime": iso_now(), "resultCount": result["resultCount"],
                              "totalCount": result["resultCount"], "hasMoreResults": False})


def iso_now() -> str:
    return iso(datetime.now(UTC))


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{BASE}/cases", create_case)
    app.router.add_get(f"{BASE}/cases/{{case_id}}", get_case)
    app.router.add_patch(f"{BASE}/cases/{{case_id}}/actions/{{action_id}}", case_action)
    app.router.add_post(f"{BASE}/data_views/{{data_view_id}}", data_view)
    app.router.add_post(f"{BASE}/data_views/{{data_view_id}}/count", data_view_count)

