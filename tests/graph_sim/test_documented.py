"""Microsoft's own documented requests replayed against the simulator, one test per difference of
issue #13 (the doc page is named in each docstring; sources in microsoftgraph/microsoft-graph-docs-contrib).

Raw HTTP where the point is the wire (headers, exact JSON); the real msgraph-sdk where it is a call
the service makes."""

from __future__ import annotations

import base64
import os

import httpx
import pytest

from sandbox.graph.timezones import windows_names

PST = "Pacific Standard Time"
PEGA_ID = "String {0a1b2c3d-0000-4000-8000-00000000d3a1} Name PegaId"
CLASS = "String 0x001A"
AGENT = ("sandbox-user-agent", "sandbox-user-agent-secret")


def utc(value: str, tz: str = "UTC") -> dict[str, str]:
    return {"dateTime": value, "timeZone": tz}


async def _event(http: httpx.AsyncClient, user: str, **body: object) -> dict:
    body.setdefault("start", utc("2025-03-05T15:00:00"))
    body.setdefault("end", utc("2025-03-05T15:30:00"))
    resp = await http.post(f"/users/{user}/events", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


# 1 ------------------------------------------------------------------------------------------------


async def test_bodies_are_html_by_default_and_text_on_preference(graph_sim, sim_user) -> None:
    """message-get.md, event-get.md, user-list-calendarview.md: HTML unless Prefer text; either
    preference is acknowledged with Preference-Applied; unsafe HTML is removed unless allowed."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        msg = (await http.post(f"/users/{uid}/messages", json={
            "subject": "t", "body": {"contentType": "Text", "content": "Hi Dana,\nSee <you>"}})).json()
        got = await http.get(f"/users/{uid}/messages/{msg['id']}")
        assert "Preference-Applied" not in got.headers
        body = got.json()["body"]
        assert body["contentType"] == "html" and body["content"].startswith("<html>")
        assert "Hi Dana,<br>" in body["content"] and "See &lt;you&gt;" in body["content"]
        text = await http.get(f"/users/{uid}/messages/{msg['id']}",
                              headers={"Prefer": 'outlook.body-content-type="text"'})
        assert text.headers["Preference-Applied"] == 'outlook.body-content-type="text"'
        assert text.json()["body"] == {"contentType": "text", "content": "Hi Dana,\nSee <you>"}
        html = await http.get(f"/users/{uid}/messages/{msg['id']}",
                              headers={"Prefer": 'outlook.body-content-type="html"'})
        assert html.headers["Preference-Applied"] == 'outlook.body-content-type="html"'
        unsafe = (await http.post(f"/users/{uid}/messages", json={"subject": "u", "body": {
            "contentType": "HTML", "content": '<p onclick="x()">Hello<script>steal()</script></p>'}})).json()
        cleaned = (await http.get(f"/users/{uid}/messages/{unsafe['id']}")).json()["body"]["content"]
        assert "Hello" in cleaned and "<script" not in cleaned and "onclick" not in cleaned
        raw = (await http.get(f"/users/{uid}/messages/{unsafe['id']}",
                              headers={"Prefer": "outlook.allow-unsafe-html"})).json()["body"]["content"]
        assert "<script>steal()</script>" in raw and 'onclick="x()"' in raw
        ev = await _event(http, uid, subject="Orientation", body={"contentType": "text", "content": "Bring notes."})
        assert (await http.get(f"/users/{uid}/events/{ev['id']}")).json()["body"]["contentType"] == "html"
        view = await http.get(f"/users/{uid}/calendarView", params={
            "startDateTime": "2025-03-05T00:00:00Z", "endDateTime": "2025-03-06T00:00:00Z"},
            headers={"Prefer": 'outlook.body-content-type="text"'})
        assert view.headers["Preference-Applied"] == 'outlook.body-content-type="text"'
        assert view.json()["value"][0]["body"]["content"] == "Bring notes."


# 2 ------------------------------------------------------------------------------------------------


async def test_received_message_subject_and_body_are_not_updatable(graph_sim, sim_user) -> None:
    """message-update.md: subject and body are "Updatable only if isDraft = true"."""
    got = await graph_sim.control.inbound_mail(sim_user["userPrincipalName"], subject="From Dana", body="x")
    async with await graph_sim.http() as http:
        url = f"/users/{sim_user['id']}/messages/{got['id']}"
        for change in ({"subject": "edited"}, {"body": {"contentType": "text", "content": "edited"}}):
            resp = await http.patch(url, json=change)
            assert resp.status_code == 400 and resp.json()["error"]["code"] == "ErrorInvalidPropertyUpdateSentMessage"
        assert (await http.patch(url, json={"isRead": True, "categories": ["Pega"]})).status_code == 200
        assert (await http.get(url)).json()["subject"] == "From Dana"


# 3, 4 ---------------------------------------------------------------------------------------------


async def test_attachment_select_and_upload_session_rules(graph_sim, sim_user) -> None:
    """outlook-large-attachments.md: $select without contentBytes; a session under 3 MB is refused;
    nextExpectedRanges "0-" then "{start}"; DELETE on the upload URL cancels (204)."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        msg = (await http.post(f"/users/{uid}/messages", json={"subject": "files"})).json()
        base = f"/users/{uid}/messages/{msg['id']}/attachments"
        att = (await http.post(base, json={"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
                                           "contentBytes": base64.b64encode(b"hello").decode()})).json()
        meta = (await http.get(f"{base}/{att['id']}", params={"$select": "lastModifiedDateTime,name,contentType,"
                                                                         "size,isInline"})).json()
        assert meta["name"] == "a.txt" and meta["size"] == 5 and "contentBytes" not in meta
        assert meta["@odata.type"] == "#microsoft.graph.fileAttachment"
        listed = (await http.get(base, params={"$select": "name"})).json()["value"]
        assert listed and all("contentBytes" not in a for a in listed)
        assert (await http.get(f"{base}/{att['id']}")).json()["contentBytes"] == base64.b64encode(b"hello").decode()
        small = await http.post(f"{base}/createUploadSession", json={
            "AttachmentItem": {"attachmentType": "file", "name": "small", "size": 1024}})
        assert small.status_code == 400
        assert small.json()["error"]["code"] == "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
        size = 3_483_322  # the walkthrough's file
        sess = (await http.post(f"{base}/createUploadSession", json={
            "AttachmentItem": {"attachmentType": "file", "name": "flower", "size": size}})).json()
        assert sess["nextExpectedRanges"] == ["0-"]
    payload = os.urandom(size)
    async with httpx.AsyncClient(timeout=30) as plain:
        first = await plain.put(sess["uploadUrl"], content=payload[:2_097_152],
                                headers={"Content-Range": f"bytes 0-2097151/{size}"})
        assert first.status_code == 200 and first.json()["nextExpectedRanges"] == ["2097152"]
        assert (await plain.delete(sess["uploadUrl"])).status_code == 204
        assert (await plain.put(sess["uploadUrl"], content=payload[2_097_152:], headers={
            "Content-Range": f"bytes 2097152-{size - 1}/{size}"})).status_code == 404


# 5 ------------------------------------------------------------------------------------------------


async def test_message_delta_orderby_received_desc(graph_sim, sim_user) -> None:
    """message-delta.md / delta-query-messages.md: $orderby=receivedDateTime desc (and nothing else)."""
    upn = sim_user["userPrincipalName"]
    for day in ("2025-03-01", "2025-03-03", "2025-03-02"):
        await graph_sim.control.inbound_mail(upn, subject=day, body="x", receivedDateTime=f"{day}T09:00:00Z")
    async with await graph_sim.http() as http:
        url = f"/users/{sim_user['id']}/mailFolders/inbox/messages/delta"
        page = (await http.get(url, params={"$select": "subject", "$orderby": "receivedDateTime desc"})).json()
        assert [m["subject"] for m in page["value"]] == ["2025-03-03", "2025-03-02", "2025-03-01"]
        bad = await http.get(url, params={"$orderby": "subject"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "ErrorInvalidUrlQuery"


# 6, 7 ---------------------------------------------------------------------------------------------


async def test_occurrence_cannot_cross_an_adjacent_occurrence(graph_sim, sim_user) -> None:
    """event-update.md: ErrorOccurrenceCrossingBoundary, "Modified occurrence is crossing or
    overlapping adjacent occurrence"."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        master = await _event(http, uid, subject="Daily-ish", start=utc("2025-03-03T09:00:00", PST),
                              end=utc("2025-03-03T09:30:00", PST), recurrence={
                                  "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"]},
                                  "range": {"type": "endDate", "startDate": "2025-03-03", "endDate": "2025-03-31"}})
        occ = (await http.get(f"/users/{uid}/events/{master['id']}/instances", params={
            "startDateTime": "2025-03-05T00:00:00Z", "endDateTime": "2025-03-06T00:00:00Z"})).json()["value"][0]
        for day in ("2025-03-03", "2025-03-02", "2025-03-10"):  # onto/before the previous, onto the next
            resp = await http.patch(f"/users/{uid}/events/{occ['id']}", json={
                "start": utc(f"{day}T11:00:00", PST), "end": utc(f"{day}T11:30:00", PST)})
            assert resp.status_code == 400 and resp.json()["error"]["code"] == "ErrorOccurrenceCrossingBoundary"
        moved = await http.patch(f"/users/{uid}/events/{occ['id']}", json={
            "start": utc("2025-03-06T11:00:00", PST), "end": utc("2025-03-06T11:30:00", PST)})
        assert moved.status_code == 200 and moved.json()["type"] == "exception"


async def test_recurrence_worked_examples(graph_sim, sim_user) -> None:
    """outlook-schedule-recurring-events.md: every Monday from 2017-09-04 to 2017-12-31 ends on
    Monday 25 December; the first Thursday of every other month from 2017-08-29 starts in September."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        mondays = await _event(http, uid, start=utc("2017-09-04T13:00:00", PST), end=utc("2017-09-04T13:30:00", PST),
                               recurrence={"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday"]},
                                           "range": {"type": "endDate", "startDate": "2017-09-04",
                                                     "endDate": "2017-12-31"}})
        thursdays = await _event(http, uid, start=utc("2017-08-29T14:00:00", PST),
                                 end=utc("2017-08-29T15:00:00", PST), recurrence={
                                     "pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["Thursday"],
                                                 "index": "first"},
                                     "range": {"type": "noEnd", "startDate": "2017-08-29"}})
        window = {"startDateTime": "2017-08-01T00:00:00Z", "endDateTime": "2018-02-01T00:00:00Z", "$top": "100"}
        prefer = {"Prefer": f'outlook.timezone="{PST}"'}
        mon = (await http.get(f"/users/{uid}/events/{mondays['id']}/instances", params=window,
                              headers=prefer)).json()["value"]
        assert len(mon) == 17 and mon[-1]["start"]["dateTime"].startswith("2017-12-25T13:00")
        thu = (await http.get(f"/users/{uid}/events/{thursdays['id']}/instances", params=window,
                              headers=prefer)).json()["value"]
        assert [o["start"]["dateTime"][:10] for o in thu] == ["2017-09-07", "2017-11-02", "2018-01-04"]


# 8, 9, 10, 11, 12 -------------------------------------------------------------------------------------


async def test_location_replaces_locations(graph_sim, sim_user) -> None:
    """event-update.md: "If you update the location property, any prior locations in the locations
    collection would be removed and replaced by the new location value"."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        ev = await _event(http, uid, locations=[{"displayName": "Conf Room 3"}, {"displayName": "Teams"}])
        assert ev["location"]["displayName"] == "Conf Room 3" and len(ev["locations"]) == 2
        upd = (await http.patch(f"/users/{uid}/events/{ev['id']}", json={"location": {"displayName": "Lobby"}})).json()
        assert upd["location"]["displayName"] == "Lobby"
        assert [loc["displayName"] for loc in upd["locations"]] == ["Lobby"]


async def test_extended_property_filter_with_cast(graph_sim, sim_user) -> None:
    """singlevaluelegacyextendedproperty-get.md: cast(ep/value, Edm.Int32) compares as an integer."""
    uid = sim_user["id"]
    prop = "Integer {66f5a359-4659-4830-9070-00047ec6ac6e} Name Pallete"
    async with await graph_sim.http() as http:
        for value in ("12", "7"):
            await http.post(f"/users/{uid}/messages", json={
                "subject": value, "singleValueExtendedProperties": [{"id": prop, "value": value}]})
        found = (await http.get(f"/users/{uid}/messages", params={
            "$filter": f"singleValueExtendedProperties/any(ep:ep/id eq '{prop}' and cast(ep/value, Edm.Int32) eq 12)"})
        ).json()["value"]
        assert [m["subject"] for m in found] == ["12"]
        gt = (await http.get(f"/users/{uid}/messages", params={
            "$filter": f"singleValueExtendedProperties/any(ep:ep/id eq '{prop}' and cast(ep/value, Edm.Int32) gt 9)"})
        ).json()["value"]
        assert [m["subject"] for m in gt] == ["12"]


async def test_reauthorize_answers_204(graph_client, graph_sim, receiver, sim_user) -> None:
    """subscription-reauthorize.md: 204 No Content."""
    from tests.graph_sim.test_subscriptions import subscribe

    sub = await subscribe(graph_client, graph_sim, receiver, sim_user["userPrincipalName"])
    async with await graph_sim.http() as http:
        assert (await http.post(f"/subscriptions/{sub.id}/reauthorize")).status_code == 204


async def test_enums_come_back_lower_camel(graph_sim, sim_user) -> None:
    """Enum members are answered in their documented casing whatever casing the request used."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        ev = await _event(http, uid, importance="HIGH", showAs="WorkingElsewhere", sensitivity="Private",
                          body={"contentType": "HTML", "content": "<p>x</p>"},
                          attendees=[{"type": "Required", "emailAddress": {"address": "dana@fabrikam.example"}}],
                          recurrence={"pattern": {"type": "Weekly", "interval": 1, "daysOfWeek": ["Wednesday"],
                                                  "firstDayOfWeek": "Monday", "index": "First"},
                                      "range": {"type": "Numbered", "startDate": "2025-03-05",
                                                "numberOfOccurrences": 2}})
        assert (ev["importance"], ev["showAs"], ev["sensitivity"]) == ("high", "workingElsewhere", "private")
        assert ev["body"]["contentType"] == "html" and ev["attendees"][0]["type"] == "required"
        assert ev["recurrence"]["pattern"]["type"] == "weekly"
        assert ev["recurrence"]["pattern"]["daysOfWeek"] == ["wednesday"]
        assert ev["recurrence"]["pattern"]["firstDayOfWeek"] == "monday"
        assert ev["recurrence"]["range"]["type"] == "numbered"
        msg = (await http.post(f"/users/{uid}/messages", json={"importance": "LOW"})).json()
        assert msg["importance"] == "low"
        bad = await http.post(f"/users/{uid}/messages", json={"importance": "urgent"})
        assert bad.status_code == 400


async def test_only_v1_properties(graph_sim, sim_user) -> None:
    """v1.0 event has iCalUId but no uid; v1.0 mailFolder and contactFolder have no wellKnownName or
    sizeInBytes (beta-only properties)."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        ev = await _event(http, uid)
        assert "iCalUId" in ev and "uid" not in ev
        folder = (await http.get(f"/users/{uid}/mailFolders/inbox")).json()
        assert folder["displayName"] == "Inbox"
        assert "wellKnownName" not in folder and "sizeInBytes" not in folder
        cf = (await http.post(f"/users/{uid}/contactFolders", json={"displayName": "Pega"})).json()
        assert set(cf) - {"@odata.context"} == {"id", "displayName", "parentFolderId"}


# 13 -----------------------------------------------------------------------------------------------


async def test_organizer_changes_send_meeting_updates(graph_sim) -> None:
    """user-post-events.md / event-update.md / event-cancel.md: creating, updating and cancelling a
    meeting sends requests, updates and cancellations; a series master with a separately changed
    occurrence sends one update for the series plus one per changed occurrence."""
    ctl = graph_sim.control
    org, att, late = await ctl.new_user("Org"), await ctl.new_user("Att"), await ctl.new_user("Late")
    dana = "dana@fabrikam.example"
    async with await graph_sim.http() as http:
        ev = await _event(http, org["id"], subject="Pricing", attendees=[
            {"emailAddress": {"address": att["userPrincipalName"]}}, {"emailAddress": {"address": dana}}])
        [stats] = await ctl.meeting_messages(org["userPrincipalName"])
        assert (stats["requests"], stats["updates"], stats["external"]) == (2, 0, 1)
        await http.patch(f"/users/{org['id']}/events/{ev['id']}", json={"subject": "Pricing (moved)"})
        await http.patch(f"/users/{org['id']}/events/{ev['id']}", json={"reminderMinutesBeforeStart": 5})
        [stats] = await ctl.meeting_messages(org["userPrincipalName"])
        assert stats["updates"] == 4 and stats["byRecipient"][dana] == 3  # no "update silently" in Graph
        inbox = (await http.get(f"/users/{att['id']}/mailFolders/inbox/messages", params={
            "$expand": f"singleValueExtendedProperties($filter=id eq '{CLASS}')"})).json()["value"]
        assert {m["@odata.type"] for m in inbox} == {"#microsoft.graph.eventMessageRequest"}
        assert {m["singleValueExtendedProperties"][0]["value"] for m in inbox} == {"IPM.Schedule.Meeting.Request"}
        # attendees changed: the added one is invited, the removed one gets a cancellation
        await http.patch(f"/users/{org['id']}/events/{ev['id']}", json={"attendees": [
            {"emailAddress": {"address": late["userPrincipalName"]}}, {"emailAddress": {"address": dana}}]})
        [stats] = await ctl.meeting_messages(org["userPrincipalName"])
        assert stats["byRecipient"][late["userPrincipalName"]] == 1 and stats["cancellations"] == 1
        await http.post(f"/users/{org['id']}/events/{ev['id']}/cancel", json={"comment": "Sorry"})
        [stats] = await ctl.meeting_messages(org["userPrincipalName"])
        assert stats["cancellations"] == 3
        series = await _event(http, org["id"], subject="Weekly", attendees=[{"emailAddress": {"address": dana}}],
                              recurrence={"pattern": {"type": "daily", "interval": 1},
                                          "range": {"type": "numbered", "startDate": "2025-03-05",
                                                    "numberOfOccurrences": 3}})
        occ = (await http.get(f"/users/{org['id']}/events/{series['id']}/instances", params={
            "startDateTime": "2025-03-06T00:00:00Z", "endDateTime": "2025-03-07T00:00:00Z"})).json()["value"][0]
        await http.patch(f"/users/{org['id']}/events/{occ['id']}", json={"subject": "Weekly (special)"})
        await http.patch(f"/users/{org['id']}/events/{series['id']}", json={"location": {"displayName": "Lobby"}})
    weekly = next(e for e in await ctl.meeting_messages(org["userPrincipalName"]) if e["subject"].startswith("Weekly"))
    assert (weekly["requests"], weekly["updates"]) == (1, 1 + 2)


# 14 -----------------------------------------------------------------------------------------------


async def test_inbox_holds_meeting_messages_reports_receipts_and_auto_replies(graph_sim) -> None:
    """user-list-messages.md (eventMessageRequest in a message list), message-delta.md; MAPI
    PidTagMessageClass via singleValueExtendedProperties (extended-properties-overview.md)."""
    ctl = graph_sim.control
    alex, blair = await ctl.new_user("Alex"), await ctl.new_user("Blair")
    async with await graph_sim.http(*AGENT) as http:
        auto = await http.patch(f"/users/{alex['id']}/mailboxSettings", json={"automaticRepliesSetting": {
            "status": "alwaysEnabled", "internalReplyMessage": "Out until Monday",
            "externalReplyMessage": "Out until Monday"}})
        assert auto.status_code == 200 and auto.json()["automaticRepliesSetting"]["status"] == "alwaysEnabled"
        await http.post(f"/users/{blair['id']}/sendMail", json={"message": {
            "subject": "Quote", "isReadReceiptRequested": True,
            "toRecipients": [{"emailAddress": {"address": alex["userPrincipalName"]}},
                             {"emailAddress": {"address": "nobody@contoso.example"}}]}})
        [received] = (await http.get(f"/users/{alex['id']}/mailFolders/inbox/messages")).json()["value"]
        await http.patch(f"/users/{alex['id']}/messages/{received['id']}", json={"isRead": True})
        ev = await _event(http, blair["id"], subject="Call", attendees=[
            {"emailAddress": {"address": alex["userPrincipalName"]}}])
        copy = (await http.get(f"/users/{alex['id']}/events")).json()["value"][0]
        assert ev["iCalUId"] == copy["iCalUId"]
        await http.post(f"/users/{alex['id']}/events/{copy['id']}/accept", json={"comment": "ok", "sendResponse": True})
        delta = (await http.get(f"/users/{blair['id']}/mailFolders/inbox/messages/delta", params={
            "$select": "subject", "$expand": f"singleValueExtendedProperties($filter=id eq '{CLASS}')"})).json()
    seen = {m["subject"]: (m["@odata.type"], m["singleValueExtendedProperties"][0]["value"]) for m in delta["value"]}
    assert seen == {
        "Undeliverable: Quote": ("#microsoft.graph.message", "REPORT.IPM.Note.NDR"),
        "Automatic reply: Quote": ("#microsoft.graph.message", "IPM.Note.Rules.OofTemplate.Microsoft"),
        "Read: Quote": ("#microsoft.graph.message", "REPORT.IPM.Note.IPNRN"),
        "Accepted: Call": ("#microsoft.graph.eventMessageResponse", "IPM.Schedule.Meeting.Resp.Pos"),
    }


# 15 -----------------------------------------------------------------------------------------------


async def test_all_day_events_are_midnight_to_midnight_in_any_zone(graph_sim, sim_user) -> None:
    """microsoft-graph-docs#1802 (maintainer: "All day events always return midnight-to-midnight
    regardless of time zone"), #16798."""
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        ev = await _event(http, uid, subject="Offsite", isAllDay=True, start=utc("2025-03-05T00:00:00", PST),
                          end=utc("2025-03-06T00:00:00", PST))
        assert ev["isAllDay"] and ev["originalStartTimeZone"] == PST
        assert ev["start"] == {"dateTime": "2025-03-05T00:00:00.0000000", "timeZone": "UTC"}
        tokyo = (await http.get(f"/users/{uid}/events/{ev['id']}",
                                headers={"Prefer": 'outlook.timezone="Tokyo Standard Time"'})).json()
        assert tokyo["start"] == {"dateTime": "2025-03-05T00:00:00.0000000", "timeZone": "Tokyo Standard Time"}
        assert tokyo["end"]["dateTime"] == "2025-03-06T00:00:00.0000000"
        bad = await http.post(f"/users/{uid}/events", json={"subject": "x", "isAllDay": True,
                                                            "start": utc("2025-03-05T09:00:00", PST),
                                                            "end": utc("2025-03-05T17:00:00", PST)})
        assert bad.status_code == 400


# 16 -----------------------------------------------------------------------------------------------


async def test_every_cldr_windows_zone_is_accepted_and_returned(graph_sim, sim_user) -> None:
    """dateTimeTimeZone: Windows names (the CLDR windowsZones mapping, all of it) and IANA names."""
    names = windows_names()
    assert len(names) > 130 and "Pacific SA Standard Time" in names and "Sri Lanka Standard Time" in names
    uid = sim_user["id"]
    async with await graph_sim.http() as http:
        for name in names:
            ev = await _event(http, uid, start=utc("2025-07-01T10:00:00", name), end=utc("2025-07-01T11:00:00", name))
            assert ev["originalStartTimeZone"] == name
            back = await http.get(f"/users/{uid}/events/{ev['id']}", headers={"Prefer": f'outlook.timezone="{name}"'})
            assert back.json()["start"] == {"dateTime": "2025-07-01T10:00:00.0000000", "timeZone": name}
            await http.delete(f"/users/{uid}/events/{ev['id']}")
        unknown = await http.post(f"/users/{uid}/events", json={"start": utc("2025-07-01T10:00:00", "Mars Standard Time"),
                                                                "end": utc("2025-07-01T11:00:00", "Mars Standard Time")})
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "TimeZoneNotSupportedException"


@pytest.mark.parametrize("name", ["Pacific Standard Time", "pacific standard time", "America/Los_Angeles"])
def test_zone_names_resolve_case_insensitively(name: str) -> None:
    from sandbox.graph.timezones import zone

    assert str(zone(name)) == "America/Los_Angeles"
