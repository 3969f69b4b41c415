"""Pega → Exchange for ON-PREMISES reps (backend ews): the same contract, host, queue worker and
executors; the writes land in the EWS simulator, read back with the real exchangelib as Outlook."""

from __future__ import annotations

import base64
from urllib.parse import quote

from shared.storage.links import Link
from tests.sync_outbound.conftest import b64
from tests.sync_outbound.test_appointments import create_body, pega_appointment
from tests.sync_outbound.test_contacts import contact_body
from tests.sync_outbound.test_emails import pega_email, send_body


def _sent(ews_sim, upn):
    return ews_sim.control("GET", "sent", mailbox=upn)["value"]


async def test_appointment_create_update_cancel_with_invitations(api, onprem_rep, pega_records, ews_sim, state):
    pega_id = await pega_appointment(pega_records)
    op = await api.run("POST", "pega/v1/appointments", create_body(onprem_rep, pega_id))
    account = ews_sim.account(onprem_rep.upn)
    item = account.calendar.get(id=op["exchangeId"])
    assert item.subject == "Pricing review with Fabrikam" and item.pega_id == pega_id
    assert item.start.isoformat().startswith("2026-12-01T08:00:00")  # 09:00 Berlin
    assert [a.mailbox.email_address for a in item.required_attendees] == ["dana@fabrikam.example"]
    assert [s["kind"] for s in _sent(ews_sim, onprem_rep.upn)] == ["MeetingRequest"]
    link = await state.links.by_pega_id(onprem_rep.upn, pega_id)
    assert link is not None and link.graph_id == item.id and link.graph_change_key == item.changekey
    # the same request again (another idempotency key) finds the stamped event: still one
    await api.run("POST", "pega/v1/appointments", create_body(onprem_rep, pega_id))
    assert len(list(account.calendar.all())) == 1

    path = f"pega/v1/appointments/{quote(pega_id, safe='')}"
    await api.run("PATCH", path, {"operator": onprem_rep.operator, "subject": "Pricing review (moved)",
                                  "changedAt": "2026-11-21T10:00:00Z"})
    assert account.calendar.get(id=item.id).subject == "Pricing review (moved)"

    op = await api.run("POST", f"{path}/cancel", {"operator": onprem_rep.operator, "comment": "Sorry",
                                                  "changedAt": "2026-11-22T10:00:00Z"})
    assert op["exchangeId"] == item.id
    assert (await state.links.by_pega_id(onprem_rep.upn, pega_id)).state == "closed"
    assert list(account.calendar.all()) == []
    assert [s["kind"] for s in _sent(ews_sim, onprem_rep.upn)][-1] == "MeetingCancellation"


async def test_send_and_reply_in_thread(api, onprem_rep, pega_records, ews_sim, state):
    pega_id = await pega_email(pega_records)
    op = await api.run("POST", "pega/v1/emails", send_body(onprem_rep, pega_id, attachments=[
        {"name": "offer.txt", "contentType": "text/plain", "contentBytes": base64.b64encode(b"offer").decode()}]))
    account = ews_sim.account(onprem_rep.upn)
    sent = account.sent.get(id=op["exchangeId"])
    assert sent.subject == "Quarterly pricing" and sent.pega_id == pega_id and not sent.is_draft
    assert [a.name for a in sent.attachments] == ["offer.txt"]
    assert list(account.drafts.all()) == []

    received = ews_sim.control("POST", f"mailboxes/{onprem_rep.upn}/inbound-mail",
                               {"subject": "Question", "from": "dana@fabrikam.example", "body": "<p>?</p>"})
    original_pega = await pega_email(pega_records, "Question")  # as the inbound path would have linked it
    await state.links.create(Link(mailbox=onprem_rep.upn, kind="email", graph_id=received["id"],
                                  pega_id=original_pega))
    reply_pega = await pega_email(pega_records, "RE: Question")
    op = await api.run("POST", f"pega/v1/emails/{quote(original_pega, safe='')}/reply", {
        "pegaId": reply_pega, "operator": onprem_rep.operator, "changedAt": "2026-11-20T10:05:00Z",
        "body": {"contentType": "text", "content": "Here is the answer"}})
    reply = account.sent.get(id=op["exchangeId"])
    original = account.inbox.get(id=received["id"])
    assert reply.conversation_id == original.conversation_id and reply.in_reply_to == original.message_id
    assert "Here is the answer" in str(reply.body)


async def test_contact_create_with_photo_update_and_close(api, onprem_rep, pega_records, ews_sim, state):
    from tests.sync_outbound.conftest import new_pega_contact

    photo = b"\xff\xd8\xff\xe0jpeg-bytes"
    pega_id = await new_pega_contact(pega_records)
    op = await api.run("POST", "pega/v1/contacts", contact_body(
        onprem_rep, pega_id, photo={"contentType": "image/jpeg", "contentBytes": b64(photo)}))
    account = ews_sim.account(onprem_rep.upn)
    c = account.contacts.get(id=op["exchangeId"])
    assert (c.given_name, c.surname, c.company_name) == ("Dana", "Lopez", "Fabrikam")
    assert c.categories == ["PegaSASync"] and c.pega_id == pega_id
    assert c.email_addresses[0].email == "dana@fabrikam.example" and c.physical_addresses[0].city == "Seattle"
    assert next(a for a in c.attachments if a.is_contact_photo).content == photo

    path = f"pega/v1/contacts/{quote(pega_id, safe='')}"
    await api.run("PATCH", path, {"operator": onprem_rep.operator, "jobTitle": "Head of Purchasing",
                                  "changedAt": "2026-11-21T10:00:00Z"})
    assert account.contacts.get(id=c.id).job_title == "Head of Purchasing"

    await api.run("POST", f"{path}/close", {"operator": onprem_rep.operator, "changedAt": "2026-11-22T10:00:00Z"})
    assert not account.contacts.get(id=c.id).categories
    link = await state.links.by_pega_id(onprem_rep.upn, pega_id)
    assert link is not None and link.state == "closed"
