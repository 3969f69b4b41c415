"""Message attachments: fileAttachment up to 3 MB inline, upload sessions for larger, /$value.

Upload sessions follow Graph: ``createUploadSession`` returns an ``uploadUrl`` that takes PUTs of
byte ranges (each under 4 MB) without an Authorization header; the last chunk returns 201.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta
from typing import Any

from aiohttp import web

from sandbox.graph.clock import iso, iso7
from sandbox.graph.errors import GraphError, error_response, not_found
from sandbox.graph.model import Attachment, Item, UploadSession, new_immutable_id
from sandbox.graph.odata import apply_select, context_url, graph_json, parse_select, read_action, read_json
from sandbox.graph.router import Router

INLINE_LIMIT = 3 * 1024 * 1024
CHUNK_LIMIT = 4 * 1024 * 1024
UPLOAD_LIMIT = 150 * 1024 * 1024


def render_attachment(a: Attachment, *, with_content: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment", "@odata.mediaContentType": a.content_type,
        "id": a.id, "lastModifiedDateTime": iso(a.last_modified) if a.last_modified else None,
        "name": a.name, "contentType": a.content_type, "size": len(a.content), "isInline": a.is_inline,
        "contentId": a.content_id, "contentLocation": None,
    }
    if with_content:
        out["contentBytes"] = base64.b64encode(a.content).decode()
    return out


def _new_attachment(sim: Any, body: dict[str, Any]) -> Attachment:
    otype = str(body.get("@odata.type", "#microsoft.graph.fileAttachment")).lower()
    if otype != "#microsoft.graph.fileattachment":
        raise GraphError(400, "ErrorInvalidRequest", "Only fileAttachment is supported by the simulator.")
    try:
        content = base64.b64decode(body.get("contentBytes") or "", validate=True)
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidRequest", "contentBytes is not valid base64.") from exc
    if len(content) > INLINE_LIMIT:
        raise GraphError(413, "RequestBodyTooLarge",
                         "The maximum request length supported is 4MB. Use an upload session for attachments "
                         "larger than 3 MB.")
    if not body.get("name"):
        raise GraphError(400, "ErrorInvalidRequest", "The attachment name is required.")
    return Attachment(id=new_immutable_id(), name=body["name"],
                      content_type=body.get("contentType") or "application/octet-stream", content=content,
                      is_inline=bool(body.get("isInline")), content_id=body.get("contentId"),
                      last_modified=sim.clock.now())


def add_inline_attachments(sim: Any, item: Item, bodies: list[dict[str, Any]]) -> None:
    for b in bodies:
        item.attachments.append(_new_attachment(sim, b))


def _find(item: Item, att_id: str) -> Attachment:
    for a in item.attachments:
        if a.id == att_id:
            return a
    raise not_found("The attachment was not found.")


def _item(request: web.Request, p: dict[str, str]) -> tuple[Any, Any, Item]:
    sim = request.app["sim"]
    user = sim.store.users[p["user"]]
    return sim, user, sim.store.item(user, p["id"], "message")


def _selected(request: web.Request, a: Attachment) -> dict[str, Any]:
    """$select is honoured: contentBytes only when selected (or without $select), as
    outlook-large-attachments.md recommends for reading metadata of large files."""
    sel = parse_select(request)
    with_content = sel is None or "contentbytes" in {x.lower() for x in sel}
    return apply_select(render_attachment(a, with_content=with_content), sel)


async def list_attachments(request: web.Request, p: dict[str, str]) -> web.Response:
    _, _, item = _item(request, p)
    return graph_json(request, {"@odata.context": context_url(request, "attachments"),
                                "value": [_selected(request, a) for a in item.attachments]})


async def add_attachment(request: web.Request, p: dict[str, str]) -> web.Response:
    sim, _, item = _item(request, p)
    att = _new_attachment(sim, await read_json(request))
    item.attachments.append(att)
    sim.store.modified(item)
    return graph_json(request, {"@odata.context": context_url(request, "attachments/$entity"),
                                **render_attachment(att, with_content=True)}, 201)


async def get_attachment(request: web.Request, p: dict[str, str]) -> web.Response:
    _, _, item = _item(request, p)
    att = _find(item, p["att"])
    return graph_json(request, {"@odata.context": context_url(request, "attachments/$entity"),
                                **_selected(request, att)})


async def attachment_value(request: web.Request, p: dict[str, str]) -> web.Response:
    _, _, item = _item(request, p)
    att = _find(item, p["att"])
    return web.Response(body=att.content, content_type=att.content_type)


async def delete_attachment(request: web.Request, p: dict[str, str]) -> web.Response:
    sim, _, item = _item(request, p)
    item.attachments.remove(_find(item, p["att"]))
    sim.store.modified(item)
    return web.Response(status=204)


async def create_upload_session(request: web.Request, p: dict[str, str]) -> web.Response:
    sim, user, item = _item(request, p)
    body = await read_action(request)
    ai = body.get("AttachmentItem") or body.get("attachmentItem") or {}
    size = int(ai.get("size") or 0)
    if ai.get("attachmentType", "file") != "file" or not ai.get("name") or size <= 0:
        raise GraphError(400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType 'file', name and size.")
    if size < INLINE_LIMIT:
        # outlook-large-attachments.md, "Errors": a session for a file under 3 MB is refused
        raise GraphError(400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                         "Attachment size must be greater than the minimum size.")
    if size > UPLOAD_LIMIT:
        raise GraphError(400, "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
                         "The attachment size exceeds the 150 MB maximum.")
    token = secrets.token_urlsafe(24)
    expires = sim.clock.now() + timedelta(hours=6)
    sim.store.upload_sessions[token] = UploadSession(
        token=token, owner=user.id, item_uid=item.uid, name=ai["name"],
        content_type=ai.get("contentType") or "application/octet-stream", size=size,
        is_inline=bool(ai.get("isInline")), content_id=ai.get("contentId"), expires=expires)
    base = f"{request.scheme}://{request.host}"
    return graph_json(request, {
        "@odata.context": context_url(request, "microsoft.graph.uploadSession"),
        "uploadUrl": f"{base}/_upload/{token}", "expirationDateTime": iso7(expires), "nextExpectedRanges": ["0-"],
    }, 201)


_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


async def upload_chunk(request: web.Request) -> web.Response:
    """PUT a byte range to an upload session URL (no Authorization header, as Graph requires)."""
    sim = request.app["sim"]
    request["request_id"] = request.get("request_id") or secrets.token_hex(8)
    sess: UploadSession | None = sim.store.upload_sessions.get(request.match_info["token"])
    if sess is None:
        return error_response(404, "ErrorItemNotFound", "The upload session was not found or has expired.", request)
    if "Authorization" in request.headers:
        return error_response(401, "InvalidAuthenticationToken",
                              "Do not send an Authorization header to an upload URL.", request)
    m = _RANGE.match(request.headers.get("Content-Range", ""))
    data = await request.read()
    if not m:
        return error_response(400, "InvalidRequest", "Content-Range header is required.", request)
    start, end, total = (int(x) for x in m.groups())
    if total != sess.size or end - start + 1 != len(data) or start != len(sess.received):
        return error_response(416, "InvalidRange", "The uploaded fragment does not match the expected range.",
                              request)
    if len(data) > CHUNK_LIMIT:
        return error_response(413, "RequestBodyTooLarge", "Upload chunks must be smaller than 4 MB.", request)
    sess.received.extend(data)
    if len(sess.received) < sess.size:
        # For Outlook attachments nextExpectedRanges is a single "{start}" (uploadsession.md), not "start-end"
        return web.json_response({"expirationDateTime": iso7(sess.expires) if sess.expires else None,
                                  "nextExpectedRanges": [str(len(sess.received))]})
    item = sim.store.items.get(sess.item_uid)
    del sim.store.upload_sessions[sess.token]
    if item is None:
        return error_response(404, "ErrorItemNotFound", "The message no longer exists.", request)
    att = Attachment(id=new_immutable_id(), name=sess.name, content_type=sess.content_type,
                     content=bytes(sess.received), is_inline=sess.is_inline, content_id=sess.content_id,
                     last_modified=sim.clock.now())
    item.attachments.append(att)
    sim.store.modified(item)
    loc = f"{request.scheme}://{request.host}/v1.0/users('{item.owner}')/messages('{item.uid}')/attachments('{att.id}')"
    return web.Response(status=201, headers={"Location": loc})


async def cancel_upload(request: web.Request) -> web.Response:
    """DELETE the upload URL: the session is cancelled (204), as outlook-large-attachments.md shows."""
    sim = request.app["sim"]
    if sim.store.upload_sessions.pop(request.match_info["token"], None) is None:
        return error_response(404, "ErrorItemNotFound", "The upload session was not found or has expired.", request)
    return web.Response(status=204)


def upload_routes() -> list[web.RouteDef]:
    return [web.put("/_upload/{token}", upload_chunk), web.delete("/_upload/{token}", cancel_upload)]


def register(router: Router) -> None:
    for prefix in ("users/{user}/messages/{id}", "users/{user}/mailFolders/{folder}/messages/{id}"):
        router.add("GET", f"{prefix}/attachments", list_attachments, "mail")
        router.add("POST", f"{prefix}/attachments", add_attachment, "mail.write")
        router.add("POST", f"{prefix}/attachments/createUploadSession", create_upload_session, "mail.write")
        router.add("GET", f"{prefix}/attachments/{{att}}", get_attachment, "mail")
        router.add("GET", f"{prefix}/attachments/{{att}}/$value", attachment_value, "mail")
        router.add("DELETE", f"{prefix}/attachments/{{att}}", delete_attachment, "mail.write")
