"""SyncFolderItems: a folder's changes since a sync state, at most MaxChangesReturned (1–512) at a
time, with IncludesLastItemInRange telling whether more are waiting. Unlike FindItem, it returns
per-item properties (body, recipients) when the shape asks for them, as exchangelib relies on. A sync state from before a
/_sim/ invalidation (or a corrupt one) is ErrorInvalidSyncStateData, as Exchange answers."""

from __future__ import annotations

from lxml import etree

from sandbox.ews.context import Ctx
from sandbox.ews.fields import Shape
from sandbox.ews.items import render
from sandbox.ews.soap import EwsFault, ItemError, m, response_message, sub, t


def sync_folder_items(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("SyncFolderItemsResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    try:
        limit = int(req.findtext(m("MaxChangesReturned")) or "")
    except ValueError:
        raise EwsFault("ErrorSchemaValidation", "The request failed schema validation: MaxChangesReturned "
                       "is required.") from None
    if not 1 <= limit <= 512:
        raise EwsFault("ErrorSchemaValidation", "The request failed schema validation: The 'MaxChangesReturned' "
                       "element is invalid - The value is out of range (1 to 512).")
    try:
        shape = Shape.parse(req.find(m("ItemShape")))
        holder = req.find(m("SyncFolderId"))
        if holder is None or not len(holder):
            raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
        folder = ctx.folder_of(holder[0])
        state = (req.findtext(m("SyncState")) or "").strip()
        since = ctx.store.decode_state(ctx.mb, folder, state) if state else 0
        ignore = {el.get("Id") for el in (req.find(m("Ignore")) or [])}
        changes, position, last = ctx.store.changes_since(ctx.mb, folder, since, limit)
    except ItemError as err:
        # Exchange still carries the (empty) SyncState and IncludesLastItemInRange in an error message
        rm = response_message(msgs, "SyncFolderItems", err)
        sub(rm, m("SyncState"))
        sub(rm, m("IncludesLastItemInRange"), "true")
        return resp
    rm = response_message(msgs, "SyncFolderItems")
    sub(rm, m("SyncState"), ctx.store.encode_state(ctx.mb, folder, position))
    sub(rm, m("IncludesLastItemInRange"), "true" if last else "false")
    out = sub(rm, m("Changes"))
    for change, item_id in changes:
        if item_id in ignore:
            continue
        if change == "Delete":
            sub(sub(out, t("Delete")), t("ItemId"), Id=item_id)
            continue
        item = ctx.mb.items[item_id]
        render(sub(out, t(change)), item, shape)
    return resp
