"""Exchange → Pega against what the real service does (issue #13): HTML bodies, mail Exchange
generates itself (meeting messages, non-delivery reports, read receipts, automatic replies), all-day
events for a rep west of UTC, the full CLDR zone set, unknown zones.

Real Graph simulator and Pega simulator over HTTP, state in Azurite.
"""

from __future__ import annotations

import pytest

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
HOSTILE = ('<html><body><p onclick="steal()">Hello <b>Alex</b>,</p><p>the quote is attached.'
           '<img src="https://tracker.example/p.gif" onerror="steal()"></p>'
           '<script>steal()</script><a href="javascript:steal()">details</a></body></html>')


def by_exchange_id(records, exchange_id):
    return [r for r in records if r["content"].get("ExchangeID") == exchange_id]


async def test_html_body_reaches_pega_as_clean_text_and_replays_change_nothing(inbound) -> None:
    """#17 item 7: no script, no event handler, no remote content reaches Pega; the text does."""
    await inbound.onboard()
    sent = await inbound.graph.control.inbound_mail(inbound.upn, subject="Quote", **{"from": DANA},
                                                    body={"contentType": "html", "content": HOSTILE})
    first = await inbound.run("email")
    assert first.outcomes["created"] == 1, first.as_dict()
    [rec] = by_exchange_id(await inbound.pega_records("email"), sent["immutableId"])
    body = rec["content"]["Body"]
    assert body == "Hello Alex,\nthe quote is attached.\ndetails"
    for bad in ("<", "steal", "onerror", "onclick", "tracker.example", "javascript"):
        assert bad not in body, bad
    assert rec["content"]["BodyType"] == "text"
    # an Outlook "touch" and a replay hash the same: nothing is written again
    await inbound.graph.control.touch(inbound.upn, sent["id"])
    again = await inbound.run("email")
    assert not (again.outcomes["created"] or again.outcomes["updated"]), again.as_dict()


@pytest.mark.pega_mapping({"email": {"body_html": "BodyHTML"}})
async def test_sanitized_html_goes_to_the_property_the_mapping_names(inbound) -> None:
    """Where the mapping asks for the HTML (email.body_html), Pega gets it sanitized: formatting kept,
    no script, no event handler, no remote content; the text body is as without it. The Pega side must
    allow the property on create (DX API v2 drops what AllowedStartingFields lacks; docs/pega-setup.md)."""
    await inbound.onboard()
    email = (await inbound.pega_control.casetypes())["email"]
    await inbound.pega_control.set_casetype("email", allowed_starting_fields=[*email["allowedStartingFields"], "BodyHTML"])
    sent = await inbound.graph.control.inbound_mail(inbound.upn, subject="Quote", **{"from": DANA},
                                                    body={"contentType": "html", "content": HOSTILE})
    assert (await inbound.run("email")).outcomes["created"] == 1
    [rec] = by_exchange_id(await inbound.pega_records("email"), sent["immutableId"])
    html = rec["content"]["BodyHTML"]
    assert "<b>Alex</b>" in html and "the quote is attached." in html
    for bad in ("<script", "steal", "onerror", "onclick", "tracker.example", "javascript"):
        assert bad not in html, bad
    assert rec["content"]["Body"] == "Hello Alex,\nthe quote is attached.\ndetails"


async def test_mail_exchange_generates_is_skipped_by_reason(inbound) -> None:
    """graph.md §10: eventMessages, NDRs, read receipts and automatic replies are not email cases."""
    await inbound.onboard()
    ctl = inbound.graph.control
    # a customer's automatic reply, a bounce from the customer's server, a read receipt, an invitation
    await ctl.inbound_mail(inbound.upn, subject="Automatic reply: Quote", body="Out of office", **{"from": DANA},
                           headers={"Auto-Submitted": "auto-replied"},
                           messageClass="IPM.Note.Rules.OofTemplate.Microsoft")
    await ctl.inbound_mail(inbound.upn, subject="Undeliverable: Quote", body="550 5.1.1",
                           **{"from": {"address": "postmaster@fabrikam.example"}}, messageClass="REPORT.IPM.Note.NDR")
    await ctl.inbound_mail(inbound.upn, subject="Read: Quote", body="read", **{"from": DANA},
                           messageClass="REPORT.IPM.Note.IPNRN")
    await ctl.inbound_mail(inbound.upn, subject="Pricing call", body="Let's talk", **{"from": DANA},
                           odataType="#microsoft.graph.eventMessageRequest",
                           messageClass="IPM.Schedule.Meeting.Request")
    # and one real mail from the same customer
    await ctl.inbound_mail(inbound.upn, subject="Quote", body="Please send the quote.", **{"from": DANA})
    # the rep's own mail to a mailbox that does not exist bounces back from Exchange
    await inbound.user_call("POST", "sendMail", json={"message": {
        "subject": "Intro", "body": {"contentType": "text", "content": "hi"},
        "toRecipients": [{"emailAddress": DANA}, {"emailAddress": {"address": "nobody@contoso.example"}}]}})
    report = await inbound.run("email")
    assert report.skipped["auto_reply"] == 1, report.as_dict()
    assert report.skipped["non_delivery_report"] == 2, report.as_dict()
    assert report.skipped["read_receipt"] == 1 and report.skipped["meeting_message"] == 1, report.as_dict()
    subjects = sorted(r["content"]["Subject"] for r in await inbound.pega_records("email"))
    assert subjects == ["Intro", "Quote"]
    health = await inbound.services.state.health.get(inbound.upn, "email")
    assert health.skip_reasons["non_delivery_report"] == 2 and health.skip_reasons["auto_reply"] == 1


@pytest.mark.parametrize("backend", ["graph", "ews"])
async def test_all_day_event_of_a_rep_west_of_utc_is_on_its_day(inbound) -> None:
    """An all-day event comes back midnight-to-midnight in UTC; Pega gets midnight of the rep's own
    zone, so it never shows on the day before for a rep in Los Angeles."""
    await inbound.onboard()
    created = await inbound.user_call("POST", "events", json={
        "subject": "Trade show", "isAllDay": True,
        "start": {"dateTime": "2026-12-01T00:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2026-12-02T00:00:00", "timeZone": "Pacific Standard Time"}})
    assert created["start"]["dateTime"].startswith("2026-12-01T00:00:00")  # in UTC, as Graph renders it
    report = await inbound.run("calendar")
    assert report.outcomes["created"] == 1, report.as_dict()
    [rec] = [r for r in await inbound.pega_records("appointment") if r["content"].get("ExchangeID")]
    c = rec["content"]
    assert c["IsAllDay"] is True and c["TimeZone"] == "Pacific Standard Time"
    assert c["StartTime"].startswith("2026-12-01T08:00:00") and c["EndTime"].startswith("2026-12-02T08:00:00")
    again = await inbound.run("calendar")
    assert not (again.outcomes["created"] or again.outcomes["updated"]), again.as_dict()


async def test_zones_outside_the_old_table_are_mapped(inbound) -> None:
    await inbound.onboard()
    await inbound.user_call("POST", "events", json={
        "subject": "Colombo call", "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Sri Lanka Standard Time"},
        "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "Sri Lanka Standard Time"}})
    report = await inbound.run("calendar")
    assert report.outcomes["created"] == 1, report.as_dict()
    [rec] = [r for r in await inbound.pega_records("appointment") if r["content"].get("ExchangeID")]
    assert rec["content"]["StartTime"].startswith("2026-12-01T04:30:00")  # UTC+05:30
    assert rec["content"]["TimeZone"] == "Sri Lanka Standard Time"


@pytest.mark.parametrize("backend", ["ews"])
async def test_meeting_requests_in_an_on_premises_inbox_are_not_email_cases(inbound) -> None:
    """Exchange Server delivers a meeting request to the Inbox (IPM.Schedule.Meeting.Request) beside the
    mail; like Graph's eventMessage it is skipped as a meeting message, never an email case."""
    from exchangelib import UTC, Attendee, CalendarItem, EWSDateTime, Mailbox

    await inbound.onboard()
    organizer = inbound.ews.account(inbound.ews.new_mailbox())
    CalendarItem(account=organizer, folder=organizer.calendar, subject="Planning",
                 start=EWSDateTime(2026, 12, 2, 10, tzinfo=UTC), end=EWSDateTime(2026, 12, 2, 11, tzinfo=UTC),
                 required_attendees=[Attendee(mailbox=Mailbox(email_address=inbound.upn), response_type="Unknown")],
                 ).save(send_meeting_invitations="SendToAllAndSaveCopy")
    await inbound.inbound_mail(subject="A real question", body="x", **{"from": DANA})
    report = await inbound.run("email")
    assert report.outcomes["created"] == 1 and report.skipped["meeting_message"] == 1, report.as_dict()
    assert [r["content"]["Subject"] for r in await inbound.pega_records("email")] == ["A real question"]
