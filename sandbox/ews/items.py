"""Item operations: GetItem, FindItem, CreateItem (incl. replies and meeting invitations), UpdateItem,
DeleteItem, SendItem, MoveItem, and the attachment operations."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import html
import uuid
from collections.abc import Callable
from typing import Any

from lxml import etree

from sandbox.ews import calendar, ids
from sandbox.ews.context import Ctx
from sandbox.ews.fields import Shape, ext_key, render_props, tag_of
from sandbox.ews.restrict import matches
from sandbox.ews.soap import ItemError, local, m, response_message, sub, t
from sandbox.ews.store import KIND_CLASS, Attachment, Item, iso

ITEM_KINDS = {"Message", "CalendarItem", "Contact", "MeetingRequest", "MeetingCancellation", "Item"}
READ_ONLY = {"ItemId", "ParentFolderId", "DateTimeCreated", "LastModifiedTime", "Size", "UID", "CalendarItemType",
             "Organizer", "ModifiedOccurrences", "DeletedOccurrences", "FirstOccurrence", "LastOccurrence",
             "ConversationId", "InternetMessageId", "MyResponseType", "HasAttachments", "IsRecurring"}


# ---------------------------------------------------------------- rendering


def item_id_el(item: Item) -> etree._Element:
    el = etree.Element(t("ItemId"))
    el.set("Id", item.id)
    el.set("ChangeKey", item.change_key)
    return el


def render(parent: etree._Element, item: Item, shape: Shape) -> etree._Element:
    el = sub(parent, t(item.kind))
    props = dict(item.props)
    if item.attachments and ("Attachments" in shape.tags or shape.base == "AllProperties"):
        att = etree.Element(t("Attachments"))
        for a in item.attachments:
            fa = sub(att, t("FileAttachment"))
            sub(fa, t("AttachmentId"), Id=a.id)
            sub(fa, t("Name"), a.name)
            sub(fa, t("ContentType"), a.content_type)
            sub(fa, t("Size"), len(a.content))
            sub(fa, t("IsInline"), "true" if a.is_inline else "false")
            if item.kind == "Contact":
                sub(fa, t("IsContactPhoto"), "true" if a.is_contact_photo else "false")
        props["Attachments"] = att
    holder = etree.Element("x")
    props["HasAttachments"] = sub(holder, t("HasAttachments"),
                                  "true" if any(not a.is_inline and not a.is_contact_photo
                                                for a in item.attachments) else "false")
    if item.kind == "Contact":
        props["HasPicture"] = sub(holder, t("HasPicture"),
                                  "true" if any(a.is_contact_photo for a in item.attachments) else "false")
    props["Size"] = sub(holder, t("Size"), 512 + sum(len(etree.tostring(v)) for v in item.props.values()))
    render_props(el, props, item.ext, shape, id_el=item_id_el(item))
    return el


# ---------------------------------------------------------------- GetItem


def _ids(parent: etree._Element | None) -> list[etree._Element]:
    return list(parent) if parent is not None else []


def resolve(ctx: Ctx, id_el: etree._Element) -> Item:
    name = local(id_el)
    if name == "ItemId":
        return ctx.item(str(id_el.get("Id")))
    if name == "OccurrenceItemId":
        master = ctx.item(str(id_el.get("RecurringMasterId")))
        original = calendar.nth_original(master, int(id_el.get("InstanceIndex") or 0))
        occ = calendar.occurrence(master, original)
        if occ is None:
            raise ItemError("ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                            "Occurrence has been deleted from the recurrence.")
        return occ
    if name == "RecurringMasterItemId":
        found = ctx.master_of(str(id_el.get("OccurrenceId")))
        return found[0] if found else ctx.item(str(id_el.get("OccurrenceId")))
    raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")


def each(ctx: Ctx, op: str, request: etree._Element, container: str, elems: list[etree._Element],
         fn: Callable[[etree._Element, etree._Element], None], *, wrap: str | None = "Items") -> etree._Element:
    """One ResponseMessage per element; an ItemError becomes that element's error message."""
    resp = etree.Element(m(f"{op}Response"))
    msgs = sub(resp, m("ResponseMessages"))
    for el in elems:
        try:
            holder = etree.Element(m(wrap)) if wrap else None
            fn(el, holder if holder is not None else etree.Element("x"))
        except ItemError as err:
            rm = response_message(msgs, op, err)
            if wrap:
                sub(rm, m(wrap))
            continue
        rm = response_message(msgs, op)
        if holder is not None:
            rm.append(holder)
    return resp


def get_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    shape = Shape.parse(req.find(m("ItemShape")))

    def one(id_el: etree._Element, out: etree._Element) -> None:
        render(out, resolve(ctx, id_el), shape)

    return each(ctx, "GetItem", req, "Items", _ids(req.find(m("ItemIds"))), one)


# ---------------------------------------------------------------- FindItem


def find_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("FindItemResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    for folder_el in _ids(req.find(m("ParentFolderIds"))):
        try:
            shape = Shape.parse(req.find(m("ItemShape")), for_find=True, op="FindItem")
            folder = ctx.folder_of(folder_el)
            items = [i for i in ctx.mb.items.values() if i.folder_id == folder.id]
            cal = req.find(m("CalendarView"))
            if cal is not None:
                start, end = calendar.parse_dt(cal.get("StartDate")), calendar.parse_dt(cal.get("EndDate"))
                if end < start:
                    raise ItemError("ErrorCalendarEndDateIsEarlierThanStartDate",
                                    "EndDate is earlier than StartDate")
                items = calendar.view(items, start, end)
                limit = int(cal.get("MaxEntriesReturned") or 1_000_000)
                if len(items) > limit:
                    raise ItemError("ErrorCalendarViewRangeTooBig" if False else "ErrorExceededFindCountLimit",
                                    "The view exceeds the maximum number of entries.")
                offset, page = 0, items
            else:
                restriction = req.find(m("Restriction"))
                if restriction is not None and len(restriction):
                    items = [i for i in items if matches(restriction[0], i)]
                items.sort(key=lambda i: i.text("DateTimeReceived") or "", reverse=True)
                view = req.find(m("IndexedPageItemView"))
                offset = int(view.get("Offset") or 0) if view is not None else 0
                limit = int(view.get("MaxEntriesReturned") or 1000) if view is not None else 1000
                if view is not None and view.get("BasePoint") == "End":
                    page = items[max(0, len(items) - offset - limit):len(items) - offset]
                else:
                    page = items[offset:offset + limit]
        except ItemError as err:
            response_message(msgs, "FindItem", err)
            continue
        rm = response_message(msgs, "FindItem")
        root = sub(rm, m("RootFolder"), TotalItemsInView=len(items),
                   IncludesLastItemInRange="true" if offset + len(page) >= len(items) else "false")
        if cal is None:
            root.set("IndexedPagingOffset", str(offset + len(page)))
        out = sub(root, t("Items"))
        for item in page:
            render(out, item, shape)
    return resp


# ---------------------------------------------------------------- CreateItem


BOOLEAN_TAGS = {"IsAllDayEvent", "IsRead", "IsDraft", "ReminderIsSet", "IsResponseRequested",
                "IsReadReceiptRequested", "IsDeliveryReceiptRequested", "IsOnlineMeeting", "AllowNewTimeProposal",
                "IsInline", "IsContactPhoto", "IsMeeting", "IsCancelled"}


def canonical(el: etree._Element) -> etree._Element:
    """Exchange answers xs:boolean as true/false whatever form (1/0) the client wrote."""
    for node in el.iter():
        if isinstance(node.tag, str) and local(node) in BOOLEAN_TAGS and node.text in ("1", "0"):
            node.text = "true" if node.text == "1" else "false"
    return el


def _store_props(item: Item, el: etree._Element) -> None:
    canonical(el)
    for child in el:
        name = local(child)
        if name == "ExtendedProperty":
            uri = child.find(t("ExtendedFieldURI"))
            if uri is not None:
                item.ext[ext_key(uri)] = copy.deepcopy(child)
        elif name == "Attachments":
            for a in child:
                item.attachments.append(_attachment(a))
        elif name not in READ_ONLY:
            item.props[name] = copy.deepcopy(child)


def _attachment(a: etree._Element) -> Attachment:
    if local(a) != "FileAttachment":
        raise ItemError("ErrorAttachmentSizeLimitExceeded" if False else "ErrorInvalidAttachmentSubfilter",
                        "Only file attachments are supported by this simulator.")
    return Attachment(id=ids.new_id("attachment"), name=a.findtext(t("Name")) or "attachment",
                      content_type=a.findtext(t("ContentType")) or "application/octet-stream",
                      content=base64.b64decode(a.findtext(t("Content")) or ""),
                      is_inline=xbool(a.findtext(t("IsInline"))),
                      is_contact_photo=xbool(a.findtext(t("IsContactPhoto"))),
                      content_id=a.findtext(t("ContentId")) or "")


def xbool(text: str | None) -> bool:
    """xs:boolean: "true" or "1" (exchangelib writes 1/0)."""
    return (text or "").strip().lower() in ("true", "1")


def _mailbox_el(parent: etree._Element, tag: str, name: str, address: str) -> etree._Element:
    el = sub(parent, t(tag))
    mb = sub(el, t("Mailbox"))
    sub(mb, t("Name"), name)
    sub(mb, t("EmailAddress"), address)
    sub(mb, t("RoutingType"), "SMTP")
    sub(mb, t("MailboxType"), "Mailbox")
    return el


def _addresses(item: Item, tag: str) -> list[str]:
    el = item.props.get(tag)
    if el is None:
        return []
    return [a.text.strip().lower() for a in el.iter(t("EmailAddress")) if a.text]


def _attendees(item: Item) -> list[str]:
    return _addresses(item, "RequiredAttendees") + _addresses(item, "OptionalAttendees")


def new_item(ctx: Ctx, kind: str, folder_id: str) -> Item:
    item = Item(id=ids.new_id(ctx.mb.smtp), kind=kind, folder_id=folder_id)
    item.set("ParentFolderId", None)
    item.props["ParentFolderId"].set("Id", folder_id)
    item.props["ParentFolderId"].set("ChangeKey", "AQAAAA==")
    item.set("ItemClass", KIND_CLASS.get(kind, "IPM.Note"))
    return item


def _calendar_defaults(ctx: Ctx, item: Item) -> None:
    calendar.parse_dt(item.text("Start"))  # required
    if calendar.duration(item) < dt.timedelta(0):
        raise ItemError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")
    item.set("UID", "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper() + "00000000")
    item.set("CalendarItemType", "RecurringMaster" if item.props.get("Recurrence") is not None else "Single")
    meeting = bool(_attendees(item))
    item.set("IsMeeting", "true" if meeting else "false")
    item.set("AppointmentState", "1" if meeting else "0")
    item.set("MyResponseType", "Organizer")
    item.set("IsCancelled", "false")
    if item.text("IsAllDayEvent") is None:
        item.set("IsAllDayEvent", "false")
    _mailbox_el(etree.Element("x"), "Organizer", ctx.mb.display_name, ctx.mb.smtp)
    holder = etree.Element("x")
    item.props["Organizer"] = _mailbox_el(holder, "Organizer", ctx.mb.display_name, ctx.mb.smtp)
    if item.props.get("Recurrence") is not None:
        item.set("IsRecurring", "true")
        calendar.refresh_series(item)


def _message_defaults(ctx: Ctx, item: Item, *, draft: bool) -> None:
    item.set("IsDraft", "true" if draft else "false")
    item.set("IsRead", "true")
    if item.props.get("ConversationId") is None:
        conv = etree.Element(t("ConversationId"))
        conv.set("Id", base64.b64encode(b"\x00\x00" + uuid.uuid4().bytes).decode())
        item.props["ConversationId"] = conv
    if item.text("InternetMessageId") is None:
        item.set("InternetMessageId", f"<{uuid.uuid4().hex}@{ctx.mb.smtp.split('@')[1]}>")
    holder = etree.Element("x")
    if item.props.get("From") is None:
        item.props["From"] = _mailbox_el(holder, "From", ctx.mb.display_name, ctx.mb.smtp)
    item.props["Sender"] = _mailbox_el(holder, "Sender", ctx.mb.display_name, ctx.mb.smtp)


def deliver(ctx: Ctx, item: Item, *, kind: str = "Message", extra: dict[str, str] | None = None,
            item_class: str = "") -> None:
    """Record a sent message and put a copy in every recipient mailbox the simulator hosts."""
    recipients = sorted(set(_addresses(item, "ToRecipients") + _addresses(item, "CcRecipients")
                            + _addresses(item, "BccRecipients") + (_attendees(item) if kind != "Message" else [])))
    ctx.sent.append({"from": ctx.mb.smtp, "kind": kind, "to": recipients, "subject": item.text("Subject") or "",
                     "internetMessageId": item.text("InternetMessageId") or "", "at": iso(ctx.now),
                     "inReplyTo": item.text("InReplyTo") or "", **(extra or {})})
    for rcpt in recipients:
        target = ctx.store.mailboxes.get(rcpt)
        if target is None or target.smtp == ctx.mb.smtp:
            continue
        copy_item = Item(id=ids.new_id(target.smtp), kind=kind, folder_id=target.by_name["inbox"],
                         props={k: copy.deepcopy(v) for k, v in item.props.items()
                                if k not in ("ParentFolderId", "IsDraft", "IsRead")})
        copy_item.set("ParentFolderId", None)
        copy_item.props["ParentFolderId"].set("Id", target.by_name["inbox"])
        copy_item.set("ItemClass", KIND_CLASS.get(kind, "IPM.Note"))
        copy_item.set("IsDraft", "false")
        copy_item.set("IsRead", "false")
        copy_item.set("DateTimeReceived", iso(ctx.now))
        copy_item.set("DateTimeSent", iso(ctx.now))
        if item_class:
            copy_item.set("ItemClass", item_class)
        ctx.store.insert(target, copy_item, now=ctx.now)
        if kind in ("MeetingRequest", "MeetingCancellation") and item.kind == "CalendarItem":
            _calendar_attendant(ctx, target, item, cancelled=kind == "MeetingCancellation")


def _calendar_attendant(ctx: Ctx, target: Any, meeting: Item, *, cancelled: bool) -> None:
    """Exchange's Calendar Attendant (on for every mailbox by default): a meeting request puts the
    meeting in the attendee's calendar, not yet answered (an update refreshes that copy and keeps the
    answer); a cancellation marks the copy cancelled, in the calendar until the attendee removes it."""
    uid = meeting.text("UID")
    mine = next((i for i in target.items.values() if i.kind == "CalendarItem" and i.text("UID") == uid), None)
    if cancelled:
        if mine is not None:
            mine.set("IsCancelled", "true")
            ctx.store.touch(target, mine, now=ctx.now)
        return
    answer = mine.text("MyResponseType") if mine is not None else "NoResponseReceived"
    props = {k: copy.deepcopy(v) for k, v in meeting.props.items()
             if k not in ("ParentFolderId", "MeetingRequestWasSent", "ItemId")}
    if mine is None:
        mine = Item(id=ids.new_id(target.smtp), kind="CalendarItem", folder_id=target.by_name["calendar"])
        mine.props = props
        mine.set("ParentFolderId", None)
        mine.props["ParentFolderId"].set("Id", target.by_name["calendar"])
        created = True
    else:
        mine.props = {**props, "ParentFolderId": mine.props["ParentFolderId"]}
        created = False
    mine.exceptions = copy.deepcopy(meeting.exceptions)
    mine.deleted_occurrences = set(meeting.deleted_occurrences)
    mine.set("MyResponseType", answer or "NoResponseReceived")
    mine.set("IsResponseRequested", "true")
    if mine.props.get("Recurrence") is not None:
        calendar.refresh_series(mine)
    if created:
        ctx.store.insert(target, mine, now=ctx.now)
    else:
        ctx.store.touch(target, mine, now=ctx.now)


def send(ctx: Ctx, item: Item, *, save_to: str | None) -> Item | None:
    item.set("DateTimeSent", iso(ctx.now))
    item.set("IsDraft", "false")
    deliver(ctx, item)
    if save_to is None:
        if item.id in ctx.mb.items:
            ctx.store.remove(ctx.mb, item, now=ctx.now)
        return None
    if item.id in ctx.mb.items:
        if item.folder_id != save_to:
            return ctx.store.move(ctx.mb, item, save_to, now=ctx.now)
        ctx.store.touch(ctx.mb, item, now=ctx.now)
        return item
    item.folder_id = save_to
    item.props["ParentFolderId"].set("Id", save_to)
    return ctx.store.insert(ctx.mb, item, now=ctx.now)


MEETING_REPLIES = {"AcceptItem": ("Accept", "Accepted", "IPM.Schedule.Meeting.Resp.Pos"),
                   "TentativelyAcceptItem": ("Tentative", "Tentative", "IPM.Schedule.Meeting.Resp.Tent"),
                   "DeclineItem": ("Decline", "Declined", "IPM.Schedule.Meeting.Resp.Neg")}


def _meeting_reply(ctx: Ctx, el: etree._Element, kind: str, disposition: str) -> None:
    """AcceptItem / TentativelyAcceptItem / DeclineItem on a meeting in the attendee's calendar (or its
    request): the answer is recorded on the attendee's copy and, sent, reaches the organizer as a
    meeting response that also updates the attendee's status in the organizer's meeting. A declined
    meeting leaves the attendee's calendar (to Deleted Items), as Exchange does."""
    ref = el.find(t("ReferenceItemId"))
    if ref is None:
        raise ItemError("ErrorInvalidReferenceItem", "The reference item is not valid.")
    meeting = ctx.item(str(ref.get("Id")))
    response, verb, item_class = MEETING_REPLIES[kind]
    if meeting.kind not in ("CalendarItem", "MeetingRequest"):
        raise ItemError("ErrorInvalidReferenceItem", "The reference item does not support the requested operation.")
    if meeting.text("MyResponseType") == "Organizer" and meeting.kind == "CalendarItem":
        code = {"Accept": "ErrorCalendarIsOrganizerForAccept", "Tentative": "ErrorCalendarIsOrganizerForTentative",
                "Decline": "ErrorCalendarIsOrganizerForDecline"}[response]
        raise ItemError(code, "The organizer cannot respond to their own meeting.")
    uid = meeting.text("UID")
    mine = meeting if meeting.kind == "CalendarItem" else next(
        (i for i in ctx.mb.items.values() if i.kind == "CalendarItem" and i.text("UID") == uid), None)
    if mine is not None:
        mine.set("MyResponseType", response)
        ctx.store.touch(ctx.mb, mine, now=ctx.now)
    if disposition in ("SendAndSaveCopy", "SendOnly"):
        organizer = meeting.props.get("Organizer")
        address = (organizer.findtext(f"{t('Mailbox')}/{t('EmailAddress')}") or "") if organizer is not None else ""
        answer = new_item(ctx, "Message", ctx.mb.by_name["sentitems"])
        answer.set("Subject", f"{verb}: {meeting.text('Subject') or ''}")
        holder = etree.Element("x")
        to = sub(holder, t("ToRecipients"))
        if organizer is not None and organizer.find(t("Mailbox")) is not None:
            to.append(copy.deepcopy(organizer.find(t("Mailbox"))))
        answer.props["ToRecipients"] = to
        body = el.find(t("Body"))
        if body is not None:
            answer.props["Body"] = copy.deepcopy(body)
        _message_defaults(ctx, answer, draft=False)
        deliver(ctx, answer, kind="Message", extra={"response": response}, item_class=item_class)
        _record_answer(ctx, address.lower(), uid, response)
        if disposition == "SendAndSaveCopy":
            ctx.store.insert(ctx.mb, answer, now=ctx.now)
    if response == "Decline" and mine is not None:
        ctx.store.move(ctx.mb, mine, ctx.mb.by_name["deleteditems"], now=ctx.now)


def _record_answer(ctx: Ctx, organizer: str, uid: str | None, response: str) -> None:
    """The attendee's answer in the organizer's meeting (Exchange processes the response on arrival)."""
    target = ctx.store.mailboxes.get(organizer)
    if target is None or uid is None:
        return
    meeting = next((i for i in target.items.values() if i.kind == "CalendarItem" and i.text("UID") == uid
                    and i.text("MyResponseType") == "Organizer"), None)
    if meeting is None:
        return
    for tag in ("RequiredAttendees", "OptionalAttendees"):
        for attendee in meeting.props.get(tag, []):
            if (attendee.findtext(f"{t('Mailbox')}/{t('EmailAddress')}") or "").lower() != ctx.mb.smtp.lower():
                continue
            status = attendee.find(t("ResponseType"))
            if status is None:
                status = sub(attendee, t("ResponseType"))
            status.text = response
    ctx.store.touch(target, meeting, now=ctx.now)


def _quoted_body(original: Item, new: etree._Element | None) -> etree._Element:
    """A response object's body: the new text above the original message, quoted under a header, as
    Exchange writes it (HTML whenever either part is)."""
    new_text = (new.text if new is not None else "") or ""
    new_html = (new is not None and new.get("BodyType") == "HTML")
    old = original.props.get("Body")
    old_text = (old.text if old is not None else "") or ""
    old_html = old is not None and old.get("BodyType") == "HTML"
    sender = original.props.get("From")
    who = (sender.findtext(f"{t('Mailbox')}/{t('Name')}") or sender.findtext(f"{t('Mailbox')}/{t('EmailAddress')}")
           or "") if sender is not None else ""
    header = (f"<hr><b>From:</b> {html.escape(who)}<br><b>Sent:</b> {html.escape(original.text('DateTimeSent') or '')}"
              f"<br><b>Subject:</b> {html.escape(original.text('Subject') or '')}<br>")
    body = etree.Element(t("Body"), BodyType="HTML")
    body.text = ("<html><body>" + (new_text if new_html else html.escape(new_text).replace("\n", "<br>"))
                 + f'<div id="divRplyFwdMsg">{header}</div>'
                 + (old_text if old_html else html.escape(old_text).replace("\n", "<br>")) + "</body></html>")
    return body


def _response_item(ctx: Ctx, el: etree._Element) -> Item:
    """ReplyToItem / ReplyAllToItem / ForwardItem: a new message in the original's conversation."""
    kind = local(el)
    ref = el.find(t("ReferenceItemId"))
    if ref is None:
        raise ItemError("ErrorInvalidReferenceItem", "The reference item is not valid.")
    original = ctx.item(str(ref.get("Id")))
    reply = new_item(ctx, "Message", ctx.mb.by_name["drafts"])
    prefix = "FW: " if kind == "ForwardItem" else "RE: "
    reply.set("Subject", el.findtext(t("Subject")) or prefix + (original.text("Subject") or ""))
    reply.props["Body"] = _quoted_body(original, el.find(t("NewBodyContent")))
    holder = etree.Element("x")
    if kind in ("ReplyToItem", "ReplyAllToItem"):
        # as the server does for Outlook and Graph alike: the Reply-To address before the sender, and
        # a reply to your own sent message goes to its recipients, not back to you
        me = ctx.mb.smtp.lower()
        to = sub(holder, t("ToRecipients"))
        seen = {me}
        sender = original.props.get("From")
        own = sender is not None and (sender.findtext(f"{t('Mailbox')}/{t('EmailAddress')}") or "").lower() == me
        reply_to = list(original.props.get("ReplyTo", []))
        author = reply_to[:1] or ([sender.find(t("Mailbox"))] if sender is not None else [])
        for mbx in (list(original.props.get("ToRecipients", [])) if own else author):
            address = (mbx.findtext(t("EmailAddress")) or "").lower()
            if address not in seen:
                to.append(copy.deepcopy(mbx))
                seen.add(address)
        if kind == "ReplyAllToItem":
            cc = sub(holder, t("CcRecipients"))
            for tag, target in (("ToRecipients", to), ("CcRecipients", cc)):
                for mbx in original.props.get(tag, []):
                    address = (mbx.findtext(t("EmailAddress")) or "").lower()
                    if address not in seen:
                        target.append(copy.deepcopy(mbx))
                        seen.add(address)
            if len(cc):
                reply.props["CcRecipients"] = cc
        reply.props["ToRecipients"] = to
    for tag in ("ToRecipients", "CcRecipients", "BccRecipients"):
        given = el.find(t(tag))
        if given is not None:
            reply.props[tag] = copy.deepcopy(given)
    if original.props.get("ConversationId") is not None:
        reply.props["ConversationId"] = copy.deepcopy(original.props["ConversationId"])
    if original.text("InternetMessageId"):
        reply.set("InReplyTo", original.text("InternetMessageId"))
        reply.set("References", original.text("InternetMessageId"))
    for child in el:
        if local(child) == "ExtendedProperty":
            uri = child.find(t("ExtendedFieldURI"))
            if uri is not None:
                reply.ext[ext_key(uri)] = copy.deepcopy(child)
    return reply


def create_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    disposition = req.get("MessageDisposition") or ""
    invitations = req.get("SendMeetingInvitations") or ""
    saved = req.find(m("SavedItemFolderId"))
    items_el = req.find(m("Items"))

    def one(el: etree._Element, out: etree._Element) -> None:
        kind = local(el)
        if kind in ("ReplyToItem", "ReplyAllToItem", "ForwardItem"):
            reply = _response_item(ctx, el)
            _message_defaults(ctx, reply, draft=True)
            if disposition == "SaveOnly":
                ctx.store.insert(ctx.mb, reply, now=ctx.now)
                sub(out, t("Message")).append(item_id_el(reply))
                return
            send(ctx, reply, save_to=ctx.mb.by_name["sentitems"] if disposition == "SendAndSaveCopy" else None)
            return
        if kind in MEETING_REPLIES:
            _meeting_reply(ctx, el, kind, disposition)
            return
        if kind not in ITEM_KINDS:
            raise ItemError("ErrorInvalidItemForOperationCreateItem" if False else "ErrorInvalidRequest",
                            f"{kind} items cannot be created by this simulator.")
        if kind == "Message" and not disposition:
            raise ItemError("ErrorMessageDispositionRequired",
                            "MessageDisposition attribute is required.")
        default = {"Message": "drafts", "CalendarItem": "calendar", "Contact": "contacts"}.get(kind, "drafts")
        if saved is not None and len(saved):
            folder = ctx.folder_of(saved[0])
        elif kind == "Message" and disposition == "SendAndSaveCopy":
            folder = ctx.mb.folder("sentitems")
        else:
            folder = ctx.mb.folder(default)
        item = new_item(ctx, kind, folder.id)
        _store_props(item, el)
        if kind == "CalendarItem":
            if not invitations and _attendees(item):
                raise ItemError("ErrorSendMeetingInvitationsRequired" if False else "ErrorInvalidRequest",
                                "SendMeetingInvitations attribute is required for calendar items.")
            _calendar_defaults(ctx, item)
            ctx.store.insert(ctx.mb, item, now=ctx.now)
            if invitations in ("SendToAllAndSaveCopy", "SendOnlyToAll") and _attendees(item):
                item.set("MeetingRequestWasSent", "true")
                deliver(ctx, item, kind="MeetingRequest")
        elif kind == "Message":
            _message_defaults(ctx, item, draft=disposition == "SaveOnly")
            if disposition == "SaveOnly":
                ctx.store.insert(ctx.mb, item, now=ctx.now)
            else:
                send(ctx, item, save_to=folder.id if disposition == "SendAndSaveCopy" else None)
                return  # Exchange returns no item for a message it sent
        else:
            if kind == "Contact" and item.text("DisplayName") is None:
                item.set("DisplayName", " ".join(x for x in (item.text("GivenName"), item.text("Surname")) if x))
            ctx.store.insert(ctx.mb, item, now=ctx.now)
        sub(out, t(kind)).append(item_id_el(item))

    return each(ctx, "CreateItem", req, "Items", list(items_el) if items_el is not None else [], one)


# ---------------------------------------------------------------- UpdateItem


def _apply_set(item: Item, upd: etree._Element) -> None:
    canonical(upd)
    path = upd[0]
    holder = upd[1] if len(upd) > 1 else None
    if local(path) == "ExtendedFieldURI":
        if holder is None or holder.find(t("ExtendedProperty")) is None:
            raise ItemError("ErrorInvalidPropertySet", "Set action is invalid for property.")
        item.ext[ext_key(path)] = copy.deepcopy(holder.find(t("ExtendedProperty")))
        return
    tag = tag_of(path.get("FieldURI", ""))
    if tag in READ_ONLY:
        raise ItemError("ErrorInvalidPropertySet", "Set action is invalid for property.",
                        values={"FieldURI": path.get("FieldURI", "")})
    if holder is None or holder.find(t(tag)) is None:
        raise ItemError("ErrorInvalidPropertySet" if holder is not None else "ErrorInvalidRequest",
                        "The request is invalid.")
    new = holder.find(t(tag))
    if local(path) == "IndexedFieldURI":
        container = item.props.setdefault(tag, etree.Element(t(tag)))
        for entry in new:
            key = entry.get("Key")
            old = next((e for e in container if e.get("Key") == key), None)
            if old is None:
                container.append(copy.deepcopy(entry))
            elif len(entry):  # a physical address part: merge the child fields
                for part in entry:
                    prev = old.find(part.tag)
                    if prev is not None:
                        old.remove(prev)
                    old.append(copy.deepcopy(part))
            else:
                old.text = entry.text
        return
    item.props[tag] = copy.deepcopy(new)


def _apply_delete(item: Item, upd: etree._Element) -> None:
    path = upd[0]
    if local(path) == "ExtendedFieldURI":
        item.ext.pop(ext_key(path), None)
        return
    tag = tag_of(path.get("FieldURI", ""))
    if local(path) == "IndexedFieldURI":
        container = item.props.get(tag)
        if container is not None:
            uri = path.get("FieldURI", "")
            for e in [e for e in container if e.get("Key") == path.get("FieldIndex")]:
                if uri.count(":") == 2:  # contacts:PhysicalAddress:Street
                    part = e.find(t(uri.split(":")[2]))
                    if part is not None:
                        e.remove(part)
                else:
                    container.remove(e)
        return
    if tag in READ_ONLY:
        raise ItemError("ErrorInvalidPropertyDelete", "Delete action is invalid for property.")
    item.props.pop(tag, None)


def update_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    conflict = req.get("ConflictResolution") or "AutoResolve"
    invitations = req.get("SendMeetingInvitationsOrCancellations") or ""
    disposition = req.get("MessageDisposition") or ""
    changes = req.find(m("ItemChanges"))

    def one(change: etree._Element, out: etree._Element) -> None:
        id_el = next((c for c in change if local(c) in ("ItemId", "OccurrenceItemId", "RecurringMasterItemId")),
                     None)
        if id_el is None:
            raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
        item = resolve(ctx, id_el)
        master_info = ctx.master_of(item.id)
        given_ck = id_el.get("ChangeKey")
        if given_ck and given_ck != item.change_key and conflict == "NeverOverwrite":
            raise ItemError("ErrorIrresolvableConflict",
                            "The send or update operation could not be performed because the change key passed in "
                            "the request does not match the current change key for the item.")
        if master_info is not None:
            master, key = master_info
            item = calendar.make_exception(master, calendar.parse_dt(key))
        updates = change.find(t("Updates"))
        for upd in updates if updates is not None else ():
            name = local(upd)
            if name in ("SetItemField", "AppendToItemField"):
                _apply_set(item, upd)
            elif name == "DeleteItemField":
                _apply_delete(item, upd)
        if item.kind == "CalendarItem":
            if calendar.duration(item) < dt.timedelta(0):
                raise ItemError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")
            if master_info is None:
                item.set("CalendarItemType", "RecurringMaster" if item.props.get("Recurrence") is not None
                         else "Single")
                if item.props.get("Recurrence") is None:
                    item.exceptions.clear()
                    item.deleted_occurrences.clear()
                item.set("IsMeeting", "true" if _attendees(item) else "false")
        target = master_info[0] if master_info is not None else item
        if target.kind == "CalendarItem":
            calendar.refresh_series(target)
        ctx.store.touch(ctx.mb, target, now=ctx.now)
        if master_info is not None:
            item.change_key = target.change_key
            calendar.refresh_series(target)
        if item.kind == "CalendarItem" and _attendees(item) and invitations in (
                "SendToAllAndSaveCopy", "SendOnlyToAll", "SendToChangedAndSaveCopy", "SendOnlyToChanged"):
            deliver(ctx, item, kind="MeetingRequest", extra={"update": "true"})
        if item.kind == "Message" and disposition in ("SendAndSaveCopy", "SendOnly"):
            send(ctx, item, save_to=ctx.mb.by_name["sentitems"] if disposition == "SendAndSaveCopy" else None)
            return
        sub(out, t(item.kind)).append(item_id_el(item))

    resp = each(ctx, "UpdateItem", req, "Items", list(changes) if changes is not None else [], one)
    for rm in resp.iter(m("UpdateItemResponseMessage")):
        if rm.get("ResponseClass") == "Success":
            sub(sub(rm, m("ConflictResults")), t("Count"), "0")
    return resp


# ---------------------------------------------------------------- DeleteItem / SendItem / MoveItem


def delete_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    delete_type = req.get("DeleteType") or ""
    if delete_type not in ("HardDelete", "SoftDelete", "MoveToDeletedItems"):
        from sandbox.ews.soap import EwsFault

        raise EwsFault("ErrorSchemaValidation", "The request failed schema validation: DeleteType is required.")
    cancellations = req.get("SendMeetingCancellations") or ""

    def one(id_el: etree._Element, out: etree._Element) -> None:
        item = resolve(ctx, id_el)
        master_info = ctx.master_of(item.id)
        if item.kind == "CalendarItem" and cancellations in ("SendToAllAndSaveCopy", "SendOnlyToAll") \
                and _attendees(item):
            deliver(ctx, item, kind="MeetingCancellation")
        if master_info is not None:
            master, key = master_info
            master.exceptions.pop(key, None)
            master.deleted_occurrences.add(key)
            calendar.refresh_series(master)
            ctx.store.touch(ctx.mb, master, now=ctx.now)
            return
        if delete_type == "MoveToDeletedItems" and item.folder_id != ctx.mb.by_name["deleteditems"]:
            ctx.store.move(ctx.mb, item, ctx.mb.by_name["deleteditems"], now=ctx.now)
        else:
            ctx.store.remove(ctx.mb, item, now=ctx.now)

    return each(ctx, "DeleteItem", req, "Items", _ids(req.find(m("ItemIds"))), one, wrap=None)


def send_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    save = (req.get("SaveItemToFolder") or "true") == "true"
    saved = req.find(m("SavedItemFolderId"))
    folder = ctx.folder_of(saved[0]) if saved is not None and len(saved) else ctx.mb.folder("sentitems")

    def one(id_el: etree._Element, out: etree._Element) -> None:
        item = resolve(ctx, id_el)
        if item.kind != "Message" or item.text("IsDraft") != "true":
            raise ItemError("ErrorInvalidItemForOperationSendItem",
                            "The item is not valid for the SendItem operation.")
        if id_el.get("ChangeKey") and id_el.get("ChangeKey") != item.change_key:
            raise ItemError("ErrorStaleObject", "The change key passed in the request does not match the current "
                            "change key for the item.")
        send(ctx, item, save_to=folder.id if save else None)

    return each(ctx, "SendItem", req, "Items", _ids(req.find(m("ItemIds"))), one, wrap=None)


def move_item(ctx: Ctx, req: etree._Element) -> etree._Element:
    target = req.find(m("ToFolderId"))
    folder = ctx.folder_of(target[0]) if target is not None and len(target) else ctx.mb.folder("inbox")

    def one(id_el: etree._Element, out: etree._Element) -> None:
        moved = ctx.store.move(ctx.mb, resolve(ctx, id_el), folder.id, now=ctx.now)
        sub(out, t(moved.kind)).append(item_id_el(moved))

    return each(ctx, "MoveItem", req, "Items", _ids(req.find(m("ItemIds"))), one)


# ---------------------------------------------------------------- attachments


def _find_attachment(ctx: Ctx, att_id: str) -> tuple[Item, Attachment]:
    for item in ctx.mb.items.values():
        for a in item.attachments:
            if a.id == att_id:
                return item, a
    raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")


def create_attachment(ctx: Ctx, req: etree._Element) -> etree._Element:
    parent = req.find(m("ParentItemId"))
    atts = req.find(m("Attachments"))

    def one(a: etree._Element, out: etree._Element) -> None:
        item = ctx.item(str(parent.get("Id") if parent is not None else ""))
        att = _attachment(a)
        if att.is_contact_photo:
            item.attachments = [x for x in item.attachments if not x.is_contact_photo]
        item.attachments.append(att)
        ctx.store.touch(ctx.mb, item, now=ctx.now)
        fa = sub(out, t("FileAttachment"))
        sub(fa, t("AttachmentId"), Id=att.id, RootItemId=item.id, RootItemChangeKey=item.change_key)

    return each(ctx, "CreateAttachment", req, "Attachments", list(atts) if atts is not None else [], one,
                wrap="Attachments")


def get_attachment(ctx: Ctx, req: etree._Element) -> etree._Element:
    def one(id_el: etree._Element, out: etree._Element) -> None:
        _, a = _find_attachment(ctx, str(id_el.get("Id")))
        fa = sub(out, t("FileAttachment"))
        sub(fa, t("AttachmentId"), Id=a.id)
        sub(fa, t("Name"), a.name)
        sub(fa, t("ContentType"), a.content_type)
        sub(fa, t("Size"), len(a.content))
        sub(fa, t("IsInline"), "true" if a.is_inline else "false")
        sub(fa, t("IsContactPhoto"), "true" if a.is_contact_photo else "false")
        sub(fa, t("Content"), base64.b64encode(a.content).decode())

    return each(ctx, "GetAttachment", req, "Attachments", _ids(req.find(m("AttachmentIds"))), one,
                wrap="Attachments")


def delete_attachment(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("DeleteAttachmentResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    for id_el in _ids(req.find(m("AttachmentIds"))):
        try:
            item, a = _find_attachment(ctx, str(id_el.get("Id")))
        except ItemError as err:
            response_message(msgs, "DeleteAttachment", err)
            continue
        item.attachments.remove(a)
        ctx.store.touch(ctx.mb, item, now=ctx.now)
        rm = response_message(msgs, "DeleteAttachment")
        sub(rm, m("RootItemId"), RootItemId=item.id, RootItemChangeKey=item.change_key)
    return resp


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
