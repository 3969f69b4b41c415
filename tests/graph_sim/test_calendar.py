"""Calendar through the real msgraph-sdk: time zones, series expansion across DST, exceptions and
cancellations, calendarView and its delta, transactionId, invitations, cancel."""

from __future__ import annotations

import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.attendee import Attendee
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.day_of_week import DayOfWeek
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
from msgraph.generated.models.recurrence_pattern import RecurrencePattern
from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
from msgraph.generated.models.recurrence_range import RecurrenceRange
from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
from msgraph.generated.models.sensitivity import Sensitivity
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import CancelPostRequestBody
from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder

from tests.graph_sim.sdk import IMMUTABLE, prefer

PST = "Pacific Standard Time"
PEGA_ID = "String {0a1b2c3d-0000-4000-8000-00000000d3a1} Name PegaId"


def dtz(value: str, tz: str = "UTC") -> DateTimeTimeZone:
    return DateTimeTimeZone(date_time=value, time_zone=tz)


def weekly_series(subject: str = "Weekly sync") -> Event:
    return Event(
        subject=subject, start=dtz("2025-03-03T09:00:00", PST), end=dtz("2025-03-03T09:30:00", PST),
        recurrence=PatternedRecurrence(
            pattern=RecurrencePattern(type=RecurrencePatternType.Weekly, interval=1, days_of_week=[DayOfWeek.Monday]),
            range=RecurrenceRange(type=RecurrenceRangeType.EndDate, start_date="2025-03-03", end_date="2025-03-31")))


def view_query(start: str = "2025-03-01T00:00:00Z", end: str = "2025-04-01T00:00:00Z"):
    return CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
        start_date_time=start, end_date_time=end, top=50)


async def test_time_zones_and_outlook_timezone_preference(graph_client, sim_user) -> None:
    ev_api = graph_client.users.by_user_id(sim_user["id"]).events
    ev = await ev_api.post(Event(subject="Berlin", start=dtz("2025-07-01T10:00:00", "W. Europe Standard Time"),
                                 end=dtz("2025-07-01T11:00:00", "W. Europe Standard Time")))
    assert ev.original_start_time_zone == "W. Europe Standard Time"
    assert (ev.start.date_time, ev.start.time_zone) == ("2025-07-01T08:00:00.0000000", "UTC")
    in_pst = await ev_api.by_event_id(ev.id).get(request_configuration=prefer(f'outlook.timezone="{PST}"'))
    assert (in_pst.start.date_time, in_pst.start.time_zone) == ("2025-07-01T01:00:00.0000000", PST)
    iana = await ev_api.by_event_id(ev.id).get(request_configuration=prefer('outlook.timezone="Asia/Tokyo"'))
    assert iana.start.date_time.startswith("2025-07-01T17:00:00")
    with pytest.raises(APIError) as err:
        await ev_api.post(Event(subject="bad", start=dtz("2025-07-01T10:00:00", "Mars/Olympus"),
                                end=dtz("2025-07-01T11:00:00", "Mars/Olympus")))
    assert err.value.response_status_code == 400


async def test_series_across_dst_with_moved_and_cancelled_occurrence(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    master = await mb.events.post(weekly_series())
    assert master.type.value == "seriesMaster" and master.series_master_id is None
    assert master.recurrence.range.recurrence_time_zone == PST
    view = await mb.calendar_view.get(request_configuration=prefer(query_parameters=view_query()))
    assert [e.start.date_time[:16] for e in view.value] == [
        "2025-03-03T17:00", "2025-03-10T16:00", "2025-03-17T16:00", "2025-03-24T16:00", "2025-03-31T16:00"]
    assert {e.type.value for e in view.value} == {"occurrence"}
    assert all(e.series_master_id == master.id and e.subject == "Weekly sync" for e in view.value)
    # Move the 17 March occurrence to Tuesday 10:00 local; cancel 24 March.
    moved_id, cancelled_id = view.value[2].id, view.value[3].id
    exc = await mb.events.by_event_id(moved_id).patch(Event(
        subject="Weekly sync (moved)", start=dtz("2025-03-18T10:00:00", PST), end=dtz("2025-03-18T10:30:00", PST)))
    assert exc.type.value == "exception" and exc.id == moved_id and exc.original_start.isoformat().startswith(
        "2025-03-17T16:00")
    await mb.events.by_event_id(cancelled_id).delete()
    local = await mb.calendar_view.get(request_configuration=prefer(f'outlook.timezone="{PST}"',
                                                                    query_parameters=view_query()))
    assert [(e.start.date_time[:16], e.type.value) for e in local.value] == [
        ("2025-03-03T09:00", "occurrence"), ("2025-03-10T09:00", "occurrence"),
        ("2025-03-18T10:00", "exception"), ("2025-03-31T09:00", "occurrence")]
    assert local.value[2].subject == "Weekly sync (moved)"
    q = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
        select=["subject", "cancelledOccurrences", "exceptionOccurrences"])
    m = await mb.events.by_event_id(master.id).get(request_configuration=prefer(query_parameters=q))
    assert m.cancelled_occurrences == [f"OID.{master.id}.2025-03-24"]
    assert [e.id for e in m.exception_occurrences] == [moved_id]
    assert m.exception_occurrences[0].subject == "Weekly sync (moved)"
    with pytest.raises(APIError) as err:
        await mb.events.by_event_id(cancelled_id).get()
    assert err.value.response_status_code == 404
    listed = await mb.events.get()
    assert [e.type.value for e in listed.value] == ["seriesMaster"]


async def test_calendar_view_delta_sparse_occurrences_and_removals(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    master = await mb.events.post(weekly_series())
    single = await mb.events.post(Event(subject="One-off", start=dtz("2025-03-12T15:00:00"),
                                        end=dtz("2025-03-12T16:00:00")))
    occ = [e for e in (await mb.calendar_view.get(request_configuration=prefer(query_parameters=view_query()))).value
           if e.series_master_id == master.id]
    await mb.events.by_event_id(occ[1].id).patch(Event(subject="Moved", start=dtz("2025-03-11T17:00:00"),
                                                       end=dtz("2025-03-11T17:30:00")))
    await mb.events.by_event_id(occ[2].id).delete()
    dq = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
        start_date_time="2025-03-01T00:00:00Z", end_date_time="2025-04-01T00:00:00Z")
    page = await mb.calendar_view.delta.get(request_configuration=prefer("odata.maxpagesize=3", query_parameters=dq))
    items = list(page.value)
    pages = 1
    while page.odata_next_link:
        page = await mb.calendar_view.delta.with_url(page.odata_next_link).get()
        items += page.value
        pages += 1
    assert (pages, len(items)) == (2, 6)  # master + 3 occurrences + 1 exception + 1 single, 3 per page
    by_type: dict[str, list[Event]] = {}
    for e in items:
        by_type.setdefault(e.type.value, []).append(e)
    assert [e.id for e in by_type["seriesMaster"]] == [master.id]
    assert [e.id for e in by_type["singleInstance"]] == [single.id]
    assert [e.subject for e in by_type["exception"]] == ["Moved"]
    sparse = by_type["occurrence"]
    assert len(sparse) == 3 and all(e.subject is None and e.series_master_id == master.id for e in sparse)
    assert all(e.start is not None and e.end is not None for e in sparse)
    assert occ[2].id not in {e.id for e in items}  # the cancelled one is simply absent
    delta_link = page.odata_delta_link
    # Next round: the single moves out of the window, and nothing else changes.
    await mb.events.by_event_id(single.id).patch(Event(start=dtz("2025-05-01T15:00:00"),
                                                       end=dtz("2025-05-01T16:00:00")))
    nxt = await mb.calendar_view.delta.with_url(delta_link).get()
    assert [(e.id, e.additional_data.get("@removed")) for e in nxt.value] == [(single.id, {"reason": "deleted"})]
    again = await mb.calendar_view.delta.with_url(nxt.odata_delta_link).get()
    assert again.value == []


async def test_delta_rejects_select_and_requires_window(graph_sim, sim_user) -> None:
    http = await graph_sim.http()
    async with http:
        r = await http.get(f"/users/{sim_user['id']}/calendarView/delta",
                           params={"startdatetime": "2025-03-01T00:00:00Z", "enddatetime": "2025-04-01T00:00:00Z"})
        assert r.status_code == 200 and "@odata.deltaLink" in r.json()  # lowercase names accepted
        r = await http.get(f"/users/{sim_user['id']}/calendarView/delta",
                           params={"startDateTime": "2025-03-01T00:00:00Z", "endDateTime": "2025-04-01T00:00:00Z",
                                   "$select": "subject"})
        assert r.status_code == 400
        assert (await http.get(f"/users/{sim_user['id']}/calendarView/delta")).status_code == 400


async def test_transaction_id_deduplicates_creates(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    body = Event(subject="Once", start=dtz("2025-03-05T15:00:00"), end=dtz("2025-03-05T15:30:00"),
                 transaction_id="3F2C1B7A-0000-4000-8000-0000000000A1")
    first = await mb.events.post(body)
    second = await mb.events.post(body)
    assert first.id == second.id and first.transaction_id == "3F2C1B7A-0000-4000-8000-0000000000A1"
    assert len((await mb.events.get()).value) == 1
    plain = await mb.events.post(Event(subject="No tx", start=dtz("2025-03-05T15:00:00"),
                                       end=dtz("2025-03-05T15:30:00")))
    assert plain.transaction_id is None


async def test_invitations_cancel_and_sensitivity(graph_client, graph_sim) -> None:
    org = await graph_sim.control.new_user("Organizer")
    att = await graph_sim.control.new_user("Attendee")
    ev = await graph_client.users.by_user_id(org["id"]).events.post(Event(
        subject="Pricing review", start=dtz("2025-03-05T15:00:00"), end=dtz("2025-03-05T15:30:00"),
        sensitivity=Sensitivity.Private,
        attendees=[Attendee(email_address=EmailAddress(address=att["userPrincipalName"], name="Attendee")),
                   Attendee(email_address=EmailAddress(address="dana@fabrikam.example"))]))
    assert ev.sensitivity == Sensitivity.Private and ev.is_organizer
    their = (await graph_client.users.by_user_id(att["id"]).events.get()).value
    assert len(their) == 1 and not their[0].is_organizer and their[0].i_cal_u_id == ev.i_cal_u_id
    assert their[0].organizer.email_address.address == org["userPrincipalName"]
    inbox = await graph_client.users.by_user_id(att["id"]).mail_folders.by_mail_folder_id("inbox").messages.get()
    assert inbox.value[0].odata_type == "#microsoft.graph.eventMessageRequest"  # user-list-messages.md
    assert inbox.value[0].meeting_message_type.value == "meetingRequest"
    with pytest.raises(APIError) as err:
        await graph_client.users.by_user_id(att["id"]).events.by_event_id(their[0].id).cancel.post(
            CancelPostRequestBody(comment="not mine"))
    assert err.value.response_status_code == 400
    await graph_client.users.by_user_id(org["id"]).events.by_event_id(ev.id).cancel.post(
        CancelPostRequestBody(comment="Sorry"))
    assert (await graph_client.users.by_user_id(org["id"]).events.get()).value == []
    copy = await graph_client.users.by_user_id(att["id"]).events.by_event_id(their[0].id).get()
    assert copy.is_cancelled
    inbox = await graph_client.users.by_user_id(att["id"]).mail_folders.by_mail_folder_id("inbox").messages.get()
    assert sorted(m.subject for m in inbox.value) == ["Canceled: Pricing review", "Pricing review"]


async def test_event_extended_property_filter_and_immutable_ids(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    ev = await mb.events.post(Event(subject="tagged", start=dtz("2025-03-05T15:00:00"),
                                    end=dtz("2025-03-05T15:30:00"),
                                    single_value_extended_properties=[
                                        SingleValueLegacyExtendedProperty(id=PEGA_ID, value="APPT-7")]),
                              request_configuration=prefer(IMMUTABLE))
    await mb.events.post(Event(subject="other", start=dtz("2025-03-05T15:00:00"), end=dtz("2025-03-05T15:30:00")))
    lq = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
        filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{PEGA_ID}' and ep/value eq 'APPT-7')",
        expand=[f"singleValueExtendedProperties($filter=id eq '{PEGA_ID}')"])
    found = await mb.events.get(request_configuration=prefer(IMMUTABLE, query_parameters=lq))
    assert [e.id for e in found.value] == [ev.id]
    assert found.value[0].single_value_extended_properties[0].value == "APPT-7"
    before = ev.change_key
    upd = await mb.events.by_event_id(ev.id).patch(Event(subject="tagged 2"),
                                                   request_configuration=prefer(IMMUTABLE))
    assert upd.id == ev.id and upd.change_key != before


async def test_attendee_responses_and_instances(graph_client, graph_sim) -> None:
    from msgraph.generated.users.item.events.item.accept.accept_post_request_body import AcceptPostRequestBody
    from msgraph.generated.users.item.events.item.instances.instances_request_builder import (
        InstancesRequestBuilder,
    )

    org = await graph_sim.control.new_user("Organizer")
    att = await graph_sim.control.new_user("Attendee")
    series = weekly_series("Standup")
    series.attendees = [Attendee(email_address=EmailAddress(address=att["userPrincipalName"]))]
    master = await graph_client.users.by_user_id(org["id"]).events.post(series)
    [copy] = (await graph_client.users.by_user_id(att["id"]).events.get()).value
    assert copy.type.value == "seriesMaster" and copy.response_status.response.value == "notResponded"
    await graph_client.users.by_user_id(att["id"]).events.by_event_id(copy.id).accept.post(
        AcceptPostRequestBody(comment="ok", send_response=True))
    after = await graph_client.users.by_user_id(org["id"]).events.by_event_id(master.id).get()
    assert after.attendees[0].status.response.value == "accepted"
    with pytest.raises(APIError):  # the organizer cannot respond to their own meeting
        await graph_client.users.by_user_id(org["id"]).events.by_event_id(master.id).accept.post(
            AcceptPostRequestBody(comment="me"))
    q = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
        start_date_time="2025-03-09T00:00:00Z", end_date_time="2025-03-20T00:00:00Z")
    inst = await graph_client.users.by_user_id(att["id"]).events.by_event_id(copy.id).instances.get(
        request_configuration=prefer(query_parameters=q))
    assert [i.start.date_time[:16] for i in inst.value] == ["2025-03-10T16:00", "2025-03-17T16:00"]
