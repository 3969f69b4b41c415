"""Items Pega already has never become a second Pega record:

- occurrences and exceptions of a series created from Pega (linked master, or — before its link
  exists — a master stamped with our PegaId) are skipped as `series_from_pega`;
- an unlinked item stamped with our PegaId (our own write whose link is not stored yet) is linked
  to that Pega record, with no Pega write — mail, contacts (stamp on the delta page) and events
  (one small GET per unlinked event we organize, counted as `pega_id_check`);
- an attendee's copy of a meeting organized by another onboarded mailbox is skipped as
  `synced_from_organizer`; a meeting from an external organizer still syncs.
"""

from __future__ import annotations

import datetime as dt

from shared.outbound.graph_payloads import PEGA_ID_PROPERTY
from shared.storage.links import Link
from shared.storage.mailboxes import Mailbox
from shared.sync.inbound import dry_run
from shared.sync.mapping import META_BY
from shared.sync.planner import BY_PEGA
from tests.sync_inbound.test_calendar_e2e import appointments, event_body, sim_now

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}


def stamp(pega_id: str) -> list[dict[str, str]]:
    return [{"id": PEGA_ID_PROPERTY, "value": pega_id}]


async def series(inbound, subject: str, *, n: int = 4, **extra) -> tuple[dict, list[dict]]:
    now = await sim_now(inbound)
    first = (now + dt.timedelta(days=1)).date()
    body = event_body(subject, dt.datetime.combine(first, dt.time(9, 0)), **extra)
    body["recurrence"] = {"pattern": {"type": "daily", "interval": 1},
                          "range": {"type": "numbered", "startDate": first.isoformat(), "numberOfOccurrences": n}}
    master = await inbound.user_call("POST", "events", json=body)
    instances = (await inbound.user_call("GET", f"events/{master['id']}/instances", params={
        "startDateTime": now.isoformat(), "endDateTime": (now + dt.timedelta(days=30)).isoformat()}))["value"]
    assert len(instances) == n
    # an exception: one occurrence moved in Outlook
    moved = instances[1]
    start = dt.datetime.fromisoformat(moved["start"]["dateTime"][:19]) + dt.timedelta(hours=3)
    await inbound.user_call("PATCH", f"events/{moved['id']}", json={
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    return master, instances


async def test_occurrences_of_a_series_linked_from_pega_create_nothing(inbound) -> None:
    await inbound.onboard()
    master, _ = await series(inbound, "Series from Pega (linked)")
    # the Pega → Exchange side wrote the series and linked its master (no stamp needed here)
    await inbound.services.state.links.create(Link(mailbox=inbound.upn, kind="event", graph_id=master["id"],
                                                   pega_id="APPT-SERIES-1", snapshot={META_BY: BY_PEGA}))
    plans = await dry_run(inbound.services, mailbox=inbound.upn, kind="calendar", context=inbound.ctx)
    assert sorted(p.reason for p in plans if p.action == "skip") == ["series_from_pega"] * 4, plans
    report = await inbound.run("calendar")
    assert report.synced == 0 and report.skipped["series_from_pega"] == 4, report.as_dict()
    assert await appointments(inbound) == []
    assert [lk.graph_id for lk in await inbound.links("event")] == [master["id"]]


async def test_occurrences_of_a_stamped_series_before_its_link_exists_create_nothing(inbound) -> None:
    await inbound.onboard()
    await series(inbound, "Series from Pega (race)", singleValueExtendedProperties=stamp("APPT-SERIES-2"))
    report = await inbound.run("calendar")
    assert report.synced == 0 and report.skipped["series_from_pega"] == 4, report.as_dict()
    assert await appointments(inbound) == []
    # the same for an Outlook series: it syncs occurrence by occurrence as before
    await series(inbound, "Outlook series")
    assert (await inbound.run("calendar")).outcomes["created"] == 4


async def test_an_unlinked_item_stamped_with_our_pega_id_is_linked_not_created(inbound) -> None:
    await inbound.onboard()
    now = await sim_now(inbound)
    ours = await inbound.user_call("POST", "events", json=event_body(
        "Demo from Pega", now + dt.timedelta(days=2), singleValueExtendedProperties=stamp("APPT-7")))
    outlook = await inbound.user_call("POST", "events", json=event_body("Outlook meeting", now + dt.timedelta(days=3)))
    report = await inbound.run("calendar")
    assert report.outcomes["linked_own"] == 1 and report.outcomes["created"] == 1, report.as_dict()
    # the request cost: one small GET per unlinked event we organize, nothing else per item
    assert report.graph_requests_by_purpose.get("pega_id_check") == 2, report.graph_requests_by_purpose
    assert report.graph_requests == report.graph_requests_by_purpose["delta_page"] + 2
    [rec] = await appointments(inbound)
    assert rec["content"]["ExchangeID"] == outlook["id"]
    links = {lk.graph_id: lk for lk in await inbound.links("event")}
    assert links[ours["id"]].pega_id == "APPT-7" and links[ours["id"]].snapshot[META_BY] == BY_PEGA
    again = await inbound.run("calendar")
    assert again.synced == 0 and again.graph_requests_by_purpose.get("pega_id_check", 0) == 0, again.as_dict()

    # mail carries the stamp on the delta page itself (no request per message; `mail_folders` is the
    # discovery of the folders under the Inbox, once per mailbox every few minutes)
    await inbound.graph.control.inbound_mail(inbound.upn, subject="sent from Pega", body="hi", folder="sentitems",
                                             to=[DANA], **{"from": {"address": inbound.upn}},
                                             singleValueExtendedProperties={PEGA_ID_PROPERTY: "EMAIL-9"})
    mail = await inbound.run("email")
    assert mail.outcomes["linked_own"] == 1 and mail.synced == 0, mail.as_dict()
    assert set(mail.graph_requests_by_purpose) <= {"delta_page", "mail_folders"}
    assert mail.graph_requests_by_purpose.get("mail_folders", 0) <= 1
    assert [lk.pega_id for lk in await inbound.links("email")] == ["EMAIL-9"]
    assert not [r for r in await inbound.pega_records("email") if r["content"].get("Subject") == "sent from Pega"]

    await inbound.user_call("POST", "contacts", json={
        "givenName": "Pat", "surname": "Pega", "emailAddresses": [{"address": "pat@fabrikam.example"}],
        "categories": ["PegaSASync"], "singleValueExtendedProperties": stamp("CONTACT-3")})
    contacts = await inbound.run("contacts")
    assert contacts.outcomes["linked_own"] == 1 and contacts.synced == 0, contacts.as_dict()
    # contact: delta documents no $expand: the stamp comes with one batched detail GET per page
    assert contacts.graph_requests_by_purpose.get("contact_details") == 1, contacts.graph_requests_by_purpose
    assert [lk.pega_id for lk in await inbound.links("contact")] == ["CONTACT-3"]


async def test_an_internal_meeting_is_synced_once_from_its_organizer(inbound) -> None:
    await inbound.onboard()
    organizer = (await inbound.graph.control.new_user("Organizer"))["userPrincipalName"]
    await inbound.services.state.mailboxes.put(Mailbox.with_defaults(organizer, "blair", inbound.services.settings.sync))
    now = await sim_now(inbound)
    body = event_body("Internal pricing review", now + dt.timedelta(days=2))
    body["attendees"] = [{"emailAddress": {"address": inbound.upn}, "type": "required"},
                         {"emailAddress": DANA, "type": "required"}]
    r = await inbound.agent.post(f"/users/{organizer}/events", json=body, headers={"Prefer": 'IdType="ImmutableId"'})
    assert r.status_code == 201, r.text

    plans = await dry_run(inbound.services, mailbox=inbound.upn, kind="calendar", context=inbound.ctx)
    assert [(p.action, p.reason) for p in plans] == [("skip", "synced_from_organizer")]
    report = await inbound.run("calendar")
    assert report.synced == 0 and report.skipped["synced_from_organizer"] == 1, report.as_dict()
    health = await inbound.services.state.health.get(inbound.upn, "calendar")
    assert "synced_from_organizer" in str(health), health
    assert (await inbound.run("calendar")).synced == 0
    organizer_round = await replace_run(inbound, organizer)
    assert organizer_round.outcomes["created"] == 1, organizer_round.as_dict()
    assert len([a for a in await appointments(inbound) if a["content"]["Subject"] == "Internal pricing review"]) == 1

    # an organizer that is not onboarded (here: offboarded) — the attendee copy syncs as before
    await inbound.services.state.mailboxes.delete(organizer)
    body["subject"] = "Second review"
    await inbound.agent.post(f"/users/{organizer}/events", json=body, headers={"Prefer": 'IdType="ImmutableId"'})
    assert (await inbound.run("calendar")).outcomes["created"] == 1


async def replace_run(inbound, upn: str):
    from shared.sync.inbound import run_delta_round

    return await run_delta_round(inbound.services, mailbox=upn, kind="calendar", reason="test", context=inbound.ctx)


