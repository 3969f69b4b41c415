"""Delta queries: message and contact delta per folder, paging, @removed, replays, expired tokens."""

from __future__ import annotations

import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.message import Message
from msgraph.generated.users.item.contact_folders.item.contacts.delta.delta_request_builder import (
    DeltaRequestBuilder as ContactDelta,
)
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import (
    DeltaRequestBuilder as MessageDelta,
)
from msgraph.generated.users.item.messages.item.move.move_post_request_body import MovePostRequestBody

from tests.graph_sim.sdk import IMMUTABLE, prefer


async def _round(builder, first_page, *prefers: str) -> tuple[list, str, int]:
    """Follow nextLinks to the end of the round (Prefer headers must be sent on every request)."""
    page, items, pages = first_page, list(first_page.value), 1
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get(request_configuration=prefer(*prefers))
        items += page.value
        pages += 1
    return items, page.odata_delta_link, pages


async def test_message_delta_pages_updates_removals(graph_client, graph_sim, sim_user) -> None:
    upn = sim_user["userPrincipalName"]
    ids = [(await graph_sim.control.inbound_mail(upn, subject=f"m{i}", body="x"))["immutableId"] for i in range(5)]
    mb = graph_client.users.by_user_id(sim_user["id"])
    inbox = mb.mail_folders.by_mail_folder_id("inbox")
    q = MessageDelta.DeltaRequestBuilderGetQueryParameters(select=["subject", "isRead"])
    first = await inbox.messages.delta.get(request_configuration=prefer("odata.maxpagesize=2", IMMUTABLE,
                                                                        query_parameters=q))
    items, link, pages = await _round(inbox.messages.delta, first, IMMUTABLE)
    assert pages == 3 and sorted(m.id for m in items) == sorted(ids)
    assert all(m.subject and m.body is None for m in items)  # $select honoured, id always there
    assert all(m.additional_data["@odata.etag"].startswith('W/"') for m in items)
    assert "$deltatoken=" in link and "delta" in link
    # changes: one read, one deleted (to Deleted Items), one moved out, one new
    await mb.messages.by_message_id(ids[0]).patch(Message(is_read=True))
    await mb.messages.by_message_id(ids[1]).delete()
    await mb.messages.by_message_id(ids[2]).move.post(MovePostRequestBody(destination_id="archive"))
    new = (await graph_sim.control.inbound_mail(upn, subject="m5", body="x"))["immutableId"]
    nxt = await inbox.messages.delta.with_url(link).get(request_configuration=prefer(IMMUTABLE))
    removed = {m.id for m in nxt.value if m.additional_data.get("@removed") == {"reason": "deleted"}}
    changed = {m.id: m for m in nxt.value if "@removed" not in m.additional_data}
    assert removed == {ids[1], ids[2]}
    assert set(changed) == {ids[0], new} and changed[ids[0]].is_read is True
    assert changed[new].subject == "m5" and changed[new].body is None  # the query travels in the token
    quiet = await inbox.messages.delta.with_url(nxt.odata_delta_link).get()
    assert quiet.value == [] and quiet.odata_delta_link


async def test_delta_and_delta_parens_both_work_and_default_page_is_10(graph_sim, sim_user) -> None:
    for i in range(12):
        await graph_sim.control.inbound_mail(sim_user["userPrincipalName"], subject=f"n{i}", body="x")
    http = await graph_sim.http()
    async with http:
        for path in ("delta", "delta()"):
            r = await http.get(f"/users/{sim_user['id']}/mailFolders('inbox')/messages/{path}")
            assert r.status_code == 200
            body = r.json()
            assert len(body["value"]) == 10 and "@odata.nextLink" in body
            assert body["@odata.context"].endswith("$metadata#Collection(message)")
            r2 = await http.get(body["@odata.nextLink"])
            assert len(r2.json()["value"]) == 2 and "@odata.deltaLink" in r2.json()


async def test_replay_and_expired_tokens(graph_client, graph_sim, sim_user) -> None:
    upn = sim_user["userPrincipalName"]
    mb = graph_client.users.by_user_id(sim_user["id"])
    inbox = mb.mail_folders.by_mail_folder_id("inbox")
    await graph_sim.control.inbound_mail(upn, subject="a", body="x")
    _, link1, _ = await _round(inbox.messages.delta, await inbox.messages.delta.get())
    await graph_sim.control.inbound_mail(upn, subject="b", body="x")
    r2 = await inbox.messages.delta.with_url(link1).get()
    assert [m.subject for m in r2.value] == ["b"]
    await graph_sim.control.replay_next_delta(upn)
    r3 = await inbox.messages.delta.with_url(r2.odata_delta_link).get()
    assert [m.subject for m in r3.value] == ["b"]  # the previous round is replayed
    await graph_sim.control.expire_delta_tokens(upn)
    with pytest.raises(APIError) as err:
        await inbox.messages.delta.with_url(r3.odata_delta_link).get()
    assert err.value.response_status_code == 410
    assert err.value.error.code == "SyncStateNotFound"
    fresh, _, _ = await _round(inbox.messages.delta, await inbox.messages.delta.get())
    assert sorted(m.subject for m in fresh) == ["a", "b"]  # a full resync works


async def test_contact_delta_per_folder_with_select(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    a = await mb.contacts.post(Contact(given_name="A", company_name="Fabrikam"))
    b = await mb.contacts.post(Contact(given_name="B"))
    default_folder = await mb.contact_folders.by_contact_folder_id("contacts").get()
    folder = mb.contact_folders.by_contact_folder_id(default_folder.id)
    q = ContactDelta.DeltaRequestBuilderGetQueryParameters(select=["givenName"])
    items, link, pages = await _round(folder.contacts.delta, await folder.contacts.delta.get(
        request_configuration=prefer("odata.maxpagesize=1", query_parameters=q)))
    assert pages == 2 and sorted(c.given_name for c in items) == ["A", "B"]
    assert all(c.company_name is None for c in items)
    await mb.contacts.by_contact_id(b.id).delete()
    await mb.contacts.by_contact_id(a.id).patch(Contact(company_name="Contoso"))
    nxt = await folder.contacts.delta.with_url(link).get()
    assert [(c.id, c.additional_data.get("@removed")) for c in nxt.value] == [
        (b.id, {"reason": "deleted"}), (a.id, None)]


async def test_change_type_option_limits_a_round(graph_sim, sim_user) -> None:
    upn = sim_user["userPrincipalName"]
    old = await graph_sim.control.inbound_mail(upn, subject="old", body="x")
    http = await graph_sim.http()
    async with http:
        first = (await http.get(f"/users/{upn}/mailFolders/inbox/messages/delta",
                                params={"changeType": "created"})).json()
        await graph_sim.control.touch(upn, old["immutableId"])
        await graph_sim.control.inbound_mail(upn, subject="new", body="x")
        nxt = (await http.get(first["@odata.deltaLink"])).json()
    assert [m["subject"] for m in nxt["value"]] == ["new"]  # the update is not a creation
