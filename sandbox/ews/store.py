"""The simulator's state: mailboxes with their folders and items, the per-folder change log that
SyncFolderItems reads, accounts (who may log on, who holds ApplicationImpersonation), subscriptions.

Items keep their properties as the EWS elements themselves (`t:` namespace, keyed by local name):
what a client wrote is what it reads back, in Exchange's own shapes. Server-set properties (ids,
times, ItemClass, UID, …) are set here as elements too, so rendering is uniform.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from sandbox.ews import ids
from sandbox.ews.soap import ItemError, sub, t

DISTINGUISHED = {  # name -> (display name, FolderClass, parent)
    "root": ("Top of Information Store", "", ""),
    "msgfolderroot": ("Top of Information Store", "IPF.Note", "root"),
    "inbox": ("Inbox", "IPF.Note", "msgfolderroot"),
    "sentitems": ("Sent Items", "IPF.Note", "msgfolderroot"),
    "drafts": ("Drafts", "IPF.Note", "msgfolderroot"),
    "outbox": ("Outbox", "IPF.Note", "msgfolderroot"),
    "deleteditems": ("Deleted Items", "IPF.Note", "msgfolderroot"),
    "junkemail": ("Junk Email", "IPF.Note", "msgfolderroot"),
    "calendar": ("Calendar", "IPF.Appointment", "msgfolderroot"),
    "contacts": ("Contacts", "IPF.Contact", "msgfolderroot"),
    "tasks": ("Tasks", "IPF.Task", "msgfolderroot"),
    "notes": ("Notes", "IPF.StickyNote", "msgfolderroot"),
}
KIND_CLASS = {"Message": "IPM.Note", "CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact",
              "MeetingRequest": "IPM.Schedule.Meeting.Request",
              "MeetingCancellation": "IPM.Schedule.Meeting.Canceled"}


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    is_contact_photo: bool = False
    content_id: str = ""


@dataclass
class Item:
    id: str
    kind: str  # Message | CalendarItem | Contact | MeetingRequest | MeetingCancellation
    folder_id: str
    props: dict[str, etree._Element] = field(default_factory=dict)
    ext: dict[str, etree._Element] = field(default_factory=dict)  # key -> t:ExtendedProperty
    change_n: int = 0
    change_key: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    # a recurring master: exceptions by original start (ISO Z), deleted occurrences' original starts
    exceptions: dict[str, Item] = field(default_factory=dict)
    deleted_occurrences: set[str] = field(default_factory=set)

    def text(self, tag: str) -> str | None:
        el = self.props.get(tag)
        return el.text if el is not None else None

    def set(self, tag: str, value: Any) -> None:
        holder = etree.Element("x")
        self.props[tag] = sub(holder, t(tag), value)


@dataclass
class Entry:
    """An item's life in one folder, for SyncFolderItems."""

    created_seq: int
    last_seq: int
    deleted: bool = False


@dataclass
class Folder:
    id: str
    name: str
    folder_class: str
    parent_id: str
    distinguished: str = ""
    change_n: int = 1
    entries: dict[str, Entry] = field(default_factory=dict)


@dataclass
class Mailbox:
    smtp: str
    display_name: str
    password: str
    folders: dict[str, Folder] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)  # distinguished name -> folder id
    items: dict[str, Item] = field(default_factory=dict)
    seq: int = 0
    epoch: int = 1  # bumped by /_sim/ to invalidate every sync state (ErrorInvalidSyncStateData)

    def folder(self, name_or_id: str) -> Folder:
        fid = self.by_name.get(name_or_id, name_or_id)
        found = self.folders.get(fid)
        if found is None:
            raise ItemError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return found

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class Account:
    """Who may log on. `impersonation`: holds ApplicationImpersonation; `scope`: the mailboxes a
    management scope limits it to (empty = all)."""

    username: str  # DOMAIN\\user or UPN
    password: str
    smtp: str = ""  # its own mailbox, if any
    impersonation: bool = False
    scope: frozenset[str] = frozenset()


@dataclass
class Subscription:
    id: str
    smtp: str
    folder_ids: frozenset[str]
    event_types: frozenset[str]
    kind: str  # pull | streaming
    watermark_n: int = 0
    timeout_minutes: int = 30
    last_polled: dt.datetime | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    waiter: Any = None  # asyncio.Event for streaming connections


class Store:
    def __init__(self, domain: str = "contoso.example") -> None:
        self.lock = threading.RLock()
        self.domain = domain
        self.mailboxes: dict[str, Mailbox] = {}
        self.accounts: dict[str, Account] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.sub_seq = 0
        self.requests: list[dict[str, str]] = []  # what was asked: operation, mailbox, impersonation

    # ------------------------------------------------------------ mailboxes and accounts

    def add_mailbox(self, smtp: str, *, display_name: str = "", password: str = "") -> Mailbox:
        smtp = smtp.lower()
        if smtp in self.mailboxes:
            return self.mailboxes[smtp]
        mb = Mailbox(smtp=smtp, display_name=display_name or smtp.split("@")[0], password=password)
        for name, (display, cls, parent) in DISTINGUISHED.items():
            fid = ids.new_id(smtp, folder=True)
            mb.folders[fid] = Folder(fid, display, cls, mb.by_name.get(parent, ""), distinguished=name)
            mb.by_name[name] = fid
        self.mailboxes[smtp] = mb
        if password:
            self.accounts[smtp] = Account(username=smtp, password=password, smtp=smtp)
        return mb

    def mailbox(self, smtp: str) -> Mailbox:
        found = self.mailboxes.get(smtp.lower())
        if found is None:
            raise KeyError(smtp)
        return found

    def add_account(self, username: str, password: str, *, impersonation: bool = False,
                    scope: frozenset[str] = frozenset()) -> Account:
        acct = Account(username=username, password=password, impersonation=impersonation,
                       scope=frozenset(s.lower() for s in scope))
        self.accounts[username.lower()] = acct
        return acct

    def account(self, username: str) -> Account | None:
        name = username.lower()
        found = self.accounts.get(name)
        if found is None and "\\" in name:
            found = self.accounts.get(name.split("\\", 1)[1])
        if found is None and "@" not in name:
            found = next((a for a in self.accounts.values() if a.username.lower().split("\\")[-1] == name), None)
        return found

    # ------------------------------------------------------------ items and the change log

    def touch(self, mb: Mailbox, item: Item, *, now: dt.datetime, created: bool = False) -> None:
        item.change_n += 1
        item.change_key = ids.change_key(item.change_n)
        item.set("LastModifiedTime", iso(now))
        seq = mb.next_seq()
        folder = mb.folders[item.folder_id]
        entry = folder.entries.get(item.id)
        if created or entry is None or entry.deleted:
            folder.entries[item.id] = Entry(created_seq=seq, last_seq=seq)
        else:
            entry.last_seq = seq
        self.notify(mb, item.folder_id, item.id, "CreatedEvent" if created else "ModifiedEvent", now=now)

    def insert(self, mb: Mailbox, item: Item, *, now: dt.datetime) -> Item:
        mb.items[item.id] = item
        item.set("DateTimeCreated", iso(now))
        if item.text("DateTimeReceived") is None:
            item.set("DateTimeReceived", iso(now))
        self.touch(mb, item, now=now, created=True)
        return item

    def remove(self, mb: Mailbox, item: Item, *, now: dt.datetime) -> None:
        mb.items.pop(item.id, None)
        entry = mb.folders[item.folder_id].entries.get(item.id)
        if entry is not None:
            entry.deleted = True
            entry.last_seq = mb.next_seq()
        self.notify(mb, item.folder_id, item.id, "DeletedEvent", now=now)

    def move(self, mb: Mailbox, item: Item, folder_id: str, *, now: dt.datetime) -> Item:
        """Exchange gives a moved item a new id; the old one is gone from its folder."""
        self.remove(mb, item, now=now)
        moved = copy.copy(item)
        moved.id = ids.new_id(mb.smtp)
        moved.folder_id = folder_id
        moved.props = dict(item.props)
        mb.items[moved.id] = moved
        self.touch(mb, moved, now=now, created=True)
        return moved

    # ------------------------------------------------------------ sync states

    @staticmethod
    def encode_state(mb: Mailbox, folder: Folder, seq: int) -> str:
        raw = json.dumps({"f": folder.id[-16:], "s": seq, "e": mb.epoch}).encode()
        return base64.b64encode(gzip.compress(raw, mtime=0)).decode()

    @staticmethod
    def decode_state(mb: Mailbox, folder: Folder, state: str) -> int:
        try:
            data = json.loads(gzip.decompress(base64.b64decode(state, validate=True)))
            if data["f"] != folder.id[-16:] or data["e"] != mb.epoch or not isinstance(data["s"], int):
                raise ValueError
            return int(data["s"])
        except (ValueError, KeyError, TypeError, OSError, EOFError):
            raise ItemError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise "
                            "invalid.") from None

    def changes_since(self, mb: Mailbox, folder: Folder, since: int, limit: int
                      ) -> tuple[list[tuple[str, str]], int, bool]:
        """[(change type, item id)], the new sync position, and whether that was the last of the range."""
        pending = sorted(((e.last_seq, iid, e) for iid, e in folder.entries.items() if e.last_seq > since),
                         key=lambda x: x[0])
        out: list[tuple[str, str]] = []
        last = since
        for seq, iid, e in pending:
            existed_before = e.created_seq <= since
            if e.deleted:
                if not existed_before:
                    last = seq
                    continue  # created and deleted within the range: nothing to tell
                change = "Delete"
            else:
                change = "Update" if existed_before else "Create"
            if len(out) >= limit:
                return out, last, False
            out.append((change, iid))
            last = seq
        return out, mb.seq, True

    # ------------------------------------------------------------ notifications

    def notify(self, mb: Mailbox, folder_id: str, item_id: str, event: str, *, now: dt.datetime) -> None:
        for s in self.subscriptions.values():
            if s.smtp != mb.smtp or (s.folder_ids and folder_id not in s.folder_ids):
                continue
            types = {event} | ({"NewMailEvent"} if event == "CreatedEvent" and folder_id == mb.by_name["inbox"]
                               else set())
            for ev in sorted(types & s.event_types):
                s.watermark_n += 1
                s.events.append({"type": ev, "item_id": item_id, "folder_id": folder_id, "n": s.watermark_n,
                                 "at": iso(now)})
            if s.waiter is not None:
                s.waiter.set()
