"""Reading Exchange through the GraphGateway: delta queries per kind/folder and the few GETs a
round needs (series masters with cancelled occurrences, a removed event, a contact photo).

Every call goes through GraphGateway (SDK adapter, auth, per-mailbox limit of 4); responses are
parsed by shared.sync.records from raw JSON. Throttling is never slept on here: a
GraphThrottledError propagates so the queue defers the work by Retry-After.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.config import InsightsSettings
from shared.graph.errors import GraphNotFoundError
from shared.graph.gateway import GraphGateway, encode_query
from shared.outbound.graph_payloads import PEGA_ID_PROPERTY
from shared.sync.records import (
    MESSAGE_CLASS_PROP_ID,
    PARSERS,
    SENSITIVITY_PROP_ID,
    DeltaPage,
    EventRecord,
    Item,
    Removal,
    extended_str,
    parse_event,
    parse_page,
)
from shared.sync.timezones import iso_z

if TYPE_CHECKING:
    from shared.insights import AttachmentInput

MAX_INSIGHT_ATTACHMENTS = 5  # per message; each within INSIGHTS_ATTACHMENT_MAX_BYTES

EMAIL_FOLDERS = ("inbox", "sentitems")
CALENDAR_FOLDER = "calendarView"
CONTACTS_FOLDER = "contacts"  # the default contacts folder
DEDICATED_CONTACTS = "dedicated"  # the folder named by SYNC_CONTACT_FOLDER (Pega → Exchange writes there)

# Message delta with `$filter=receivedDateTime ge …` returns at most this many messages (the newest):
# graph.md §2, sources docs /delta-query-messages and /api/message-delta. A filtered first round that
# sees this many is therefore incomplete; the round starts that folder over without the filter.
FILTERED_DELTA_CAP = 5_000

# Messages: MAPI sensitivity and our PegaId stamp, requested on the first call of a round. Graph
# encodes the whole query (with $expand) in the delta token, so every later page of the round — and
# of later rounds — carries them; an item without a property simply lacks it in the list (graph.md:
# an expanded, filtered extended property is absent where not set). Contacts get them per item
# (GET with $expand, documented), because contact: delta documents no $expand.
EXTENDED_EXPAND = (f"singleValueExtendedProperties($filter=id eq '{SENSITIVITY_PROP_ID}' "
                   f"or id eq '{PEGA_ID_PROPERTY}')")
SENSITIVITY_EXPAND = EXTENDED_EXPAND  # the name the benches use
# Messages also carry their MAPI message class: meeting messages, reports and automatic replies are
# told apart from mail by it (graph.md §10; shared.sync.records.classify_message).
MESSAGE_EXPAND = (f"singleValueExtendedProperties($filter=id eq '{SENSITIVITY_PROP_ID}' "
                  f"or id eq '{PEGA_ID_PROPERTY}' or id eq '{MESSAGE_CLASS_PROP_ID}')")
# Events: calendarView/delta accepts no $expand; the stamp is read with a GET where it matters.
PEGA_ID_EXPAND = f"singleValueExtendedProperties($filter=id eq '{PEGA_ID_PROPERTY}')"
MESSAGE_SELECT = ",".join((
    "id", "subject", "body", "from", "sender", "toRecipients", "ccRecipients", "bccRecipients", "receivedDateTime",
    "sentDateTime", "conversationId", "internetMessageId", "isDraft", "importance", "hasAttachments", "categories",
    "parentFolderId", "lastModifiedDateTime", "changeKey", "internetMessageHeaders",
))
CONTACT_SELECT = ",".join((
    "id", "givenName", "surname", "displayName", "emailAddresses", "businessPhones", "mobilePhone", "companyName",
    "jobTitle", "department", "businessAddress", "personalNotes", "categories", "parentFolderId",
    "lastModifiedDateTime", "changeKey",
))
EVENT_SELECT = ",".join((
    "id", "type", "subject", "body", "start", "end", "originalStartTimeZone", "location", "organizer", "attendees",
    "isOrganizer", "isCancelled", "isAllDay", "sensitivity", "showAs", "reminderMinutesBeforeStart", "recurrence",
    "seriesMasterId", "iCalUId", "lastModifiedDateTime", "createdDateTime", "changeKey", "cancelledOccurrences",
))


def folders_for(kind: str, *, contact_folder: str = "") -> tuple[str, ...]:
    """The folders (cursor keys) a round of `kind` reads. Contacts: the default folder, and the
    dedicated folder when SYNC_CONTACT_FOLDER is set, so Outlook edits made there flow back."""
    if kind == "contacts" and contact_folder:
        return (CONTACTS_FOLDER, DEDICATED_CONTACTS)
    return {"email": EMAIL_FOLDERS, "calendar": (CALENDAR_FOLDER,), "contacts": (CONTACTS_FOLDER,)}[kind]


def _user(mailbox: str) -> str:
    return quote(mailbox, safe="@.")


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime


def calendar_window(now: dt.datetime, *, past_days: int, future_days: int,
                    offset: dt.timedelta = dt.timedelta(0)) -> Window:
    """The rolling window, aligned to whole days so it only moves once a day — at 00:00 UTC plus
    `offset` (see :func:`stagger`), so that a tenant's mailboxes do not all start a fresh calendar
    round at the same moment."""
    shifted = now.astimezone(dt.UTC) - offset
    day = shifted.replace(hour=0, minute=0, second=0, microsecond=0) + offset
    return Window(day - dt.timedelta(days=past_days), day + dt.timedelta(days=future_days + 1))


def stagger(mailbox: str) -> dt.timedelta:
    """A stable per-mailbox offset in [0, 24 h): when this mailbox's calendar window moves on
    (a fresh round re-reads the window). Spreads the daily re-read over the day instead of a
    thundering herd at 00:00 UTC."""
    digest = hashlib.sha256(mailbox.lower().encode()).digest()
    return dt.timedelta(seconds=int.from_bytes(digest[:4], "big") % 86_400)


def initial_request(kind: str, folder: str, mailbox: str, *, now: dt.datetime, past_days: int,
                    window: Window | None = None, folder_id: str = "",
                    unfiltered: bool = False) -> tuple[str, dict[str, str | int]]:
    """Path and query of the first call of a round without a token (backfill or full resync).
    Email: filtered on receivedDateTime (cheap: only the window is read) unless `unfiltered` — the
    whole folder, for a folder whose filtered round hit FILTERED_DELTA_CAP (the planner skips mail
    older than the window as outside_window). Contacts: a folder is addressed by its id (`folder_id`, contactFolders have no documented
    well-known names); the default folder is `/users/{id}/contacts/delta`."""
    u = _user(mailbox)
    if kind == "email":
        params: dict[str, str | int] = {"$select": MESSAGE_SELECT, "$expand": MESSAGE_EXPAND}
        if not unfiltered:
            params["$filter"] = f"receivedDateTime ge {iso_z(now - dt.timedelta(days=past_days))}"
        return f"users/{u}/mailFolders/{quote(folder, safe='')}/messages/delta", params
    if kind == "calendar":
        if window is None:
            raise ValueError("a calendar round needs its window")
        return (f"users/{u}/calendarView/delta",
                {"startDateTime": iso_z(window.start), "endDateTime": iso_z(window.end)})
    path = (f"users/{u}/contactFolders/{quote(folder_id, safe='')}/contacts/delta" if folder_id
            else f"users/{u}/contacts/delta")
    # contact: delta documents $select only (no $expand): sensitivity and our PegaId stamp are read
    # per contact, only for the contacts that matter (ExchangeReader.items, batched)
    return path, {"$select": CONTACT_SELECT}


class ExchangeReader:
    """Reads one mailbox through the gateway."""

    def __init__(self, gateway: GraphGateway, mailbox: str, *, page_size: int) -> None:
        self.gw = gateway
        self.mailbox = mailbox
        self.page_size = page_size
        self.requests = 0
        self.by_purpose: Counter[str] = Counter()  # delta_page, get_event, pega_id_check, contact_photo
        self._default_contacts: str | None = None
        self._folders: dict[str, str] = {}
        self._well_known: dict[str, str] = {}

    def url_of(self, path: str, params: dict[str, str | int] | None) -> str:
        return self.gw.url(path, params)

    async def page(self, url: str, kind: str) -> DeltaPage:
        self.requests += 1
        self.by_purpose["delta_page"] += 1
        raw: Any = await self.gw.get_json(url, mailbox=self.mailbox,
                                          prefer=(f"odata.maxpagesize={self.page_size}",),
                                          what=f"{kind} delta page")
        return parse_page(raw if isinstance(raw, dict) else {}, kind, stamp_prop=PEGA_ID_PROPERTY)

    def _item_path(self, kind: str, item_id: str) -> str:
        u, i = _user(self.mailbox), quote(item_id, safe="")
        if kind == "email":
            return f"users/{u}/messages/{i}{encode_query({'$select': MESSAGE_SELECT, '$expand': EXTENDED_EXPAND})}"
        if kind == "calendar":
            return f"users/{u}/events/{i}{encode_query({'$select': EVENT_SELECT, '$expand': PEGA_ID_EXPAND})}"
        return f"users/{u}/contacts/{i}{encode_query({'$select': CONTACT_SELECT, '$expand': EXTENDED_EXPAND})}"

    async def items(self, kind: str, item_ids: list[str], *, purpose: str = "get_items"
                    ) -> dict[str, Item | Exception]:
        """Items as they are now, by immutable id (which survives moves between folders), in JSON
        batches of 20: the parsed record, a Removal("deleted") for a 404, or the typed error of that
        one item (isolated: one item's failure never fails the others)."""
        if not item_ids:
            return {}
        parser = PARSERS[kind]
        self.requests += (len(item_ids) + 19) // 20
        self.by_purpose[purpose] += (len(item_ids) + 19) // 20
        got = await self.gw.get_many({i: self._item_path(kind, i) for i in dict.fromkeys(item_ids)},
                                     mailbox=self.mailbox, what=f"get {kind} items")
        out: dict[str, Item | Exception] = {}
        for item_id, value in got.items():
            if isinstance(value, GraphNotFoundError):
                out[item_id] = Removal(item_id, "deleted")
            elif isinstance(value, Exception):
                out[item_id] = value
            else:
                out[item_id] = parser(value, stamp_prop=PEGA_ID_PROPERTY) if value.get("id") else Removal(item_id)
        return out

    async def deleted_items_folder_id(self) -> str:
        """The id of Deleted Items (a documented well-known folder name): deleting an item in Outlook
        moves it there, and a GET by immutable id still finds it."""
        return await self.well_known_folder_id("deleteditems")

    async def default_contact_folder_id(self) -> str:
        """The default contacts folder's id, from a contact in it (list contacts is documented for the
        default folder); "" when it holds no contact."""
        if self._default_contacts is None:
            self.requests += 1
            self.by_purpose["folder_ids"] += 1
            page = await self.gw.get_json(f"users/{_user(self.mailbox)}/contacts", mailbox=self.mailbox,
                                          params={"$select": "parentFolderId", "$top": 1}, what="default contacts")
            values = (page or {}).get("value") if isinstance(page, dict) else None
            first = values[0] if isinstance(values, list) and values and isinstance(values[0], dict) else {}
            self._default_contacts = str(first.get("parentFolderId") or "")
        return self._default_contacts

    async def event(self, event_id: str) -> EventRecord | None:
        """The event as it is now (None if deleted); used to tell a delete from "moved out of the window"."""
        self.requests += 1
        self.by_purpose["get_event"] += 1
        try:
            raw = await self.gw.get_json(f"users/{_user(self.mailbox)}/events/{quote(event_id, safe='')}",
                                         mailbox=self.mailbox,
                                         params={"$select": EVENT_SELECT, "$expand": PEGA_ID_EXPAND},
                                         what="get event")
        except GraphNotFoundError:
            return None
        rec = parse_event(raw if isinstance(raw, dict) else {}, stamp_prop=PEGA_ID_PROPERTY)
        return rec if isinstance(rec, EventRecord) else None

    async def event_stamp(self, event_id: str) -> str:
        """Our PegaId on one event ("" if none or gone): one small GET, only for an unlinked event
        the round would otherwise create in Pega (calendarView/delta cannot $expand it)."""
        self.requests += 1
        self.by_purpose["pega_id_check"] += 1
        try:
            raw = await self.gw.get_json(f"users/{_user(self.mailbox)}/events/{quote(event_id, safe='')}",
                                         mailbox=self.mailbox, params={"$select": "id", "$expand": PEGA_ID_EXPAND},
                                         what="get event PegaId")
        except GraphNotFoundError:
            return ""
        return extended_str(raw if isinstance(raw, dict) else {}, PEGA_ID_PROPERTY)

    async def attachments(self, message_id: str, limits: InsightsSettings) -> tuple[AttachmentInput, ...]:
        """The file attachments of a received message for insights, within the insights limits:
        one list call ($select without the content), then the bytes ($value) of at most
        MAX_INSIGHT_ATTACHMENTS non-inline file attachments no larger than attachment_max_bytes."""
        from shared.insights import AttachmentInput

        base = f"users/{_user(self.mailbox)}/messages/{quote(message_id, safe='')}/attachments"
        self.requests += 1
        self.by_purpose["attachments"] += 1
        try:
            page = await self.gw.get_json(base, mailbox=self.mailbox,
                                          params={"$select": "id,name,contentType,size,isInline"},
                                          what="list attachments")
        except GraphNotFoundError:
            return ()
        values = page.get("value") if isinstance(page, dict) else None
        wanted = [a for a in (values if isinstance(values, list) else []) if isinstance(a, dict)
                  and str(a.get("@odata.type", "#microsoft.graph.fileAttachment")).endswith("fileAttachment")
                  and not a.get("isInline") and isinstance(a.get("size"), int)
                  and 0 < a["size"] <= limits.attachment_max_bytes][:MAX_INSIGHT_ATTACHMENTS]
        out: list[AttachmentInput] = []
        for a in wanted:
            self.requests += 1
            self.by_purpose["attachments"] += 1
            try:
                resp = await self.gw.request("GET", f"{base}/{quote(str(a['id']), safe='')}/$value",
                                             mailbox=self.mailbox, what="get attachment")
            except GraphNotFoundError:
                continue
            if resp.body and len(resp.body) <= limits.attachment_max_bytes:
                out.append(AttachmentInput(name=str(a.get("name") or ""), content=resp.body,
                                           content_type=str(a.get("contentType") or "application/octet-stream")))
        return tuple(out)

    async def child_folders(self, folder: str) -> list[dict[str, Any]]:
        """The mail folders directly under `folder` (an id or a well-known name), every page of them."""
        out: list[dict[str, Any]] = []
        url = self.gw.url(f"users/{_user(self.mailbox)}/mailFolders/{quote(folder, safe='')}/childFolders",
                          {"$select": "id,childFolderCount", "$top": 100})
        while url:
            self.requests += 1
            self.by_purpose["mail_folders"] += 1
            page = await self.gw.get_json(url, mailbox=self.mailbox, what="list child mail folders")
            values = page.get("value") if isinstance(page, dict) else None
            out += [v for v in values or [] if isinstance(v, dict)]
            url = str(page.get("@odata.nextLink") or "") if isinstance(page, dict) else ""
        return out

    async def top_level_folders(self) -> list[dict[str, Any]]:
        self.requests += 1
        self.by_purpose["mail_folders"] += 1
        page = await self.gw.get_json(f"users/{_user(self.mailbox)}/mailFolders", mailbox=self.mailbox,
                                      params={"$select": "id,childFolderCount", "$top": 250},
                                      what="list mail folders")
        values = page.get("value") if isinstance(page, dict) else None
        return [v for v in values or [] if isinstance(v, dict)]

    async def well_known_folder_id(self, name: str) -> str:
        """The id of a mail folder by its documented well-known name ("" if the mailbox has none)."""
        if name not in self._well_known:
            self.requests += 1
            self.by_purpose["mail_folders"] += 1
            try:
                raw = await self.gw.get_json(f"users/{_user(self.mailbox)}/mailFolders/{name}", mailbox=self.mailbox,
                                             params={"$select": "id"}, what="get well-known mail folder")
                self._well_known[name] = str((raw or {}).get("id") or "")
            except GraphNotFoundError:
                self._well_known[name] = ""
        return self._well_known[name]

    async def contact_folder_id(self, name: str) -> str:
        """The id of the contact folder with this display name ("" if it does not exist yet — the
        Pega → Exchange side creates it on its first write). Asked only when a round starts without
        a delta link; the delta links carry the id afterwards. Found ids are kept for the round."""
        if self._folders.get(name):
            return self._folders[name]
        self.requests += 1
        self.by_purpose["find_contact_folder"] += 1
        quoted = name.replace("'", "''")
        page = await self.gw.get_json(f"users/{_user(self.mailbox)}/contactFolders", mailbox=self.mailbox,
                                      params={"$filter": f"displayName eq '{quoted}'", "$select": "id,displayName"},
                                      what="find contact folder")
        values = page.get("value") if isinstance(page, dict) else None
        first = values[0] if isinstance(values, list) and values and isinstance(values[0], dict) else {}
        self._folders[name] = str(first.get("id") or "")
        return self._folders[name]

    async def contact_photo(self, contact_id: str) -> bytes | None:
        self.requests += 1
        self.by_purpose["contact_photo"] += 1
        try:
            resp = await self.gw.request("GET", f"users/{_user(self.mailbox)}/contacts/{quote(contact_id, safe='')}"
                                         "/photo/$value", mailbox=self.mailbox, what="get contact photo")
        except GraphNotFoundError:
            return None
        return resp.body or None
