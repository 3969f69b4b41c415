"""Mail: mailFolders, messages CRUD, move/copy, sendMail, drafts, replies and forwards, delivery.

Delivery between seeded users is immediate: the sender's copy lands in Sent Items (the same item
when a draft is sent, so its immutable id is kept) and each internal recipient gets a new item in
their Inbox with the same internetMessageId and conversationId.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.graph.clock import iso
from sandbox.graph.errors import GraphError, bad_request
from sandbox.graph.items import View, body_as, email, enum_value, norm_body, norm_recipients, preview, view_of
from sandbox.graph.model import Folder, Item, User, new_conversation_id
from sandbox.graph.odata import (
    apply_filter_order,
    apply_select,
    context_url,
    ext_props_list,
    graph_json,
    list_page,
    read_action,
    read_json,
    set_ext,
)
from sandbox.graph.router import Router
from sandbox.graph.store import Store

MESSAGE_WRITABLE = {
    "subject", "body", "toRecipients", "ccRecipients", "bccRecipients", "replyTo", "from", "sender",
    "importance", "isRead", "categories", "flag", "internetMessageHeaders", "isDeliveryReceiptRequested",
    "isReadReceiptRequested", "inferenceClassification", "internetMessageId", "receivedDateTime", "sentDateTime",
}
# message-update.md: body, subject, recipients, from/sender... are "Updatable only if isDraft = true".
DRAFT_ONLY = {"toRecipients", "ccRecipients", "bccRecipients", "from", "sender", "internetMessageHeaders",
              "subject", "body", "replyTo", "internetMessageId", "receivedDateTime", "sentDateTime"}
SELECT_ONLY = {"internetMessageHeaders", "uniqueBody"}


def new_internet_message_id(domain: str = "contoso.example") -> str:
    return f"<{secrets.token_hex(8).upper()}.sandbox@{domain}>"


def render_folder(store: Store, f: Folder) -> dict[str, Any]:
    items = store.items_in(f, "message")
    children = [c for c in store.mailboxes[f.owner].folders.values() if c.parent_id == f.id]
    return {"id": f.id, "displayName": f.display_name, "parentFolderId": f.parent_id or f"{f.owner}-msgfolderroot",
            "childFolderCount": len(children), "unreadItemCount": sum(1 for i in items if not i.data.get("isRead")),
            "totalItemCount": len(items), "isHidden": False}  # sizeInBytes, wellKnownName: beta only


def render_message(store: Store, item: Item, view: View) -> dict[str, Any]:
    d = item.data
    folder = store.mailboxes[item.owner].folders.get(item.folder_id)
    out: dict[str, Any] = {
        "@odata.type": d.get("@odata.type", "#microsoft.graph.message"),
        "@odata.etag": item.etag,
        "id": view.item_id(item),
        "createdDateTime": iso(item.created),
        "lastModifiedDateTime": iso(item.modified),
        "changeKey": item.change_key,
        "categories": list(d.get("categories") or []),
        "receivedDateTime": d.get("receivedDateTime") or iso(item.created),
        "sentDateTime": d.get("sentDateTime") or iso(item.created),
        "hasAttachments": any(not a.is_inline for a in item.attachments),
        "internetMessageId": d.get("internetMessageId"),
        "subject": d.get("subject", ""),
        "bodyPreview": preview(d.get("body")),
        "importance": d.get("importance", "normal"),
        "parentFolderId": folder.id if folder else None,
        "conversationId": d.get("conversationId"),
        "conversationIndex": d.get("conversationIndex"),
        "isDeliveryReceiptRequested": d.get("isDeliveryReceiptRequested", False),
        "isReadReceiptRequested": d.get("isReadReceiptRequested", False),
        "isRead": bool(d.get("isRead", False)),
        "isDraft": bool(d.get("isDraft", False)),
        "webLink": f"https://outlook.office365.com/owa/?ItemID={view.item_id(item)}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": d.get("inferenceClassification", "focused"),
        "body": body_as(d.get("body"), view),
        "sender": d.get("sender"),
        "from": d.get("from"),
        "toRecipients": d.get("toRecipients", []),
        "ccRecipients": d.get("ccRecipients", []),
        "bccRecipients": d.get("bccRecipients", []),
        "replyTo": d.get("replyTo", []),
        "flag": d.get("flag") or {"flagStatus": "notFlagged"},
    }
    for extra in ("meetingMessageType", "type", "startDateTime", "endDateTime", "isOutOfDate", "isAllDay",
                  "isDelegated", "location"):
        if extra in d:
            out[extra] = d[extra]
    if view.selected("internetMessageHeaders"):
        out["internetMessageHeaders"] = d.get("internetMessageHeaders") or []
    if view.selected("uniqueBody"):
        out["uniqueBody"] = body_as(d.get("body"), view)
    out = apply_select(out, list(view.select) if view.select else None)
    if view.expand.ext_single and (props := ext_props_list(item.ext, view.expand.ext_filter)):
        out["singleValueExtendedProperties"] = props  # absent (no key) when none matches, as in Graph
    if view.expand.attachments:
        from sandbox.graph.attachments import render_attachment

        out["attachments"] = [render_attachment(a, with_content=True) for a in item.attachments]
    return out


def filterable(store: Store, item: Item, view: View) -> dict[str, Any]:
    """The full representation plus extended properties, for $filter evaluation."""
    full = render_message(store, item, View(immutable=view.immutable, tz=view.tz))
    full["singleValueExtendedProperties"] = ext_props_list(item.ext, None)
    full["internetMessageHeaders"] = item.data.get("internetMessageHeaders") or []
    return full


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in MESSAGE_WRITABLE:
            if k in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
                v = norm_recipients(v)
            elif k in ("importance", "inferenceClassification"):
                v = enum_value(k, v)
            elif k == "body":
                v = norm_body(v)
            elif k == "flag" and isinstance(v, dict) and v.get("flagStatus") is not None:
                v = {**v, "flagStatus": enum_value("flagStatus", v["flagStatus"])}
            out[k] = v
    return out


def new_message_data(user: User, body: dict[str, Any], now: datetime, *, draft: bool = True) -> dict[str, Any]:
    data = _clean(body)
    data.setdefault("subject", "")
    data.setdefault("body", {"contentType": "text", "content": ""})
    data.setdefault("toRecipients", [])
    data.setdefault("ccRecipients", [])
    data.setdefault("bccRecipients", [])
    data.setdefault("replyTo", [])
    me = email(user.upn, user.display_name)
    data.setdefault("from", me)
    data.setdefault("sender", me)
    data["isDraft"] = draft
    data.setdefault("isRead", True)
    data.setdefault("internetMessageId", new_internet_message_id())
    data.setdefault("conversationId", new_conversation_id())
    data.setdefault("conversationIndex", base64.b64encode(secrets.token_bytes(22)).decode())
    data.setdefault("receivedDateTime", iso(now))
    data.setdefault("sentDateTime", iso(now))
    return data


# ---- handlers ---------------------------------------------------------------------------------


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


def _user(request: web.Request, p: dict[str, str]) -> User:
    return _sim(request).store.users[p["user"]]


def _folder(request: web.Request, p: dict[str, str]) -> Folder:
    return _sim(request).store.folder(_user(request, p), "mail", p["folder"])


def _entity(request: web.Request, user: User, item: Item, status: int = 200) -> web.Response:
    store = _sim(request).store
    body = {"@odata.context": context_url(request, f"users('{user.id}')/messages/$entity"),
            **render_message(store, item, view_of(request))}
    return graph_json(request, body, status)


async def list_folders(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    user = _user(request, p)
    folders = [render_folder(store, f) for f in store.folders(user, "mail") if f.parent_id is None]
    folders = apply_filter_order(request, folders)
    return list_page(request, folders, f"users('{user.id}')/mailFolders", default_top=10)


async def get_folder(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    f = _folder(request, p)
    return graph_json(request, {"@odata.context": context_url(request, "mailFolders/$entity"),
                                **render_folder(store, f)})


async def child_folders(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    parent = _folder(request, p)
    kids = [render_folder(store, f) for f in store.folders(_user(request, p), "mail") if f.parent_id == parent.id]
    return list_page(request, kids, "mailFolders", default_top=10)


async def create_folder(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    body = await read_json(request)
    name = body.get("displayName")
    if not name:
        raise bad_request("displayName is required.")
    parent = store.folder(_user(request, p), "mail", p["folder"]).id if "folder" in p else None
    f = store.add_folder(_user(request, p), "mail", name, parent)
    return graph_json(request, {"@odata.context": context_url(request, "mailFolders/$entity"),
                                **render_folder(store, f)}, 201)


def _list(request: web.Request, user: User, items: list[Item]) -> web.Response:
    store = _sim(request).store
    view = view_of(request)
    full = [(filterable(store, i, view), i) for i in items]
    objs = apply_filter_order(request, [f for f, _ in full], "receivedDateTime desc")
    by_id = {id(f): i for f, i in full}
    page = [render_message(store, by_id[id(o)], view) for o in objs]
    return list_page(request, page, f"users('{user.id}')/messages", default_top=10)


async def list_messages(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    user = _user(request, p)
    return _list(request, user, store.items_of(user, "message"))


async def list_folder_messages(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    return _list(request, _user(request, p), store.items_in(_folder(request, p), "message"))


async def get_message(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    user = _user(request, p)
    return _entity(request, user, store.item(user, p["id"], "message"))


async def create_message(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    folder = _folder(request, p) if "folder" in p else sim.store.mailboxes[user.id].well_known("drafts")
    body = await read_json(request)
    item = sim.store.create(user, "message", folder, new_message_data(user, body, sim.clock.now()),
                            notify=False)
    set_ext(item.ext, body.get("singleValueExtendedProperties"))
    if body.get("attachments"):
        from sandbox.graph.attachments import add_inline_attachments

        add_inline_attachments(sim, item, body["attachments"])
    sim.store.emit_created(item)
    return _entity(request, user, item, 201)


async def update_message(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item = sim.store.item(user, p["id"], "message")
    body = await read_json(request)
    changes = _clean(body)
    if not item.data.get("isDraft") and DRAFT_ONLY & changes.keys():
        raise GraphError(400, "ErrorInvalidPropertyUpdateSentMessage",
                         "Update operation is not supported for this property on a sent message.")
    became_read = changes.get("isRead") is True and not item.data.get("isRead")
    item.data.update(changes)
    set_ext(item.ext, body.get("singleValueExtendedProperties"))
    sim.store.modified(item)
    if became_read and item.data.get("isReadReceiptRequested") and not item.data.get("isDraft"):
        from sandbox.graph.generated_mail import read_receipt

        item.data["isReadReceiptRequested"] = False  # one receipt per message
        read_receipt(sim, user, item)
    return _entity(request, user, item)


async def delete_message(request: web.Request, p: dict[str, str]) -> web.Response:
    """DELETE moves the message to Deleted Items (a second DELETE there removes it), as Outlook does."""
    sim = _sim(request)
    user = _user(request, p)
    item = sim.store.item(user, p["id"], "message")
    deleted = sim.store.mailboxes[user.id].well_known("deleteditems")
    if item.folder_id == deleted.id:
        sim.store.delete(item)
    else:
        sim.store.move(item, deleted)
    return web.Response(status=204)


async def message_mime(request: web.Request, p: dict[str, str]) -> web.Response:
    """GET messages/{id}/$value: the message as RFC 822 MIME."""
    from email.message import EmailMessage

    store = _sim(request).store
    item = store.item(_user(request, p), p["id"], "message")
    d = item.data
    mime = EmailMessage()

    def addrs(field: str) -> str:
        return ", ".join(r["emailAddress"]["address"] for r in d.get(field) or [])

    mime["Message-ID"] = d.get("internetMessageId") or ""
    mime["Subject"] = d.get("subject", "")
    mime["From"] = ((d.get("from") or {}).get("emailAddress") or {}).get("address", "")
    if addrs("toRecipients"):
        mime["To"] = addrs("toRecipients")
    if addrs("ccRecipients"):
        mime["Cc"] = addrs("ccRecipients")
    for h in d.get("internetMessageHeaders") or []:
        if h.get("name") and h.get("value"):
            mime[h["name"]] = h["value"]
    body = d.get("body") or {}
    subtype = "html" if str(body.get("contentType", "text")).lower() == "html" else "plain"
    mime.set_content(str(body.get("content", "")), subtype=subtype)
    for a in item.attachments:
        maintype, _, sub = a.content_type.partition("/")
        mime.add_attachment(a.content, maintype=maintype or "application", subtype=sub or "octet-stream",
                            filename=a.name)
    return web.Response(body=mime.as_bytes(), content_type="message/rfc822")


async def permanent_delete(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    sim.store.delete(sim.store.item(user, p["id"], "message"))
    return web.Response(status=204)


async def move_message(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item = sim.store.item(user, p["id"], "message")
    body = await read_action(request)
    dest = sim.store.folder(user, "mail", str(body.get("destinationId") or ""))
    sim.store.move(item, dest)
    return _entity(request, user, item, 201)


async def copy_message(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    item = sim.store.item(user, p["id"], "message")
    body = await read_action(request)
    dest = sim.store.folder(user, "mail", str(body.get("destinationId") or ""))
    copy = sim.store.create(user, "message", dest, dict(item.data), dict(item.ext))
    return _entity(request, user, copy, 201)


async def send_mail(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    if request.content_type == "text/plain":
        raw = await request.read()
        try:
            base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
                             ) from exc
        raise GraphError(400, "ErrorMimeContentNotSupported", "MIME sendMail is not supported by the simulator.")
    body = await read_action(request)
    msg = body.get("message")
    if not isinstance(msg, dict):
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
    if not (msg.get("toRecipients") or msg.get("ccRecipients") or msg.get("bccRecipients")):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be "
                                                        "sent because it contains no recipients.")
    save = str(body.get("saveToSentItems", True)).lower() != "false"
    now = sim.clock.now()
    data = new_message_data(user, msg, now, draft=False)
    sent_folder = sim.store.mailboxes[user.id].well_known("sentitems")
    item = sim.store.create(user, "message", sent_folder, data, notify=False)
    set_ext(item.ext, msg.get("singleValueExtendedProperties"))
    if msg.get("attachments"):
        from sandbox.graph.attachments import add_inline_attachments

        add_inline_attachments(sim, item, msg["attachments"])
    deliver(sim, user, item)
    if save:
        sim.store.emit_created(item)
    else:
        sim.store.forget(item)
    return web.Response(status=202)


def deliver(sim: Any, sender: User, item: Item) -> list[Item]:
    """Put a copy of a sent message into each internal recipient's Inbox; undeliverable addresses
    give the sender a non-delivery report, recipients with automatic replies on answer."""
    from sandbox.graph import generated_mail as gm

    delivered: list[Item] = []
    seen: set[str] = set()
    failed: list[str] = []
    now = sim.clock.now()
    for field in ("toRecipients", "ccRecipients", "bccRecipients"):
        for r in item.data.get(field) or []:
            addr = r["emailAddress"]["address"].lower()
            if gm.bounces(sim, addr):
                failed.append(addr)
                continue
            rcpt = sim.store.find_user(addr)
            if rcpt is None or rcpt.id in seen:
                continue
            seen.add(rcpt.id)
            data = {k: v for k, v in item.data.items()}
            data.update({"isDraft": False, "isRead": False, "receivedDateTime": iso(now), "bccRecipients": [],
                         "flag": {"flagStatus": "notFlagged"}, "categories": []})
            inbox = sim.store.mailboxes[rcpt.id].well_known("inbox")
            copy = sim.store.create(rcpt, "message", inbox, data, notify=False)
            copy.ext = {k: v for k, v in item.ext.items()}
            copy.attachments = list(item.attachments)
            sim.store.emit_created(copy)
            delivered.append(copy)
            gm.automatic_reply(sim, rcpt, sender.upn, copy)
    if failed:
        gm.non_delivery_report(sim, sender, failed, item)
    return delivered


def send_existing(sim: Any, user: User, item: Item) -> None:
    """Send a draft: the same item moves to Sent Items (immutable id kept), copies are delivered."""
    if not item.data.get("isDraft"):
        raise GraphError(400, "ErrorInvalidOperation", "The item has already been sent.")
    if not (item.data.get("toRecipients") or item.data.get("ccRecipients") or item.data.get("bccRecipients")):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be "
                                                        "sent because it contains no recipients.")
    now = iso(sim.clock.now())
    item.data.update({"isDraft": False, "sentDateTime": now, "receivedDateTime": now, "isRead": True})
    deliver(sim, user, item)
    sent = sim.store.mailboxes[user.id].well_known("sentitems")
    sim.store.move(item, sent)


async def send_draft(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    send_existing(sim, user, sim.store.item(user, p["id"], "message"))
    return web.Response(status=202)


def _prefix(subject: str, prefix: str) -> str:
    return subject if subject.lower().startswith(prefix.lower()) else f"{prefix} {subject}"


def _reply_draft(sim: Any, user: User, orig: Item, action: str, body: dict[str, Any]) -> Item:
    comment = body.get("comment")
    msg = body.get("message") or {}
    if comment is not None and (msg.get("body") or {}).get("content"):
        raise GraphError(400, "ErrorInvalidRequest", "Specify either the comment or the body property of the "
                                                     "message parameter, but not both.")
    od = orig.data
    me = user.upn.lower()
    if action == "forward":
        to: list[dict[str, Any]] = norm_recipients(body.get("toRecipients") or msg.get("toRecipients"))
        cc: list[dict[str, Any]] = []
        subject = _prefix(od.get("subject", ""), "FW:")
    else:
        author = (od.get("replyTo") or [None])[0] or od.get("from") or od.get("sender")
        if od.get("from", {}).get("emailAddress", {}).get("address", "").lower() == me:
            to = list(od.get("toRecipients") or [])  # replying to your own sent message
        else:
            to = [author] if author else []
        cc = []
        if action == "replyAll":
            seen = {r["emailAddress"]["address"].lower() for r in to} | {me}
            for r in od.get("toRecipients") or []:
                if r["emailAddress"]["address"].lower() not in seen:
                    to.append(r)
                    seen.add(r["emailAddress"]["address"].lower())
            cc = [r for r in (od.get("ccRecipients") or []) if r["emailAddress"]["address"].lower() not in seen]
        subject = _prefix(od.get("subject", ""), "RE:")
    quoted = (od.get("body") or {}).get("content", "")
    text = comment if comment is not None else (msg.get("body") or {}).get("content", "")
    headers = [{"name": "In-Reply-To", "value": od.get("internetMessageId")},
               {"name": "References", "value": " ".join(
                   x for x in (_header(od, "References"), od.get("internetMessageId")) if x)}]
    data = {
        "subject": subject, "toRecipients": to, "ccRecipients": cc,
        "body": {"contentType": "html", "content": f"<html><body>{text}<hr>{quoted}</body></html>"},
        "conversationId": od.get("conversationId"), "internetMessageHeaders": headers,
    }
    for k in ("toRecipients", "ccRecipients", "bccRecipients", "subject", "importance", "categories"):
        if k in msg and k != "body":
            data[k] = norm_recipients(msg[k]) if k.endswith("Recipients") else msg[k]
    full = new_message_data(user, data, sim.clock.now(), draft=True)
    full["conversationId"] = od.get("conversationId") or full["conversationId"]
    drafts = sim.store.mailboxes[user.id].well_known("drafts")
    item = sim.store.create(user, "message", drafts, full)
    set_ext(item.ext, msg.get("singleValueExtendedProperties"))
    if action == "forward":
        item.attachments = list(orig.attachments)
    return item


def _header(data: dict[str, Any], name: str) -> str | None:
    for h in data.get("internetMessageHeaders") or []:
        if str(h.get("name", "")).lower() == name.lower():
            return str(h.get("value"))
    return None


def _reply_handler(action: str, send: bool):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request, p: dict[str, str]) -> web.Response:
        sim = _sim(request)
        user = _user(request, p)
        orig = sim.store.item(user, p["id"], "message")
        body = await read_action(request)
        draft = _reply_draft(sim, user, orig, action, body)
        if send:
            send_existing(sim, user, draft)
            return web.Response(status=202)
        return _entity(request, user, draft, 201)

    return handler


def _settings_body(sim: Any, user: User) -> dict[str, Any]:
    auto = {k: v for k, v in (sim.store.auto_replies.get(user.id) or {}).items() if not k.startswith("_")}
    return {"automaticRepliesSetting": {"status": "disabled", "externalAudience": "all",
                                        "internalReplyMessage": "", "externalReplyMessage": "", **auto},
            "timeZone": "UTC", "language": {"locale": "en-US", "displayName": "English (United States)"}}


async def get_mailbox_settings(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    return graph_json(request, {"@odata.context": context_url(request, f"users('{p['user']}')/mailboxSettings"),
                                **_settings_body(sim, _user(request, p))})


async def update_mailbox_settings(request: web.Request, p: dict[str, str]) -> web.Response:
    """PATCH mailboxSettings: automaticRepliesSetting (status disabled/alwaysEnabled/scheduled,
    internalReplyMessage, externalReplyMessage, externalAudience none/contactsOnly/all)."""
    sim = _sim(request)
    user = _user(request, p)
    body = await read_json(request)
    auto = body.get("automaticRepliesSetting")
    if isinstance(auto, dict):
        status = str(auto.get("status") or "disabled")
        statuses = {"disabled": "disabled", "alwaysenabled": "alwaysEnabled", "scheduled": "scheduled"}
        if status.lower() not in statuses:
            raise GraphError(400, "RequestBodyRead", f"Requested value '{status}' was not found.")
        current = {k: v for k, v in (sim.store.auto_replies.get(user.id) or {}).items() if not k.startswith("_")}
        current.update({k: v for k, v in auto.items() if k in ("internalReplyMessage", "externalReplyMessage",
                                                                 "externalAudience")})
        current["status"] = statuses[status.lower()]
        sim.store.auto_replies[user.id] = current  # a new setting answers every sender once again
    return graph_json(request, {"@odata.context": context_url(request, f"users('{user.id}')/mailboxSettings"),
                                **_settings_body(sim, user)})


def register(router: Router) -> None:
    u = "users/{user}"
    router.add("GET", f"{u}/mailFolders", list_folders, "mail")
    router.add("POST", f"{u}/mailFolders", create_folder, "mail.write")
    router.add("GET", f"{u}/mailFolders/{{folder}}", get_folder, "mail")
    router.add("GET", f"{u}/mailFolders/{{folder}}/childFolders", child_folders, "mail")
    router.add("POST", f"{u}/mailFolders/{{folder}}/childFolders", create_folder, "mail.write")
    router.add("GET", f"{u}/messages", list_messages, "mail")
    router.add("POST", f"{u}/messages", create_message, "mail.write")
    router.add("GET", f"{u}/mailFolders/{{folder}}/messages", list_folder_messages, "mail")
    router.add("POST", f"{u}/mailFolders/{{folder}}/messages", create_message, "mail.write")
    for prefix in (f"{u}/messages/{{id}}", f"{u}/mailFolders/{{folder}}/messages/{{id}}"):
        router.add("GET", prefix, get_message, "mail")
        router.add("GET", f"{prefix}/$value", message_mime, "mail")
        router.add("PATCH", prefix, update_message, "mail.write")
        router.add("DELETE", prefix, delete_message, "mail.write")
        router.add("POST", f"{prefix}/permanentDelete", permanent_delete, "mail.write")
        router.add("POST", f"{prefix}/move", move_message, "mail.write")
        router.add("POST", f"{prefix}/copy", copy_message, "mail.write")
        router.add("POST", f"{prefix}/send", send_draft, "mail.send")
        for action in ("reply", "replyAll", "forward"):
            create = "create" + action[0].upper() + action[1:]
            router.add("POST", f"{prefix}/{create}", _reply_handler(action, send=False), "mail.write")
            router.add("POST", f"{prefix}/{action}", _reply_handler(action, send=True), "mail.send")
    router.add("POST", f"{u}/sendMail", send_mail, "mail.send")
    router.add("GET", f"{u}/mailboxSettings", get_mailbox_settings, "mailboxsettings")
    router.add("PATCH", f"{u}/mailboxSettings", update_mailbox_settings, "mailboxsettings.write")
    from sandbox.graph import attachments, delta

    attachments.register(router)
    delta.register_mail(router)
