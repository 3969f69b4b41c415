"""The sync-service contract (pega-service.openapi.yaml) as the Pega side would implement it with
Service REST rules, under /prweb/api/ExchangeSync/v1 (PEGA_SERVICE_PATH).

What a real implementation does in Pega, the simulator does in its store: an upsert finds the record
by its external id and creates or updates it in one step (atomic: the simulator's event loop runs one
request at a time; in Pega, a lock on the external id, docs/pega-service.md); neutral JSON is mapped
to the mapping's properties (the Pega side's data transforms); a resolved case is left alone; a closed
contact is reopened; `ifMatch` guards the caller's merge; contacts close through the Close action with
CloseComments. Errors are `{"error": {"code", "message", "field"}}` with HTTP 400/404/412.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.pega.security import bearer_actor
from sandbox.pega.store import Actor, Record, Store, iso
from shared.pega.adapter import BATCH_LIMIT
from shared.pega.convert import changed_fields, from_content, get_path, leaves, set_path, to_content
from shared.pega.models import AppointmentData, ContactData, EmailData
from shared.pega.service import CONTRACT_VERSION, from_json, to_json

BASE = "/prweb/api/ExchangeSync/v1"

_KINDS = {"appointments": "appointment", "emails": "email", "contacts": "contact"}
_DATA = {"appointment": AppointmentData, "email": EmailData, "contact": ContactData}
OPERATIONS = [
    "GET /about", "GET /parties", "GET /opportunities/open", "POST /lookups/external-ids",
    "POST /lookups/internet-message-ids", "POST /{kind}/upsert", "GET /{kind}/{id}", "GET /records/{id}/status",
    "POST /appointments/{id}/cancel", "POST /contacts/{id}/close", "POST /contacts/{id}/adopt",
    "PUT /{kind}/{id}/external-id",
]


def _err(status: int, code: str, message: str, field: str = "") -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "field": field}}, status=status)


def _item_error(status: int, code: str, message: str, field: str = "") -> dict[str, Any]:
    return {"status": status, "code": code, "message": message, "field": field}


def _fields(store: Store, kind: str) -> Any:
    m = store.mapping
    return {"appointment": m.appointment, "email": m.email, "contact": m.contact}[kind]


def _content(store: Store, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Pega side's data transform: neutral JSON -> the class's properties."""
    record = from_json(_DATA[kind], data)
    return to_content(record, _fields(store, kind), attendee_fields=store.mapping.attendee)


def _neutral(store: Store, rec: Record) -> dict[str, Any]:
    record = from_content(_DATA[rec.kind], rec.content, _fields(store, rec.kind), attendee_fields=store.mapping.attendee)
    return to_json(record)


def _ext_prop(store: Store, kind: str) -> str:
    return str(_fields(store, kind).external_id)


def _by_external_id(store: Store, kind: str, external_id: str) -> Record | None:
    prop = _ext_prop(store, kind)
    return next((r for r in store.of_kind(kind) if r.content.get(prop) == external_id), None)


def _closed(store: Store, rec: Record) -> bool:
    if rec.kind == "contact":
        return rec.status == store.mapping.status.contact_closed
    return rec.status.startswith("Resolved")


def _answer(store: Store, rec: Record) -> dict[str, Any]:
    return {"id": rec.id, "class": rec.obj_class, "status": rec.status, "version": rec.etag,
            "updatedAt": iso(rec.updated_at), "externalId": rec.content.get(_ext_prop(store, rec.kind)),
            rec.kind: _neutral(store, rec)}


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return _err(400, "invalid_json", "the body is not JSON")
    if not isinstance(body, dict):
        return _err(400, "invalid_body", "the body must be a JSON object")
    return body


def upsert_one(store: Store, kind: str, item: Any, actor: Actor) -> dict[str, Any]:
    """One item of a batch: find by knownId or externalId, then create, update or leave alone."""
    if not isinstance(item, dict) or not isinstance(item.get("externalId"), str) or not item["externalId"]:
        return {"error": _item_error(400, "invalid_item", "externalId is required", "externalId")}
    ext = item["externalId"]
    data = item.get(kind)
    if not isinstance(data, dict):
        return {"externalId": ext, "error": _item_error(400, "invalid_item", f"{kind} must be an object", kind)}
    extra = item.get("extra") or {}
    if not isinstance(extra, dict):
        return {"externalId": ext, "error": _item_error(400, "invalid_item", "extra must be an object", "extra")}
    try:
        content = {**_content(store, kind, data), **extra}
    except (TypeError, ValueError) as exc:
        return {"externalId": ext, "error": _item_error(400, "invalid_item", str(exc), kind)}
    rec = None
    known = item.get("knownId")
    if isinstance(known, str) and known:
        found = store.get(known)
        rec = found if found is not None and found.kind == kind else None
    if rec is None:
        rec = _by_external_id(store, kind, ext)
    if rec is not None and item.get("ifMatch") and item["ifMatch"] != rec.etag:
        return {"externalId": ext, "id": rec.id,
                "error": _item_error(412, "version_changed", "the record changed since ifMatch", "ifMatch")}
    ext_prop = _ext_prop(store, kind)
    if rec is None and item.get("mustExist") is True:
        return {"externalId": ext, "error": _item_error(404, "not_found", "no such record (mustExist)", "knownId")}
    if rec is None:
        content[ext_prop] = ext
        created = store.create(kind, content, actor)
        return {"externalId": ext, "id": created.id, "action": "created", "version": created.etag}
    if kind != "contact" and _closed(store, rec):
        return {"externalId": ext, "id": rec.id, "action": "skipped_resolved", "version": rec.etag}
    changes = changed_fields(rec.content, content)
    if kind == "contact" and _closed(store, rec):
        changes[store.mapping.contact.status] = store.mapping.status.contact_active
    if not rec.content.get(ext_prop):
        changes[ext_prop] = ext
    if not changes:
        return {"externalId": ext, "id": rec.id, "action": "unchanged", "version": rec.etag}
    store.update(rec, changes, actor, verb=f"action:{store.mapping.actions.update}")
    return {"externalId": ext, "id": rec.id, "action": "updated", "version": rec.etag}


async def upsert(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    kind = _KINDS.get(request.match_info["collection"])
    if kind is None:
        return _err(404, "unknown_collection", "no such collection")
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH_LIMIT:
        return _err(400, "invalid_items", f"items must hold 1 to {BATCH_LIMIT} entries", "items")
    store: Store = request.app["store"]
    return web.json_response({"results": [upsert_one(store, kind, it, actor) for it in items]})


def _record(request: web.Request, kind: str | None) -> Record | web.Response:
    rec = request.app["store"].get(request.match_info["record_id"])
    if rec is None or (kind is not None and rec.kind != kind):
        return _err(404, "not_found", "no such record")
    return rec


async def get_record(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    kind = _KINDS.get(request.match_info["collection"])
    if kind is None:
        return _err(404, "unknown_collection", "no such collection")
    rec = _record(request, kind)
    if isinstance(rec, web.Response):
        return rec
    return web.json_response(_answer(request.app["store"], rec))


async def record_status(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    rec = _record(request, None)
    if isinstance(rec, web.Response):
        return rec
    return web.json_response({"id": rec.id, "status": rec.status, "version": rec.etag})


async def cancel(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    rec = _record(request, "appointment")
    if isinstance(rec, web.Response):
        return rec
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    store: Store = request.app["store"]
    m = store.mapping
    if not rec.status.startswith("Resolved"):
        changes: dict[str, Any] = {m.appointment.status: m.status.appointment_cancelled}
        if body.get("reason"):
            changes[m.appointment.body] = str(body["reason"])
        store.update(rec, changes, actor, verb=f"action:{m.actions.cancel_appointment}")
    return web.json_response({"id": rec.id, "status": rec.status, "version": rec.etag})


async def close_contact(request: web.Request) -> web.Response:
    """SA closes a contact with its Close action and CloseComments (never a status write)."""
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    rec = _record(request, "contact")
    if isinstance(rec, web.Response):
        return rec
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    store: Store = request.app["store"]
    m = store.mapping
    if rec.status != m.status.contact_closed:
        store.update(rec, {m.contact.status: m.status.contact_closed,
                           "CloseComments": str(body.get("closeComments") or "")}, actor, verb="action:Close")
    return web.json_response({"id": rec.id, "status": rec.status, "version": rec.etag})


async def adopt_contact(request: web.Request) -> web.Response:
    """Fill only what the contact lacks; stamp the external id only where there is none yet."""
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    rec = _record(request, "contact")
    if isinstance(rec, web.Response):
        return rec
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ext = body.get("externalId")
    if not isinstance(ext, str) or not ext or not isinstance(body.get("contact"), dict):
        return _err(400, "invalid_body", "externalId and contact are required", "externalId")
    store: Store = request.app["store"]
    ext_prop = _ext_prop(store, "contact")
    content = _content(store, "contact", body["contact"])
    fill: dict[str, Any] = {}
    for name, value in leaves(content):
        if value not in (None, "") and get_path(rec.content, name) in (None, "") and name != ext_prop:
            set_path(fill, name, value)
    if rec.content.get(ext_prop) in (None, ""):
        fill[ext_prop] = ext
    action = "unchanged"
    if fill:
        store.update(rec, fill, actor)
        action = "updated"
    return web.json_response({"externalId": ext, "id": rec.id, "action": action, "version": rec.etag})


async def report_external_id(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    kind = _KINDS.get(request.match_info["collection"])
    if kind is None:
        return _err(404, "unknown_collection", "no such collection")
    rec = _record(request, kind)
    if isinstance(rec, web.Response):
        return rec
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ext = body.get("externalId")
    if not isinstance(ext, str) or not ext:
        return _err(400, "invalid_body", "externalId is required", "externalId")
    store: Store = request.app["store"]
    store.update(rec, {_ext_prop(store, kind): ext}, actor)
    return web.json_response({"id": rec.id, "version": rec.etag})


async def lookup_external_ids(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    kind, ids = body.get("kind"), body.get("externalIds")
    if kind not in _DATA:
        return _err(400, "invalid_kind", "kind must be appointment, email or contact", "kind")
    if not isinstance(ids, list) or not 1 <= len(ids) <= BATCH_LIMIT:
        return _err(400, "invalid_ids", f"externalIds must hold 1 to {BATCH_LIMIT} ids", "externalIds")
    store: Store = request.app["store"]
    prop, wanted = _ext_prop(store, kind), set(ids)
    found = {r.content[prop]: r.id for r in store.of_kind(kind) if r.content.get(prop) in wanted}
    return web.json_response({"found": found})


async def lookup_internet_message_ids(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ids = body.get("internetMessageIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= BATCH_LIMIT:
        return _err(400, "invalid_ids", f"internetMessageIds must hold 1 to {BATCH_LIMIT} ids", "internetMessageIds")
    store: Store = request.app["store"]
    prop, wanted = store.mapping.email.internet_message_id, set(ids)
    found: dict[str, str] = {}
    for r in store.of_kind("email"):
        if r.content.get(prop) in wanted:
            found.setdefault(r.content[prop], r.id)
    return web.json_response({"found": found})


async def parties(request: web.Request) -> web.Response:
    """`?email=`: the operator, the active contact and the lead with this address; `?domain=`: the
    organization. Case-insensitive, like the SA party search."""
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    store: Store = request.app["store"]
    m = store.mapping
    email, domain = request.query.get("email", "").lower(), request.query.get("domain", "").lower().lstrip("@")
    if not email and not domain:
        return _err(400, "missing_query", "email or domain is required", "email")
    out: dict[str, Any] = {"contact": None, "lead": None, "organization": None, "operator": None}
    if email:
        op = next((o for o in store.operators.values() if o.email.lower() == email), None)
        if op is not None:
            out["operator"] = {"id": f"DATA-ADMIN-OPERATOR-ID {op.operator_id.upper()}", "operatorId": op.operator_id}
        contact = next((r for r in store.of_kind("contact") if str(get_path(r.content, m.contact.email) or "").lower() == email
                        and r.status != m.status.contact_closed), None)
        if contact is not None:
            out["contact"] = {"id": contact.id, "organizationId": contact.content.get(m.contact.organization_id)}
        lead = next((r for r in store.of_kind("lead") if str(r.content.get(m.lead.email) or "").lower() == email), None)
        if lead is not None:
            out["lead"] = {"id": lead.id}
    if domain:
        org = next((r for r in store.of_kind("organization")
                    if str(r.content.get(m.organization.domain) or "").lower() == domain), None)
        if org is not None:
            out["organization"] = {"id": org.id}
    return web.json_response(out)


async def open_opportunity(request: web.Request) -> web.Response:
    """The most recently updated open opportunity of the organization, else of the contact."""
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    store: Store = request.app["store"]
    f, open_values = store.mapping.opportunity, set(store.mapping.status.opportunity_open_values)
    opps = sorted((r for r in store.of_kind("opportunity") if r.content.get(f.status) in open_values),
                  key=lambda r: r.updated_at, reverse=True)
    for prop, value in ((f.organization_id, request.query.get("organizationId")),
                        (f.contact_id, request.query.get("contactId"))):
        if value:
            hit = next((r for r in opps if r.content.get(prop) == value), None)
            if hit is not None:
                return web.json_response({"opportunity": {"id": hit.id, "name": hit.content.get(f.name)}})
    return web.json_response({"opportunity": None})


async def about(request: web.Request) -> web.Response:
    actor = bearer_actor(request)
    if isinstance(actor, web.Response):
        return actor
    return web.json_response({"contractVersion": CONTRACT_VERSION, "batchLimit": BATCH_LIMIT,
                              "operations": OPERATIONS})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{BASE}/about", about)
    r.add_get(f"{BASE}/parties", parties)
    r.add_get(f"{BASE}/opportunities/open", open_opportunity)
    r.add_post(f"{BASE}/lookups/external-ids", lookup_external_ids)
    r.add_post(f"{BASE}/lookups/internet-message-ids", lookup_internet_message_ids)
    r.add_get(f"{BASE}/records/{{record_id}}/status", record_status)
    r.add_post(f"{BASE}/appointments/{{record_id}}/cancel", cancel)
    r.add_post(f"{BASE}/contacts/{{record_id}}/close", close_contact)
    r.add_post(f"{BASE}/contacts/{{record_id}}/adopt", adopt_contact)
    r.add_post(f"{BASE}/{{collection}}/upsert", upsert)
    r.add_put(f"{BASE}/{{collection}}/{{record_id}}/external-id", report_external_id)
    r.add_get(f"{BASE}/{{collection}}/{{record_id}}", get_record)
