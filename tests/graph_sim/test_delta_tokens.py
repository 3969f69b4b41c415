"""Delta tokens carry the first call's query, are positions (replayable), and message delta's only $filter.

Each test here failed against the simulator before the fix it covers: $expand dropped after the first
page, a nextLink that advanced on every GET, message delta ignoring $filter, calendarView delta taking $search.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import (
    DeltaRequestBuilder as MessageDelta,
)

from tests.graph_sim.sdk import IMMUTABLE, prefer

PRIVATE = "Integer 0x0036"
SENSITIVITY_EXPAND = f"singleValueExtendedProperties($filter=id eq '{PRIVATE}')"
EXT = "singleValueExtendedProperties"


async def _pages(http: httpx.AsyncClient, first: httpx.Response, *, prefer_: str | None = None
                 ) -> tuple[list[list[dict[str, Any]]], str]:
    """Every page of a round (raw JSON), following nextLinks verbatim; returns (pages, deltaLink)."""
    assert first.status_code == 200, first.text
    body = first.json()
    pages = [body["value"]]
    headers = {"Prefer": prefer_} if prefer_ else {}
    while "@odata.nextLink" in body:
        r = await http.get(body["@odata.nextLink"], headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["value"])
    return pages, body["@odata.deltaLink"]


async def test_message_delta_keeps_select_and_filtered_expand_on_every_page_and_round(
        graph_client, graph_sim, sim_user) -> None:
    """The SDK follows nextLink/deltaLink URLs verbatim (with_url): the shape must come from the token."""
    upn = sim_user["userPrincipalName"]
    private = (await graph_sim.control.inbound_mail(upn, subject="private", body="x",
                                                    singleValueExtendedProperties={PRIVATE: "2"}))["immutableId"]
    for i in range(3):
        await graph_sim.control.inbound_mail(upn, subject=f"plain{i}", body="x")
    inbox = graph_client.users.by_user_id(sim_user["id"]).mail_folders.by_mail_folder_id("inbox")
    q = MessageDelta.DeltaRequestBuilderGetQueryParameters(select=["subject"], expand=[SENSITIVITY_EXPAND])
    page = await inbox.messages.delta.get(request_configuration=prefer("odata.maxpagesize=1", IMMUTABLE,
                                                                       query_parameters=q))
    seen: list[Message] = list(page.value)
    while page.odata_next_link:
        assert "expand" not in page.odata_next_link.lower()  # opaque: the query is in the token, not the URL
        page = await inbox.messages.delta.with_url(page.odata_next_link).get(request_configuration=prefer(IMMUTABLE))
        seen += page.value
    assert len(seen) == 4
    for m in seen:
        assert m.subject and m.body is None  # $select on every page
        if m.id == private:
            assert [(p.id, p.value) for p in m.single_value_extended_properties or []] == [(PRIVATE, "2")]
        else:
            assert m.single_value_extended_properties is None  # absent, not []: the key is omitted
    # the next round (deltaLink) has the same shape, for updated and new items alike
    await graph_sim.control.touch(upn, private)
    await graph_sim.control.inbound_mail(upn, subject="later", body="x")
    nxt = await inbox.messages.delta.with_url(page.odata_delta_link).get(request_configuration=prefer(IMMUTABLE))
    got = {m.subject: m for m in nxt.value}
    assert set(got) == {"private", "later"}
    props = got["private"].single_value_extended_properties or []
    assert [(p.id, p.value) for p in props] == [(PRIVATE, "2")]
    assert got["later"].single_value_extended_properties is None and got["later"].body is None


async def test_contact_delta_refuses_expand_which_its_reference_does_not_document(graph_sim, sim_user) -> None:
    """contact: delta (v1.0) documents $select only. The engine must not depend on $expand there (issue
    #11 item 9), so the simulator refuses it the way Graph refuses unsupported delta options."""
    uid = sim_user["id"]
    http = await graph_sim.http()
    async with http:
        assert (await http.post(f"/users/{uid}/contacts", json={"givenName": "Open1"})).status_code == 201
        refused = await http.get(f"/users/{uid}/contactFolders/contacts/contacts/delta",
                                 params={"$select": "givenName", "$expand": SENSITIVITY_EXPAND})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "ErrorInvalidUrlQuery"
        first = await http.get(f"/users/{uid}/contactFolders/contacts/contacts/delta", params={"$select": "givenName"},
                               headers={"Prefer": "odata.maxpagesize=1"})
        pages, _ = await _pages(http, first)
    items = [c for p in pages for c in p]
    assert [c["givenName"] for c in items] == ["Open1"]
    assert all("surname" not in c and EXT not in c for c in items)


async def test_a_next_link_fetched_twice_returns_the_same_page(graph_sim, sim_user) -> None:
    """A client that crashed after reading a page replays its nextLink and must get that page again."""
    upn = sim_user["userPrincipalName"]
    await graph_sim.control.inbound_mail(upn, subject="m", body="x", count=5)
    http = await graph_sim.http()
    async with http:
        first = (await http.get(f"/users/{upn}/mailFolders/inbox/messages/delta", params={"$select": "subject"},
                                headers={"Prefer": "odata.maxpagesize=2"})).json()
        link = first["@odata.nextLink"]
        a, b = (await http.get(link)).json(), (await http.get(link)).json()
        assert [m["id"] for m in a["value"]] == [m["id"] for m in b["value"]] and len(a["value"]) == 2
        assert a["@odata.nextLink"] == b["@odata.nextLink"]
        last_link = a["@odata.nextLink"]
        c, d = (await http.get(last_link)).json(), (await http.get(last_link)).json()
    assert [m["id"] for m in c["value"]] == [m["id"] for m in d["value"]] and len(c["value"]) == 1
    assert c["@odata.deltaLink"] == d["@odata.deltaLink"]  # the last page always hands out the same deltaLink
    ids = [m["id"] for m in first["value"] + a["value"] + c["value"]]
    assert len(ids) == len(set(ids)) == 5  # the replays neither skipped nor duplicated anything


async def test_a_delta_link_fetched_twice_returns_the_changes_since_it(graph_client, graph_sim, sim_user) -> None:
    upn = sim_user["userPrincipalName"]
    old = (await graph_sim.control.inbound_mail(upn, subject="old", body="x"))["immutableId"]
    inbox = graph_client.users.by_user_id(sim_user["id"]).mail_folders.by_mail_folder_id("inbox")
    first = await inbox.messages.delta.get(request_configuration=prefer(IMMUTABLE))
    link = first.odata_delta_link
    await graph_client.users.by_user_id(sim_user["id"]).messages.by_message_id(old).patch(Message(is_read=True))
    await graph_sim.control.inbound_mail(upn, subject="new", body="x")
    r1 = await inbox.messages.delta.with_url(link).get(request_configuration=prefer(IMMUTABLE))
    r2 = await inbox.messages.delta.with_url(link).get(request_configuration=prefer(IMMUTABLE))
    assert sorted(m.subject for m in r1.value) == sorted(m.subject for m in r2.value) == ["new", "old"]
    await graph_sim.control.inbound_mail(upn, subject="newer", body="x")
    r3 = await inbox.messages.delta.with_url(link).get(request_configuration=prefer(IMMUTABLE))
    assert sorted(m.subject for m in r3.value) == ["new", "newer", "old"]  # still "since that token"
    # each fetch's own deltaLink carries on from where that fetch left off
    r4 = await inbox.messages.delta.with_url(r1.odata_delta_link).get(request_configuration=prefer(IMMUTABLE))
    assert [m.subject for m in r4.value] == ["newer"]


async def test_message_delta_honours_received_date_time_ge_and_gt(graph_client, graph_sim, sim_user) -> None:
    upn = sim_user["userPrincipalName"]
    for subject, received in (("before", "2025-03-09T23:59:59Z"), ("edge", "2025-03-10T00:00:00Z"),
                              ("after", "2025-03-11T08:00:00Z")):
        await graph_sim.control.inbound_mail(upn, subject=subject, body="x", receivedDateTime=received)
    inbox = graph_client.users.by_user_id(sim_user["id"]).mail_folders.by_mail_folder_id("inbox")
    found = {}
    for op in ("ge", "gt"):
        q = MessageDelta.DeltaRequestBuilderGetQueryParameters(filter=f"receivedDateTime {op} 2025-03-10T00:00:00Z",
                                                              select=["subject"])
        page = await inbox.messages.delta.get(request_configuration=prefer("odata.maxpagesize=1",
                                                                           query_parameters=q))
        subjects = [m.subject for m in page.value]
        while page.odata_next_link:
            page = await inbox.messages.delta.with_url(page.odata_next_link).get()
            subjects += [m.subject for m in page.value]
        found[op] = (sorted(subjects), page.odata_delta_link)
    assert found["ge"][0] == ["after", "edge"] and found["gt"][0] == ["after"]
    # later rounds keep the filter: an old message arriving now (backdated) is out of scope, a recent one is in
    await graph_sim.control.inbound_mail(upn, subject="backdated", body="x", receivedDateTime="2025-01-01T00:00:00Z")
    await graph_sim.control.inbound_mail(upn, subject="fresh", body="x")
    nxt = await inbox.messages.delta.with_url(found["ge"][1]).get()
    assert [m.subject for m in nxt.value] == ["fresh"]


@pytest.mark.parametrize("flt", [
    "subject eq 'x'",
    "receivedDateTime lt 2025-03-10T00:00:00Z",
    "receivedDateTime ge 2025-03-10T00:00:00Z and isRead eq false",
    "lastModifiedDateTime ge 2025-03-10T00:00:00Z",
    "receivedDateTime ge 'yesterday'",
    "receivedDateTime ge",
])
async def test_message_delta_rejects_any_other_filter_with_graph_400(graph_sim, sim_user, flt: str) -> None:
    http = await graph_sim.http()
    async with http:
        r = await http.get(f"/users/{sim_user['id']}/mailFolders/inbox/messages/delta", params={"$filter": flt})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "ErrorInvalidUrlQuery"
    assert "only a value of 'receivedDateTime ge value' is supported" in err["message"]
    assert err["innerError"]["request-id"] == r.headers["request-id"]


async def test_message_delta_filter_error_through_the_sdk(graph_client, sim_user) -> None:
    inbox = graph_client.users.by_user_id(sim_user["id"]).mail_folders.by_mail_folder_id("inbox")
    q = MessageDelta.DeltaRequestBuilderGetQueryParameters(filter="isRead eq false")
    with pytest.raises(ODataError) as err:
        await inbox.messages.delta.get(request_configuration=prefer(query_parameters=q))
    assert err.value.response_status_code == 400
    assert err.value.error is not None and err.value.error.code == "ErrorInvalidUrlQuery"


async def test_filtered_message_delta_returns_at_most_5000(graph_sim, sim_user) -> None:
    upn = sim_user["userPrincipalName"]
    await graph_sim.control.inbound_mail(upn, subject="oldest", body="x", receivedDateTime="2025-04-01T00:00:00Z")
    await graph_sim.control.inbound_mail(upn, subject="bulk", body="x", receivedDateTime="2025-05-01T00:00:00Z",
                                         count=5000)
    http = await graph_sim.http()
    async with http:
        first = await http.get(f"/users/{upn}/mailFolders/inbox/messages/delta",
                               params={"$select": "subject", "$filter": "receivedDateTime ge 2025-01-01T00:00:00Z"},
                               headers={"Prefer": "odata.maxpagesize=1000"})
        pages, link = await _pages(http, first)
        subjects = [m["subject"] for p in pages for m in p]
        assert len(subjects) == 5000 and "oldest" not in subjects  # the most recently received 5,000
        await graph_sim.control.inbound_mail(upn, subject="fresh", body="x")
        nxt = (await http.get(link)).json()
    assert [m.get("subject") for m in nxt["value"]] == ["fresh"]  # the cut does not turn into removals


@pytest.mark.parametrize("option,value", [("$select", "subject"), ("$expand", SENSITIVITY_EXPAND),
                                          ("$filter", "subject eq 'x'"), ("$orderby", "start/dateTime"),
                                          ("$search", "\"x\"")])
async def test_calendar_view_delta_rejects_query_options(graph_sim, sim_user, option: str, value: str) -> None:
    http = await graph_sim.http()
    async with http:
        r = await http.get(f"/users/{sim_user['id']}/calendarView/delta",
                           params={"startDateTime": "2025-03-01T00:00:00Z", "endDateTime": "2025-04-01T00:00:00Z",
                                   option: value})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "ErrorInvalidUrlQuery" and option in err["message"]
