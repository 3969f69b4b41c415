"""Contacts from Pega → the rep's Outlook contacts (create, update, close).

Contacts go to the default contacts folder, or to a dedicated folder (SYNC_CONTACT_FOLDER, created
on first use), with the sync category (SYNC_CONTACT_CATEGORY, PegaSASync) — the category is what
makes Outlook contacts flow back to Pega, as in Pega's own Exchange connector. A photo in the
request is uploaded to `/contacts/{id}/photo/$value`. Closing in Pega clears the category (the
rep keeps the contact, it just stops syncing) or deletes the contact (SYNC_CONTACT_CLOSE_ACTION).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.errors import PermanentError
from shared.graph.errors import GraphNotFoundError
from shared.outbound.common import (
    OutboundRequest,
    agreed_since,
    already_decided,
    ended_meanwhile,
    find_by_pega_id,
    is_stale,
    link_or_wait,
    report_to_pega,
    save_link,
    user_path,
)
from shared.outbound.context import WorkerContext
from shared.outbound.graph_payloads import (
    CONTACT_KEYS,
    contact_fields,
    mapped_contact,
    new_contact,
    photo_bytes,
)
from shared.pega.models import RecordKind
from shared.storage.links import Link
from shared.sync.mapping import fields_of, map_contact, three_way, to_pega_data
from shared.sync.mapping.fields import CONTACT_FIELDS
from shared.sync.records import ContactRecord, parse_contact

log = logging.getLogger(__name__)
LINK_KIND = "contact"


async def _collection(ctx: WorkerContext, mailbox: str) -> str:
    """`users/{m}/contacts`, or the dedicated folder's contacts (found by name or created)."""
    name = ctx.settings.sync.contact_folder
    if not name:
        return f"{user_path(mailbox)}/contacts"
    key = mailbox.lower()
    folder_id = ctx.contact_folders.get(key)
    if folder_id is None:
        quoted = name.replace("'", "''")
        page = await ctx.graph.get_json(f"{user_path(mailbox)}/contactFolders", mailbox=mailbox,
                                        params={"$filter": f"displayName eq '{quoted}'", "$select": "id,displayName"},
                                        what="find contact folder")
        values = (page or {}).get("value") or []
        if values:
            folder_id = str(values[0]["id"])
        else:
            made = (await ctx.graph.request("POST", f"{user_path(mailbox)}/contactFolders", mailbox=mailbox,
                                            body={"displayName": name}, what="create contact folder")).json()
            folder_id = str(made["id"])
        ctx.contact_folders[key] = folder_id
    return f"{user_path(mailbox)}/contactFolders/{folder_id}/contacts"


def _item_path(mailbox: str, contact_id: str) -> str:
    # An immutable contact id addresses the contact whatever folder it is in.
    return f"{user_path(mailbox)}/contacts/{contact_id}"


def _record(raw: dict[str, Any]) -> ContactRecord:
    rec = parse_contact(raw)
    if not isinstance(rec, ContactRecord):
        raise PermanentError("Graph returned a removed contact")
    return rec


async def _get(ctx: WorkerContext, mailbox: str, contact_id: str) -> dict[str, Any]:
    return await ctx.graph.get_json(_item_path(mailbox, contact_id), mailbox=mailbox, what="get contact")


async def _put_photo(ctx: WorkerContext, mailbox: str, contact_id: str, data: bytes, content_type: str) -> None:
    await ctx.graph.request("PUT", f"{_item_path(mailbox, contact_id)}/photo/$value", mailbox=mailbox,
                            raw_body=data, content_type=content_type, what="put contact photo")


def _photo_digest_kept(link: Link | None) -> str:
    return str((link.snapshot if link else {}).get("photo") or "")


async def create(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    mailbox = req.mailbox
    category = ctx.settings.sync.contact_category
    link = await ctx.state.links.by_pega_id(mailbox, req.pega_id)
    if link is not None and link.state != "active":
        # closed after this create first ran (closed in Pega, or the rep removed the category): a
        # retried create must not bring the contact back
        return {"exchangeId": link.graph_id, "created": False, "skipped": "the contact was closed",
                "reportedToPega": False}
    created = False
    if link is None:
        collection = await _collection(ctx, mailbox)
        found = await find_by_pega_id(ctx, mailbox, collection, req.pega_id)
        if found is None:
            raw = (await ctx.graph.request("POST", collection, mailbox=mailbox,
                                           body=new_contact(req.body, pega_id=req.pega_id, category=category),
                                           what="create contact")).json()
            created = True
        else:
            raw = await _get(ctx, mailbox, found["id"])
        photo = photo_bytes(req.body)
        if photo:
            await _put_photo(ctx, mailbox, raw["id"], photo, str(req.body["photo"]["contentType"]))
            raw = await _get(ctx, mailbox, raw["id"])
        rec = _record(raw)
        mapped = map_contact(rec, photo_digest=mapped_contact(req.body).get("photo", ""))
        link = await save_link(ctx, req, kind=LINK_KIND, graph_id=rec.id, change_key=rec.change_key, mapped=mapped)
    report = await report_to_pega(ctx, req, RecordKind.CONTACT, link.graph_id)
    return {"exchangeId": link.graph_id, "changeKey": link.graph_change_key, "created": created, **report}


async def _linked(ctx: WorkerContext, req: OutboundRequest) -> Link | None:
    link = await ctx.state.links.by_pega_id(req.mailbox, req.pega_id)
    if link is not None:
        return link
    found = await find_by_pega_id(ctx, req.mailbox, await _collection(ctx, req.mailbox), req.pega_id)
    if found is None:
        return None
    rec = _record(await _get(ctx, req.mailbox, found["id"]))
    return await save_link(ctx, req, kind=LINK_KIND, graph_id=rec.id, change_key=rec.change_key,
                           mapped=map_contact(rec))


async def update(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    link = await _linked(ctx, req)
    if link is not None and link.state != "active":
        # closed meanwhile (in Pega, or its category removed in Outlook): nothing to change, nothing failed
        return {"exchangeId": link.graph_id, "skipped": "the contact was closed"}
    if link is None:
        await link_or_wait(ctx, req, "contact", link)
    if is_stale(link, req):
        return {"exchangeId": link.graph_id, "skipped": "a newer Pega change was already applied"}
    try:
        return await _update_linked(ctx, req, link)
    except GraphNotFoundError:
        return await _gone(ctx, req, link)


async def _gone(ctx: WorkerContext, req: OutboundRequest, link: Link) -> dict[str, Any]:
    """The linked contact vanished while this update ran. A close of the same contact (with
    SYNC_CONTACT_CLOSE_ACTION=delete) that Pega sent meanwhile removed it: Pega's last word is being
    carried out and the update is skipped, not failed. Otherwise it was deleted in Outlook: a failure."""
    skipped = await ended_meanwhile(ctx, req, link, what="contact", ended="closed")
    if skipped is not None:
        return skipped
    raise PermanentError("the linked contact no longer exists in Exchange")


async def _update_linked(ctx: WorkerContext, req: OutboundRequest, link: Link) -> dict[str, Any]:
    mailbox = req.mailbox
    rec = _record(await _get(ctx, mailbox, link.graph_id))
    photo_digest = _photo_digest_kept(link)
    exchange = map_contact(rec, photo_digest=photo_digest)
    pega = mapped_contact(req.body)
    pega, decided = already_decided(link, req, pega, exchange)
    pega, agreed = await agreed_since(ctx, req, RecordKind.CONTACT, pega, exchange)
    decided = (*decided, *agreed)
    merge = three_way(fields_of(link.snapshot), exchange, pega, policy=ctx.settings.sync.conflict_policy,
                      exchange_time=rec.last_modified, pega_time=req.changed_at, fields=CONTACT_FIELDS)
    keys: set[str] = set()
    for name in merge.to_exchange:
        keys.update(k for k in CONTACT_KEYS.get(name, ()) if k in req.body)
    patch = contact_fields({k: req.body[k] for k in keys if k != "photo"})
    if patch:
        raw = (await ctx.graph.request("PATCH", _item_path(mailbox, link.graph_id), mailbox=mailbox, body=patch,
                                       what="update contact")).json()
        rec = _record(raw)
    if "photo" in keys:
        data = photo_bytes(req.body)
        if data:
            await _put_photo(ctx, mailbox, link.graph_id, data, str(req.body["photo"]["contentType"]))
            photo_digest = str(pega.get("photo") or "")
        else:
            log.info("a photo removed in Pega is kept in Outlook (Graph has no contact photo delete)")
    if patch or "photo" in keys:
        rec = _record(await _get(ctx, mailbox, link.graph_id))
    exchange = map_contact(rec, photo_digest=photo_digest)
    if merge.to_pega and ctx.pega is not None:
        values = {name: exchange[name] for name in merge.to_pega if name != "photo"}
        if values:
            await ctx.pega.upsert_contact(link.graph_id, to_pega_data("contacts", values), known_id=req.pega_id)  # type: ignore[arg-type]
    link = await save_link(ctx, req, kind=LINK_KIND, graph_id=link.graph_id, change_key=rec.change_key,
                           mapped=exchange, existing=link)
    return {"exchangeId": link.graph_id, "changeKey": link.graph_change_key, "patched": sorted(keys),
            "toPega": list(merge.to_pega), "conflicts": [c.field for c in merge.conflicts],
            "alreadyDecided": list(decided)}


async def close(ctx: WorkerContext, req: OutboundRequest) -> dict[str, Any]:
    mailbox = req.mailbox
    link = await _linked(ctx, req)
    if link is None:
        await link_or_wait(ctx, req, "contact", link)
    if link.state != "active":
        return {"exchangeId": link.graph_id, "action": "already_closed"}
    category = ctx.settings.sync.contact_category
    action = ctx.settings.sync.contact_close_action
    change_key = link.graph_change_key
    try:
        if action == "delete":
            await ctx.graph.request("DELETE", _item_path(mailbox, link.graph_id), mailbox=mailbox,
                                    what="delete contact")
            result = "deleted"
        else:
            rec = _record(await _get(ctx, mailbox, link.graph_id))
            kept = [c for c in rec.categories if c.lower() != category.lower()]
            if len(kept) != len(rec.categories):
                raw = (await ctx.graph.request("PATCH", _item_path(mailbox, link.graph_id), mailbox=mailbox,
                                               body={"categories": kept}, what="clear contact category")).json()
                change_key = _record(raw).change_key
            result = "category_cleared"
    except GraphNotFoundError:
        result = "already_gone"
    await save_link(ctx, req, kind=LINK_KIND, graph_id=link.graph_id, change_key=change_key, mapped={},
                    keep_fields=fields_of(link.snapshot), existing=link, state="closed")
    return {"exchangeId": link.graph_id, "action": result}
