"""The /_sim/ control API: not part of Graph; lets tests and the demo drive the simulator.

Keys are camelCase (snake_case accepted too). No authentication: the simulator binds to loopback.
See docs/graph-simulator.md for the full list.
"""

from __future__ import annotations

import base64
import re
from dataclasses import asdict
from typing import Any

from aiohttp import web

from sandbox.graph.clock import iso, parse_iso
from sandbox.graph.errors import GraphError, error_response
from sandbox.graph.generated_mail import MESSAGE_CLASS, automatic_reply
from sandbox.graph.items import email
from sandbox.graph.mail import new_internet_message_id, new_message_data
from sandbox.graph.model import Attachment, new_conversation_id, new_immutable_id
from sandbox.graph.seed import FEDERATION_AUDIENCE, TENANT_ISSUER, ClientApp, FederatedCredential


def snake(data: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in data.items()}


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise GraphError(400, "BadRequest", "Expected a JSON object.")
    return data


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except GraphError as exc:
        return error_response(exc.status, exc.code, exc.message, request)
    except (ValueError, KeyError, TypeError) as exc:
        return error_response(400, "BadRequest", f"{type(exc).__name__}: {exc}", request)


def _wrap(fn: Any) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await _errors(request, fn)

    return handler


async def health(request: web.Request) -> web.Response:
    sim = _sim(request)
    return web.json_response({"ok": True, "tenantId": sim.tenant_id, "issuer": sim.identity.issuer,
                              "graphBaseUrl": f"{sim.public_base}/v1.0", "authority": sim.authority,
                              "caPath": str(sim.ca_path) if sim.ca_path else None, "now": iso(sim.clock.now())})


async def reset(request: web.Request) -> web.Response:
    _sim(request).reset()
    return web.json_response({"ok": True})


async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"value": [u.to_graph() for u in _sim(request).store.users.values()]})


async def add_user(request: web.Request) -> web.Response:
    body = await _json(request)
    upn = body.get("userPrincipalName") or body.get("upn") or body.get("mail")
    if not upn or "@" not in upn:
        raise GraphError(400, "BadRequest", "userPrincipalName is required.")
    user = _sim(request).store.add_user(upn, body.get("displayName"), user_id=body.get("id"))
    return web.json_response(user.to_graph(), status=201)


async def rename_user(request: web.Request) -> web.Response:
    """An admin renames a user in Entra (a new userPrincipalName; the object id stays): `{userPrincipalName}`."""
    sim = _sim(request)
    user = sim.store.user(request.match_info["user"])
    body = await _json(request)
    upn = str(body.get("userPrincipalName") or "").lower()
    if "@" not in upn:
        raise GraphError(400, "BadRequest", "userPrincipalName is required.")
    if sim.store.find_user(upn) not in (None, user):
        raise GraphError(400, "Request_BadRequest", "Another object with the same value for property "
                                                    f"userPrincipalName already exists: {upn}")
    sim.store.rename_user(user, upn)
    return web.json_response(user.to_graph())


async def add_client(request: web.Request) -> web.Response:
    body = snake(await _json(request))
    cid = body.get("client_id")
    if not cid:
        raise GraphError(400, "BadRequest", "clientId is required.")
    secrets_ = body.get("secrets") or ([body["secret"]] if body.get("secret") else [])
    certs = body.get("certificates") or ([body["certificate_pem"]] if body.get("certificate_pem") else [])
    federated = [FederatedCredential(str(f.get("name") or f"fic-{i}"), str(f.get("issuer") or TENANT_ISSUER),
                                     str(f["subject"]), tuple(f.get("audiences") or (FEDERATION_AUDIENCE,)))
                 for i, f in enumerate(body.get("federated_credentials") or []) if f.get("subject")]
    app = ClientApp(cid, body.get("display_name") or cid, list(secrets_), dict(body.get("roles") or {}), list(certs),
                    federated)
    _sim(request).identity.clients[cid] = app
    return web.json_response({"clientId": cid, "roles": app.roles}, status=201)


async def inbound_mail(request: web.Request) -> web.Response:
    """Deliver an email from the internet into a mailbox (Inbox unless folder is given)."""
    sim = _sim(request)
    user = sim.store.user(request.match_info["user"])
    body = await _json(request)
    sender = body.get("from") or {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
    if isinstance(sender, str):
        sender = {"address": sender}
    content = body.get("body", "")
    if isinstance(content, str):
        content = {"contentType": "text", "content": content}
    to = body.get("to") or [user.upn]
    cc = body.get("cc") or []
    now = sim.clock.now()
    data = new_message_data(user, {
        "subject": body.get("subject", ""), "body": content,
        "toRecipients": [email(a) if isinstance(a, str) else {"emailAddress": a} for a in to],
        "ccRecipients": [email(a) if isinstance(a, str) else {"emailAddress": a} for a in cc],
        "from": {"emailAddress": {"address": sender["address"], "name": sender.get("name") or sender["address"]}},
        "sender": {"emailAddress": {"address": sender["address"], "name": sender.get("name") or sender["address"]}},
        "importance": body.get("importance", "normal"), "categories": body.get("categories") or [],
    }, now, draft=False)
    data["isRead"] = bool(body.get("isRead", False))
    data["isReadReceiptRequested"] = bool(body.get("isReadReceiptRequested", False))
    if body.get("odataType"):  # e.g. "#microsoft.graph.eventMessageRequest" from an external organizer
        data["@odata.type"] = str(body["odataType"])
    data["internetMessageId"] = body.get("internetMessageId") or new_internet_message_id("fabrikam.example")
    if body.get("receivedDateTime"):
        data["receivedDateTime"] = iso(parse_iso(body["receivedDateTime"]))
        data["sentDateTime"] = data["receivedDateTime"]
    headers = [{"name": k, "value": v} for k, v in (body.get("headers") or {}).items()]
    in_reply_to = body.get("inReplyTo")
    data["conversationId"] = new_conversation_id()
    if in_reply_to:
        headers.append({"name": "In-Reply-To", "value": in_reply_to})
        for it in sim.store.items_of(user, "message"):
            if it.data.get("internetMessageId") == in_reply_to:
                data["conversationId"] = it.data.get("conversationId")
                break
    data["internetMessageHeaders"] = headers
    folder = sim.store.folder(user, "mail", body.get("folder") or "inbox")
    count = int(body.get("count", 1))
    if not 1 <= count <= 10_000:
        raise GraphError(400, "BadRequest", "count must be between 1 and 10000.")
    created = []
    for i in range(count):
        one = dict(data)
        if count > 1:  # bulk seeding: distinct subjects and message ids
            one["subject"] = f"{data['subject']} #{i + 1}"
            one["internetMessageId"] = new_internet_message_id("fabrikam.example")
        item = sim.store.create(user, "message", folder, one, notify=False)
        for a in body.get("attachments") or []:
            item.attachments.append(Attachment(new_immutable_id(), a["name"], a.get("contentType") or
                                               "application/octet-stream", base64.b64decode(a["contentBytes"]),
                                               last_modified=now))
        for k, v in (body.get("singleValueExtendedProperties") or {}).items():
            item.ext[k] = str(v)
        if body.get("messageClass"):  # REPORT.IPM.Note.NDR, IPM.Note.Rules.OofTemplate.Microsoft, ...
            item.ext[MESSAGE_CLASS] = str(body["messageClass"])
        sim.store.emit_created(item)
        automatic_reply(sim, user, sender["address"], item)
        created.append({"id": item.rest_id, "immutableId": item.uid, "internetMessageId": one["internetMessageId"],
                        "conversationId": one["conversationId"]})
    return web.json_response(created[0] if count == 1 else {"value": created}, status=201)


async def touch(request: web.Request) -> web.Response:
    """Bump lastModifiedDateTime and changeKey without changing content (as opening an item in Outlook can)."""
    sim = _sim(request)
    user = sim.store.user(request.match_info["user"])
    item_id = request.match_info["id"]
    item = sim.store.find_item(user, item_id)
    if item is None and "." in item_id:
        item = sim.store.find_item(user, item_id.rsplit(".", 1)[0])
    if item is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    sim.store.modified(item)
    return web.json_response({"changeKey": item.change_key, "lastModifiedDateTime": iso(item.modified)})


async def user_move(request: web.Request) -> web.Response:
    """What a user does in Outlook that Graph v1.0 has no API for on every item type: drag an item
    (a contact, say) to another folder, or delete it (Outlook moves it to Deleted Items). Body:
    `{destination: folder id or well-known name, kind?: mail|contacts|calendar}`. The item keeps its
    immutable id; delta shows it removed from the old folder and added to the new one."""
    sim = _sim(request)
    user = sim.store.user(request.match_info["user"])
    item = sim.store.find_item(user, request.match_info["id"])
    if item is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    body = snake(await _json(request))
    dest = str(body.get("destination") or "")
    kinds = [body["kind"]] if body.get("kind") else ["contacts", "mail", "calendar"]
    folder = None
    for kind in kinds:
        try:
            folder = sim.store.folder(user, kind, dest)
            break
        except GraphError:
            continue
    if folder is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified folder could not be found in the store.")
    sim.store.move(item, folder)
    return web.json_response({"id": item.uid, "parentFolderId": folder.id})


async def access_policy(request: web.Request) -> web.Response:
    """Deny (or allow again) one app's access to one mailbox, like an Application Access Policy."""
    sim = _sim(request)
    if request.method == "POST":
        body = await _json(request)
        key = (str(body["app"]), sim.store.user(str(body["user"])).id)
        if body.get("allow", False):
            sim.denied.discard(key)
        else:
            sim.denied.add(key)
    return web.json_response({"denied": [{"app": a, "user": u} for a, u in sorted(sim.denied)]})


async def refuse_tokens(request: web.Request) -> web.Response:
    """Graph refuses every token issued so far (401, as for an expired token) while its clients still
    hold them as valid: the client must drop its cached token and ask Entra for a new one."""
    return web.json_response({"generation": _sim(request).identity.refuse_issued_tokens()})


async def clock(request: web.Request) -> web.Response:
    sim = _sim(request)
    if request.method == "POST":
        body = snake(await _json(request))
        if "set" in body:
            sim.clock.set(parse_iso(body["set"]))
        seconds = float(body.get("advance_seconds", 0)) + 60 * float(body.get("advance_minutes", 0)) + \
            3600 * float(body.get("advance_hours", 0)) + 86400 * float(body.get("advance_days", 0))
        if seconds:
            sim.clock.advance(seconds)
        sim.notifier.tick()
    return web.json_response({"now": iso(sim.clock.now()), "offsetSeconds": sim.clock.offset.total_seconds()})


async def faults(request: web.Request) -> web.Response:
    sim = _sim(request)
    if request.method == "POST":
        rule = sim.faults.add(snake(await _json(request)))
        return web.json_response(asdict(rule), status=201)
    if request.method == "DELETE":
        rid = request.match_info.get("id")
        if rid:
            sim.faults.rules[:] = [r for r in sim.faults.rules if r.id != rid]
        else:
            sim.faults.reset()
        return web.json_response({"ok": True})
    return web.json_response(sim.faults.as_dict())


async def notification_faults(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.faults.set_notifications(snake(await _json(request)))
    return web.json_response(asdict(sim.faults.notifications))


async def delta_expire(request: web.Request) -> web.Response:
    sim = _sim(request)
    body = await _json(request)
    uid = sim.store.user(body["user"]).id if body.get("user") else None
    return web.json_response({"expired": sim.delta.expire(uid)})


async def delta_replay(request: web.Request) -> web.Response:
    sim = _sim(request)
    body = await _json(request)
    sim.delta.replay_next.add(sim.store.user(body["user"]).id)
    return web.json_response({"ok": True})


async def requests_(request: web.Request) -> web.Response:
    sim = _sim(request)
    if request.method == "DELETE":
        sim.throttle.counts.clear()
        sim.throttle.throttled.clear()
        sim.throttle.usage.clear()
        return web.json_response({"ok": True})
    upns = {u.id: u.upn for u in sim.store.users.values()}
    rows = sim.throttle.report()
    for r in rows:
        r["userPrincipalName"] = upns.get(str(r["mailbox"]))
    return web.json_response({"value": rows})


async def request_log(request: web.Request) -> web.Response:
    """Every Graph request since start (or the last DELETE): time, app, method, path, mailbox, status.
    `?since=<n>` skips the first n entries; `?app=<client id>` keeps one app's requests."""
    sim = _sim(request)
    if request.method == "DELETE":
        sim.request_log.clear()
        return web.json_response({"ok": True})
    since = int(request.query.get("since", "0"))
    app = request.query.get("app")
    entries = list(sim.request_log)
    rows = [e for e in entries[since:] if app is None or e["app"] == app]
    return web.json_response({"total": len(entries), "value": rows})


async def throttle(request: web.Request) -> web.Response:
    sim = _sim(request)
    if request.method == "POST":
        sim.throttle.config.update(snake(await _json(request)))
    return web.json_response(sim.throttle.config.as_dict())


async def subscriptions(request: web.Request) -> web.Response:
    sim = _sim(request)
    return web.json_response({"value": [{**s.to_graph(), "userId": s.user_id, "kind": s.kind,
                                         "immutableIds": s.immutable_ids}
                                        for s in sim.notifier.subscriptions.values()]})


async def remove_subscription(request: web.Request) -> web.Response:
    sim = _sim(request)
    notify = request.query.get("notify", "true").lower() != "false"
    if not sim.notifier.remove(request.match_info["id"], notify=notify):
        raise GraphError(404, "ResourceNotFound", "No such subscription.")
    return web.json_response({"ok": True})


async def lifecycle(request: web.Request) -> web.Response:
    sim = _sim(request)
    body = await _json(request)
    event = body.get("event") or body.get("lifecycleEvent")
    if event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
        raise GraphError(400, "BadRequest", "event must be reauthorizationRequired, subscriptionRemoved or missed.")
    sub = sim.notifier.subscriptions.get(request.match_info["id"])
    if sub is None:
        raise GraphError(404, "ResourceNotFound", "No such subscription.")
    if event == "subscriptionRemoved":
        sim.notifier.remove(sub.id)
        return web.json_response({"sent": True})
    return web.json_response({"sent": sim.notifier.lifecycle(sub, event)})


async def notifications(request: web.Request) -> web.Response:
    sim = _sim(request)
    if request.method == "POST":
        sim.notifier.config.update(snake(await _json(request)))
    elif request.method == "DELETE":
        sim.notifier.log.clear()
        sim.notifier.endpoints.clear()
    return web.json_response({**sim.notifier.report(), "log": list(sim.notifier.log)})


async def state(request: web.Request) -> web.Response:
    sim = _sim(request)
    store = sim.store
    items = []
    for it in store.items.values():
        items.append({"immutableId": it.uid, "id": it.rest_id, "kind": it.kind, "owner": it.owner,
                      "folderId": it.folder_id, "changeKey": it.change_key, "lastModifiedDateTime": iso(it.modified),
                      "data": it.data, "singleValueExtendedProperties": it.ext,
                      "attachments": [{"id": a.id, "name": a.name, "size": len(a.content)} for a in it.attachments],
                      "cancelledOccurrences": sorted(it.cancelled), "exceptions": sorted(it.exceptions)})
    folders = [{"id": f.id, "owner": f.owner, "kind": f.kind, "displayName": f.display_name,
                "wellKnownName": f.well_known, "parentFolderId": f.parent_id}
               for mb in store.mailboxes.values() for f in mb.folders.values()]
    return web.json_response({"now": iso(sim.clock.now()), "users": [u.to_graph() for u in store.users.values()],
                              "folders": folders, "items": items,
                              "subscriptions": [s.to_graph() for s in sim.notifier.subscriptions.values()]})


async def meeting_messages(request: web.Request) -> web.Response:
    """Meeting requests, updates, cancellations and responses Exchange sent, per event (iCalUId), to
    tenant users and to external attendees alike: what a test counts to see whether a change caused an
    update storm. DELETE clears the log (generated mail of every kind)."""
    sim = _sim(request)
    if request.method == "DELETE":
        sim.store.generated.clear()
        return web.json_response({"ok": True})
    organizer = request.query.get("organizer", "").lower()
    events: dict[str, dict[str, Any]] = {}
    for e in sim.store.generated:
        if e.kind not in ("request", "update", "cancel", "response") or (organizer and e.sender != organizer
                                                                           and e.recipient != organizer):
            continue
        ev = events.setdefault(e.ical_uid, {"iCalUId": e.ical_uid, "subject": e.subject, "requests": 0,
                                            "updates": 0, "cancellations": 0, "responses": 0, "total": 0,
                                            "external": 0, "byRecipient": {}})
        ev[{"request": "requests", "update": "updates", "cancel": "cancellations", "response": "responses"}[e.kind]] += 1
        ev["total"] += 1
        ev["external"] += int(e.external)
        ev["byRecipient"][e.recipient] = ev["byRecipient"].get(e.recipient, 0) + 1
    return web.json_response({"value": list(events.values())})


async def outbound_mail(request: web.Request) -> web.Response:
    """Every message Exchange generated itself (meeting messages, NDRs, read receipts, automatic
    replies), in order, without bodies; ?kind= and ?recipient= narrow it."""
    sim = _sim(request)
    kind, rcpt = request.query.get("kind"), request.query.get("recipient", "").lower()
    rows = [e.as_dict() for e in sim.store.generated
            if (not kind or e.kind == kind) and (not rcpt or e.recipient == rcpt)]
    return web.json_response({"value": rows})


def routes() -> list[web.RouteDef]:
    r = _wrap
    return [
        web.get("/_sim/health", r(health)),
        web.post("/_sim/reset", r(reset)),
        web.get("/_sim/state", r(state)),
        web.get("/_sim/users", r(list_users)),
        web.post("/_sim/users", r(add_user)),
        web.post("/_sim/clients", r(add_client)),
        web.post("/_sim/users/{user}/inbound-mail", r(inbound_mail)),
        web.post("/_sim/users/{user}/items/{id}/touch", r(touch)),
        web.post("/_sim/users/{user}/items/{id}/move", r(user_move)),
        web.patch("/_sim/users/{user}", r(rename_user)),
        web.get("/_sim/access-policy", r(access_policy)),
        web.post("/_sim/access-policy", r(access_policy)),
        web.post("/_sim/tokens/refuse", r(refuse_tokens)),
        web.get("/_sim/clock", r(clock)),
        web.post("/_sim/clock", r(clock)),
        web.get("/_sim/faults", r(faults)),
        web.post("/_sim/faults", r(faults)),
        web.delete("/_sim/faults", r(faults)),
        web.delete("/_sim/faults/{id}", r(faults)),
        web.post("/_sim/faults/notifications", r(notification_faults)),
        web.post("/_sim/delta/expire", r(delta_expire)),
        web.post("/_sim/delta/replay", r(delta_replay)),
        web.get("/_sim/requests", r(requests_)),
        web.delete("/_sim/requests", r(requests_)),
        web.get("/_sim/requests/log", r(request_log)),
        web.delete("/_sim/requests/log", r(request_log)),
        web.get("/_sim/throttle", r(throttle)),
        web.post("/_sim/throttle", r(throttle)),
        web.get("/_sim/subscriptions", r(subscriptions)),
        web.delete("/_sim/subscriptions/{id}", r(remove_subscription)),
        web.post("/_sim/subscriptions/{id}/lifecycle", r(lifecycle)),
        web.get("/_sim/notifications", r(notifications)),
        web.post("/_sim/notifications", r(notifications)),
        web.delete("/_sim/notifications", r(notifications)),
        web.get("/_sim/meeting-messages", r(meeting_messages)),
        web.delete("/_sim/meeting-messages", r(meeting_messages)),
        web.get("/_sim/outbound-mail", r(outbound_mail)),
    ]
