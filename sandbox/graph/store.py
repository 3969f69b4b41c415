"""The tenant's state and the only place that mutates items, so every change is observed.

Listeners (the change-notification engine) are told about each create/update/delete/move with
the folder the item was in, which is what folder-scoped subscriptions need.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.graph.clock import SimClock
from sandbox.graph.errors import GraphError, not_found
from sandbox.graph.model import (
    Folder,
    FolderKind,
    Item,
    ItemKind,
    Mailbox,
    UploadSession,
    User,
    new_change_key,
    new_folder_id,
    new_immutable_id,
    new_rest_id,
)
from sandbox.graph.seed import SEED_USERS

MESSAGE_CLASS_ID = "String 0x001A"

MAIL_WELL_KNOWN = {
    "inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts", "deleteditems": "Deleted Items",
    "junkemail": "Junk Email", "outbox": "Outbox", "archive": "Archive",
}


@dataclass(frozen=True)
class Change:
    """One observed change; ``folder_id`` is where the item is (or was, for deletes/moves out)."""

    change_type: str  # created | updated | deleted | moved
    item: Item
    folder_id: str
    old_folder_id: str | None = None  # for moves: where it was
    old_rest_id: str | None = None  # for moves: the default id it had there


Listener = Callable[[Change], None]


class Store:
    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.listeners: list[Listener] = []
        self.reset()

    def reset(self) -> None:
        self.users: dict[str, User] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.items: dict[str, Item] = {}
        self.rest_index: dict[str, str] = {}
        self.upload_sessions: dict[str, UploadSession] = {}
        self.transaction_ids: dict[tuple[str, str], str] = {}
        self.generated: list[Any] = []  # generated_mail.Sent: meeting messages, reports, automatic replies
        self.auto_replies: dict[str, dict[str, Any]] = {}  # user id -> automaticRepliesSetting
        # indexes (issue 16: lookups cost what they find, not the size of the store)
        self._by_upn: dict[str, str] = {}  # upn / lower-cased id -> user id
        self._by_folder: dict[str, dict[str, None]] = {}  # folder id -> item uids
        self._by_owner_kind: dict[tuple[str, str], dict[str, None]] = {}
        self._seq: dict[str, int] = {}  # item uid -> creation order
        for u in SEED_USERS:
            self.add_user(u.upn, u.display_name, user_id=u.id)

    # ---- users and folders -------------------------------------------------------------------

    def add_user(self, upn: str, display_name: str | None = None, *, user_id: str | None = None) -> User:
        if self.find_user(upn) is not None:
            raise GraphError(400, "Request_BadRequest", f"Another object with the same value for property "
                                                        f"userPrincipalName already exists: {upn}")
        user = User(id=user_id or str(uuid.uuid4()), upn=upn.lower(),
                    display_name=display_name or upn.split("@")[0].title())
        self.users[user.id] = user
        self._by_upn[user.upn] = user.id
        self._by_upn[user.id.lower()] = user.id
        mb = Mailbox(user=user)
        for wk, name in MAIL_WELL_KNOWN.items():
            self._add_folder(mb, "mail", name, wk)
        self._add_folder(mb, "contacts", "Contacts", "contacts")
        self._add_folder(mb, "calendar", "Calendar", "calendar")
        self.mailboxes[user.id] = mb
        return user

    def _add_folder(self, mb: Mailbox, kind: FolderKind, name: str, well_known: str | None = None,
                    parent_id: str | None = None) -> Folder:
        f = Folder(id=new_folder_id(), owner=mb.user.id, kind=kind, display_name=name, well_known=well_known,
                   parent_id=parent_id)
        mb.folders[f.id] = f
        return f

    def add_folder(self, user: User, kind: FolderKind, name: str, parent_id: str | None = None) -> Folder:
        mb = self.mailboxes[user.id]
        for f in mb.folders.values():
            if f.kind == kind and f.display_name.lower() == name.lower() and f.parent_id == parent_id:
                raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        return self._add_folder(mb, kind, name, None, parent_id)

    def find_user(self, key: str) -> User | None:
        if key in self.users:
            return self.users[key]
        k = key.lower()
        uid = self._by_upn.get(k)
        u = self.users.get(uid) if uid is not None else None
        return u if u is not None and (u.upn == k or u.id.lower() == k) else None

    def rename_user(self, user: User, upn: str) -> None:
        """A new userPrincipalName (the object id stays)."""
        self._by_upn.pop(user.upn, None)
        user.upn = upn.lower()
        self._by_upn[user.upn] = user.id

    def user(self, key: str) -> User:
        u = self.find_user(key)
        if u is None:
            raise GraphError(404, "ErrorInvalidUser",
                             f"The requested user '{key}' is invalid.")
        return u

    def folder(self, user: User, kind: FolderKind, key: str) -> Folder:
        mb = self.mailboxes[user.id]
        if key in mb.folders and mb.folders[key].kind == kind:
            return mb.folders[key]
        k = key.lower()
        for f in mb.folders.values():
            if f.kind == kind and (f.well_known == k):
                return f
        raise GraphError(404, "ErrorItemNotFound", "The specified folder could not be found in the store.")

    def default_folder(self, user: User, kind: FolderKind) -> Folder:
        wk = {"mail": "inbox", "contacts": "contacts", "calendar": "calendar"}[kind]
        f = self.mailboxes[user.id].well_known(wk)
        assert f is not None
        return f

    def folders(self, user: User, kind: FolderKind) -> list[Folder]:
        return [f for f in self.mailboxes[user.id].folders.values() if f.kind == kind]

    # ---- items -------------------------------------------------------------------------------

    def find_item(self, user: User, item_id: str, kind: ItemKind | None = None) -> Item | None:
        uid = item_id if item_id in self.items else self.rest_index.get(item_id)
        if uid is None:
            return None
        item = self.items[uid]
        if item.owner != user.id or (kind is not None and item.kind != kind):
            return None
        return item

    def item(self, user: User, item_id: str, kind: ItemKind | None = None) -> Item:
        item = self.find_item(user, item_id, kind)
        if item is None:
            raise not_found()
        return item

    def _ordered(self, uids: dict[str, None]) -> list[Item]:
        return [self.items[u] for u in sorted(uids, key=self._seq.__getitem__) if u in self.items]

    def items_in(self, folder: Folder, kind: ItemKind | None = None) -> list[Item]:
        return [i for i in self._ordered(self._by_folder.get(folder.id, {}))
                if i.folder_id == folder.id and (kind is None or i.kind == kind)]

    def items_of(self, user: User, kind: ItemKind) -> list[Item]:
        return [i for i in self._ordered(self._by_owner_kind.get((user.id, kind), {}))
                if i.owner == user.id and i.kind == kind]

    def _index(self, item: Item) -> None:
        self._seq.setdefault(item.uid, len(self._seq))
        self._by_folder.setdefault(item.folder_id, {})[item.uid] = None
        self._by_owner_kind.setdefault((item.owner, item.kind), {})[item.uid] = None

    def _unindex(self, item: Item, folder_id: str | None = None) -> None:
        self._by_folder.get(folder_id or item.folder_id, {}).pop(item.uid, None)
        self._by_owner_kind.get((item.owner, item.kind), {}).pop(item.uid, None)

    def forget(self, item: Item) -> None:
        """Drop an item without a change notification (a sent message that is not saved)."""
        self.items.pop(item.uid, None)
        self.rest_index.pop(item.rest_id, None)
        self._unindex(item)

    def create(self, user: User, kind: ItemKind, folder: Folder, data: dict[str, Any],
               ext: dict[str, str] | None = None, *, notify: bool = True) -> Item:
        now = self.clock.now()
        item = Item(uid=new_immutable_id(), kind=kind, owner=user.id, folder_id=folder.id, rest_id=new_rest_id(),
                    data=data, change_key=new_change_key(), created=now, modified=now, ext=dict(ext or {}))
        if kind == "message":  # every message has a MAPI message class (PidTagMessageClass, 0x001A)
            item.ext.setdefault(MESSAGE_CLASS_ID, "IPM.Note")
        self.items[item.uid] = item
        self.rest_index[item.rest_id] = item.uid
        self._index(item)
        if notify:
            self.emit(Change("created", item, folder.id))
        return item

    def modified(self, item: Item) -> None:
        """Record a modification made in place: new changeKey and lastModifiedDateTime, then notify."""
        item.touch(self.clock.now())
        self.emit(Change("updated", item, item.folder_id))

    def move(self, item: Item, folder: Folder) -> Item:
        if folder.id == item.folder_id:
            return item
        old = item.folder_id
        old_rest = item.rest_id
        self.rest_index.pop(item.rest_id, None)
        item.rest_id = new_rest_id()
        self.rest_index[item.rest_id] = item.uid
        self._unindex(item, old)
        item.folder_id = folder.id
        self._index(item)
        item.touch(self.clock.now())
        self.emit(Change("moved", item, folder.id, old, old_rest))
        return item

    def delete(self, item: Item) -> None:
        self.items.pop(item.uid, None)
        self.rest_index.pop(item.rest_id, None)
        self._unindex(item)
        self.emit(Change("deleted", item, item.folder_id))

    def emit_created(self, item: Item) -> None:
        self.emit(Change("created", item, item.folder_id))

    def emit(self, change: Change) -> None:
        for listener in list(self.listeners):
            listener(change)

    def now(self) -> datetime:
        return self.clock.now()
