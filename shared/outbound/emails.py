"""Emails from Pega → sent from the rep's mailbox (send, reply, reply-all).

Draft-then-send (graph.md §4): the draft is created with the immutable-id header and the PegaId
property, attachments are added (≤3 MB inline, larger through an upload session in chunks), the
draft is sent, and the same immutable id then names the Sent Items copy, which is read back for
its changeKey and linked to the Pega record. Replies use createReply/createReplyAll on the
original Exchange message (found through the link of the Pega email replied to), so Outlook
keeps the thread (same conversationId, In-Reply-To/References).

Retries are safe: the PegaId property finds a draft (resume: add missing attachments, send) or
an already-sent message (just link it), so a retry never sends twice. A reply draft is written in
two steps (createReply, then the PATCH that puts the rep's text above the quoted thread); the PATCH
also sets a ReplyReady stamp in the same request, so a retry that finds a reply draft without the
stamp knows the rep's text is not in it yet and writes it before sending — never a reply that
carries only the quoted thread, never the text twice.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from typing import Any

import httpx

from shared.errors import PermanentError, TransientError
from shared.graph.errors import GraphNotFoundError, error_from_response
from shared.outbound.common import (
    OutboundRequest,
    find_by_pega_id,
    link_or_wait,
    report_to_pega,
    save_link,
    user_path,
)
from shared.outbound.context import WorkerContext
from shared.outbound.graph_payloads import (
    INLINE_ATTACHMENT_MAX,
    UPLOAD_CHUNK,
    decoded_attachments,
    file_attachment,
    merged_recipients,
    new_message,
    pega_id_property,
    upload_session_request,
)
from shared.pega.models import RecordKind
from shared.sync.mapping import map_message
from shared.sync.records import MessageRecord, parse_message

log = logging.getLogger(__name__)
LINK_KIND = "email"
SENT_READ_TRIES = 5
# Set by the PATCH that writes the rep's text into a reply draft (same request, so atomic with it).
REPLY_READY_PROPERTY = "String {4b1e9f3a-6c2d-4e8b-9a75-0d3c5e7f9a21} Name PegaReplyReady"


def _messages(mailbox: str) -> str:
    return f"{user_path(mailbox)}/messages"


async def _add_attachments(ctx: WorkerContext, mailbox: str, message_id: str, req: OutboundRequest,
                           *, already: set[str]) -> int:
    """Attach what the draft lacks (by name): small ones inline, large ones via an upload session."""
    added = 0
    whole = await ctx.graph.takes_whole_attachments(mailbox)
    for meta, data in decoded_attachments(req.body.get("attachments") or []):
        if meta["name"] in already:
            continue
        base = f"{_messages(mailbox)}/{message_id}/attachments"
        if whole or len(data) <= INLINE_ATTACHMENT_MAX:
            await ctx.graph.request("POST", base, mailbox=mailbox, body=file_attachment(meta, data),
                                    what="add attachment")
        else:
            session = (await ctx.graph.request("POST", f"{base}/createUploadSession", mailbox=mailbox,
                                               body=upload_session_request(meta, len(data)),
                                               what="create upload session")).json()
            await _upload(ctx, mailbox, str(session["uploadUrl"]), data)
        added += 1
    return added


async def _upload(ctx: WorkerContext, mailbox: str, url: str, data: bytes) -> None:
    """PUT the bytes in chunks (<4 MB each) to the session URL — without our Graph token (graph.md §6).
    Each PUT still takes one of the mailbox's concurrency slots."""
    timeout = httpx.Timeout(ctx.settings.graph.timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout) as client:
        total = len(data)
        for start in range(0, total, UPLOAD_CHUNK):
            chunk = data[start:start + UPLOAD_CHUNK]
            end = start + len(chunk) - 1
            headers = {"Content-Range": f"bytes {start}-{end}/{total}", "Content-Length": str(len(chunk)),
                       "Content-Type": "application/octet-stream"}
            async with ctx.graph.limiter.slot(mailbox):
                try:
                    resp = await client.put(url, content=chunk, headers=headers)
                except httpx.TimeoutException as exc:
                    raise TransientError("attachment upload timed out", retry_after=5.0) from exc
                except httpx.TransportError as exc:
                    raise TransientError(f"attachment upload failed: {type(exc).__name__}", retry_after=5.0) from exc
            if resp.status_code >= 400:
                raise error_from_response(resp.status_code, dict(resp.headers), resp.content, what="upload chunk")


async def _attachment_names(ctx: WorkerContext, mailbox: str, message_id: str) -> set[str]:
    page = await ctx.graph.get_json(f"{_messages(mailbox)}/{message_id}/attachments", mailbox=mailbox,
                                    params={"$select": "id,name"}, what="list attachments")
    return {str(a.get("name")) for a in (page or {}).get("value") or []}


async def _send_and_read(ctx: WorkerContext, mailbox: str, message_id: str) -> dict[str, Any]:
    await ctx.graph.request("POST", f"{_messages(mailbox)}/{message_id}/send", mailbox=mailbox, what="send draft")
    return await _read_sent(ctx, mailbox, message_id)


async def _read_sent(ctx: WorkerContext, mailbox: str, message_id: str) -> dict[str, Any]:
    """The Sent Items copy under the same immutable id; it may take a moment to appear."""
    delay = 0.2
    for attempt in range(SENT_READ_TRIES):
        try:
            raw = await ctx.graph.get_json(f"{_messages(mailbox)}/{message_id}", mailbox=mailbox, what="read sent")
            if raw and not raw.get("isDraft"):
                return dict(raw)
        except GraphNotFoundError:
            if attempt == SENT_READ_TRIES - 1:
                break
        await asyncio.sleep(delay)
        delay *= 2
    raise TransientError("the sent message is not readable yet", retry_after=5.0)


def _mapped(ctx: WorkerContext, raw: dict[str, Any]) -> tuple[MessageRecord, dict[str, Any]]:
    rec = parse_message(raw)
    if not isinstance(rec, MessageRecord):
        raise PermanentError("Graph returned a removed message")
    return rec, map_message(rec, direction=ctx.mapping.status.email_outbound)


async def _finish(ctx: WorkerContext, req: OutboundRequest, raw: dict[str, Any]) -> dict[str, Any]:
    rec, mapped = _mapped(ctx, raw)
    link = await save_link(ctx, req, kind=LINK_KIND, graph_id=rec.id, change_key=rec.change_key, mapped=mapped)
    report = await report_to_pega(ctx, req, RecordKind.EMAIL, link.graph_id)
    return {"exchangeId": link.graph_id, "changeKey": rec.change_key, "conversationId": rec.conversation_id,
            "internetMessageId": rec.internet_message_id, **report}


async def _resume(ctx: WorkerContext, req: OutboundRequest, *, is_reply: bool = False) -> dict[str, Any] | None:
    """A retry: the link, or an item stamped with this PegaId (a draft to finish or a sent message)."""
    mailbox = req.mailbox
    link = await ctx.state.links.by_pega_id(mailbox, req.pega_id)
    if link is not None:
        report = await report_to_pega(ctx, req, RecordKind.EMAIL, link.graph_id)
        return {"exchangeId": link.graph_id, "changeKey": link.graph_change_key, **report}
    found = await find_by_pega_id(ctx, mailbox, _messages(mailbox), req.pega_id, select="id,isDraft")
    if found is None:
        return None
    if not found.get("isDraft"):
        return await _finish(ctx, req, await _read_sent(ctx, mailbox, found["id"]))
    if is_reply:
        draft = await ctx.graph.get_json(
            f"{_messages(mailbox)}/{found['id']}", mailbox=mailbox, what="read reply draft",
            params={"$select": "id,body,toRecipients,ccRecipients",
                    "$expand": f"singleValueExtendedProperties($filter=id eq '{REPLY_READY_PROPERTY}')"})
        if not _reply_ready(draft):
            await _write_reply(ctx, req, dict(draft or {}))
    await _add_attachments(ctx, mailbox, found["id"], req, already=await _attachment_names(ctx, mailbox, found["id"]))
    return await _finish(ctx, req, await _send_and_read(ctx, mailbox, found["id"]))


def _reply_ready(draft: Any) -> bool:
    props = (draft or {}).get("singleValueExtendedProperties") if isinstance(draft, dict) else None
    return any(isinstance(p, dict) and str(p.get("id", "")).lower() == REPLY_READY_PROPERTY.lower()
               for p in props or [])


async def _write_reply(ctx: WorkerContext, req: OutboundRequest, draft: dict[str, Any]) -> None:
    """Put the rep's text above the quoted thread createReply wrote, with the ReplyReady stamp in
    the same PATCH (an answer lost after it applied is recognised by the stamp on the retry)."""
    quoted = str((draft.get("body") or {}).get("content") or "")
    patch: dict[str, Any] = {
        "body": {"contentType": "HTML", "content": reply_html(req.body.get("body") or {}, quoted)},
        "singleValueExtendedProperties": [{"id": REPLY_READY_PROPERTY, "value": "1"}],
    }
    if req.body.get("to"):
        patch["toRecipients"] = merged_recipients(draft.get("toRecipients") or [], req.body["to"])
    if req.body.get("cc"):
        patch["ccRecipients"] = merged_recipients(draft.get("ccRecipients") or [], req.body["cc"])
    if req.body.get("subject"):
        patch["subject"] = req.body["subject"]
    await ctx.graph.request("PATCH", f"{_messages(req.mailbox)}/{draft['id']}", mailbox=req.mailbox, body=patch,
                            what="update reply draft")


async def send(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    resumed = await _resume(ctx, req)
    if resumed is not None:
        return resumed
    mailbox = req.mailbox
    draft = (await ctx.graph.request("POST", _messages(mailbox), mailbox=mailbox,
                                     body=new_message(req.body, pega_id=req.pega_id), what="create draft")).json()
    await _add_attachments(ctx, mailbox, draft["id"], req, already=set())
    return await _finish(ctx, req, await _send_and_read(ctx, mailbox, draft["id"]))


def reply_html(body: dict[str, Any], quoted: str) -> str:
    """The rep's reply (text escaped, or HTML as is) placed before the quoted thread of the draft."""
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "text").lower() == "html":
        mine = content
    else:
        mine = "<div>" + html.escape(content).replace("\r\n", "\n").replace("\n", "<br>") + "</div>"
    match = re.search(r"<body[^>]*>", quoted, re.IGNORECASE)
    if match:
        return quoted[:match.end()] + mine + quoted[match.end():]
    if quoted:
        return f"<html><body>{mine}{quoted}</body></html>"
    return f"<html><body>{mine}</body></html>"


async def _original_id(ctx: WorkerContext, req: OutboundRequest) -> str:
    original_pega = req.params.get("originalPegaId", "")
    link = await ctx.state.links.by_pega_id(req.mailbox, original_pega)
    if link is not None:
        return link.graph_id
    if req.body.get("originalExchangeId"):
        return str(req.body["originalExchangeId"])
    await link_or_wait(ctx, req, "the email replied to", pega_id=original_pega)


async def reply(ctx: WorkerContext, req: OutboundRequest, *, reply_all: bool = False) -> dict[str, Any]:
    resumed = await _resume(ctx, req, is_reply=True)
    if resumed is not None:
        return resumed
    mailbox = req.mailbox
    original = await _original_id(ctx, req)
    action = "createReplyAll" if reply_all else "createReply"
    try:
        draft = (await ctx.graph.request(
            "POST", f"{_messages(mailbox)}/{original}/{action}", mailbox=mailbox,
            body={"message": {"singleValueExtendedProperties": pega_id_property(req.pega_id)}},
            what=action)).json()
    except GraphNotFoundError:
        raise PermanentError("the email replied to no longer exists in the rep's mailbox") from None
    # The draft's body already quotes the thread; the rep's text goes on top of it, in the body's own
    # type (createReply's `comment` would not say whether the text is HTML or plain).
    await _write_reply(ctx, req, draft)
    await _add_attachments(ctx, mailbox, draft["id"], req, already=set())
    return await _finish(ctx, req, await _send_and_read(ctx, mailbox, draft["id"]))


async def reply_all(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    return await reply(ctx, req, reply_all=True)
