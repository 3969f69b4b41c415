"""The EWS simulator driven by the REAL exchangelib, unchanged (only endpoint and credentials differ)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from exchangelib import (
    UTC,
    CalendarItem,
    Contact,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    FileAttachment,
    HTMLBody,
    Mailbox,
    Message,
)
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInvalidPropertyRequest,
    ErrorInvalidSyncStateData,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    UnauthorizedError,
)
from exchangelib.indexed_properties import EmailAddress, PhysicalAddress
from exchangelib.recurrence import DailyPattern, NumberedPattern, Recurrence, WeeklyPattern

from tests.plugins.ews_sim import NO_ROLE_PASSWORD, NO_ROLE_USER, SERVICE_USER, EwsSim

BERLIN = EWSTimeZone("Europe/Berlin")


class PegaId(ExtendedProperty):
    property_set_id = "4b1e9f3a-6c2d-4e8b-9a75-0d3c5e7f9a21"
    property_name = "PegaId"
    property_type = "String"


for cls in (Message, CalendarItem, Contact):
    if "pega_id" not in [f.name for f in cls.FIELDS]:
        cls.register("pega_id", PegaId)


def inbound(ews_sim: EwsSim, upn: str, **body: object) -> dict[str, object]:
    return dict(ews_sim.control("POST", f"mailboxes/{upn}/inbound-mail", body))


# ---------------------------------------------------------------- authentication and impersonation


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_service_account_impersonates_with_basic_and_ntlm(ews_sim: EwsSim, auth: str) -> None:
    upn = ews_sim.new_mailbox()
    inbound(ews_sim, upn, subject="hello")
    account = ews_sim.account(upn, auth=auth)
    assert [m.subject for m in account.inbox.all()] == ["hello"]
    last = ews_sim.control("GET", "requests")["value"][-1]
    assert last["impersonated"] == upn and last["caller"].endswith("svc-pega-sync")


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_wrong_password_is_unauthorized(ews_sim: EwsSim, auth: str) -> None:
    upn = ews_sim.new_mailbox()
    with pytest.raises(UnauthorizedError):
        ews_sim.account(upn, password="wrong", auth=auth).inbox.total_count  # noqa: B018


def test_impersonation_refused_without_the_role(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    with pytest.raises(ErrorImpersonateUserDenied):
        ews_sim.account(upn, username=NO_ROLE_USER, password=NO_ROLE_PASSWORD).inbox.total_count  # noqa: B018


def test_impersonation_scope_limits_the_mailboxes(ews_sim: EwsSim) -> None:
    inside, outside = ews_sim.new_mailbox(), ews_sim.new_mailbox()
    ews_sim.control("POST", "accounts", {"username": "CONTOSO\\svc-scoped", "password": "Scoped-1",
                                         "impersonation": True, "scope": [inside]})
    assert ews_sim.account(inside, username="CONTOSO\\svc-scoped", password="Scoped-1").inbox.total_count == 0
    with pytest.raises(ErrorImpersonateUserDenied):
        ews_sim.account(outside, username="CONTOSO\\svc-scoped", password="Scoped-1").inbox.total_count  # noqa: B018


def test_unknown_mailbox_is_error_non_existent_mailbox(ews_sim: EwsSim) -> None:
    with pytest.raises(ErrorNonExistentMailbox):
        ews_sim.account("nobody@contoso.example").inbox.total_count  # noqa: B018


def test_a_rep_reads_own_mailbox_without_impersonation(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox(password="Rep-Password-1")
    inbound(ews_sim, upn, subject="mine")
    account = ews_sim.account(upn, username=upn, password="Rep-Password-1", impersonate=False)
    assert [m.subject for m in account.inbox.all()] == ["mine"]


# ---------------------------------------------------------------- throttling


def test_server_busy_carries_back_off_milliseconds(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    account = ews_sim.account(upn)
    inbox = account.inbox
    ews_sim.control("POST", "faults", {"code": "ErrorServerBusy", "mailbox": upn, "operation": "FindItem",
                                       "backOffMilliseconds": 12_500})
    with pytest.raises(ErrorServerBusy) as caught:
        list(inbox.all())
    assert caught.value.back_off == 12.5
    assert list(inbox.all()) == []  # one fault, then normal service


def test_a_fault_scoped_to_a_caller_meets_only_that_accounts_requests(ews_sim: EwsSim) -> None:
    """The chaos harness aims its faults at the sync service's account: the rep's own Outlook (the
    harness) is not under test (seed 499: its client gave up on a 160 s back-off)."""
    upn = ews_sim.new_mailbox()
    inbox = ews_sim.account(upn).inbox  # the service account, impersonating the rep
    ews_sim.control("POST", "faults", {"code": "ErrorServerBusy", "mailbox": upn, "caller": "CONTOSO\\someone-else",
                                       "backOffMilliseconds": 500})
    assert list(inbox.all()) == []
    ews_sim.control("POST", "faults", {"code": "ErrorServerBusy", "mailbox": upn, "caller": SERVICE_USER.upper(),
                                       "backOffMilliseconds": 500})
    try:
        with pytest.raises(ErrorServerBusy):
            list(inbox.all())
    finally:
        ews_sim.control("DELETE", "faults")


# ---------------------------------------------------------------- SyncFolderItems


def test_sync_folder_items_pages_and_continues_from_its_state(ews_sim: EwsSim) -> None:
    from exchangelib.services import SyncFolderItems

    upn = ews_sim.new_mailbox()
    for i in range(5):
        inbound(ews_sim, upn, subject=f"m{i}")
    account = ews_sim.account(upn)
    svc = SyncFolderItems(account=account)
    seen, state, pages = [], None, 0
    while True:
        changes = list(svc.call(folder=account.inbox, shape="IdOnly", additional_fields=set(), sync_state=state,
                                ignore=None, max_changes_returned=2, sync_scope=None))
        pages += 1
        seen += [(c, i.id) for c, i in changes]
        state = svc.sync_state
        if svc.includes_last_item_in_range:
            break
    assert pages == 3 and len(seen) == 5 and {c for c, _ in seen} == {"create"}
    # changes after the state: one update, one delete, one new
    first = account.inbox.get(id=seen[0][1])
    first.is_read = True
    first.save(update_fields=["is_read"])
    account.inbox.get(id=seen[1][1]).delete()
    inbound(ews_sim, upn, subject="new")
    later = list(svc.call(folder=account.inbox, shape="IdOnly", additional_fields=set(), sync_state=state,
                          ignore=None, max_changes_returned=100, sync_scope=None))
    kinds = sorted(c for c, _ in later)
    assert kinds == ["create", "delete", "update"]


def test_invalid_sync_state_is_error_invalid_sync_state_data(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    inbound(ews_sim, upn, subject="x")
    account = ews_sim.account(upn)
    list(account.inbox.sync_items())
    state = account.inbox.item_sync_state
    ews_sim.control("POST", "sync-states/invalidate", {"mailbox": upn})
    with pytest.raises(ErrorInvalidSyncStateData):
        list(account.inbox.sync_items(sync_state=state))


def test_body_cannot_be_read_through_find_item(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    inbound(ews_sim, upn, subject="x", body="<p>secret</p>")
    account = ews_sim.account(upn)
    from exchangelib.services import FindItem

    with pytest.raises(ErrorInvalidPropertyRequest):
        list(FindItem(account=account).call(folders=[account.inbox], additional_fields={
            f for f in account.inbox.normalize_fields(["body"])}, restriction=None, order_fields=None,
            shape="IdOnly", query_string=None, depth="Shallow", calendar_view=None, max_items=None, offset=0))
    ids = [i.id for _, i in account.inbox.sync_items()]
    assert "secret" in str(account.inbox.get(id=ids[0]).body)


# ---------------------------------------------------------------- mail


def test_send_reply_in_thread_and_stamp(ews_sim: EwsSim) -> None:
    rep, colleague = ews_sim.new_mailbox(), ews_sim.new_mailbox()
    account = ews_sim.account(rep)
    received = inbound(ews_sim, rep, subject="Quote?", **{"from": "buyer@fabrikam.example"})
    original = account.inbox.get(id=received["id"])
    reply = original.create_reply(subject="RE: Quote?", body="Here it is", to_recipients=[original.sender])
    reply.send()
    msg = Message(account=account, folder=account.sent, subject="Hi", body=HTMLBody("<b>x</b>"),
                  to_recipients=[Mailbox(email_address=colleague)], pega_id="EMAIL-7")
    msg.send_and_save()
    sent = {m.subject: m for m in account.sent.all().only("subject", "conversation_id", "pega_id", "in_reply_to")}
    assert sent["RE: Quote?"].conversation_id == original.conversation_id
    assert sent["RE: Quote?"].in_reply_to == original.message_id
    assert sent["Hi"].pega_id == "EMAIL-7"
    assert [m.subject for m in ews_sim.account(colleague).inbox.all()] == ["Hi"]
    assert {s["subject"] for s in ews_sim.control("GET", "sent", mailbox=rep)["value"]} == {"RE: Quote?", "Hi"}


def test_attachments_round_trip(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    received = inbound(ews_sim, upn, subject="with file",
                       attachments={"a.txt": base64.b64encode(b"hello file").decode()})
    item = ews_sim.account(upn).inbox.get(id=received["id"])
    assert item.has_attachments and [a.content for a in item.attachments] == [b"hello file"]


# ---------------------------------------------------------------- calendar


def test_single_event_time_zone_and_all_day(ews_sim: EwsSim) -> None:
    account = ews_sim.account(ews_sim.new_mailbox())
    ev = CalendarItem(account=account, folder=account.calendar, subject="Berlin 9:00", pega_id="APPT-1",
                      start=EWSDateTime(2030, 7, 1, 9, 0, tzinfo=BERLIN), end=EWSDateTime(2030, 7, 1, 10, 0, tzinfo=BERLIN))
    ev.save()
    day = CalendarItem(account=account, folder=account.calendar, subject="Holiday", is_all_day=True,
                       start=EWSDate(2030, 7, 2), end=EWSDate(2030, 7, 3))
    day.save()
    got = account.calendar.get(id=ev.id)
    assert got.start == EWSDateTime(2030, 7, 1, 7, 0, tzinfo=UTC) and got.pega_id == "APPT-1"
    assert got._start_timezone is not None and got._start_timezone.key == "Europe/Berlin"
    assert account.calendar.get(id=day.id).is_all_day is True


def test_recurring_series_with_modified_and_deleted_occurrences(ews_sim: EwsSim) -> None:
    account = ews_sim.account(ews_sim.new_mailbox())
    start = EWSDateTime(2030, 3, 25, 9, 0, tzinfo=BERLIN)  # DST starts 2030-03-31 in Berlin
    master = CalendarItem(account=account, folder=account.calendar, subject="Standup", start=start,
                          end=start + dt.timedelta(minutes=30),
                          recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                                boundary=NumberedPattern(start=start.date(), number=10)))
    master.save()
    view = list(account.calendar.view(start=start - dt.timedelta(days=1), end=start + dt.timedelta(days=20)))
    assert len(view) == 10 and all(o.type == "Occurrence" for o in view)
    # 09:00 Berlin on both sides of the DST change
    assert {o.start.astimezone(BERLIN).hour for o in view} == {9}
    moved, gone = view[2], view[3]
    moved.start = moved.start + dt.timedelta(hours=2)
    moved.end = moved.end + dt.timedelta(hours=2)
    moved.subject = "Standup (late)"
    moved.save(update_fields=["start", "end", "subject"])
    gone.delete()
    again = account.calendar.get(id=master.id)
    assert again.type == "RecurringMaster"
    assert len(again.modified_occurrences) == 1 and len(again.deleted_occurrences) == 1
    assert again.deleted_occurrences[0].start == gone.start
    view2 = list(account.calendar.view(start=start - dt.timedelta(days=1), end=start + dt.timedelta(days=20)))
    assert len(view2) == 9
    exc = next(o for o in view2 if o.type == "Exception")
    assert exc.subject == "Standup (late)" and exc.original_start == moved.original_start
    with pytest.raises(ErrorItemNotFound):
        account.calendar.get(id=master.id[:-4] + "AAAA")


def test_weekly_meeting_sends_invitations(ews_sim: EwsSim) -> None:
    rep, guest = ews_sim.new_mailbox(), ews_sim.new_mailbox()
    account = ews_sim.account(rep)
    start = EWSDateTime(2030, 9, 2, 14, 0, tzinfo=BERLIN)
    mtg = CalendarItem(account=account, folder=account.calendar, subject="Weekly", start=start,
                       end=start + dt.timedelta(hours=1), required_attendees=[guest],
                       recurrence=Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[1, 3]), start=start.date(),
                                             number=4))
    mtg.save(send_meeting_invitations="SendToAllAndSaveCopy")
    assert [i.subject for i in ews_sim.account(guest).inbox.all()] == ["Weekly"]
    occurrences = list(account.calendar.view(start=start, end=start + dt.timedelta(days=30)))
    assert [o.start.astimezone(BERLIN).weekday() for o in occurrences] == [0, 2, 0, 2]


# ---------------------------------------------------------------- contacts


def test_contact_categories_addresses_and_photo(ews_sim: EwsSim) -> None:
    account = ews_sim.account(ews_sim.new_mailbox())
    c = Contact(account=account, folder=account.contacts, display_name="Ann Lee", given_name="Ann", surname="Lee",
                email_addresses=[EmailAddress(email="ann@fabrikam.example", label="EmailAddress1")],
                physical_addresses=[PhysicalAddress(label="Business", street="1 Main St", city="Berlin")],
                categories=["PegaSASync"], pega_id="CONTACT-1")
    c.save()
    c.attach(FileAttachment(name="ContactPicture.jpg", content=b"\xff\xd8jpeg", is_contact_photo=True))
    c.email_addresses = [EmailAddress(email="ann.lee@fabrikam.example", label="EmailAddress1")]
    c.save(update_fields=["email_addresses"])
    got = account.contacts.get(id=c.id)
    assert got.categories == ["PegaSASync"] and got.pega_id == "CONTACT-1"
    assert [e.email for e in got.email_addresses] == ["ann.lee@fabrikam.example"]
    assert got.physical_addresses[0].city == "Berlin"
    photo = next(a for a in got.attachments if a.is_contact_photo)
    assert photo.content == b"\xff\xd8jpeg"


# ---------------------------------------------------------------- notifications


def test_pull_subscription_reports_new_mail(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    account = ews_sim.account(upn)
    sub_id, watermark = account.inbox.subscribe_to_pull(event_types=("NewMailEvent", "CreatedEvent"), timeout=10)
    received = inbound(ews_sim, upn, subject="ping")
    notes = list(account.inbox.get_events(sub_id, watermark))
    events = [e for n in notes for e in n.events]
    assert {type(e).__name__ for e in events} >= {"NewMailEvent", "CreatedEvent"}
    assert {e.item_id.id for e in events if hasattr(e, "item_id") and e.item_id} == {received["id"]}


def test_pull_subscription_expires_when_not_polled(ews_sim: EwsSim) -> None:
    from exchangelib.errors import ErrorSubscriptionNotFound

    upn = ews_sim.new_mailbox()
    account = ews_sim.account(upn)
    sub_id, watermark = account.inbox.subscribe_to_pull(timeout=5)
    ews_sim.control("POST", "clock", {"advanceSeconds": 6 * 60})
    with pytest.raises(ErrorSubscriptionNotFound):
        list(account.inbox.get_events(sub_id, watermark))


def test_streaming_subscription_delivers_queued_events(ews_sim: EwsSim) -> None:
    upn = ews_sim.new_mailbox()
    account = ews_sim.account(upn)
    sub_id = account.inbox.subscribe_to_streaming(event_types=("CreatedEvent",))
    received = inbound(ews_sim, upn, subject="stream me")
    for note in account.inbox.get_streaming_events(sub_id, connection_timeout=1, max_notifications_returned=1):
        assert [e.item_id.id for e in note.events] == [received["id"]]
        break
    else:
        raise AssertionError("no notification")

