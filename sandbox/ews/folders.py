"""Folder operations: GetFolder, FindFolder, CreateFolder."""

from __future__ import annotations

from lxml import etree

from sandbox.ews import ids
from sandbox.ews.context import Ctx
from sandbox.ews.soap import ItemError, local, m, response_message, sub, t
from sandbox.ews.store import Folder

FOLDER_TAG = {"IPF.Appointment": "CalendarFolder", "IPF.Contact": "ContactsFolder", "IPF.Task": "TasksFolder"}


def render_folder(parent: etree._Element, ctx: Ctx, f: Folder) -> None:
    el = sub(parent, t(FOLDER_TAG.get(f.folder_class, "Folder")))
    sub(el, t("FolderId"), Id=f.id, ChangeKey=ids.change_key(f.change_n))
    if f.parent_id:
        sub(el, t("ParentFolderId"), Id=f.parent_id, ChangeKey=ids.change_key(1))
    if f.folder_class:
        sub(el, t("FolderClass"), f.folder_class)
    sub(el, t("DisplayName"), f.name)
    sub(el, t("TotalCount"), sum(1 for i in ctx.mb.items.values() if i.folder_id == f.id))
    sub(el, t("ChildFolderCount"), sum(1 for x in ctx.mb.folders.values() if x.parent_id == f.id))
    if el.tag == t("Folder"):
        sub(el, t("UnreadCount"), sum(1 for i in ctx.mb.items.values()
                                       if i.folder_id == f.id and i.text("IsRead") == "false"))


def get_folder(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("GetFolderResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    for el in req.find(m("FolderIds")) if req.find(m("FolderIds")) is not None else []:
        try:
            folder = ctx.folder_of(el)
        except ItemError as err:
            response_message(msgs, "GetFolder", err)
            continue
        rm = response_message(msgs, "GetFolder")
        render_folder(sub(rm, m("Folders")), ctx, folder)
    return resp


def _descendants(ctx: Ctx, parent: Folder, deep: bool) -> list[Folder]:
    out = []
    for f in ctx.mb.folders.values():
        if f.parent_id == parent.id:
            out.append(f)
            if deep:
                out.extend(_descendants(ctx, f, deep))
    return out


def find_folder(ctx: Ctx, req: etree._Element) -> etree._Element:
    deep = req.get("Traversal") == "Deep"
    resp = etree.Element(m("FindFolderResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    parents = req.find(m("ParentFolderIds"))
    for el in parents if parents is not None else []:
        try:
            folders = _descendants(ctx, ctx.folder_of(el), deep)
        except ItemError as err:
            response_message(msgs, "FindFolder", err)
            continue
        view = req.find(m("IndexedPageFolderView"))
        offset = int(view.get("Offset") or 0) if view is not None else 0
        limit = int(view.get("MaxEntriesReturned") or 1000) if view is not None else 1000
        page = folders[offset:offset + limit]
        rm = response_message(msgs, "FindFolder")
        root = sub(rm, m("RootFolder"), IndexedPagingOffset=offset + len(page), TotalItemsInView=len(folders),
                   IncludesLastItemInRange="true" if offset + len(page) >= len(folders) else "false")
        out = sub(root, t("Folders"))
        for f in page:
            render_folder(out, ctx, f)
    return resp


def create_folder(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("CreateFolderResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    parent_el = req.find(m("ParentFolderId"))
    for el in req.find(m("Folders")) if req.find(m("Folders")) is not None else []:
        try:
            if parent_el is None or not len(parent_el):
                raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
            parent = ctx.folder_of(parent_el[0])
            name = el.findtext(t("DisplayName")) or ""
            if not name:
                raise ItemError("ErrorInvalidRequest", "DisplayName is required.")
            if any(f.parent_id == parent.id and f.name.lower() == name.lower() for f in ctx.mb.folders.values()):
                raise ItemError("ErrorFolderExists", "A folder with the specified name already exists.")
            cls = el.findtext(t("FolderClass")) or {"ContactsFolder": "IPF.Contact",
                                                     "CalendarFolder": "IPF.Appointment"}.get(local(el), "IPF.Note")
            folder = Folder(ids.new_id(ctx.mb.smtp, folder=True), name, cls, parent.id)
            ctx.mb.folders[folder.id] = folder
        except ItemError as err:
            response_message(msgs, "CreateFolder", err)
            continue
        rm = response_message(msgs, "CreateFolder")
        out = sub(sub(rm, m("Folders")), t(local(el)))
        sub(out, t("FolderId"), Id=folder.id, ChangeKey=ids.change_key(1))
    return resp
