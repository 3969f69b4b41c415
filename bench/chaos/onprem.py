"""The on-premises rep in the chaos run: an Exchange Server mailbox (the EWS simulator) synced by
the same engine through the EWS backend, acted on like the Exchange Online ones.

- As the rep in Outlook the harness uses the real exchangelib client with its own impersonation
  account (`chaos-outlook`), so the sync service's account (`svc-pega-sync`) is the only other
  caller and its writes can be told apart in the simulator's request log (echo).
- Scenarios (own seeded RNG, so adding them leaves every Exchange Online scenario of a seed as it
  was): mail from a contact, a meeting created then renamed / moved / deleted, a categorized
  contact created then edited, and rep actions in Pega for operator `casey` (appointment created /
  updated / cancelled, email sent, contact created / updated).
- Faults: `ErrorServerBusy` with a back-off hint and transient 503s on a share of the sync
  account's requests, and an invalidated sync state (`ErrorInvalidSyncStateData`: a full resync).
- The check reads the mailbox back with exchangelib (calendar, contacts, Sent Items).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sandbox.ews.seed import DEMO_ONPREM_REP

if TYPE_CHECKING:
    from exchangelib import Account

    from bench.chaos.workload import Workload

ONPREM = DEMO_ONPREM_REP
ONPREM_OPERATOR = "casey"
OUTLOOK_USER = "CONTOSO\\chaos-outlook"
OUTLOOK_PASSWORD = "Chaos-Outlook-1"  # a sandbox-only account of the EWS simulator
EWS_FAULTS = ("ews_busy", "ews_503", "ews_sync_invalid")
WRITE_OPERATIONS = {"CreateItem", "UpdateItem", "DeleteItem", "SendItem", "MoveItem", "CopyItem",
                    "CreateAttachment", "DeleteAttachment"}


class OnPremOutlook:
    """The rep's Outlook against Exchange Server: exchangelib, run off the event loop."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._account: Account | None = None

    async def ready(self, http: Any) -> None:
        r = await http.post(f"{self.base_url}/_sim/accounts", json={
            "username": OUTLOOK_USER, "password": OUTLOOK_PASSWORD, "impersonation": True})
        r.raise_for_status()

    def account(self) -> Account:
        if self._account is None:
            from exchangelib import BASIC, IMPERSONATION, UTC, Account, Build, Configuration, Credentials, Version
            from exchangelib.protocol import FaultTolerance

            from shared.ews.gateway import register_stamp

            register_stamp()
            config = Configuration(service_endpoint=f"{self.base_url}/EWS/Exchange.asmx",
                                   credentials=Credentials(OUTLOOK_USER, OUTLOOK_PASSWORD), auth_type=BASIC,
                                   version=Version(Build(15, 2)), retry_policy=FaultTolerance(max_wait=90),
                                   max_connections=2)
            self._account = Account(ONPREM, config=config, autodiscover=False, default_timezone=UTC,
                                    access_type=IMPERSONATION)
        return self._account

    async def run(self, fn: Callable[[Account], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, self.account()))

    # ------------------------------------------------------------ the mailbox as it is now

    async def world(self) -> dict[str, list[dict[str, Any]]]:
        def read(a: Account) -> dict[str, list[dict[str, Any]]]:
            events = [{"id": str(i.id), "subject": i.subject, "start": i.start, "end": i.end,
                       "attendees": {str(x.mailbox.email_address).lower() for x in i.required_attendees or []},
                       "cancelled": bool(i.is_cancelled), "pega_id": getattr(i, "pega_id", None)}
                      for i in a.calendar.all().only("subject", "start", "end", "required_attendees", "is_cancelled",
                                                     "pega_id")]
            contacts = [{"id": str(c.id), "given": c.given_name, "surname": c.surname,
                         "emails": [str(e.email).lower() for e in c.email_addresses or []],
                         "categories": list(c.categories or [])}
                        for c in a.contacts.all().only("given_name", "surname", "email_addresses", "categories")]
            sent = [{"id": str(m.id), "subject": m.subject, "is_draft": bool(m.is_draft),
                     "to": {str(x.email_address).lower() for x in m.to_recipients or []}}
                    for m in a.sent.all().only("subject", "is_draft", "to_recipients")]
            drafts = [{"id": str(m.id), "subject": m.subject} for m in a.drafts.all().only("subject")]
            return {"events": events, "contacts": contacts, "sent": sent, "drafts": drafts}

        return dict(await self.run(read))


def fault_schedule(seed: int, *, duration: float) -> list[tuple[float, str, dict[str, Any]]]:
    """The on-premises faults of a seed (own RNG: the Exchange Online schedule stays as it was)."""
    rng = random.Random(seed * 104729 + 3)
    out = []
    for name in rng.sample(EWS_FAULTS, k=rng.randint(1, 2)):
        params: dict[str, Any] = {
            "ews_busy": {"code": "ErrorServerBusy", "count": rng.randint(2, 8),
                         "backOffMilliseconds": rng.choice((500, 1500, 3000))},
            "ews_503": {"code": "ErrorInternalServerTransientError", "status": 503, "count": rng.randint(2, 6)},
            "ews_sync_invalid": {"mailbox": ONPREM},
        }[name]
        out.append((round(rng.uniform(1.0, duration * 0.85), 1), name, params))
    return sorted(out)


async def apply_fault(http: Any, base_url: str, name: str, params: dict[str, Any]) -> None:
    path = "sync-states/invalidate" if name == "ews_sync_invalid" else "faults"
    from sandbox.ews.seed import SERVICE_USER

    # the faults meet the sync service's account only: the harness's own Outlook (the rep) is not under
    # test, and its client gave up on a 160 s back-off after six 503s in a row (seed 499, void)
    body = dict(params) if name == "ews_sync_invalid" else {**params, "mailbox": ONPREM, "caller": SERVICE_USER}
    r = await http.post(f"{base_url.rstrip('/')}/_sim/{path}", json=body)
    r.raise_for_status()


async def refuse_sends(http: Any, base_url: str) -> None:
    """Sabotage (the harness self-test): every SendItem to the on-premises mailbox is refused. Only the
    sync service sends there, so the rep's mails from Pega must show as lost."""
    r = await http.post(f"{base_url.rstrip('/')}/_sim/faults", json={
        "code": "ErrorAccessDenied", "operation": "SendItem", "mailbox": ONPREM, "count": 10**6, "status": 500})
    r.raise_for_status()


async def clear_faults(http: Any, base_url: str) -> None:
    r = await http.delete(f"{base_url.rstrip('/')}/_sim/faults")
    r.raise_for_status()


async def requests_total(http: Any, base_url: str) -> int:
    r = await http.get(f"{base_url.rstrip('/')}/_sim/requests", params={"since": 10**9})
    r.raise_for_status()
    return int(r.json()["total"])


async def sync_writes_since(http: Any, base_url: str, since: int) -> list[dict[str, Any]]:
    """Writes of the sync service's account to the on-premises mailbox since log position `since`."""
    from sandbox.ews.seed import SERVICE_USER

    r = await http.get(f"{base_url.rstrip('/')}/_sim/requests", params={"since": since})
    r.raise_for_status()
    return [e for e in r.json()["value"] if e.get("caller", "").lower() == SERVICE_USER.lower()
            and e.get("operation") in WRITE_OPERATIONS]


# ---------------------------------------------------------------- scenarios


def scenarios(w: Workload, outlook: OnPremOutlook) -> list[Callable[[], Awaitable[None]]]:
    """The on-premises scenarios of a seed: a fixed core plus a seeded draw (own RNG)."""
    rng = random.Random(w.seed * 15485863 + 11)
    s = OnPremScenarios(w, outlook, rng)
    core = [s.mail_contact, s.event, s.contact, s.rep_appointment, s.rep_email, s.rep_contact]
    extra = [s.mail_contact, s.event, s.contact, s.rep_appointment, s.rep_contact]
    return core + [rng.choice(extra) for _ in range(3)]


class OnPremScenarios:
    def __init__(self, w: Workload, outlook: OnPremOutlook, rng: random.Random) -> None:
        self.w = w
        self.o = outlook
        self.rng = rng

    async def pause(self, lo: float, hi: float) -> None:
        await asyncio.sleep(self.rng.uniform(lo, hi))

    def person(self, tag: str) -> tuple[str, str, str]:
        given = self.rng.choice(("Jo", "Lou", "Ari", "Mika", "Sasha"))
        sur = f"Onprem{self.w.seed}x{tag.strip('[]').rsplit('-', 1)[-1]}"
        return given, sur, f"{given.lower()}.{sur.lower()}@fabrikam.example"

    def appt_times(self) -> tuple[dt.datetime, dt.datetime, str]:
        from zoneinfo import ZoneInfo

        zone = self.rng.choice(("Europe/Berlin", "America/New_York", "UTC"))
        local = dt.datetime.combine(self.w.today + dt.timedelta(days=self.rng.randint(2, 45)),
                                    dt.time(self.rng.randint(8, 16)))
        start = local.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)
        return start, start + dt.timedelta(minutes=self.rng.choice((30, 60))), zone

    async def mail_contact(self) -> None:
        from bench.chaos.workload import DANA, Item

        tag = self.w.tag("om")
        subject = f"On-premises order {tag}"
        r = await self.w.a.http.post(f"{self.o.base_url}/_sim/mailboxes/{ONPREM}/inbound-mail", json={
            "from": DANA, "fromName": "Dana", "subject": subject,
            "body": f"Hello, about {subject}: could we talk next week?", "bodyType": "Text"})
        r.raise_for_status()
        m = r.json()
        self.w.truth.add(Item(tag, "email", ONPREM, tag, fields={"Subject": subject},
                              ids={"ews_id": m["id"], "internet_message_id": m["internetMessageId"]}))

    async def event(self) -> None:
        from bench.chaos.workload import DANA, Item

        tag = self.w.tag("oe")
        day = self.w.today + dt.timedelta(days=self.rng.randint(1, 40))
        start = dt.datetime.combine(day, dt.time(self.rng.randint(7, 17)), tzinfo=dt.UTC)
        minutes = self.rng.choice((30, 60))
        subject = f"On-premises meeting {tag}"

        def create(a: Account) -> str:
            from exchangelib import CalendarItem, EWSDateTime

            ev = CalendarItem(account=a, folder=a.calendar, subject=subject, start=EWSDateTime.from_datetime(start),
                              end=EWSDateTime.from_datetime(start + dt.timedelta(minutes=minutes)),
                              required_attendees=[DANA])
            ev.save(send_meeting_invitations="SendToNone")
            return str(ev.id)

        item_id = await self.o.run(create)
        item = self.w.truth.add(Item(tag, "event", ONPREM, tag, ids={"graph_id": item_id}, fields={
            "Subject": subject, "StartTime": start, "EndTime": start + dt.timedelta(minutes=minutes),
            "Attendees": {DANA}}))
        follow = self.rng.choice(("none", "rename", "move", "delete"))
        if follow == "none":
            return
        await self.pause(0.5, 4)
        item.changes += 1
        item.notes.append(follow)

        def change(a: Account) -> None:
            from exchangelib import EWSDateTime

            ev = a.calendar.get(id=item_id)
            if follow == "delete":
                ev.delete(send_meeting_cancellations="SendToNone")
                return
            if follow == "rename":
                ev.subject = f"On-premises meeting renamed {tag}"
                ev.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
                return
            ev.start = EWSDateTime.from_datetime(start + dt.timedelta(hours=2))
            ev.end = EWSDateTime.from_datetime(start + dt.timedelta(hours=2, minutes=minutes))
            ev.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")

        await self.o.run(change)
        if follow == "delete":
            item.closed, item.present = True, None
        elif follow == "rename":
            item.fields["Subject"] = f"On-premises meeting renamed {tag}"
        else:
            item.fields["StartTime"] = start + dt.timedelta(hours=2)
            item.fields["EndTime"] = start + dt.timedelta(hours=2, minutes=minutes)

    async def contact(self) -> None:
        from bench.chaos.workload import CATEGORY, Item

        tag = self.w.tag("oc")
        given, sur, address = self.person(tag)

        def create(a: Account) -> str:
            from exchangelib import Contact
            from exchangelib.indexed_properties import EmailAddress

            c = Contact(account=a, folder=a.contacts, given_name=given, surname=sur, display_name=f"{given} {sur}",
                        company_name="Fabrikam", categories=[CATEGORY],
                        email_addresses=[EmailAddress(email=address, label="EmailAddress1")])
            c.save()
            return str(c.id)

        item_id = await self.o.run(create)
        item = self.w.truth.add(Item(tag, "contact", ONPREM, tag, ids={"graph_id": item_id, "email": address},
                                     fields={"FirstName": given, "LastName": sur, "Email": address}))
        if self.rng.random() < 0.5:
            return
        await self.pause(0.5, 4)
        item.changes += 1
        item.fields["LastName"] = sur + "Edited"
        item.notes.append("edit")

        def edit(a: Account) -> None:
            c = a.contacts.get(id=item_id)
            c.surname = sur + "Edited"
            c.save(update_fields=["surname"])

        await self.o.run(edit)

    async def rep_appointment(self) -> None:
        from bench.chaos.workload import DANA, Item, _z

        tag = self.w.tag("OA")
        start, end, zone = self.appt_times()
        subject = f"On-premises review {tag}"
        rec = await self.w.a.rep("POST", "appointments", {"operator": ONPREM_OPERATOR, "content": {
            "Subject": subject, "StartTime": _z(start), "EndTime": _z(end), "TimeZone": zone, "Location": "Room 1",
            "Attendees": [{"Email": DANA, "Name": "Dana", "AttendeeType": "required"}]}})
        item = self.w.truth.add(Item(tag, "rep_appointment", ONPREM, tag, ids={"pega_id": rec["id"]}, fields={
            "Subject": subject, "StartTime": start, "EndTime": end, "Attendees": {DANA}}))
        follow = self.rng.choice(("none", "update", "cancel"))
        if follow == "none":
            return
        await self.pause(1.0, 6.0)
        rid = quote(rec["id"], safe="")
        if follow == "update":
            start2, end2 = start + dt.timedelta(hours=1), end + dt.timedelta(hours=1)
            item.fields.update({"Subject": f"On-premises review moved {tag}", "StartTime": start2, "EndTime": end2})
            await self.w.a.rep("PATCH", f"appointments/{rid}", {"operator": ONPREM_OPERATOR, "content": {
                "Subject": item.fields["Subject"], "StartTime": _z(start2), "EndTime": _z(end2)}})
        else:
            await self.w.a.rep("POST", f"appointments/{rid}/cancel", {"operator": ONPREM_OPERATOR,
                                                                      "reason": "customer declined"})
            item.closed, item.present = True, None
        item.changes += 1
        item.notes.append(follow)

    async def rep_email(self) -> None:
        from bench.chaos.workload import DANA, Item

        tag = self.w.tag("OE")
        subject = f"On-premises proposal {tag}"
        rec = await self.w.a.rep("POST", "emails", {"operator": ONPREM_OPERATOR, "content": {
            "Subject": subject, "Body": f"Dear Dana, the proposal {tag}.", "BodyType": "text", "ToAddresses": DANA}})
        self.w.truth.add(Item(tag, "rep_email", ONPREM, tag, ids={"pega_id": rec["id"]},
                              fields={"Subject": subject, "To": {DANA}}))

    async def rep_contact(self) -> None:
        from bench.chaos.workload import Item

        tag = self.w.tag("OC")
        given, sur, address = self.person(tag)
        rec = await self.w.a.rep("POST", "contacts", {"operator": ONPREM_OPERATOR, "content": {
            "FirstName": given, "LastName": sur, "WorkEmail": address}})
        item = self.w.truth.add(Item(tag, "rep_contact", ONPREM, tag, ids={"pega_id": rec["id"], "email": address},
                                     fields={"FirstName": given, "LastName": sur, "Email": address}))
        if self.rng.random() < 0.5:
            return
        await self.pause(1.0, 6.0)
        item.fields["LastName"] = sur + "Renamed"
        await self.w.a.rep("PATCH", f"contacts/{quote(rec['id'], safe='')}", {
            "operator": ONPREM_OPERATOR, "content": {"LastName": item.fields["LastName"]}})
        item.changes += 1
        item.notes.append("update")
