"""The /_sim/ control API (JSON): mailboxes and accounts, inbound mail, faults, the clock, sync
state invalidation, and what was sent or asked. Documented in docs/ews-simulator.md."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from lxml import etree

from sandbox.ews import ids, items
from sandbox.ews.context import Ctx
from sandbox.ews.faults import Fault
from sandbox.ews.soap import local, sub, t
from sandbox.ews.store import Account, Item, iso

routes = web.RouteTableDef()


def _bad(field: str, why: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f'{{"error": "{field}: {why}"}}', content_type="application/json")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise _bad("body", "not JSON") from None
    if not isinstance(body, dict):
        raise _bad("body", "must be an object")
    return body


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


@routes.post("/_sim/mailboxes")
async def add_mailbox(request: web.Request) -> web.Response:
    body = await _json(request)
    smtp = str(body.get("smtp") or "").strip().lower()
    if "@" not in smtp:
        raise _bad("smtp", "an SMTP address is required")
    sim = _sim(request)
    with sim.store.lock:
        mb = sim.store.add_mailbox(smtp, display_name=str(body.get("displayName") or ""),
                                   password=str(body.get("password") or ""))
        sim.ntlm.write()
    return web.json_response({"smtp": mb.smtp, "displayName": mb.display_name,
                              "folders": {k: v for k, v in mb.by_name.items()}}, status=201)


@routes.post("/_sim/accounts")
async def add_account(request: web.Request) -> web.Response:
    body = await _json(request)
    user, password = str(body.get("username") or ""), str(body.get("password") or "")
    if not user or not password:
        raise _bad("username", "username and password are required")
    scope = body.get("scope") or []
    if not isinstance(scope, list):
        raise _bad("scope", "must be a list of SMTP addresses")
    sim = _sim(request)
    with sim.store.lock:
        acct: Account = sim.store.add_account(user, password, impersonation=bool(body.get("impersonation")),
                                              scope=frozenset(str(s) for s in scope))
        sim.ntlm.write()
    return web.json_response({"username": acct.username, "impersonation": acct.impersonation,
                              "scope": sorted(acct.scope)}, status=201)


def _mailbox_list(parent: etree._Element, tag: str, values: Any) -> None:
    if not values:
        return
    el = sub(parent, t(tag))
    for v in values if isinstance(values, list) else [values]:
        mbx = sub(el, t("Mailbox"))
        sub(mbx, t("Name"), str(v))
        sub(mbx, t("EmailAddress"), str(v))
        sub(mbx, t("RoutingType"), "SMTP")


@routes.post("/_sim/mailboxes/{smtp}/inbound-mail")
async def inbound_mail(request: web.Request) -> web.Response:
    """A message arriving from outside (or another mailbox) into the Inbox."""
    body = await _json(request)
    sim = _sim(request)
    with sim.store.lock:
        mb = sim.store.mailboxes.get(request.match_info["smtp"].lower())
        if mb is None:
            raise web.HTTPNotFound(text='{"error": "no such mailbox"}', content_type="application/json")
        now = sim.clock.now()
        holder = etree.Element(t("Message"))
        sub(holder, t("Subject"), str(body.get("subject") or ""))
        sub(holder, t("Body"), str(body.get("body") or ""), BodyType=str(body.get("bodyType") or "HTML"))
        sensitivity = str(body.get("sensitivity") or "Normal")
        sub(holder, t("Sensitivity"), sensitivity[:1].upper() + sensitivity[1:])
        if body.get("categories"):
            cats = sub(holder, t("Categories"))
            for c in body["categories"]:
                sub(cats, t("String"), str(c))
        sender = str(body.get("from") or "sender@fabrikam.example")
        _mailbox_list(holder, "ToRecipients", body.get("to") or [mb.smtp])
        _mailbox_list(holder, "CcRecipients", body.get("cc"))
        frm = sub(holder, t("From"))
        fm = sub(frm, t("Mailbox"))
        sub(fm, t("Name"), str(body.get("fromName") or sender))
        sub(fm, t("EmailAddress"), sender)
        sub(fm, t("RoutingType"), "SMTP")
        item = items.new_item(Ctx(sim.store, mb, Account(mb.smtp, ""), now), "Message", mb.by_name["inbox"])
        for child in holder:
            item.props[local(child)] = child
        item.props["Sender"] = etree.fromstring(etree.tostring(frm).replace(b"From", b"Sender"))
        received = body.get("receivedDateTime")
        when = dt.datetime.fromisoformat(str(received).replace("Z", "+00:00")) if received else now
        item.set("DateTimeReceived", iso(when))
        item.set("DateTimeSent", iso(when))
        item.set("IsDraft", "false")
        item.set("IsRead", "false")
        item.set("InternetMessageId", str(body.get("internetMessageId") or f"<{ids.new_id('x')[-20:]}@fabrikam>"))
        conv = sub(etree.Element("x"), t("ConversationId"), Id=ids.new_id(mb.smtp)[-40:])
        replied = str(body.get("inReplyTo") or "")
        if replied:  # Exchange threads a reply into the conversation of the message it answers
            item.set("InReplyTo", replied)
            earlier = next((i for i in mb.items.values() if i.text("InternetMessageId") == replied
                            and i.props.get("ConversationId") is not None), None)
            if earlier is not None:
                conv = earlier.props["ConversationId"]
        item.props["ConversationId"] = conv
        for name, data in (body.get("attachments") or {}).items():
            import base64

            item.attachments.append(items.Attachment(id=ids.new_id("attachment"), name=str(name),
                                                     content_type="application/octet-stream",
                                                     content=base64.b64decode(str(data))))
        sim.store.insert(mb, item, now=now)
    return web.json_response(_summary(item), status=201)


def _summary(item: Item) -> dict[str, Any]:
    return {"id": item.id, "changeKey": item.change_key, "kind": item.kind, "subject": item.text("Subject"),
            "folderId": item.folder_id, "categories": [s.text for s in item.props["Categories"]]
            if "Categories" in item.props else [], "extended": len(item.ext),
            "attachments": [a.name for a in item.attachments],
            "conversationId": item.props["ConversationId"].get("Id") if "ConversationId" in item.props else None,
            "internetMessageId": item.text("InternetMessageId")}


@routes.get("/_sim/mailboxes/{smtp}/items")
async def list_items(request: web.Request) -> web.Response:
    sim = _sim(request)
    with sim.store.lock:
        mb = sim.store.mailboxes.get(request.match_info["smtp"].lower())
        if mb is None:
            raise web.HTTPNotFound(text='{"error": "no such mailbox"}', content_type="application/json")
        folder = request.query.get("folder")
        fid = mb.by_name.get(folder, folder) if folder else None
        out = [_summary(i) for i in mb.items.values() if fid is None or i.folder_id == fid]
    return web.json_response({"value": out})


@routes.post("/_sim/clock")
async def clock(request: web.Request) -> web.Response:
    body = await _json(request)
    sim = _sim(request)
    try:
        now = sim.clock.advance(float(body.get("advanceSeconds") or 0))
    except (TypeError, ValueError):
        raise _bad("advanceSeconds", "a number of seconds") from None
    return web.json_response({"now": iso(now)})


@routes.post("/_sim/faults")
async def add_fault(request: web.Request) -> web.Response:
    body = await _json(request)
    try:
        rule = Fault(code=str(body.get("code") or "ErrorServerBusy"), operation=str(body.get("operation") or ""),
                     mailbox=str(body.get("mailbox") or "").lower(), caller=str(body.get("caller") or "").lower(),
                     count=int(body.get("count") or 1),
                     back_off_ms=int(body.get("backOffMilliseconds") or 30_000), status=int(body.get("status") or 500))
    except (TypeError, ValueError):
        raise _bad("count", "count, backOffMilliseconds and status are integers") from None
    _sim(request).faults.rules.append(rule)
    return web.json_response({"rules": len(_sim(request).faults.rules)}, status=201)


@routes.delete("/_sim/faults")
async def clear_faults(request: web.Request) -> web.Response:
    _sim(request).faults.rules.clear()
    return web.json_response({"rules": 0})


@routes.post("/_sim/sync-states/invalidate")
async def invalidate(request: web.Request) -> web.Response:
    """Every sync state of the mailbox (or of all) becomes ErrorInvalidSyncStateData."""
    body = await _json(request)
    sim = _sim(request)
    with sim.store.lock:
        for mb in sim.store.mailboxes.values():
            if not body.get("mailbox") or mb.smtp == str(body["mailbox"]).lower():
                mb.epoch += 1
    return web.json_response({"ok": True})


@routes.get("/_sim/sent")
async def sent(request: web.Request) -> web.Response:
    who = request.query.get("mailbox", "").lower()
    return web.json_response({"value": [s for s in _sim(request).sent if not who or s["from"] == who]})


@routes.get("/_sim/requests")
async def requests_log(request: web.Request) -> web.Response:
    """What was asked (operation, mailbox, caller; no content). `?since=<n>` skips the first n entries
    (`total` is the log's length, a position for the next call); without it, the last 1000."""
    entries = _sim(request).requests
    try:
        since = int(request.query["since"]) if "since" in request.query else max(0, len(entries) - 1000)
    except ValueError:
        raise _bad("since", "an integer position") from None
    return web.json_response({"value": entries[max(0, since):], "total": len(entries)})
