"""What the rep sees in Outlook, read independently of the product, for either mailbox backend.

The Pega → Exchange scenario suites run for an Exchange Online rep (the Graph simulator, read over
Graph as the user's Outlook would) and for an on-premises rep (the EWS simulator, read with the
real exchangelib). Both views answer in one small vocabulary (:class:`Event`, :class:`Contact`,
:class:`MeetingMail`), so a scenario states its intent once. Neither reads through the product's
own EWS translation (shared/ews/writes.py): a mapping bug there must show up here.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.outbound.graph_payloads import PEGA_ID_PROPERTY

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Event:
    id: str
    change_key: str
    subject: str
    location: str
    attendees: list[str]
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC
    pega_id: str | None
    is_organizer: bool
    organizer: str
    cancelled: bool = False
    series_days: list[str] | None = None  # a series master: its weekdays
    occurrences: int | None = None  # a numbered series: how many
    reminder_minutes: int | None = None
    all_day: bool = False
    start_zone: str = ""  # Windows zone name the event was made in
    local_start: dt.datetime | None = None  # naive, in the event's own zone (all-day: midnight)
    local_end: dt.datetime | None = None
    responses: dict[str, str] = field(default_factory=dict)  # attendee address -> accepted/declined/...


@dataclass(frozen=True)
class Contact:
    id: str
    change_key: str
    given_name: str
    surname: str
    display_name: str
    company: str
    job_title: str
    mobile_phone: str
    email: str
    business_city: str
    categories: list[str]
    photo: bytes | None


@dataclass(frozen=True)
class Message:
    id: str
    change_key: str
    subject: str
    is_draft: bool
    sender: str
    to: list[str]
    cc: list[str]
    conversation_id: str
    internet_message_id: str
    in_reply_to: str
    body_html: str
    attachments: dict[str, bytes]


@dataclass(frozen=True)
class MeetingMail:
    """Meeting messages Exchange sent for the rep's meetings, one per recipient (requests, updates,
    cancellations)."""

    requests: int = 0
    updates: int = 0
    cancellations: int = 0
    by_recipient: dict[str, int] = field(default_factory=dict)


def _utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value[:19]).replace(tzinfo=dt.UTC)


class _Calendar:
    """What both views answer from the calendar alone."""

    async def events(self, upn: str) -> list[Event]:
        raise NotImplementedError

    async def invitations(self, upn: str) -> list[tuple[str, str]]:
        """(subject, organizer) of the meetings `upn` was invited to (their calendar copies)."""
        return [(e.subject, e.organizer) for e in await self.events(upn) if not e.is_organizer]

    async def cancellations(self, upn: str) -> list[str]:
        """Subjects of the meetings `upn` was told are cancelled (copies marked cancelled)."""
        return [e.subject for e in await self.events(upn) if e.cancelled]


class GraphOutlook(_Calendar):
    backend = "graph"

    def __init__(self, graph_sim: Any, http: Any) -> None:
        self.sim = graph_sim
        self.http = http

    async def new_user(self, name: str = "Colleague") -> str:
        return str((await self.sim.control.new_user(name))["userPrincipalName"]).lower()

    def _event(self, ev: dict[str, Any]) -> Event:
        props = ev.get("singleValueExtendedProperties") or []
        rec = ev.get("recurrence") or {}
        return Event(
            id=ev["id"], change_key=ev.get("changeKey", ""), subject=ev.get("subject", ""),
            location=(ev.get("location") or {}).get("displayName", ""),
            attendees=[a["emailAddress"]["address"].lower() for a in ev.get("attendees", [])],
            start=_utc(ev["start"]["dateTime"]), end=_utc(ev["end"]["dateTime"]),
            pega_id=props[0]["value"] if props else None, is_organizer=bool(ev.get("isOrganizer")),
            organizer=((ev.get("organizer") or {}).get("emailAddress") or {}).get("address", "").lower(),
            cancelled=bool(ev.get("isCancelled")),
            series_days=(rec.get("pattern") or {}).get("daysOfWeek") if ev.get("type") == "seriesMaster" else None,
            occurrences=(rec.get("range") or {}).get("numberOfOccurrences") if rec else None,
            reminder_minutes=ev.get("reminderMinutesBeforeStart") if ev.get("isReminderOn", True) else None,
            all_day=bool(ev.get("isAllDay")), start_zone=ev.get("originalStartTimeZone", ""),
            local_start=dt.datetime.fromisoformat(ev["start"]["dateTime"][:19]) if ev.get("isAllDay") else None,
            local_end=dt.datetime.fromisoformat(ev["end"]["dateTime"][:19]) if ev.get("isAllDay") else None,
            responses={a["emailAddress"]["address"].lower(): (a.get("status") or {}).get("response", "")
                       for a in ev.get("attendees", [])})

    _READ = {"headers": {"Prefer": 'IdType="ImmutableId", outlook.timezone="UTC"'},
             "params": {"$expand": f"singleValueExtendedProperties($filter=id eq '{PEGA_ID_PROPERTY}')"}}

    async def events(self, upn: str) -> list[Event]:
        r = await self.http.get(f"/users/{upn}/events", params={"$top": "50", **self._READ["params"]},
                                headers=self._READ["headers"])
        r.raise_for_status()
        return [self._event(e) for e in r.json()["value"]]

    async def event(self, upn: str, event_id: str) -> Event:
        r = await self.http.get(f"/users/{upn}/events/{event_id}", **self._READ)
        r.raise_for_status()
        return self._event(r.json())

    async def move(self, upn: str, event_id: str, *, location: str) -> None:
        """The rep edits the meeting's location in Outlook."""
        r = await self.http.patch(f"/users/{upn}/events/{event_id}", json={"location": {"displayName": location}})
        r.raise_for_status()

    async def invite(self, organizer: str, attendee: str, subject: str) -> str:
        """`organizer` invites `attendee`; returns the id of the attendee's copy in their calendar."""
        r = await self.http.post(f"/users/{organizer}/events", json={
            "subject": subject, "start": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-02T11:00:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": attendee}, "type": "required"}]})
        r.raise_for_status()
        return next(e.id for e in await self.events(attendee) if e.subject == subject)

    async def meeting_mail(self, upn: str) -> MeetingMail:
        rows = await self.sim.control.meeting_messages(upn)
        assert len(rows) <= 1, rows  # one meeting per scenario
        if not rows:
            return MeetingMail()
        row = rows[0]
        return MeetingMail(row["requests"], row["updates"], row.get("cancellations", 0), dict(row["byRecipient"]))

    async def receive(self, upn: str, *, subject: str, body: str, to: list[str], cc: list[str]) -> Message:
        """Mail from a customer arrives in `upn`'s Inbox (and in every other hosted recipient's)."""
        made = await self.sim.control.inbound_mail(upn, subject=subject, body=body, to=to, cc=cc,
                                                   **{"from": {"address": "dana@fabrikam.example", "name": "Dana"}})
        return await self.message(upn, made["immutableId"])

    async def message(self, upn: str, message_id: str) -> Message:
        r = await self.http.get(f"/users/{upn}/messages/{message_id}")
        r.raise_for_status()
        m = r.json()
        h = await self.http.get(f"/users/{upn}/messages/{message_id}", params={"$select": "internetMessageHeaders"})
        headers = {x["name"]: x["value"] for x in h.json().get("internetMessageHeaders") or []}
        a = await self.http.get(f"/users/{upn}/messages/{message_id}/attachments")
        a.raise_for_status()

        def addresses(key: str) -> list[str]:
            return [x["emailAddress"]["address"].lower() for x in m.get(key) or []]

        return Message(
            id=m["id"], change_key=m.get("changeKey", ""), subject=m.get("subject") or "",
            is_draft=bool(m.get("isDraft")), sender=((m.get("from") or {}).get("emailAddress") or {}).get(
                "address", "").lower(), to=addresses("toRecipients"), cc=addresses("ccRecipients"),
            conversation_id=m.get("conversationId") or "", internet_message_id=m.get("internetMessageId") or "",
            in_reply_to=headers.get("In-Reply-To", ""), body_html=(m.get("body") or {}).get("content") or "",
            attachments={x["name"]: base64.b64decode(x["contentBytes"]) for x in a.json()["value"]
                         if x.get("contentBytes") is not None})

    async def folder(self, upn: str, folder: str) -> list[tuple[str, str]]:
        """(id, subject) of the messages in a well-known folder (inbox, sentitems, drafts)."""
        r = await self.http.get(f"/users/{upn}/mailFolders/{folder}/messages", params={"$top": "50"})
        r.raise_for_status()
        return [(m["id"], m.get("subject") or "") for m in r.json()["value"]]

    async def contact(self, upn: str, contact_id: str) -> Contact:
        r = await self.http.get(f"/users/{upn}/contacts/{contact_id}")
        r.raise_for_status()
        c = r.json()
        photo = await self.http.get(f"/users/{upn}/contacts/{contact_id}/photo/$value")
        return Contact(
            id=c["id"], change_key=c.get("changeKey", ""), given_name=c.get("givenName") or "",
            surname=c.get("surname") or "", display_name=c.get("displayName") or "",
            company=c.get("companyName") or "", job_title=c.get("jobTitle") or "",
            mobile_phone=c.get("mobilePhone") or "",
            email=(c.get("emailAddresses") or [{}])[0].get("address", ""),
            business_city=(c.get("businessAddress") or {}).get("city") or "", categories=list(c.get("categories") or []),
            photo=photo.content if photo.status_code == 200 else None)


class EwsOutlook(_Calendar):
    backend = "ews"

    def __init__(self, ews_sim: Any) -> None:
        self.sim = ews_sim

    async def new_user(self, name: str = "Colleague") -> str:
        return self.sim.new_mailbox()

    def _event(self, item: Any) -> Event:
        from exchangelib.recurrence import NumberedPattern, WeeklyPattern

        attendees = [*(item.required_attendees or []), *(item.optional_attendees or [])]
        rec = item.recurrence
        days = None
        if item.type == "RecurringMaster" and rec is not None and isinstance(rec.pattern, WeeklyPattern):
            days = [WEEKDAYS[d - 1] for d in rec.pattern.weekdays]
        response = {"Accept": "accepted", "Decline": "declined", "Tentative": "tentativelyAccepted",
                    "NoResponseReceived": "notResponded", "Unknown": "none", "Organizer": "organizer"}
        return Event(
            id=item.id, change_key=item.changekey, subject=item.subject or "",
            location=item.location or "", attendees=[a.mailbox.email_address.lower() for a in attendees],
            start=self._utc(item.start), end=self._utc(item.end), pega_id=getattr(item, "pega_id", None),
            is_organizer=item.my_response_type == "Organizer",
            organizer=(item.organizer.email_address or "").lower() if item.organizer else "",
            cancelled=bool(item.is_cancelled), series_days=days,
            occurrences=rec.boundary.number if rec is not None and isinstance(rec.boundary, NumberedPattern) else None,
            reminder_minutes=item.reminder_minutes_before_start if item.reminder_is_set else None,
            all_day=bool(item.is_all_day), start_zone=item._start_timezone.ms_id if item._start_timezone else "",
            local_start=self._local(item.start, item._start_timezone) if item.is_all_day else None,
            local_end=self._local(item.end, item._end_timezone or item._start_timezone, end=True)
            if item.is_all_day else None,
            responses={a.mailbox.email_address.lower(): response.get(a.response_type or "", a.response_type or "")
                       for a in attendees})

    @staticmethod
    def _utc(value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC)
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)  # an all-day EWSDate

    @staticmethod
    def _local(value: Any, zone: Any, *, end: bool = False) -> dt.datetime:
        """Naive, in the event's zone; an all-day end as the midnight after the last day (Graph's form:
        exchangelib gives the last day itself)."""
        if isinstance(value, dt.datetime):
            return value.astimezone(zone).replace(tzinfo=None) if zone is not None else value.replace(tzinfo=None)
        return dt.datetime(value.year, value.month, value.day) + (dt.timedelta(days=1) if end else dt.timedelta(0))

    async def events(self, upn: str) -> list[Event]:
        return [self._event(i) for i in self.sim.account(upn).calendar.all()]

    async def event(self, upn: str, event_id: str) -> Event:
        return self._event(self.sim.account(upn).calendar.get(id=event_id))

    async def move(self, upn: str, event_id: str, *, location: str) -> None:
        item = self.sim.account(upn).calendar.get(id=event_id)
        item.location = location
        item.save(update_fields=["location"], send_meeting_invitations="SendToNone")

    async def invite(self, organizer: str, attendee: str, subject: str) -> str:
        """`organizer` invites `attendee`; returns the id of the copy Exchange put in their calendar."""
        from exchangelib import UTC, Attendee, CalendarItem, EWSDateTime, Mailbox

        account = self.sim.account(organizer)
        CalendarItem(account=account, folder=account.calendar, subject=subject,
                     start=EWSDateTime(2026, 12, 2, 10, tzinfo=UTC), end=EWSDateTime(2026, 12, 2, 11, tzinfo=UTC),
                     required_attendees=[Attendee(mailbox=Mailbox(email_address=attendee), response_type="Unknown")],
                     ).save(send_meeting_invitations="SendToAllAndSaveCopy")
        return next(e.id for e in await self.events(attendee) if e.subject == subject)

    async def meeting_mail(self, upn: str) -> MeetingMail:
        sent = [s for s in self.sim.control("GET", "sent", mailbox=upn)["value"]
                if s["kind"] in ("MeetingRequest", "MeetingCancellation")]
        by_recipient: Counter[str] = Counter(r.lower() for s in sent for r in s["to"])
        requests = sum(len(s["to"]) for s in sent if s["kind"] == "MeetingRequest" and s.get("update") != "true")
        updates = sum(len(s["to"]) for s in sent if s["kind"] == "MeetingRequest" and s.get("update") == "true")
        cancels = sum(len(s["to"]) for s in sent if s["kind"] == "MeetingCancellation")
        return MeetingMail(requests, updates, cancels, dict(by_recipient))

    async def receive(self, upn: str, *, subject: str, body: str, to: list[str], cc: list[str]) -> Message:
        made = self.sim.control("POST", f"mailboxes/{upn}/inbound-mail", {
            "subject": subject, "body": body, "bodyType": "Text", "from": "dana@fabrikam.example",
            "fromName": "Dana", "to": to, "cc": cc})
        return await self.message(upn, made["id"])

    _FOLDERS = {"inbox": "inbox", "sentitems": "sent", "drafts": "drafts"}

    def _find(self, upn: str, message_id: str) -> Any:
        account = self.sim.account(upn)
        for name in ("inbox", "sent", "drafts"):
            try:
                return getattr(account, name).get(id=message_id)
            except Exception:
                continue
        raise AssertionError(f"no message {message_id[-12:]} in {upn}'s Inbox, Sent Items or Drafts")

    async def message(self, upn: str, message_id: str) -> Message:
        m = self._find(upn, message_id)

        def addresses(values: Any) -> list[str]:
            return [(x.email_address or "").lower() for x in values or []]

        return Message(
            id=m.id, change_key=m.changekey, subject=m.subject or "", is_draft=bool(m.is_draft),
            sender=(m.sender.email_address or "").lower() if m.sender else "",
            to=addresses(m.to_recipients), cc=addresses(m.cc_recipients), conversation_id=(
                m.conversation_id.id if m.conversation_id else ""), internet_message_id=m.message_id or "",
            in_reply_to=m.in_reply_to or "", body_html=str(m.body or ""),
            attachments={a.name: a.content for a in m.attachments or [] if hasattr(a, "content")})

    async def folder(self, upn: str, folder: str) -> list[tuple[str, str]]:
        items = getattr(self.sim.account(upn), self._FOLDERS[folder]).all().only("id", "subject")
        return [(i.id, i.subject or "") for i in items]

    async def contact(self, upn: str, contact_id: str) -> Contact:
        c = self.sim.account(upn).contacts.get(id=contact_id)
        phones = {p.label: p.phone_number for p in (c.phone_numbers or [])}
        city = next((a.city for a in (c.physical_addresses or []) if a.label == "Business"), "")
        photo = next((a.content for a in (c.attachments or []) if getattr(a, "is_contact_photo", False)), None)
        return Contact(
            id=c.id, change_key=c.changekey, given_name=c.given_name or "", surname=c.surname or "",
            display_name=c.display_name or "", company=c.company_name or "", job_title=c.job_title or "",
            mobile_phone=phones.get("MobilePhone") or "",
            email=c.email_addresses[0].email if c.email_addresses else "", business_city=city or "",
            categories=list(c.categories or []), photo=photo)
