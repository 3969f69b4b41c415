"""Reading Exchange through the GraphGateway: delta queries per kind/folder and the few GETs a
round needs (series masters with cancelled occurrences, a removed event, a contact photo).

Every call goes through GraphGateway (SDK adapter, auth, per-mailbox limit of 4); responses are
parsed by shared.sync.records from raw JSON. Throttling is never slept on here: a
GraphThrottledError propagates so the queue defers the work by Retry-After.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.config import InsightsSettings
from shared.graph.errors import GraphNotFoundError
from shared.graph.gateway import GraphGateway
from shared.outbound.graph_payloads import PEGA_ID_PROPERTY
from shared.sync.records import (
    MESSAGE_CLASS_PROP_ID,
    SENSITIVITY_PROP_ID,
    DeltaPage,
    EventRecord,
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

# Messages and contacts: MAPI sensitivity and our PegaId stamp, requested on the first call of a
# round. Graph encodes the whole query (with $expand) in the delta token, so every later page of
# the round — and of later rounds — carries them; an item without a property simply lacks it in
# the list (graph.md: an expanded, filtered extended property is absent where not set).
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
    "parentFolderId", "lastModifiedDateTime", "changeKey",
))
CONTACT_SELECT = ",".join((
    "id", "givenName", "surname", "displayName", "emailAddresses", "businessPhones", "mobilePhone", "companyName",
    "jobTitle", "department", "businessAddress", "personalNotes", "categories", "parentFolderId",
    "lastModifiedDateTime", "changeKey",
))
EVENT_SELECT = ",".join((
    "id", "type", "subject", "body", "start", "end", "originalStartTimeZone", "location", "organizer", "attendees",
    "isOrganizer", "isCancelled", "isAllDay", "sensitivity", "showAs", "reminderMinutesBeforeStart", "recurrence",
    "seriesMasterId", "iCalUId", "lastModifiedDateTime", "changeKey", "cancelledOccurrences",
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


def calendar_window(now: dt.datetime, *, past_days: int, future_days: int) -> Window:
    """The rolling window, aligned to whole UTC days so it only moves once a day."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(day - dt.timedelta(days=past_days), day + dt.timedelta(days=future_days + 1))


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
        return f"users/{u}/mailFolders/{folder}/messages/delta", params
    if kind == "calendar":
        if window is None:
            raise ValueError("a calendar round needs its window")
        return (f"users/{u}/calendarView/delta",
                {"startDateTime": iso_z(window.start), "endDateTime": iso_z(window.end)})
    path = (f"users/{u}/contactFolders/{quote(folder_id, safe='')}/contacts/delta" if folder_id
            else f"users/{u}/contacts/delta")
    return path, {"$select": CONTACT_SELECT, "$expand": EXTENDED_EXPAND}


class ExchangeReader:
    """Reads one mailbox through the gateway."""

    def __init__(self, gateway: GraphGateway, mailbox: str, *, page_size: int) -> None:
        self.gw = gateway
        self.mailbox = mailbox
        self.page_size = page_size
        self.requests = 0
        self.by_purpose: Counter[str] = Counter()  # delta_page, get_event, pega_id_check, contact_photo

    def url_of(self, path: str, params: dict[str, str | int] | None) -> str:
        return self.gw.url(path, params)

    async def page(self, url: str, kind: str) -> DeltaPage:
        self.requests += 1
        self.by_purpose["delta_page"] += 1
        raw: Any = await self.gw.get_json(url, mailbox=self.mailbox,
                                          prefer=(f"odata.maxpagesize={self.page_size}",),
                                          what=f"{kind} delta page")
        return parse_page(raw if isinstance(raw, dict) else {}, kind, stamp_prop=PEGA_ID_PROPERTY)

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

    async def contact_folder_id(self, name: str) -> str:
        """The id of the contact folder with this display name ("" if it does not exist yet — the
        Pega → Exchange side creates it on its first write). Asked only when a round starts without
        a delta link; the delta links carry the id afterwards."""
        self.requests += 1
        self.by_purpose["find_contact_folder"] += 1
        quoted = name.replace("'", "''")
        page = await self.gw.get_json(f"users/{_user(self.mailbox)}/contactFolders", mailbox=self.mailbox,
                                      params={"$filter": f"displayName eq '{quoted}'", "$select": "id,displayName"},
                                      what="find contact folder")
        values = page.get("value") if isinstance(page, dict) else None
        first = values[0] if isinstance(values, list) and values and isinstance(values[0], dict) else {}
        return str(first.get("id") or "")

    async def contact_photo(self, contact_id: str) -> bytes | None:
        self.requests += 1
        self.by_purpose["contact_photo"] += 1
        try:
            resp = await self.gw.request("GET", f"users/{_user(self.mailbox)}/contacts/{quote(contact_id, safe='')}"
                                         "/photo/$value", mailbox=self.mailbox, what="get contact photo")
        except GraphNotFoundError:
            return None
        return resp.body or None
