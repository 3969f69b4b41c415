"""Reading one on-premises mailbox over EWS, with the same interface and records as the Graph
reader (shared/sync/source.py ExchangeReader), so the round, planner and appliers are unchanged.

Positions: the round keeps opaque "links" in its cursor (Graph's nextLink/deltaLink). Here a
position is "ews:" + base64(JSON of folder, SyncFolderItems sync state, calendar window). The
round's first request (the Graph-shaped path and query of `initial_request`) is turned into a
position with no sync state by `url_of`. A page is one SyncFolderItems call (at most
min(batch size, 512) changes): IncludesLastItemInRange false → the position is a next link, true →
a delta link. Because the state only moves when the round saves the cursor after applying, a crash
replays from the last saved state, like Graph.

Calendar: SyncFolderItems reports series masters, not occurrences. For a changed master the reader
expands its occurrences inside the round's window (one CalendarView per page), completes them from
the master (exceptions are read whole), and reports linked occurrences that no longer exist (a
deleted series, a shortened one, a deleted occurrence) as removals.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.config import InsightsSettings
from shared.ews import parse
from shared.ews.errors import EwsNotFoundError
from shared.ews.gateway import EwsGateway
from shared.sync.records import DeltaPage, EventRecord, Item, Removal, fill_from_master

if TYPE_CHECKING:
    from shared.insights import AttachmentInput
    from shared.storage.links import LinkRepository

PREFIX = "ews:"
MAX_CHANGES = 512  # SyncFolderItems' MaxChangesReturned upper bound
MAX_INSIGHT_ATTACHMENTS = 5
# the round's well-known folder names → exchangelib's Account attributes
WELL_KNOWN = {"inbox": "inbox", "sentitems": "sent", "deleteditems": "trash", "drafts": "drafts",
              "junkemail": "junk", "outbox": "outbox", "calendar": "calendar", "contacts": "contacts",
              "msgfolderroot": "msg_folder_root"}


@dataclass(frozen=True)
class Position:
    folder: str  # inbox | sentitems | calendar | contacts | id:<folder id>
    state: str = ""
    window_start: str = ""
    window_end: str = ""

    def encode(self) -> str:
        raw = json.dumps({"f": self.folder, "s": self.state, "ws": self.window_start, "we": self.window_end})
        return PREFIX + base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, url: str) -> Position:
        if not url.startswith(PREFIX):
            raise ValueError("not an EWS position")
        data = json.loads(base64.urlsafe_b64decode(url[len(PREFIX):]))
        return cls(str(data["f"]), str(data.get("s") or ""), str(data.get("ws") or ""), str(data.get("we") or ""))


def position_from_request(path: str, params: dict[str, str | int] | None) -> Position:
    """The round's Graph-shaped first request → the EWS folder (and calendar window) it means."""
    params = params or {}
    parts = path.split("/")
    if "mailFolders" in parts:
        from urllib.parse import unquote

        return Position(unquote(parts[parts.index("mailFolders") + 1]))
    if "calendarView" in parts:
        return Position("calendar", window_start=str(params.get("startDateTime", "")),
                        window_end=str(params.get("endDateTime", "")))
    if "contactFolders" in parts:
        from urllib.parse import unquote

        return Position("id:" + unquote(parts[parts.index("contactFolders") + 1]))
    return Position("contacts")


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class EwsReader:
    """Reads one mailbox through the EWS gateway (same methods as ExchangeReader)."""

    def __init__(self, gateway: EwsGateway, mailbox: str, *, page_size: int,
                 links: LinkRepository | None = None, links_key: str = "") -> None:
        self.gw = gateway
        self.mailbox = mailbox
        self.page_size = max(1, min(page_size, MAX_CHANGES))
        self.links = links
        self.links_key = links_key or mailbox
        self.requests = 0
        self.by_purpose: Counter[str] = Counter()
        self._well_known: dict[str, str] = {}
        self._contact_folders: dict[str, str] = {}

    def _count(self, purpose: str, n: int = 1) -> None:
        self.requests += n
        self.by_purpose[purpose] += n

    def url_of(self, path: str, params: dict[str, str | int] | None) -> str:
        return position_from_request(path, params).encode()

    # ------------------------------------------------------------ folders

    @staticmethod
    def _folder(account: Any, key: str) -> Any:
        """A folder by the round's key: a well-known name, "id:<id>" (contacts), or a mail folder id."""
        named = WELL_KNOWN.get(key)
        if named is not None:
            return getattr(account, named)
        from exchangelib.properties import FolderId

        return account.root.get_folder(FolderId(id=key.removeprefix("id:")))

    async def well_known_folder_id(self, name: str) -> str:
        """The id of a well-known folder ("" if the name is not one)."""
        if name not in WELL_KNOWN:
            return ""
        if name not in self._well_known:
            self._count("mail_folders")
            self._well_known[name] = await self.gw.call(
                self.mailbox, lambda a: str(getattr(a, WELL_KNOWN[name]).id), what="get well-known folder")
        return self._well_known[name]

    async def deleted_items_folder_id(self) -> str:
        return await self.well_known_folder_id("deleteditems")

    async def default_contact_folder_id(self) -> str:
        return await self.well_known_folder_id("contacts")

    async def child_folders(self, folder: str) -> list[dict[str, Any]]:
        """The mail folders directly under `folder` (a well-known name or an id)."""
        self._count("mail_folders")

        def work(account: Any) -> list[dict[str, Any]]:
            return [{"id": str(f.id), "childFolderCount": int(f.child_folder_count or 0)}
                    for f in self._folder(account, folder).children]

        return await self.gw.call(self.mailbox, work, what="list child folders")

    async def top_level_folders(self) -> list[dict[str, Any]]:
        self._count("mail_folders")

        def work(account: Any) -> list[dict[str, Any]]:
            return [{"id": str(f.id), "childFolderCount": int(f.child_folder_count or 0)}
                    for f in account.msg_folder_root.children]

        return await self.gw.call(self.mailbox, work, what="list mail folders")

    async def items(self, kind: str, item_ids: list[str], *, purpose: str = "get_items"
                    ) -> dict[str, Item | Exception]:
        """Items as they are now, by id, in one GetItem per 100: the record, a Removal("deleted")
        when Exchange no longer has it, or that one item's typed error (isolated)."""
        from shared.ews.errors import map_error

        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        out: dict[str, Item | Exception] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            self._count(purpose)

            def work(account: Any, chunk: list[str] = chunk) -> list[Any]:
                fields = list(parse.FIELDS[kind])
                try:
                    return list(account.fetch(ids=[(i, None) for i in chunk], only_fields=fields))
                except Exception:  # an error exchangelib raises instead of returning: isolate it per item
                    out: list[Any] = []
                    for i in chunk:
                        try:
                            out += list(account.fetch(ids=[(i, None)], only_fields=fields))
                        except Exception as exc:
                            out.append(exc)
                    return out

            for item_id, got in zip(chunk, await self.gw.call(self.mailbox, work, what=f"get {kind} items"),
                                    strict=True):
                if isinstance(got, Exception):
                    mapped = map_error(got, what=f"get {kind} item")
                    out[item_id] = Removal(item_id, "deleted") if isinstance(mapped, EwsNotFoundError) else mapped
                elif kind == "email":
                    out[item_id] = parse.message(got)
                elif kind == "contacts":
                    out[item_id] = parse.contact(got)
                else:
                    out[item_id] = parse.event(got, mailbox=self.mailbox)
        return out

    async def contact_folder_id(self, name: str) -> str:
        """The id of the contact folder with this name under Contacts ("" if none yet); found ids are
        kept for the round."""
        if self._contact_folders.get(name):
            return self._contact_folders[name]
        self._count("find_contact_folder")

        def work(account: Any) -> str:
            for f in account.contacts.children:
                if (f.name or "").lower() == name.lower():
                    return str(f.id)
            return ""

        self._contact_folders[name] = await self.gw.call(self.mailbox, work, what="find contact folder")
        return self._contact_folders[name]

    # ------------------------------------------------------------ a page

    async def page(self, url: str, kind: str) -> DeltaPage:
        pos = Position.decode(url)
        self._count("delta_page")

        def work(account: Any) -> tuple[list[tuple[str, Any]], str, bool, list[Any], dict[str, Any]]:
            from exchangelib.services import SyncFolderItems

            folder = self._folder(account, pos.folder)
            svc = SyncFolderItems(account=account)
            fields = {f for f in folder.normalize_fields(fields=list(parse.FIELDS[kind])) if not f.field.is_attribute}
            changes = []
            for change in svc.call(folder=folder, shape="IdOnly", additional_fields=fields,
                                   sync_state=pos.state or None, ignore=None,
                                   max_changes_returned=self.page_size, sync_scope=None):
                if isinstance(change, Exception):
                    raise change
                changes.append(change)
            occurrences: list[Any] = []
            exceptions: dict[str, Any] = {}
            masters = [i for c, i in changes if c in ("create", "update") and getattr(i, "type", "") == "RecurringMaster"]
            if kind == "calendar" and masters and pos.window_start:
                uids = {m.uid for m in masters}
                view = folder.view(start=_when(pos.window_start), end=_when(pos.window_end)).only(
                    "id", "changekey", "start", "end", "type", "uid", "original_start", "subject")
                occurrences = [o for o in view if getattr(o, "uid", None) in uids]
                exc_ids = [o for o in occurrences if getattr(o, "type", "") == "Exception"]
                if exc_ids:
                    for full in account.fetch(ids=exc_ids, only_fields=list(parse.EVENT_FIELDS)):
                        if not isinstance(full, Exception):
                            exceptions[full.id] = full
            return changes, str(svc.sync_state or ""), bool(svc.includes_last_item_in_range), occurrences, exceptions

        changes, state, last, occurrences, exceptions = await self.gw.call(self.mailbox, work, what=f"{kind} sync")
        items: list[Item] = []
        master_records: dict[str, EventRecord] = {}
        deleted: list[str] = []
        for change, obj in changes:
            if change == "delete":
                items.append(Removal(str(obj.id), "deleted"))
                deleted.append(str(obj.id))
                continue
            if change == "read_flag_change":
                continue
            if kind == "email":
                items.append(parse.message(obj))
            elif kind == "contacts":
                items.append(parse.contact(obj))
            else:
                rec = parse.event(obj, mailbox=self.mailbox)
                items.append(rec)
                if rec.is_master:
                    master_records[str(getattr(obj, "uid", ""))] = rec
        if kind == "calendar":
            items += await self._series(master_records, occurrences, exceptions, deleted)
        nxt = Position(pos.folder, state, pos.window_start, pos.window_end).encode()
        return DeltaPage(items=items, next_link="" if last else nxt, delta_link=nxt if last else "")

    async def _series(self, masters: dict[str, EventRecord], occurrences: list[Any], exceptions: dict[str, Any],
                      deleted: list[str]) -> list[Item]:
        out: list[Item] = []
        current: dict[str, set[str]] = {m.id: set() for m in masters.values()}
        for occ in occurrences:
            master = masters.get(str(getattr(occ, "uid", "")))
            if master is None:
                continue
            current[master.id].add(str(occ.id))
            full = exceptions.get(str(occ.id))
            if full is not None:
                out.append(parse.event(full, mailbox=self.mailbox, master_id=master.id))
                continue
            sparse = EventRecord(id=str(occ.id), change_key=str(occ.changekey or ""), type="occurrence",
                                 series_master_id=master.id, original_start=parse._utc(occ.original_start),
                                 start=parse._utc(occ.start), end=parse._utc(occ.end), sparse=True)
            out.append(fill_from_master(sparse, master))
        series_gone = set(deleted) | set(current)
        if self.links is not None and series_gone:
            from shared.sync.mapping import LINK_KIND, META_SERIES

            for link in await self.links.list(self.links_key, kind=LINK_KIND["calendar"]):
                series = link.snapshot.get(META_SERIES)
                if link.state == "active" and series in series_gone and link.graph_id not in current.get(series, ()):
                    out.append(Removal(link.graph_id, "deleted"))
        return out

    # ------------------------------------------------------------ single reads

    async def event(self, event_id: str) -> EventRecord | None:
        self._count("get_event")

        def work(account: Any) -> tuple[Any, str | None]:
            from exchangelib.properties import RecurringMasterItemId

            found = list(account.fetch(ids=[(event_id, None)], only_fields=list(parse.EVENT_FIELDS)))
            item = found[0] if found else None
            if isinstance(item, Exception):
                raise item
            master_id = None
            if item is not None and getattr(item, "type", "") in ("Occurrence", "Exception"):
                masters = list(account.fetch(ids=[RecurringMasterItemId(id=event_id)], only_fields=["id"]))
                master_id = str(masters[0].id) if masters and not isinstance(masters[0], Exception) else None
            return item, master_id

        try:
            item, master_id = await self.gw.call(self.mailbox, work, what="get event")
        except EwsNotFoundError:
            return None
        return parse.event(item, mailbox=self.mailbox, master_id=master_id) if item is not None else None

    async def event_stamp(self, event_id: str) -> str:
        self._count("pega_id_check")

        def work(account: Any) -> str:
            found = list(account.fetch(ids=[(event_id, None)], only_fields=["pega_id"]))
            if not found or isinstance(found[0], Exception):
                return ""
            return str(getattr(found[0], "pega_id", "") or "")

        try:
            return await self.gw.call(self.mailbox, work, what="get event PegaId")
        except EwsNotFoundError:
            return ""

    async def attachments(self, message_id: str, limits: InsightsSettings) -> tuple[AttachmentInput, ...]:
        from shared.insights import AttachmentInput

        self._count("attachments")

        def work(account: Any) -> list[tuple[str, bytes, str]]:
            from exchangelib import FileAttachment

            found = list(account.fetch(ids=[(message_id, None)], only_fields=["attachments"]))
            if not found or isinstance(found[0], Exception):
                return []
            wanted = [a for a in found[0].attachments or () if isinstance(a, FileAttachment) and not a.is_inline
                      and isinstance(a.size, int) and 0 < a.size <= limits.attachment_max_bytes]
            return [(a.name or "", a.content, a.content_type or "application/octet-stream")
                    for a in wanted[:MAX_INSIGHT_ATTACHMENTS]]

        try:
            got = await self.gw.call(self.mailbox, work, what="get attachments")
        except EwsNotFoundError:
            return ()
        return tuple(AttachmentInput(name=n, content=c, content_type=ct) for n, c, ct in got
                     if c and len(c) <= limits.attachment_max_bytes)

    async def contact_photo(self, contact_id: str) -> bytes | None:
        self._count("contact_photo")

        def work(account: Any) -> bytes | None:
            found = list(account.fetch(ids=[(contact_id, None)], only_fields=["attachments"]))
            if not found or isinstance(found[0], Exception):
                return None
            photo = next((a for a in found[0].attachments or () if getattr(a, "is_contact_photo", False)), None)
            return photo.content if photo is not None else None

        try:
            return await self.gw.call(self.mailbox, work, what="get contact photo")
        except EwsNotFoundError:
            return None
