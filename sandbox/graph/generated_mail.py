"""Mail that Exchange itself puts into mailboxes: meeting messages, non-delivery reports, read
receipts and automatic replies (graph.md §10: an Inbox delta is not only mail from people).

Each kind carries what real Exchange gives it: its ``@odata.type`` (eventMessage and subtypes live in
message collections), its MAPI message class (PidTagMessageClass, readable as the single-value
extended property ``String 0x001A``) and, for automatic replies, the RFC 3834 ``Auto-Submitted``
header. Recipients outside the tenant cannot be looked at, so what goes to them is recorded in the
simulator's log (``GET /_sim/meeting-messages``, ``GET /_sim/outbound-mail``) — the count a test
asserts when it wants to know how many mails a customer received.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.graph.clock import iso
from sandbox.graph.items import email
from sandbox.graph.model import Item, User
from sandbox.graph.seed import TENANT_DOMAINS

MESSAGE_CLASS = "String 0x001A"
NOTE = "IPM.Note"
MEETING_REQUEST = "IPM.Schedule.Meeting.Request"
MEETING_CANCELED = "IPM.Schedule.Meeting.Canceled"
RESPONSE_CLASS = {"accepted": "IPM.Schedule.Meeting.Resp.Pos", "tentativelyAccepted": "IPM.Schedule.Meeting.Resp.Tent",
                  "declined": "IPM.Schedule.Meeting.Resp.Neg"}
# meetingMessageType of a response; "meetingTenativelyAccepted" is the enum member's real spelling (v1.0).
RESPONSE_TYPE = {"accepted": "meetingAccepted", "tentativelyAccepted": "meetingTenativelyAccepted",
                 "declined": "meetingDeclined"}
RESPONSE_PREFIX = {"accepted": "Accepted: ", "tentativelyAccepted": "Tentative: ", "declined": "Declined: "}
NDR = "REPORT.IPM.Note.NDR"
READ_RECEIPT = "REPORT.IPM.Note.IPNRN"
AUTO_REPLY = "IPM.Note.Rules.OofTemplate.Microsoft"


@dataclass
class Sent:
    """One generated message as the log keeps it (no bodies)."""

    kind: str  # request | update | cancel | response | ndr | read_receipt | auto_reply
    sender: str
    recipient: str
    external: bool
    subject: str
    ical_uid: str = ""
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sender": self.sender, "recipient": self.recipient, "external": self.external,
                "subject": self.subject, "iCalUId": self.ical_uid, "at": self.at}


def is_tenant_address(address: str) -> bool:
    return address.lower().rsplit("@", 1)[-1] in TENANT_DOMAINS


def bounces(sim: Any, address: str) -> bool:
    """An address no mail server accepts: an unknown mailbox of the tenant's own domains, or any
    address under the reserved ``.invalid`` top-level domain (RFC 2606)."""
    addr = address.lower()
    if addr.endswith(".invalid"):
        return True
    return is_tenant_address(addr) and sim.store.find_user(addr) is None


def _deliver(sim: Any, recipient: User, data: dict[str, Any], message_class: str) -> Item:
    inbox = sim.store.mailboxes[recipient.id].well_known("inbox")
    item = sim.store.create(recipient, "message", inbox, data, notify=False)
    item.ext[MESSAGE_CLASS] = message_class
    sim.store.emit_created(item)
    return item


def _message(sim: Any, sender: dict[str, Any], recipient: str, subject: str, body: dict[str, Any], now: datetime
             ) -> dict[str, Any]:
    from sandbox.graph.mail import new_internet_message_id
    from sandbox.graph.model import new_conversation_id

    return {
        "subject": subject, "body": body, "toRecipients": [email(recipient)], "ccRecipients": [],
        "bccRecipients": [], "replyTo": [], "from": sender, "sender": sender, "isDraft": False, "isRead": False,
        "internetMessageId": new_internet_message_id(), "conversationId": new_conversation_id(),
        "receivedDateTime": iso(now), "sentDateTime": iso(now), "importance": "normal",
    }


def log(sim: Any, entry: Sent) -> None:
    entry.at = iso(sim.clock.now())
    sim.store.generated.append(entry)


# ---- meeting messages -------------------------------------------------------------------------


def meeting_message(sim: Any, organizer: User, address: str, ev: Item, kind: str, *,
                    start: datetime, end: datetime) -> None:
    """A meeting request (kind "request" or "update") or cancellation ("cancel") to one attendee:
    an eventMessage in the Inbox of a tenant user, a log entry either way."""
    from sandbox.graph.timezones import render

    subject = ev.data.get("subject", "")
    external = sim.store.find_user(address) is None
    log(sim, Sent(kind, organizer.upn, address.lower(), external, subject, ev.data.get("iCalUId", "")))
    rcpt = sim.store.find_user(address)
    if rcpt is None:
        return
    cancel = kind == "cancel"
    data = _message(sim, email(organizer.upn, organizer.display_name), rcpt.upn,
                    ("Canceled: " if cancel else "") + subject,
                    ev.data.get("body") or {"contentType": "html", "content": ""}, sim.clock.now())
    data.update({
        "@odata.type": "#microsoft.graph.eventMessage" if cancel else "#microsoft.graph.eventMessageRequest",
        "meetingMessageType": "meetingCancelled" if cancel else "meetingRequest",
        "type": "seriesMaster" if ev.data.get("recurrence") else "singleInstance",
        "startDateTime": render(start, None), "endDateTime": render(end, None),
        "isAllDay": bool(ev.data.get("isAllDay")), "isOutOfDate": False, "isDelegated": False,
        "location": ev.data.get("location") or {"displayName": ""},
    })
    _deliver(sim, rcpt, data, MEETING_CANCELED if cancel else MEETING_REQUEST)


def meeting_response(sim: Any, attendee: User, organizer_address: str, ev: Item, response: str) -> None:
    """The organizer is told of an attendee's accept/tentative/decline (an eventMessageResponse)."""
    subject = RESPONSE_PREFIX[response] + ev.data.get("subject", "")
    org = sim.store.find_user(organizer_address)
    log(sim, Sent("response", attendee.upn, organizer_address.lower(), org is None, subject,
                  ev.data.get("iCalUId", "")))
    if org is None:
        return
    data = _message(sim, email(attendee.upn, attendee.display_name), org.upn, subject,
                    {"contentType": "text", "content": ""}, sim.clock.now())
    data.update({"@odata.type": "#microsoft.graph.eventMessageResponse",
                 "meetingMessageType": RESPONSE_TYPE[response], "responseType": response,
                 "isOutOfDate": False, "isDelegated": False})
    _deliver(sim, org, data, RESPONSE_CLASS[response])


# ---- reports and automatic replies --------------------------------------------------------------


def non_delivery_report(sim: Any, sender: User, failed: list[str], original: Item) -> None:
    """The sender is told that mail to `failed` could not be delivered (from the postmaster)."""
    subject = "Undeliverable: " + original.data.get("subject", "")
    log(sim, Sent("ndr", "postmaster", sender.upn, False, subject))
    domain = sender.upn.rsplit("@", 1)[-1]
    body = {"contentType": "html", "content": "<p>Your message couldn't be delivered to "
            + ", ".join(failed) + ". The address wasn't found at the destination domain.</p>"}
    data = _message(sim, email(f"postmaster@{domain}", "Microsoft Outlook"), sender.upn, subject, body,
                    sim.clock.now())
    data["internetMessageHeaders"] = [{"name": "Content-Type", "value": "multipart/report; "
                                       "report-type=delivery-status"}]
    _deliver(sim, sender, data, NDR)


def read_receipt(sim: Any, reader: User, original: Item) -> None:
    """The sender of a message that asked for a read receipt is told it was read."""
    sender = ((original.data.get("from") or {}).get("emailAddress") or {}).get("address") or ""
    if not sender:
        return
    subject = "Read: " + original.data.get("subject", "")
    target = sim.store.find_user(sender)
    log(sim, Sent("read_receipt", reader.upn, sender.lower(), target is None, subject))
    if target is None or target.id == reader.id:
        return
    data = _message(sim, email(reader.upn, reader.display_name), target.upn, subject,
                    {"contentType": "text", "content": "Your message was read."}, sim.clock.now())
    data["internetMessageHeaders"] = [{"name": "Content-Type", "value": "multipart/report; "
                                       "report-type=disposition-notification"}]
    _deliver(sim, target, data, READ_RECEIPT)


def automatic_reply(sim: Any, owner: User, sender_address: str, original: Item) -> None:
    """Automatic replies (mailboxSettings.automaticRepliesSetting) answer each sender once while on."""
    settings = sim.store.auto_replies.get(owner.id)
    if not settings or settings.get("status", "disabled") == "disabled":
        return
    addr = sender_address.lower()
    if not addr or addr == owner.upn or addr in settings.setdefault("_answered", set()):
        return
    if original.ext.get(MESSAGE_CLASS, NOTE) != NOTE:
        return  # never answer reports, meeting messages or other automatic replies
    external = not is_tenant_address(addr)
    if external and settings.get("externalAudience", "all") == "none":
        return
    settings["_answered"].add(addr)
    subject = "Automatic reply: " + original.data.get("subject", "")
    log(sim, Sent("auto_reply", owner.upn, addr, external, subject))
    target = sim.store.find_user(addr)
    if target is None:
        return
    text = settings.get("externalReplyMessage" if external else "internalReplyMessage") or ""
    data = _message(sim, email(owner.upn, owner.display_name), target.upn, subject,
                    {"contentType": "html", "content": text}, sim.clock.now())
    data["internetMessageHeaders"] = [{"name": "Auto-Submitted", "value": "auto-replied"},
                                      {"name": "X-Auto-Response-Suppress", "value": "All"}]
    _deliver(sim, target, data, AUTO_REPLY)
