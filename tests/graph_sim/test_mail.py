"""Mail through the real msgraph-sdk: folders, drafts, ids, sending, threading, attachments, ext props."""

from __future__ import annotations

import os

import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.messages.item.create_reply.create_reply_post_request_body import (
    CreateReplyPostRequestBody,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import MessageItemRequestBuilder
from msgraph.generated.users.item.messages.item.move.move_post_request_body import MovePostRequestBody
from msgraph.generated.users.item.messages.item.reply.reply_post_request_body import ReplyPostRequestBody
from msgraph.generated.users.item.messages.item.reply_all.reply_all_post_request_body import ReplyAllPostRequestBody
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

from tests.graph_sim.sdk import IMMUTABLE, prefer

PEGA_ID = "String {0a1b2c3d-0000-4000-8000-00000000d3a1} Name PegaId"


def rcpt(addr: str) -> Recipient:
    return Recipient(email_address=EmailAddress(address=addr))


async def test_well_known_folders(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["userPrincipalName"])
    folders = await mb.mail_folders.get()
    names = {f.display_name for f in folders.value}
    assert {"Inbox", "Sent Items", "Drafts", "Deleted Items"} <= names
    for wk in ("inbox", "sentitems", "drafts", "deleteditems"):
        assert (await mb.mail_folders.by_mail_folder_id(wk).get()).id in {f.id for f in folders.value}


async def test_draft_crud_changekey_and_etag(graph_client, graph_sim, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    m = await mb.messages.post(Message(subject="Draft", body=ItemBody(content="hello"),
                                       to_recipients=[rcpt("dana@fabrikam.example")], categories=["Pega"]))
    assert m.is_draft and m.subject == "Draft" and m.categories == ["Pega"]
    assert m.additional_data["@odata.etag"] == f'W/"{m.change_key}"'
    drafts = await mb.mail_folders.by_mail_folder_id("drafts").get()
    assert m.parent_folder_id == drafts.id
    await graph_sim.control.advance_clock(2)  # lastModifiedDateTime has one-second resolution
    m2 = await mb.messages.by_message_id(m.id).patch(Message(subject="Draft v2"))
    assert m2.change_key != m.change_key and m2.last_modified_date_time > m.last_modified_date_time
    assert (await mb.messages.by_message_id(m.id).get()).subject == "Draft v2"
    await mb.messages.by_message_id(m.id).delete()
    deleted = await mb.mail_folders.by_mail_folder_id("deleteditems").messages.get()
    assert [x.subject for x in deleted.value] == ["Draft v2"]


async def test_immutable_ids_survive_moves_default_ids_do_not(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    m = await mb.messages.post(Message(subject="Move me"), request_configuration=prefer(IMMUTABLE))
    default = await mb.messages.by_message_id(m.id).get()
    assert default.id != m.id  # same item, two id formats
    moved = await mb.messages.by_message_id(m.id).move.post(MovePostRequestBody(destination_id="inbox"),
                                                            request_configuration=prefer(IMMUTABLE))
    assert moved.id == m.id
    moved_default = await mb.messages.by_message_id(m.id).get()
    assert moved_default.id != default.id
    with pytest.raises(APIError) as err:
        await mb.messages.by_message_id(default.id).get()
    assert err.value.response_status_code == 404


async def test_send_mail_delivers_to_internal_recipient_and_sent_items(graph_client, graph_sim) -> None:
    a = await graph_sim.control.new_user("Sender")
    b = await graph_sim.control.new_user("Receiver")
    body = SendMailPostRequestBody(message=Message(
        subject="Quarterly pricing", body=ItemBody(content="numbers"),
        to_recipients=[rcpt(b["userPrincipalName"]), rcpt("dana@fabrikam.example")],
        single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=PEGA_ID, value="CASE-1")]),
        save_to_sent_items=True)  # the SDK sends SaveToSentItems=false unless set
    result = await graph_client.users.by_user_id(a["id"]).send_mail.post(body)
    assert result is None  # 202, no body
    sent = await graph_client.users.by_user_id(a["id"]).mail_folders.by_mail_folder_id("sentitems").messages.get()
    inbox = await graph_client.users.by_user_id(b["id"]).mail_folders.by_mail_folder_id("inbox").messages.get()
    assert len(sent.value) == 1 and len(inbox.value) == 1
    s, r = sent.value[0], inbox.value[0]
    assert not s.is_draft and not r.is_draft and r.is_read is False
    assert s.internet_message_id == r.internet_message_id and s.conversation_id == r.conversation_id
    assert r.from_.email_address.address == a["userPrincipalName"]


async def test_draft_then_send_keeps_immutable_id(graph_client, graph_sim) -> None:
    a = await graph_sim.control.new_user()
    b = await graph_sim.control.new_user()
    mb = graph_client.users.by_user_id(a["id"])
    draft = await mb.messages.post(Message(subject="Tracked", to_recipients=[rcpt(b["userPrincipalName"])]),
                                   request_configuration=prefer(IMMUTABLE))
    await mb.messages.by_message_id(draft.id).send.post()
    sent = await mb.messages.by_message_id(draft.id).get(request_configuration=prefer(IMMUTABLE))
    sent_folder = await mb.mail_folders.by_mail_folder_id("sentitems").get()
    assert sent.id == draft.id and not sent.is_draft and sent.parent_folder_id == sent_folder.id
    with pytest.raises(APIError):
        await mb.messages.by_message_id(draft.id).send.post()  # already sent


async def test_reply_threading_and_in_reply_to(graph_client, graph_sim) -> None:
    a = await graph_sim.control.new_user("Alex")
    got = await graph_sim.control.inbound_mail(a["userPrincipalName"], subject="Quarterly pricing",
                                               body="Can you share the figures?",
                                               **{"from": {"address": "dana@fabrikam.example", "name": "Dana"}})
    mb = graph_client.users.by_user_id(a["id"])
    orig = await mb.messages.by_message_id(got["id"]).get()
    draft = await mb.messages.by_message_id(orig.id).create_reply.post(
        CreateReplyPostRequestBody(comment="Attached."))
    assert draft.is_draft and draft.subject == "RE: Quarterly pricing"
    assert draft.conversation_id == orig.conversation_id
    assert [r.email_address.address for r in draft.to_recipients] == ["dana@fabrikam.example"]
    q = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(
        select=["internetMessageHeaders", "subject"])
    full = await mb.messages.by_message_id(draft.id).get(request_configuration=prefer(query_parameters=q))
    headers = {h.name: h.value for h in full.internet_message_headers}
    assert headers["In-Reply-To"] == orig.internet_message_id
    with pytest.raises(APIError) as err:
        await mb.messages.by_message_id(orig.id).create_reply.post(CreateReplyPostRequestBody(
            comment="x", message=Message(body=ItemBody(content="y"))))
    assert err.value.response_status_code == 400
    await mb.messages.by_message_id(orig.id).reply.post(ReplyPostRequestBody(comment="Sent straight away"))
    sent = await mb.mail_folders.by_mail_folder_id("sentitems").messages.get()
    assert [m.conversation_id for m in sent.value] == [orig.conversation_id]


async def test_reply_all_between_internal_users(graph_client, graph_sim) -> None:
    a, b, c = [await graph_sim.control.new_user(n) for n in ("A", "B", "C")]
    await graph_client.users.by_user_id(a["id"]).send_mail.post(SendMailPostRequestBody(message=Message(
        subject="Plan", to_recipients=[rcpt(b["userPrincipalName"])], cc_recipients=[rcpt(c["userPrincipalName"])]),
        save_to_sent_items=True))
    b_inbox = await graph_client.users.by_user_id(b["id"]).mail_folders.by_mail_folder_id("inbox").messages.get()
    got = b_inbox.value[0]
    await graph_client.users.by_user_id(b["id"]).messages.by_message_id(got.id).reply_all.post(
        ReplyAllPostRequestBody(comment="Agreed"))
    for user in (a, c):
        inbox = await graph_client.users.by_user_id(user["id"]).mail_folders.by_mail_folder_id("inbox").messages.get()
        replies = [m for m in inbox.value if m.subject == "RE: Plan"]
        assert len(replies) == 1 and replies[0].conversation_id == got.conversation_id


async def test_small_and_large_attachments(graph_client, graph_sim, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    m = await mb.messages.post(Message(subject="With files"))
    small = await mb.messages.by_message_id(m.id).attachments.post(FileAttachment(
        odata_type="#microsoft.graph.fileAttachment", name="a.txt", content_type="text/plain",
        content_bytes=b"hello"))
    http = await graph_sim.http()  # the SDK has no builder for attachments/{id}/$value
    async with http:
        raw = await http.get(f"/users/{sim_user['id']}/messages/{m.id}/attachments/{small.id}/$value")
    assert raw.content == b"hello"
    too_big = FileAttachment(odata_type="#microsoft.graph.fileAttachment", name="big.bin",
                             content_bytes=os.urandom(3 * 1024 * 1024 + 10))
    with pytest.raises(APIError) as err:
        await mb.messages.by_message_id(m.id).attachments.post(too_big)
    assert err.value.response_status_code == 413
    # Upload session for a 5 MB file in two chunks, PUT without Authorization.
    payload = os.urandom(5 * 1024 * 1024)
    http = await graph_sim.http()
    async with http:
        sess = (await http.post(f"/users/{sim_user['id']}/messages/{m.id}/attachments/createUploadSession", json={
            "AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": len(payload)}})).json()
    import httpx

    async with httpx.AsyncClient(timeout=30) as plain:
        half = 3 * 1024 * 1024
        r1 = await plain.put(sess["uploadUrl"], content=payload[:half],
                             headers={"Content-Range": f"bytes 0-{half - 1}/{len(payload)}"})
        assert r1.status_code == 200 and r1.json()["nextExpectedRanges"] == [f"{half}"]
        r2 = await plain.put(sess["uploadUrl"], content=payload[half:],
                             headers={"Content-Range": f"bytes {half}-{len(payload) - 1}/{len(payload)}"})
        assert r2.status_code == 201 and "attachments" in r2.headers["Location"]
    atts = await mb.messages.by_message_id(m.id).attachments.get()
    assert sorted(a.name for a in atts.value) == ["a.txt", "big.bin"]
    big = next(a for a in atts.value if a.name == "big.bin")
    assert big.size == len(payload) and big.content_bytes == payload
    mime = await mb.messages.by_message_id(m.id).content.get()
    assert b"Subject: With files" in mime and b"big.bin" in mime


async def test_extended_properties_expand_and_filter(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    tagged = await mb.messages.post(Message(subject="tagged", single_value_extended_properties=[
        SingleValueLegacyExtendedProperty(id=PEGA_ID, value="CASE-42")]))
    await mb.messages.post(Message(subject="untagged"))
    assert tagged.single_value_extended_properties is None  # create response omits it
    q = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(
        expand=[f"singleValueExtendedProperties($filter=id eq '{PEGA_ID}')"])
    got = await mb.messages.by_message_id(tagged.id).get(request_configuration=prefer(query_parameters=q))
    assert [(p.id, p.value) for p in got.single_value_extended_properties] == [(PEGA_ID, "CASE-42")]
    # Name is case-sensitive, value is not; GUID/type are not.
    flt = (f"singleValueExtendedProperties/Any(ep: ep/id eq '{PEGA_ID.replace('String', 'string')}' "
           "and ep/value eq 'case-42')")
    lq = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(filter=flt)
    found = await mb.messages.get(request_configuration=prefer(query_parameters=lq))
    assert [m.subject for m in found.value] == ["tagged"]
    assert found.value[0].single_value_extended_properties is None
    wrong_case = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{PEGA_ID.replace('PegaId', 'pegaid')}' "
               "and ep/value eq 'CASE-42')")
    assert (await mb.messages.get(request_configuration=prefer(query_parameters=wrong_case))).value == []


async def test_filter_by_internet_message_id_and_touch(graph_client, graph_sim, sim_user) -> None:
    got = await graph_sim.control.inbound_mail(sim_user["userPrincipalName"], subject="hi", body="x",
                                               internetMessageId="<abc-1@fabrikam.example>")
    mb = graph_client.users.by_user_id(sim_user["id"])
    lq = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter="internetMessageId eq '<abc-1@fabrikam.example>'")
    found = await mb.messages.get(request_configuration=prefer(query_parameters=lq))
    assert [m.id for m in found.value] == [got["id"]]
    before = found.value[0]
    touched = await graph_sim.control.touch(sim_user["userPrincipalName"], got["immutableId"])
    after = await mb.messages.by_message_id(got["id"]).get()
    assert after.change_key == touched["changeKey"] != before.change_key
    assert after.subject == before.subject and after.body.content == before.body.content


async def test_list_paging_with_top_and_next_link(graph_client, graph_sim, sim_user) -> None:
    for i in range(5):
        await graph_sim.control.inbound_mail(sim_user["userPrincipalName"], subject=f"m{i}", body="x")
    mb = graph_client.users.by_user_id(sim_user["id"])
    lq = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=2, select=["subject"])
    page = await mb.messages.get(request_configuration=prefer(query_parameters=lq))
    seen = [m.subject for m in page.value]
    while page.odata_next_link:
        page = await mb.messages.with_url(page.odata_next_link).get()
        seen += [m.subject for m in page.value]
    assert sorted(seen) == [f"m{i}" for i in range(5)]


async def test_forward_keeps_attachments_and_delivers(graph_client, graph_sim) -> None:
    from msgraph.generated.users.item.messages.item.forward.forward_post_request_body import ForwardPostRequestBody

    a = await graph_sim.control.new_user()
    b = await graph_sim.control.new_user()
    got = await graph_sim.control.inbound_mail(a["userPrincipalName"], subject="Contract", body="see file",
                                               attachments=[{"name": "c.pdf", "contentType": "application/pdf",
                                                             "contentBytes": "JVBERi0="}])
    await graph_client.users.by_user_id(a["id"]).messages.by_message_id(got["id"]).forward.post(
        ForwardPostRequestBody(comment="FYI", to_recipients=[rcpt(b["userPrincipalName"])]))
    inbox = await graph_client.users.by_user_id(b["id"]).mail_folders.by_mail_folder_id("inbox").messages.get()
    [fw] = inbox.value
    assert fw.subject == "FW: Contract" and fw.has_attachments


async def test_prefer_text_body(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    m = await mb.messages.post(Message(subject="html", body=ItemBody(
        content_type=BodyType.Html, content="<html><body><p>Hello <b>Dana</b></p><p>Line&nbsp;2</p></body></html>")))
    plain = await mb.messages.by_message_id(m.id).get(
        request_configuration=prefer('outlook.body-content-type="text"'))
    assert plain.body.content_type == BodyType.Text and plain.body.content == "Hello Dana\r\nLine 2\r\n"
    assert (await mb.messages.by_message_id(m.id).get()).body.content_type == BodyType.Html
