"""The seeded mixed workload and the ground truth it records.

A seed picks a list of scenarios (mail from contacts, leads and unknown senders, replies in threads,
one mail to both reps, events single / recurring with a moved and a cancelled occurrence across a
DST change / all-day / in other time zones / private / moved / renamed / cancelled / deleted,
contacts with and without the category, edited, re-categorized, deleted, private, one customer held
by both reps; in Pega: appointments created / updated / cancelled, emails, replies, contacts created /
updated / closed; and both sides editing the same appointment). Scenarios run concurrently with
seeded start times and pauses, across both demo mailboxes and both reps.

Every scenario records what the end state must be (`Item`): the checker compares that ground truth
with both sides after the settle. A follow-up that needs the other side first (edit in Pega what
came from Outlook) waits for it, bounded; if it never comes the follow-up is not made and the item
keeps its earlier expectation (the missing item is then what the check reports).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bench.chaos.actors import Actors

if TYPE_CHECKING:
    from bench.chaos.onprem import OnPremOutlook

REPS = {"alex@contoso.example": "alex", "blair@contoso.example": "blair"}
DANA = "dana@fabrikam.example"
LEE = "lee@northwind.example"
CATEGORY = "PegaSASync"
DEPENDENCY_WAIT = 25.0  # seconds a follow-up waits for the other side before giving up on it

# Windows zone name (what Outlook sends) -> IANA (what the harness computes with)
ZONES = {"UTC": "UTC", "Pacific Standard Time": "America/Los_Angeles", "W. Europe Standard Time": "Europe/Berlin",
         "Tokyo Standard Time": "Asia/Tokyo", "AUS Eastern Standard Time": "Australia/Sydney"}


@dataclass
class Item:
    """One unit of ground truth: something that must (or must not) exist on the other side."""

    key: str
    kind: str  # email | event | contact (Exchange -> Pega); rep_appointment | rep_email | rep_reply | rep_contact
    mailbox: str
    tag: str
    present: bool | None = True  # on the other side at the end: True, False, or None (either is right)
    fields: dict[str, Any] = field(default_factory=dict)  # expected final values (the checker's vocabulary)
    closed: bool = False  # expected cancelled / closed / category cleared
    ids: dict[str, Any] = field(default_factory=dict)  # graph_id, pega_id, internet_message_id, ...
    changes: int = 1  # changes the harness made to it (bounds the writes it justifies)
    alternatives: list[dict[str, Any]] = field(default_factory=list)  # conflict: any one of these is right
    notes: list[str] = field(default_factory=list)


@dataclass
class Truth:
    seed: int
    items: list[Item] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # harness actions that failed (the seed is then void)

    def add(self, item: Item) -> Item:
        self.items.append(item)
        return item


def _utc(local: dt.datetime, windows_zone: str) -> dt.datetime:
    return local.replace(tzinfo=ZoneInfo(ZONES[windows_zone])).astimezone(dt.UTC)


def _graph_time(t: dt.datetime, zone: str) -> dict[str, str]:
    return {"dateTime": t.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone}


def _q(record_id: str) -> str:
    return quote(record_id, safe="")


def _z(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Workload:
    """Builds and runs one seed's scenarios; `truth` is filled as they run."""

    def __init__(self, seed: int, actors: Actors, *, now: Callable[[], dt.datetime], scale: int = 1,
                 duration: float = 30.0, onprem: OnPremOutlook | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.a = actors
        self.now = now
        self.truth = Truth(seed)
        self.duration = duration
        self.scale = scale
        self._n = 0
        self.today = now().date()
        self.onprem = onprem  # the on-premises (EWS) rep's Outlook, when the stack runs the EWS simulator

    # ------------------------------------------------------------ helpers

    def tag(self, prefix: str) -> str:
        self._n += 1
        return f"[c{self.seed}-{prefix}{self._n}]"

    def mailbox(self) -> str:
        return self.rng.choice(sorted(REPS))

    async def pause(self, lo: float = 0.3, hi: float = 3.0) -> None:
        await asyncio.sleep(self.rng.uniform(lo, hi))

    async def wait_for(self, check: Callable[[], Awaitable[Any]], within: float = DEPENDENCY_WAIT) -> Any:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                got = await check()
            except Exception:
                got = None
            if got:
                return got
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.5)

    async def pega_by(self, kind: str, key: str, value: str) -> dict[str, Any] | None:
        for r in await self.a.pega_records(kind):
            if str(r["content"].get(key, "")).lower() == value.lower():
                return r
        return None

    def day(self, lo: int, hi: int) -> dt.date:
        return self.today + dt.timedelta(days=self.rng.randint(lo, hi))

    # ------------------------------------------------------------ the plan

    def plan(self) -> list[Callable[[], Awaitable[None]]]:
        """The seed's scenarios: a fixed core (every kind each run) plus a seeded random draw."""
        core: list[Callable[[], Awaitable[None]]] = [
            self.mail_contact, self.mail_lead, self.mail_unknown, self.mail_both, self.mail_thread,
            self.event_single, self.event_recurring, self.contact_categorized, self.contact_shared,
            self.rep_appointment, self.rep_email, self.rep_reply, self.rep_contact, self.conflict,
        ]
        extra = [self.mail_contact, self.mail_lead, self.mail_unknown, self.event_single, self.event_single,
                 self.event_allday, self.event_private, self.contact_categorized, self.contact_categorized,
                 self.contact_plain, self.contact_private, self.rep_appointment, self.rep_appointment,
                 self.rep_email, self.rep_contact, self.rep_contact]
        picks = core + [self.rng.choice(extra) for _ in range(10 * self.scale)]
        self.rng.shuffle(picks)
        return picks

    async def run(self) -> Truth:
        scenarios = self.plan()
        starts = sorted(self.rng.uniform(0, self.duration * 0.6) for _ in scenarios)

        async def one(delay: float, scenario: Callable[[], Awaitable[None]]) -> None:
            await asyncio.sleep(delay)
            try:
                await scenario()
            except Exception as exc:  # a harness request failed: recorded, the seed is void
                self.truth.errors.append(f"{scenario.__name__}: {type(exc).__name__}: {exc}"[:400])

        onprem_scenarios: list[Callable[[], Awaitable[None]]] = []
        onprem_starts: list[float] = []
        if self.onprem is not None:  # own RNG: the Exchange Online part of the seed stays as it was
            from bench.chaos import onprem

            onprem_scenarios = onprem.scenarios(self, self.onprem)
            later = random.Random(self.seed * 31 + 7)
            onprem_starts = [later.uniform(0, self.duration * 0.6) for _ in onprem_scenarios]
        await asyncio.gather(*(one(d, s) for d, s in zip(starts, scenarios, strict=True)),
                             *(one(d, s) for d, s in zip(onprem_starts, onprem_scenarios, strict=True)))
        return self.truth

    # ------------------------------------------------------------ mail (Exchange -> Pega)

    async def _deliver(self, upn: str, sender: dict[str, str], subject: str, **extra: Any) -> dict[str, Any]:
        return dict(await self.a.gsim("POST", f"users/{upn}/inbound-mail", json={
            "from": sender, "subject": subject, "body": f"Hello, about {subject}: could we talk next week?",
            **extra}))

    async def mail_contact(self) -> None:
        upn, tag = self.mailbox(), self.tag("m")
        subject = f"Order question {tag}"
        m = await self._deliver(upn, {"address": DANA, "name": "Dana"}, subject)
        self.truth.add(Item(tag, "email", upn, tag, fields={"Subject": subject},
                            ids={"graph_id": m["immutableId"], "internet_message_id": m["internetMessageId"],
                                 "conversation_id": m["conversationId"]}))

    async def mail_lead(self) -> None:
        upn, tag = self.mailbox(), self.tag("l")
        subject = f"Interested in a demo {tag}"
        m = await self._deliver(upn, {"address": LEE, "name": "Lee"}, subject)
        self.truth.add(Item(tag, "email", upn, tag, fields={"Subject": subject},
                            ids={"graph_id": m["immutableId"], "internet_message_id": m["internetMessageId"]}))

    async def mail_unknown(self) -> None:
        upn, tag = self.mailbox(), self.tag("u")
        subject = f"Newsletter {tag}"
        m = await self._deliver(upn, {"address": f"news{self.seed}@unknown-co.example"}, subject)
        self.truth.add(Item(tag, "email", upn, tag, present=False, fields={"Subject": subject},
                            ids={"graph_id": m["immutableId"], "internet_message_id": m["internetMessageId"]},
                            notes=["unknown sender: no association, never synced"]))

    async def mail_both(self) -> None:
        """One mail from Dana to both reps: one email case in Pega (issue #11 item 4)."""
        tag = self.tag("b")
        subject = f"For both of you {tag}"
        imid = f"<chaos-{self.seed}-{uuid.uuid4().hex[:10]}@fabrikam.example>"
        ids = []
        for upn in sorted(REPS):
            m = await self._deliver(upn, {"address": DANA, "name": "Dana"}, subject, internetMessageId=imid,
                                    to=sorted(REPS))
            ids.append(m["immutableId"])
            await self.pause(0.0, 0.5)
        self.truth.add(Item(tag, "email", "both", tag, fields={"Subject": subject},
                            ids={"graph_ids": ids, "internet_message_id": imid}))

    async def mail_thread(self) -> None:
        """A mail and a reply in its thread: two email cases."""
        upn, tag = self.mailbox(), self.tag("t")
        subject = f"Contract {tag}"
        first = await self._deliver(upn, {"address": DANA, "name": "Dana"}, subject)
        self.truth.add(Item(tag + "a", "email", upn, tag, fields={"Subject": subject},
                            ids={"graph_id": first["immutableId"], "internet_message_id": first["internetMessageId"]}))
        await self.pause(1, 6)
        reply = await self._deliver(upn, {"address": DANA, "name": "Dana"}, f"RE: {subject}",
                                    inReplyTo=first["internetMessageId"])
        self.truth.add(Item(tag + "b", "email", upn, tag, fields={"Subject": f"RE: {subject}"},
                            ids={"graph_id": reply["immutableId"], "internet_message_id": reply["internetMessageId"]}))

    # ------------------------------------------------------------ events (Exchange -> Pega)

    async def _event(self, upn: str, subject: str, start: dt.datetime, end: dt.datetime, zone: str,
                     **extra: Any) -> dict[str, Any]:
        body = {"subject": subject, "start": _graph_time(start, zone), "end": _graph_time(end, zone),
                "attendees": [{"emailAddress": {"address": DANA, "name": "Dana"}, "type": "required"}], **extra}
        return dict(await self.a.outlook(upn, "POST", "events", json=body))

    async def _appt_in_pega(self, graph_id: str) -> dict[str, Any] | None:
        return await self.pega_by("appointment", "ExchangeID", graph_id)

    async def event_single(self) -> None:
        upn, tag = self.mailbox(), self.tag("e")
        zone = self.rng.choice(sorted(ZONES))
        local = dt.datetime.combine(self.day(1, 40), dt.time(self.rng.randint(7, 17), self.rng.choice((0, 30))))
        minutes = self.rng.choice((30, 60, 90))
        subject = f"Meeting {tag}"
        ev = await self._event(upn, subject, local, local + dt.timedelta(minutes=minutes), zone)
        item = self.truth.add(Item(tag, "event", upn, tag, ids={"graph_id": ev["id"]}, fields={
            "Subject": subject, "StartTime": _utc(local, zone), "EndTime": _utc(local, zone) + dt.timedelta(
                minutes=minutes), "Attendees": {DANA}}))
        follow = self.rng.choice(("none", "move", "rename", "cancel", "delete", "move_synced", "delete_synced"))
        if follow == "none":
            return
        await self.pause(0.5, 4)
        if follow.endswith("_synced"):
            if not await self.wait_for(lambda: self._appt_in_pega(ev["id"])):
                item.notes.append(f"{follow} not made: never reached Pega within {DEPENDENCY_WAIT:.0f}s")
                return
            follow = follow.removesuffix("_synced")
        item.changes += 1
        if follow == "move":
            local2 = local + dt.timedelta(hours=self.rng.choice((1, 2, 24)))
            await self.a.outlook(upn, "PATCH", f"events/{ev['id']}", json={
                "start": _graph_time(local2, zone), "end": _graph_time(local2 + dt.timedelta(minutes=minutes), zone)})
            item.fields["StartTime"] = _utc(local2, zone)
            item.fields["EndTime"] = _utc(local2, zone) + dt.timedelta(minutes=minutes)
        elif follow == "rename":
            item.fields["Subject"] = f"Meeting renamed {tag}"
            await self.a.outlook(upn, "PATCH", f"events/{ev['id']}", json={"subject": item.fields["Subject"]})
        elif follow == "cancel":
            await self.a.outlook(upn, "POST", f"events/{ev['id']}/cancel", json={"comment": "sorry"})
            item.closed, item.present = True, None
        elif follow == "delete":
            await self.a.outlook(upn, "DELETE", f"events/{ev['id']}")
            item.closed, item.present = True, None
        item.notes.append(follow)

    async def event_allday(self) -> None:
        upn, tag = self.mailbox(), self.tag("d")
        day = self.day(2, 30)
        subject = f"Offsite {tag}"
        ev = await self.a.outlook(upn, "POST", "events", json={
            "subject": subject, "isAllDay": True, "start": {"dateTime": f"{day}T00:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day + dt.timedelta(days=1)}T00:00:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": DANA, "name": "Dana"}, "type": "required"}]})
        self.truth.add(Item(tag, "event", upn, tag, ids={"graph_id": ev["id"]}, fields={
            "Subject": subject, "Attendees": {DANA}}, notes=["all-day: subject and attendees checked"]))

    async def event_private(self) -> None:
        upn, tag = self.mailbox(), self.tag("p")
        local = dt.datetime.combine(self.day(1, 20), dt.time(12))
        ev = await self._event(upn, f"Doctor {tag}", local, local + dt.timedelta(hours=1), "UTC",
                               sensitivity="private")
        self.truth.add(Item(tag, "event", upn, tag, present=False, ids={"graph_id": ev["id"]},
                            notes=["private: SYNC_PRIVATE_POLICY=skip"]))

    async def event_recurring(self) -> None:
        """Weekly, 3 occurrences at 09:00 Pacific across the US DST change (2nd Sunday of March), the
        2nd moved to 11:00, the 3rd cancelled: one appointment per occurrence at the right UTC time."""
        upn, tag = self.mailbox(), self.tag("r")
        year = self.today.year + (1 if self.today.month > 3 or (self.today.month == 3 and self.today.day > 1) else 0)
        march = dt.date(year, 3, 1)
        dst = march + dt.timedelta(days=(6 - march.weekday()) % 7 + 7)  # second Sunday of March
        first = dst - dt.timedelta(days=7)
        if (first - self.today).days > 170:  # outside the calendar window (180 days): a plain week series
            first = self.day(2, 10)
        zone = "Pacific Standard Time"
        subject = f"Weekly {tag}"
        master = await self.a.outlook(upn, "POST", "events", json={
            "subject": subject, "start": _graph_time(dt.datetime.combine(first, dt.time(9)), zone),
            "end": _graph_time(dt.datetime.combine(first, dt.time(9, 30)), zone),
            "attendees": [{"emailAddress": {"address": DANA, "name": "Dana"}, "type": "required"}],
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [first.strftime("%A").lower()]},
                           "range": {"type": "numbered", "startDate": str(first), "numberOfOccurrences": 3}}})
        inst = (await self.a.outlook(upn, "GET", f"events/{master['id']}/instances", params={
            "startDateTime": f"{first}T00:00:00Z", "endDateTime": f"{first + dt.timedelta(days=22)}T00:00:00Z"}))["value"]
        inst.sort(key=lambda i: i["start"]["dateTime"])
        days = [first + dt.timedelta(days=7 * k) for k in range(3)]
        occurrences: list[Item] = []
        for k, occ in enumerate(inst[:3]):
            start = _utc(dt.datetime.combine(days[k], dt.time(9)), zone)
            occurrences.append(self.truth.add(Item(f"{tag}{k}", "event", upn, tag, ids={"graph_id": occ["id"], "series": master["id"]},
                                fields={"Subject": subject, "StartTime": start,
                                        "EndTime": start + dt.timedelta(minutes=30), "Attendees": {DANA}})))
        if len(inst) < 3:
            self.truth.errors.append(f"series {tag}: {len(inst)} instances, expected 3")
            return
        await self.pause(0.5, 5)
        moved = occurrences[1]
        await self.a.outlook(upn, "PATCH", f"events/{inst[1]['id']}", json={
            "start": _graph_time(dt.datetime.combine(days[1], dt.time(11)), zone),
            "end": _graph_time(dt.datetime.combine(days[1], dt.time(11, 30)), zone)})
        moved.fields["StartTime"] = _utc(dt.datetime.combine(days[1], dt.time(11)), zone)
        moved.fields["EndTime"] = moved.fields["StartTime"] + dt.timedelta(minutes=30)
        moved.changes += 1
        await self.pause(0.2, 3)
        cancelled = occurrences[2]
        await self.a.outlook(upn, "DELETE", f"events/{inst[2]['id']}")
        cancelled.closed, cancelled.present, cancelled.changes = True, None, cancelled.changes + 1

    # ------------------------------------------------------------ contacts (Exchange -> Pega)

    def _person(self, tag: str) -> tuple[str, str, str]:
        given = self.rng.choice(("Kim", "Sam", "Alex", "Robin", "Noa", "Kai"))
        sur = f"Chaos{self.seed}x{self._n}"
        return given, sur, f"{given.lower()}.{sur.lower()}@fabrikam.example"

    async def contact_categorized(self) -> None:
        upn, tag = self.mailbox(), self.tag("c")
        given, sur, address = self._person(tag)
        c = await self.a.outlook(upn, "POST", "contacts", json={
            "givenName": given, "surname": sur, "companyName": "Fabrikam", "categories": [CATEGORY],
            "emailAddresses": [{"address": address, "name": f"{given} {sur}"}]})
        item = self.truth.add(Item(tag, "contact", upn, tag, ids={"graph_id": c["id"], "email": address},
                                   fields={"FirstName": given, "LastName": sur, "Email": address}))
        follow = self.rng.choice(("none", "edit", "edit", "uncategorize", "delete"))
        if follow == "none":
            return
        await self.pause(0.5, 4)
        if self.rng.random() < 0.6:
            if not await self.wait_for(lambda: self.pega_by("contact", "ExchangeID", c["id"])):
                item.notes.append(f"{follow} not made: never reached Pega within {DEPENDENCY_WAIT:.0f}s")
                return
            synced = True
        else:
            synced = False
        item.changes += 1
        if follow == "edit":
            item.fields["LastName"] = sur + "Edited"
            await self.a.outlook(upn, "PATCH", f"contacts/{c['id']}", json={"surname": item.fields["LastName"]})
        elif follow == "uncategorize":
            await self.a.outlook(upn, "PATCH", f"contacts/{c['id']}", json={"categories": []})
            item.closed, item.present = True, (True if synced else None)
        elif follow == "delete":
            await self.a.outlook(upn, "DELETE", f"contacts/{c['id']}")
            item.closed, item.present = True, (True if synced else None)
        item.notes.append(follow + (" after sync" if synced else ""))

    async def contact_plain(self) -> None:
        upn, tag = self.mailbox(), self.tag("n")
        given, sur, address = self._person(tag)
        c = await self.a.outlook(upn, "POST", "contacts", json={
            "givenName": given, "surname": sur, "emailAddresses": [{"address": address}]})
        self.truth.add(Item(tag, "contact", upn, tag, present=False, ids={"graph_id": c["id"], "email": address},
                            notes=["no category: never synced"]))

    async def contact_private(self) -> None:
        upn, tag = self.mailbox(), self.tag("q")
        given, sur, address = self._person(tag)
        c = await self.a.outlook(upn, "POST", "contacts", json={
            "givenName": given, "surname": sur, "categories": [CATEGORY], "emailAddresses": [{"address": address}],
            "singleValueExtendedProperties": [{"id": "Integer 0x0036", "value": "2"}]})
        self.truth.add(Item(tag, "contact", upn, tag, present=False, ids={"graph_id": c["id"], "email": address},
                            notes=["private contact: skipped"]))

    async def contact_shared(self) -> None:
        """The same customer in both reps' Outlook, categorized: one Pega contact (issue #11 item 5)."""
        tag = self.tag("s")
        given, sur, address = self._person(tag)
        ids = []
        for upn in sorted(REPS):
            c = await self.a.outlook(upn, "POST", "contacts", json={
                "givenName": given, "surname": sur, "categories": [CATEGORY],
                "emailAddresses": [{"address": address, "name": f"{given} {sur}"}]})
            ids.append(c["id"])
            await self.pause(0.0, 2.0)
        self.truth.add(Item(tag, "contact", "both", tag, ids={"graph_ids": ids, "email": address},
                            fields={"FirstName": given, "LastName": sur, "Email": address}))

    # ------------------------------------------------------------ Pega -> Exchange

    def _appt_times(self) -> tuple[dt.datetime, dt.datetime, str]:
        zone = self.rng.choice(("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"))
        local = dt.datetime.combine(self.day(2, 45), dt.time(self.rng.randint(8, 16)))
        start = local.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)
        return start, start + dt.timedelta(minutes=self.rng.choice((30, 60))), zone

    async def rep_appointment(self) -> None:
        upn = self.mailbox()
        op, tag = REPS[upn], self.tag("A")
        start, end, zone = self._appt_times()
        subject = f"Review {tag}"
        rec = await self.a.rep("POST", "appointments", {"operator": op, "content": {
            "Subject": subject, "StartTime": _z(start), "EndTime": _z(end), "TimeZone": zone, "Location": "Teams",
            "Attendees": [{"Email": DANA, "Name": "Dana", "AttendeeType": "required"}]}})
        item = self.truth.add(Item(tag, "rep_appointment", upn, tag, ids={"pega_id": rec["id"]}, fields={
            "Subject": subject, "StartTime": start, "EndTime": end, "Attendees": {DANA}}))
        follow = self.rng.choice(("none", "update", "cancel", "update_cancel", "quick_cancel"))
        if follow == "none":
            return
        await self.pause(0.0 if follow == "quick_cancel" else 1.0, 0.3 if follow == "quick_cancel" else 6.0)
        if follow.startswith("update"):
            start2 = start + dt.timedelta(hours=self.rng.choice((1, 3)))
            end2 = start2 + (end - start)
            item.fields.update({"Subject": f"Review moved {tag}", "StartTime": start2, "EndTime": end2})
            await self.a.rep("PATCH", f"appointments/{_q(rec['id'])}", {"operator": op, "content": {
                "Subject": item.fields["Subject"], "StartTime": _z(start2), "EndTime": _z(end2)}})
            item.changes += 1
            await self.pause(0.5, 4)
        if follow.endswith("cancel"):
            await self.a.rep("POST", f"appointments/{_q(rec['id'])}/cancel",
                             {"operator": op, "reason": "customer declined"})
            item.closed, item.present = True, None
            item.changes += 1
        item.notes.append(follow)

    async def rep_email(self) -> None:
        upn = self.mailbox()
        op, tag = REPS[upn], self.tag("E")
        subject = f"Proposal {tag}"
        rec = await self.a.rep("POST", "emails", {"operator": op, "content": {
            "Subject": subject, "Body": f"Dear Dana, the proposal {tag}.", "BodyType": "text", "ToAddresses": DANA}})
        self.truth.add(Item(tag, "rep_email", upn, tag, ids={"pega_id": rec["id"]},
                            fields={"Subject": subject, "To": {DANA}}))

    async def rep_reply(self) -> None:
        """Dana writes; the rep answers from Pega: one reply in the thread, with the rep's text (#11 item 3)."""
        upn = self.mailbox()
        op, tag = REPS[upn], self.tag("R")
        subject = f"Question {tag}"
        m = await self._deliver(upn, {"address": DANA, "name": "Dana"}, subject)
        self.truth.add(Item(tag + "q", "email", upn, tag, fields={"Subject": subject},
                            ids={"graph_id": m["immutableId"], "internet_message_id": m["internetMessageId"]}))
        case = await self.wait_for(lambda: self.pega_by("email", "InternetMessageID", m["internetMessageId"]))
        item = self.truth.add(Item(tag, "rep_reply", upn, tag, ids={"conversation_id": m["conversationId"]},
                                   fields={"BodyContains": f"Answer {tag}"}))
        if not case:
            item.present = None
            item.notes.append(f"reply not made: the mail never reached Pega within {DEPENDENCY_WAIT:.0f}s")
            return
        rec = await self.a.rep("POST", f"emails/{_q(case['id'])}/reply", {"operator": op, "content": {
            "Body": f"Answer {tag}: yes, Tuesday works.", "BodyType": "text"}})
        item.ids["pega_id"] = rec["id"]

    async def rep_contact(self) -> None:
        upn = self.mailbox()
        op, tag = REPS[upn], self.tag("C")
        given, sur, address = self._person(tag)
        rec = await self.a.rep("POST", "contacts", {"operator": op, "content": {
            "FirstName": given, "LastName": sur, "WorkEmail": address}})
        item = self.truth.add(Item(tag, "rep_contact", upn, tag, ids={"pega_id": rec["id"], "email": address},
                                   fields={"FirstName": given, "LastName": sur, "Email": address}))
        follow = self.rng.choice(("none", "update", "close", "update"))
        if follow == "none":
            return
        await self.pause(1.0, 6.0)
        if follow == "update":
            item.fields["LastName"] = sur + "Renamed"
            await self.a.rep("PATCH", f"contacts/{_q(rec['id'])}", {
                "operator": op, "content": {"LastName": item.fields["LastName"]}})
        else:
            await self.a.rep("POST", f"contacts/{_q(rec['id'])}/close", {"operator": op})
            item.closed = True
        item.changes += 1
        item.notes.append(follow)

    # ------------------------------------------------------------ both sides edit the same item

    async def conflict(self) -> None:
        """An Outlook meeting reaches Pega; then the rep renames it in Pega while the user renames it in
        Outlook. Either edit may win (SYNC_CONFLICT_POLICY=newer), but both sides must end up equal."""
        upn = self.mailbox()
        op, tag = REPS[upn], self.tag("X")
        local = dt.datetime.combine(self.day(3, 30), dt.time(10))
        ev = await self._event(upn, f"Planning {tag}", local, local + dt.timedelta(hours=1), "UTC")
        item = self.truth.add(Item(tag, "event", upn, tag, ids={"graph_id": ev["id"]}, fields={
            "Subject": f"Planning {tag}", "StartTime": _utc(local, "UTC"),
            "EndTime": _utc(local, "UTC") + dt.timedelta(hours=1), "Attendees": {DANA}}))
        rec = await self.wait_for(lambda: self._appt_in_pega(ev["id"]))
        if not rec:
            item.notes.append(f"conflict not made: never reached Pega within {DEPENDENCY_WAIT:.0f}s")
            return
        await self.pause(0.5, 2)
        pega_subject, outlook_subject = f"Planning (Pega) {tag}", f"Planning (Outlook) {tag}"
        first_pega = self.rng.random() < 0.5

        async def pega_edit() -> None:
            await self.a.rep("PATCH", f"appointments/{_q(rec['id'])}", {
                "operator": op, "content": {"Subject": pega_subject}})

        async def outlook_edit() -> None:
            await self.a.outlook(upn, "PATCH", f"events/{ev['id']}", json={"subject": outlook_subject})

        for edit in ((pega_edit, outlook_edit) if first_pega else (outlook_edit, pega_edit)):
            await edit()
            await self.pause(0.0, 0.8)
        item.ids["pega_id"] = rec["id"]
        item.changes += 2
        item.fields.pop("Subject")
        item.alternatives = [{"Subject": pega_subject}, {"Subject": outlook_subject}]
        item.notes.append("conflict: " + ("pega first" if first_pega else "outlook first"))
