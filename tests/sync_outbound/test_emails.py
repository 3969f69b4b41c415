"""Emails: send as the rep (draft-then-send, Sent Items id linked back), reply/reply-all in the
original thread, attachments inline and through upload sessions, bodies stored in a blob."""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

import pytest

from shared.storage.links import Link

pytestmark = pytest.mark.parametrize("backend", ["graph", "ews"])


async def pega_email(pega_records, subject: str = "Pricing") -> str:
    m = pega_records.m
    case = await pega_records.client.create_case(m.case_types.email, {m.email.subject: subject})
    return case.id


def send_body(rep, pega_id, **extra):
    body = {"pegaId": pega_id, "operator": rep.operator, "subject": "Quarterly pricing",
            "body": {"contentType": "html", "content": "<p>Hi Dana, figures attached.</p>"},
            "to": [{"email": "dana@fabrikam.example", "name": "Dana"}], "changedAt": "2026-11-20T10:00:00Z"}
    body.update(extra)
    return body


async def message(graph_http, upn, message_id):
    """A message as Graph answers it (the Graph-only scenarios of other suites)."""
    r = await graph_http.get(f"/users/{upn}/messages/{message_id}")
    r.raise_for_status()
    return r.json()


async def folder_messages(graph_http, upn, folder):
    r = await graph_http.get(f"/users/{upn}/mailFolders/{folder}/messages", params={"$top": "50"})
    r.raise_for_status()
    return r.json()["value"]


async def test_send_goes_out_from_the_rep_and_the_sent_item_is_linked(api, rep, pega_records, outlook, state):
    colleague = await outlook.new_user()
    pega_id = await pega_email(pega_records)
    op = await api.run("POST", "pega/v1/emails", send_body(rep, pega_id, cc=[{"email": colleague}]))
    sent = await outlook.message(rep.upn, op["exchangeId"])
    assert sent.is_draft is False and sent.subject == "Quarterly pricing"
    assert sent.sender == rep.upn
    assert [i for i, _ in await outlook.folder(rep.upn, "sentitems")] == [op["exchangeId"]]
    assert await outlook.folder(rep.upn, "drafts") == []
    assert [subject for _, subject in await outlook.folder(colleague, "inbox")] == ["Quarterly pricing"]  # once
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.graph_id == op["exchangeId"] and link.graph_change_key == sent.change_key
    case = await pega_records.client.get_case(pega_id)
    assert case.content[pega_records.m.email.external_id] == op["exchangeId"]


async def test_reply_and_reply_all_stay_in_the_thread(api, rep, pega_records, outlook, state):
    colleague = await outlook.new_user()
    original = await outlook.receive(rep.upn, subject="Quarterly pricing", body="Can you send the figures?",
                                     to=[rep.upn, colleague], cc=["lee@northwind.example"])
    original_pega = await pega_email(pega_records, "Quarterly pricing")  # as the inbound path would have linked it
    await state.links.create(Link(mailbox=rep.upn, kind="email", graph_id=original.id, pega_id=original_pega))
    reply_pega = await pega_email(pega_records, "RE: Quarterly pricing")
    op = await api.run("POST", f"pega/v1/emails/{quote(original_pega, safe='')}/reply",
                       {"pegaId": reply_pega, "operator": rep.operator, "changedAt": "2026-11-20T10:05:00Z",
                        "body": {"contentType": "text", "content": "Figures <attached>.\nAlex"},
                        "cc": [{"email": "finance@fabrikam.example"}]})
    reply = await outlook.message(rep.upn, op["exchangeId"])
    content = reply.body_html
    assert "Figures &lt;attached&gt;.<br>Alex" in content  # plain text stays plain text
    assert content.index("Figures") < content.index("Can you send the figures?")  # above the quoted thread
    assert reply.conversation_id == original.conversation_id
    assert reply.subject.startswith("RE:")
    assert reply.to == ["dana@fabrikam.example"]
    assert reply.cc == ["finance@fabrikam.example"]
    assert reply.in_reply_to == original.internet_message_id

    all_pega = await pega_email(pega_records, "RE: Quarterly pricing (all)")
    op2 = await api.run("POST", f"pega/v1/emails/{quote(original_pega, safe='')}/reply-all",
                        {"pegaId": all_pega, "operator": rep.operator, "changedAt": "2026-11-20T10:06:00Z",
                         "body": {"contentType": "text", "content": "Adding everyone."}})
    reply_all = await outlook.message(rep.upn, op2["exchangeId"])
    assert reply_all.conversation_id == original.conversation_id
    assert set(reply_all.to) == {"dana@fabrikam.example", colleague}
    assert set(reply_all.cc) == {"lee@northwind.example"}
    assert rep.upn not in {*reply_all.to, *reply_all.cc}
    # the colleague got the reply-all in the same thread
    assert any(subject.startswith("RE:") for _, subject in await outlook.folder(colleague, "inbox"))


async def test_reply_to_a_message_sent_from_pega(api, rep, pega_records, outlook):
    first = await pega_email(pega_records)
    op = await api.run("POST", "pega/v1/emails", send_body(rep, first))
    follow_up = await pega_email(pega_records)
    op2 = await api.run("POST", f"pega/v1/emails/{quote(first, safe='')}/reply",
                        {"pegaId": follow_up, "operator": rep.operator, "changedAt": "2026-11-20T10:09:00Z",
                         "body": {"contentType": "text", "content": "Following up."}})
    a = await outlook.message(rep.upn, op["exchangeId"])
    b = await outlook.message(rep.upn, op2["exchangeId"])
    assert a.conversation_id == b.conversation_id
    assert b.to == ["dana@fabrikam.example"]


async def test_attachments_inline_and_by_upload_session_and_the_body_goes_through_a_blob(
        api, rep, pega_records, outlook, azurite_conn, state):
    small = os.urandom(200 * 1024)
    large = os.urandom(4 * 1024 * 1024 + 123)  # > 3 MB: createUploadSession + chunks
    pega_id = await pega_email(pega_records)
    body = send_body(rep, pega_id, attachments=[
        {"name": "figures.xlsx", "contentType": "application/octet-stream", "contentBytes": base64.b64encode(small).decode()},
        {"name": "deck.pdf", "contentType": "application/pdf", "contentBytes": base64.b64encode(large).decode()}])
    op_id = await api.submit("POST", "pega/v1/emails", body)
    stored = await state.operations.get(op_id)
    assert "$blob" in stored.payload["body"]  # 5.6 MB of JSON does not fit a table entity
    op = await api.wait(op_id, within=60)
    assert op["status"] == "succeeded", op
    got = (await outlook.message(rep.upn, op["exchangeId"])).attachments
    assert got == {"figures.xlsx": small, "deck.pdf": large}
    # the payload blob is deleted once the operation succeeded
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient.from_connection_string(azurite_conn, "outbound-payloads") as c:
        names = [b.name async for b in c.list_blobs()]
    assert f"{op_id}.json" not in names
