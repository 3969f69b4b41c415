"""The /_sim/ control API: act as a rep in the Pega UI, inspect and reset state, inject faults,
count requests, configure and observe the outbound calls. Documented in docs/pega-simulator.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.pega.casetypes import CaseTypeBook
from sandbox.pega.config import SimConfig
from sandbox.pega.faults import Faults
from sandbox.pega.outbound import Outbound
from sandbox.pega.security import TokenBook
from sandbox.pega.seed import seed
from sandbox.pega.store import Actor, Record, Store


def _err(status: int, message: str, field: str = "") -> web.Response:
    return web.json_response({"error": {"message": message, "field": field}}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="body must be JSON") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _rep(store: Store, body: dict[str, Any]) -> Actor:
    operator = str(body.get("operator") or "")
    if operator not in store.operators:
        raise web.HTTPBadRequest(text=f"operator must be one of {sorted(store.operators)}")
    return Actor(operator=operator, channel="ui")


def _content(body: dict[str, Any]) -> dict[str, Any]:
    content = body.get("content", {})
    if not isinstance(content, dict):
        raise web.HTTPBadRequest(text="content must be an object of Pega properties")
    return dict(content)


def _record(store: Store, record_id: str, kind: str) -> Record:
    rec = store.get(record_id)
    if rec is None or rec.kind != kind:
        raise web.HTTPNotFound(text=f"no {kind} {record_id}")
    return rec


def _answer(rec: Record, status: int = 200) -> web.Response:
    return web.json_response(rec.dump(), status=status)


# ------------------------------------------------------------------ rep actions (Pega UI)

async def rep_create_appointment(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    actor = _rep(store, body)
    content = _content(body)
    content.setdefault(store.mapping.appointment.operator, actor.operator)
    return _answer(store.create("appointment", content, actor), 201)


async def rep_update_appointment(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    rec = _record(store, request.match_info["record_id"], "appointment")
    return _answer(store.update(rec, _content(body), _rep(store, body), verb=f"action:{store.mapping.actions.update}"))


async def rep_cancel_appointment(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    rec = _record(store, request.match_info["record_id"], "appointment")
    m = store.mapping
    changes: dict[str, Any] = {m.appointment.status: m.status.appointment_cancelled}
    if body.get("reason"):
        changes[m.appointment.body] = str(body["reason"])
    return _answer(store.update(rec, changes, _rep(store, body), verb=f"action:{m.actions.cancel_appointment}"))


async def rep_send_email(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    actor = _rep(store, body)
    f = store.mapping.email
    content = _content(body)
    content.setdefault(f.operator, actor.operator)
    content.setdefault(f.direction, store.mapping.status.email_outbound)
    content.setdefault(f.sender, store.operators[actor.operator].email)
    return _answer(store.create("email", content, actor), 201)


def _reply(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        store: Store = request.app["store"]
        body = await _body(request)
        actor = _rep(store, body)
        original = _record(store, request.match_info["record_id"], "email")
        f = store.mapping.email
        content = _content(body)
        subject = str(original.content.get(f.subject) or "")
        content.setdefault(f.subject, subject if subject.lower().startswith("re:") else f"RE: {subject}")
        content.setdefault(f.operator, actor.operator)
        content.setdefault(f.direction, store.mapping.status.email_outbound)
        content.setdefault(f.sender, store.operators[actor.operator].email)
        content.setdefault(f.conversation_id, original.content.get(f.conversation_id))
        for link in (f.contact_id, f.organization_id, f.lead_id, f.opportunity_id):
            if original.content.get(link):
                content.setdefault(link, original.content[link])
        content[f.reply_to_id] = original.id
        content[f.reply_type] = kind
        return _answer(store.create("email", content, actor), 201)

    return handler


async def rep_create_contact(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    actor = _rep(store, body)
    content = _content(body)
    content.setdefault(store.mapping.contact.operator, actor.operator)
    return _answer(store.create("contact", content, actor), 201)


async def rep_update_contact(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    rec = _record(store, request.match_info["record_id"], "contact")
    return _answer(store.update(rec, _content(body), _rep(store, body)))


async def rep_close_contact(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    body = await _body(request)
    rec = _record(store, request.match_info["record_id"], "contact")
    m = store.mapping
    return _answer(store.update(rec, {m.contact.status: m.status.contact_closed}, _rep(store, body)))


# ------------------------------------------------------------------ state

async def get_state(request: web.Request) -> web.Response:
    store: Store = request.app["store"]
    kind = request.query.get("kind")
    since = request.query.get("createdSince")  # ISO time: only records created at or after it (cheap polling)
    source = store.of_kind(kind) if kind else list(store.records.values())
    if since:
        try:
            cutoff = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            return web.json_response({"error": "createdSince must be an ISO date-time", "field": "createdSince"},
                                     status=400)
        if cutoff.tzinfo is None:
            cutoff = cutoff.replace(tzinfo=UTC)
        source = [r for r in source if r.created_at >= cutoff]
    records = [r.dump() for r in source]
    return web.json_response({
        "records": records,
        "operators": [vars(o) for o in store.operators.values()],
        "seeded": request.app["seeded"],
    })


async def get_record(request: web.Request) -> web.Response:
    rec = request.app["store"].get(request.match_info["record_id"])
    if rec is None:
        raise web.HTTPNotFound(text="no such record")
    return _answer(rec)


async def touch_record(request: web.Request) -> web.Response:
    """Someone else saved the record: its eTag changes, so an eTag held by a client is now stale."""
    store: Store = request.app["store"]
    rec = store.get(request.match_info["record_id"])
    if rec is None:
        raise web.HTTPNotFound(text="no such record")
    return _answer(store.touch(rec))


async def purge_record(request: web.Request) -> web.Response:
    """An administrator purged the record: the APIs answer 404 for it from now on."""
    if not request.app["store"].purge(request.match_info["record_id"]):
        raise web.HTTPNotFound(text="no such record")
    return web.json_response({"purged": True})


async def reset(request: web.Request) -> web.Response:
    app = request.app
    store: Store = app["store"]
    store.reset()
    app["seeded"] = seed(store)
    app["faults"].faults.clear()
    app["faults"].counts.clear()
    app["faults"].log.clear()
    app["outbound"].clear()
    app["config"].restore(app["initial_config"])  # settings changed through /_sim/config go back too
    app["outbound"].token.invalidate()
    app["casetypes"].reset()
    app["dropped"].clear()
    return web.json_response({"seeded": app["seeded"]})


# ------------------------------------------------------------------ case type allow-lists

async def get_casetypes(request: web.Request) -> web.Response:
    book: CaseTypeBook = request.app["casetypes"]
    return web.json_response({kind: rules.dump() for kind, rules in book.rules.items()})


async def put_casetype(request: web.Request) -> web.Response:
    """Change a case type's AllowedStartingFields / action views (e.g. a Pega side set up wrongly)."""
    book: CaseTypeBook = request.app["casetypes"]
    kind = request.match_info["kind"]
    try:
        rules = book.update(kind, await _body(request))
    except KeyError:
        return _err(404, f"no case type kind {kind}", "kind")
    except ValueError as exc:
        return _err(400, str(exc), "allowedStartingFields")
    return web.json_response(rules.dump())


async def get_dropped(request: web.Request) -> web.Response:
    """Fields DX API v2 dropped (not in AllowedStartingFields or the action's view), by case and verb."""
    return web.json_response({"dropped": list(request.app["dropped"])})


# ------------------------------------------------------------------ faults, counters, tokens

async def add_fault(request: web.Request) -> web.Response:
    faults: Faults = request.app["faults"]
    try:
        fault = faults.add(await _body(request))
    except (TypeError, ValueError) as exc:
        return _err(400, str(exc))
    return web.json_response({"id": fault.id}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app["faults"].dump()})


async def clear_faults(request: web.Request) -> web.Response:
    request.app["faults"].faults.clear()
    return web.Response(status=204)


async def get_requests(request: web.Request) -> web.Response:
    faults: Faults = request.app["faults"]
    return web.json_response({"total": sum(faults.counts.values()), "byRoute": dict(faults.counts),
                              "tokensIssued": request.app["tokens"].issued})


async def reset_requests(request: web.Request) -> web.Response:
    request.app["faults"].counts.clear()
    request.app["faults"].log.clear()
    return web.Response(status=204)


async def get_request_log(request: web.Request) -> web.Response:
    """Every API request (not /_sim/) as {at, method, path, status}; `?since=<n>` skips the first n."""
    entries = list(request.app["faults"].log)
    since = int(request.query.get("since", "0"))
    return web.json_response({"total": len(entries), "value": entries[since:]})


async def revoke_tokens(request: web.Request) -> web.Response:
    book: TokenBook = request.app["tokens"]
    return web.json_response({"revoked": book.revoke_all()})


# ------------------------------------------------------------------ config and outbound

async def get_config(request: web.Request) -> web.Response:
    cfg: SimConfig = request.app["config"]
    return web.json_response({"tokenTtlSeconds": cfg.token_ttl_seconds, "outbound": cfg.outbound_dict()})


async def put_config(request: web.Request) -> web.Response:
    cfg: SimConfig = request.app["config"]
    body = await _body(request)
    if "tokenTtlSeconds" in body:
        cfg.token_ttl_seconds = int(body["tokenTtlSeconds"])
    try:
        cfg.update_outbound(dict(body.get("outbound") or {}))
    except ValueError as exc:
        return _err(400, str(exc), "outbound")
    request.app["outbound"].token.invalidate()
    return await get_config(request)


async def get_outbound(request: web.Request) -> web.Response:
    outbound: Outbound = request.app["outbound"]
    return web.json_response({"calls": [c.dump() for c in outbound.calls], "queued": outbound.queue.qsize(),
                              "tokensFetched": outbound.token.fetched})


async def clear_outbound(request: web.Request) -> web.Response:
    request.app["outbound"].clear()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/_sim/rep/appointments", rep_create_appointment)
    r.add_patch("/_sim/rep/appointments/{record_id}", rep_update_appointment)
    r.add_post("/_sim/rep/appointments/{record_id}/cancel", rep_cancel_appointment)
    r.add_post("/_sim/rep/emails", rep_send_email)
    r.add_post("/_sim/rep/emails/{record_id}/reply", _reply("Reply"))
    r.add_post("/_sim/rep/emails/{record_id}/reply-all", _reply("ReplyAll"))
    r.add_post("/_sim/rep/contacts", rep_create_contact)
    r.add_patch("/_sim/rep/contacts/{record_id}", rep_update_contact)
    r.add_post("/_sim/rep/contacts/{record_id}/close", rep_close_contact)
    r.add_get("/_sim/state", get_state)
    r.add_post("/_sim/reset", reset)
    r.add_get("/_sim/records/{record_id}", get_record)
    r.add_post("/_sim/records/{record_id}/touch", touch_record)
    r.add_delete("/_sim/records/{record_id}", purge_record)
    r.add_post("/_sim/faults", add_fault)
    r.add_get("/_sim/faults", list_faults)
    r.add_delete("/_sim/faults", clear_faults)
    r.add_get("/_sim/requests", get_requests)
    r.add_delete("/_sim/requests", reset_requests)
    r.add_get("/_sim/requests/log", get_request_log)
    r.add_post("/_sim/tokens/revoke", revoke_tokens)
    r.add_get("/_sim/config", get_config)
    r.add_put("/_sim/config", put_config)
    r.add_get("/_sim/outbound", get_outbound)
    r.add_delete("/_sim/outbound", clear_outbound)
    r.add_get("/_sim/casetypes", get_casetypes)
    r.add_put("/_sim/casetypes/{kind}", put_casetype)
    r.add_get("/_sim/dropped", get_dropped)
