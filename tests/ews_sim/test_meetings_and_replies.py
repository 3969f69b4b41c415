"""The EWS simulator's meeting workflow and response objects, driven by the real exchangelib:
Exchange's Calendar Attendant (a request puts the meeting in the attendee's calendar, an update
refreshes it, a cancellation marks it), meeting responses (AcceptItem / DeclineItem) that reach the
organizer's meeting, and replies that address and quote as the server does."""

from __future__ import annotations

import pytest
from exchangelib import UTC, Attendee, CalendarItem, EWSDateTime, HTMLBody, Mailbox, Message
from exchangelib.errors import ErrorCalendarIsOrganizerForDecline
from exchangelib.items import ReplyToItem
from exchangelib.properties import ReferenceItemId

from tests.plugins.ews_sim import EwsSim


def _meeting(ews_sim: EwsSim, organizer: str, attendee: str, subject: str) -> CalendarItem:
    account = ews_sim.account(organizer)
    item = CalendarItem(account=account, folder=account.calendar, subject=subject,
                        start=EWSDateTime(2026, 12, 2, 10, tzinfo=UTC), end=EWSDateTime(2026, 12, 2, 11, tzinfo=UTC),
                        required_attendees=[Attendee(mailbox=Mailbox(email_address=attendee), response_type="Unknown")])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    return item


def _answers(ews_sim: EwsSim, organizer: str) -> dict[str, str]:
    [mine] = list(ews_sim.account(organizer).calendar.all())
    return {a.mailbox.email_address.lower(): a.response_type for a in mine.required_attendees or []}


def test_a_request_puts_the_meeting_in_the_attendees_calendar_and_an_update_keeps_the_answer(ews_sim: EwsSim):
    organizer, attendee = ews_sim.new_mailbox(), ews_sim.new_mailbox()
    meeting = _meeting(ews_sim, organizer, attendee, "Pricing")
    meeting.refresh()
    [copy] = list(ews_sim.account(attendee).calendar.all())
    assert (copy.subject, copy.my_response_type, copy.uid) == ("Pricing", "NoResponseReceived", meeting.uid)
    assert copy.organizer.email_address.lower() == organizer
    assert [i.item_class for i in ews_sim.account(attendee).inbox.all()] == ["IPM.Schedule.Meeting.Request"]

    copy.accept()
    assert _answers(ews_sim, organizer) == {attendee: "Accept"}
    assert "IPM.Schedule.Meeting.Resp.Pos" in [i.item_class for i in ews_sim.account(organizer).inbox.all()]

    meeting.refresh()
    meeting.subject = "Pricing (moved)"
    meeting.save(update_fields=["subject"], send_meeting_invitations="SendToAllAndSaveCopy")
    [copy] = list(ews_sim.account(attendee).calendar.all())
    assert (copy.subject, copy.my_response_type) == ("Pricing (moved)", "Accept")

    meeting.refresh()
    meeting.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    [copy] = list(ews_sim.account(attendee).calendar.all())
    assert copy.is_cancelled, "a cancelled meeting stays in the attendee's calendar, marked"


def test_a_decline_tells_the_organizer_and_the_meeting_leaves_the_calendar(ews_sim: EwsSim):
    organizer, attendee = ews_sim.new_mailbox(), ews_sim.new_mailbox()
    meeting = _meeting(ews_sim, organizer, attendee, "Review")
    with pytest.raises(ErrorCalendarIsOrganizerForDecline):
        meeting.decline()
    [copy] = list(ews_sim.account(attendee).calendar.all())
    copy.decline(body="Cannot make it")
    assert list(ews_sim.account(attendee).calendar.all()) == []
    assert [i.subject for i in ews_sim.account(attendee).trash.all()] == ["Review"]
    assert _answers(ews_sim, organizer) == {attendee: "Decline"}
    [answer] = [i for i in ews_sim.account(organizer).inbox.all() if i.item_class.startswith("IPM.Schedule.Meeting.Resp")]
    assert answer.item_class == "IPM.Schedule.Meeting.Resp.Neg" and answer.subject == "Declined: Review"
    assert "Cannot make it" in str(answer.body)


def test_a_reply_quotes_the_original_and_a_reply_to_your_own_mail_goes_to_its_recipients(ews_sim: EwsSim):
    rep = ews_sim.new_mailbox()
    account = ews_sim.account(rep)
    Message(account=account, folder=account.sent, subject="Offer", body=HTMLBody("<p>Our offer</p>"),
            to_recipients=[Mailbox(email_address="dana@fabrikam.example")]).send_and_save()
    [sent] = list(account.sent.all())
    # a reply with no recipients of its own (exchangelib's create_reply would fill in the author)
    ReplyToItem(account=account, reference_item_id=ReferenceItemId(id=sent.id, changekey=sent.changekey),
                subject="RE: Offer", new_body="Following up").save(folder=account.drafts)
    [draft] = list(account.drafts.all())
    assert [r.email_address for r in draft.to_recipients] == ["dana@fabrikam.example"]
    body = str(draft.body)
    assert body.index("Following up") < body.index("Our offer"), "the new text above the quoted original"
