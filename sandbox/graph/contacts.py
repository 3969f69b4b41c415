"""Contacts: contactFolders, contacts CRUD in the default folder and in child folders, photos.

Outlook's "Private" flag has no Graph property; it is MAPI PidTagSensitivity, reachable as the
extended property ``Integer 0x0036`` (value "2" = private) via $expand/$filter like any other.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.graph.clock import iso
from sandbox.graph.errors import GraphError, bad_request, not_found
from sandbox.graph.items import View, view_of
from sandbox.graph.model import Folder, Item, User
from sandbox.graph.odata import (
    apply_filter_order,
    apply_select,
    context_url,
    ext_props_list,
    graph_json,
    list_page,
    read_json,
    set_ext,
)
from sandbox.graph.router import Router

PHOTO_LIMIT = 4 * 1024 * 1024
CONTACT_DEFAULTS: dict[str, Any] = {
    "birthday": None, "fileAs": "", "displayName": "", "givenName": None, "initials": None, "middleName": None,
    "nickName": None, "surname": None, "title": None, "yomiGivenName": None, "yomiSurname": None,
    "yomiCompanyName": None, "generation": None, "imAddresses": [], "jobTitle": None, "companyName": None,
    "department": None, "officeLocation": None, "profession": None, "businessHomePage": None,
    "assistantName": None, "manager": None, "homePhones": [], "mobilePhone": None, "businessPhones": [],
    "spouseName": None, "personalNotes": "", "children": [], "emailAddresses": [], "homeAddress": {},
    "businessAddress": {}, "otherAddress": {}, "categories": [],
}
WRITABLE = set(CONTACT_DEFAULTS)


def render_contact(item: Item, view: View) -> dict[str, Any]:
    d = item.data
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.contact", "@odata.etag": item.etag, "id": view.item_id(item),
        "createdDateTime": iso(item.created), "lastModifiedDateTime": iso(item.modified),
        "changeKey": item.change_key, "parentFolderId": item.folder_id,
    }
    for k, default in CONTACT_DEFAULTS.items():
        out[k] = d.get(k, default)
    if not out["displayName"]:
        out["displayName"] = " ".join(x for x in (d.get("givenName"), d.get("surname")) if x)
    out = apply_select(out, list(view.select) if view.select else None)
    if view.expand.ext_single and (props := ext_props_list(item.ext, view.expand.ext_filter)):
        out["singleValueExtendedProperties"] = props  # absent (no key) when none matches, as in Graph
    return out


def render_folder(f: Folder) -> dict[str, Any]:
    # v1.0 contactFolder has id, displayName, parentFolderId (wellKnownName is beta only)
    return {"id": f.id, "displayName": f.display_name, "parentFolderId": f.parent_id or f"{f.owner}-contactroot"}


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in body.items() if k in WRITABLE}
    for ea in data.get("emailAddresses") or []:
        if not isinstance(ea, dict) or not ea.get("address"):
            raise bad_request("Each emailAddresses entry needs an address.")
    return data


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


def _user(request: web.Request, p: dict[str, str]) -> User:
    return _sim(request).store.users[p["user"]]


def _folder(request: web.Request, p: dict[str, str]) -> Folder:
    user = _user(request, p)
    store = _sim(request).store
    return store.folder(user, "contacts", p["folder"]) if "folder" in p else store.default_folder(user, "contacts")


def _entity(request: web.Request, user: User, item: Item, status: int = 200) -> web.Response:
    body = {"@odata.context": context_url(request, f"users('{user.id}')/contacts/$entity"),
            **render_contact(item, view_of(request))}
    return graph_json(request, body, status)


async def list_contacts(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    user = _user(request, p)
    view = view_of(request)
    items = store.items_in(_folder(request, p), "contact")
    full = []
    for i in items:
        f = render_contact(i, View(immutable=view.immutable))
        f["singleValueExtendedProperties"] = ext_props_list(i.ext, None)
        full.append((f, i))
    objs = apply_filter_order(request, [f for f, _ in full], "displayName")
    by_id = {id(f): i for f, i in full}
    return list_page(request, [render_contact(by_id[id(o)], view) for o in objs],
                     f"users('{user.id}')/contacts", default_top=10)


async def create_contact(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    user = _user(request, p)
    body = await read_json(request)
    item = store.create(user, "contact", _folder(request, p), _clean(body), notify=False)
    set_ext(item.ext, body.get("singleValueExtendedProperties"))
    store.emit_created(item)
    return _entity(request, user, item, 201)


def _contact(request: web.Request, p: dict[str, str]) -> Item:
    store = _sim(request).store
    item = store.item(_user(request, p), p["id"], "contact")
    if "folder" in p and item.folder_id != _folder(request, p).id:
        raise not_found()
    return item


async def get_contact(request: web.Request, p: dict[str, str]) -> web.Response:
    return _entity(request, _user(request, p), _contact(request, p))


async def update_contact(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    item = _contact(request, p)
    body = await read_json(request)
    item.data.update(_clean(body))
    set_ext(item.ext, body.get("singleValueExtendedProperties"))
    store.modified(item)
    return _entity(request, _user(request, p), item)


async def delete_contact(request: web.Request, p: dict[str, str]) -> web.Response:
    _sim(request).store.delete(_contact(request, p))
    return web.Response(status=204)


async def get_photo_value(request: web.Request, p: dict[str, str]) -> web.Response:
    item = _contact(request, p)
    if item.photo is None:
        raise GraphError(404, "ImageNotFound", "The photo wasn't found.")
    return web.Response(body=item.photo, content_type="image/jpeg")


async def get_photo(request: web.Request, p: dict[str, str]) -> web.Response:
    item = _contact(request, p)
    if item.photo is None:
        raise GraphError(404, "ImageNotFound", "The photo wasn't found.")
    return graph_json(request, {"@odata.context": context_url(request, "photo/$entity"),
                                "@odata.mediaContentType": "image/jpeg", "id": "default", "height": 96,
                                "width": 96})


async def put_photo(request: web.Request, p: dict[str, str]) -> web.Response:
    item = _contact(request, p)
    data = await request.read()
    if len(data) > PHOTO_LIMIT:
        raise GraphError(413, "ErrorRequestEntityTooLarge", "The photo exceeds the 4 MB limit.")
    if not data:
        raise bad_request("The photo is empty.")
    item.photo = data
    _sim(request).store.modified(item)
    return web.Response(status=200)


async def list_folders(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    user = _user(request, p)
    folders = [render_folder(f) for f in store.folders(user, "contacts") if f.well_known != "contacts"]
    return list_page(request, apply_filter_order(request, folders), "contactFolders", default_top=10)


async def get_folder(request: web.Request, p: dict[str, str]) -> web.Response:
    return graph_json(request, {"@odata.context": context_url(request, "contactFolders/$entity"),
                                **render_folder(_folder(request, p))})


async def create_folder(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    body = await read_json(request)
    if not body.get("displayName"):
        raise bad_request("displayName is required.")
    parent = _folder(request, p).id if "folder" in p else None
    f = store.add_folder(_user(request, p), "contacts", body["displayName"], parent)
    return graph_json(request, {"@odata.context": context_url(request, "contactFolders/$entity"),
                                **render_folder(f)}, 201)


async def delete_folder(request: web.Request, p: dict[str, str]) -> web.Response:
    store = _sim(request).store
    f = _folder(request, p)
    if f.well_known:
        raise GraphError(400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
    for item in store.items_in(f):
        store.delete(item)
    del store.mailboxes[f.owner].folders[f.id]
    return web.Response(status=204)


def register(router: Router) -> None:
    u = "users/{user}"
    router.add("GET", f"{u}/contactFolders", list_folders, "contacts")
    router.add("POST", f"{u}/contactFolders", create_folder, "contacts.write")
    router.add("GET", f"{u}/contactFolders/{{folder}}", get_folder, "contacts")
    router.add("DELETE", f"{u}/contactFolders/{{folder}}", delete_folder, "contacts.write")
    router.add("POST", f"{u}/contactFolders/{{folder}}/childFolders", create_folder, "contacts.write")
    for base in (f"{u}/contacts", f"{u}/contactFolders/{{folder}}/contacts"):
        router.add("GET", base, list_contacts, "contacts")
        router.add("POST", base, create_contact, "contacts.write")
        router.add("GET", f"{base}/{{id}}", get_contact, "contacts")
        router.add("PATCH", f"{base}/{{id}}", update_contact, "contacts.write")
        router.add("DELETE", f"{base}/{{id}}", delete_contact, "contacts.write")
        router.add("POST", f"{base}/{{id}}/permanentDelete", delete_contact, "contacts.write")
        router.add("GET", f"{base}/{{id}}/photo", get_photo, "contacts")
        router.add("GET", f"{base}/{{id}}/photo/$value", get_photo_value, "contacts")
        router.add("PUT", f"{base}/{{id}}/photo/$value", put_photo, "contacts.write")
    from sandbox.graph import delta

    delta.register_contacts(router)
