"""Contacts: only the configured category (PegaSASync) syncs; private skipped; category removed or
contact deleted → contact CLOSED in Pega (never deleted); photos synced."""

from __future__ import annotations

import base64

import pytest

pytestmark = [
    pytest.mark.parametrize("backend", ["graph", "ews"]),  # Exchange Online and on-premises mailboxes
    pytest.mark.parametrize("pega_adapter", ["sync-service", "dx-v2"]),  # shared/pega/adapter.py
]

PHOTO = b"\xff\xd8\xff\xe0fake-jpeg-bytes"
PRIVATE = [{"id": "Integer 0x0036", "value": "2"}]


def contact_body(**extra):
    return {"givenName": "Erin", "surname": "Contoso", "companyName": "Fabrikam", "jobTitle": "CFO",
            "emailAddresses": [{"address": "erin@fabrikam.example", "name": "Erin"}],
            "businessPhones": ["+1 425 555 0199"], **extra}


async def pega_contact(inbound, exchange_id):
    found = [r for r in await inbound.pega_records("contact") if r["content"].get("ExchangeID") == exchange_id]
    assert len(found) <= 1, f"duplicate Pega contacts: {found}"
    return found[0] if found else None


async def test_category_gates_contacts_and_removal_closes_them_never_deletes(inbound) -> None:
    await inbound.onboard()
    c = await inbound.user_call("POST", "contacts", json=contact_body())
    first = await inbound.run("contacts")
    assert first.skipped["no_category"] == 1 and await pega_contact(inbound, c["id"]) is None, first.as_dict()

    await inbound.user_call("PATCH", f"contacts/{c['id']}", json={"categories": ["PegaSASync"]})
    await inbound.user_call("PUT", f"contacts/{c['id']}/photo/$value", content=PHOTO,
                            headers={"Content-Type": "image/jpeg"})
    added = await inbound.run("contacts")
    assert added.outcomes["created"] == 1, added.as_dict()
    rec = await pega_contact(inbound, c["id"])
    assert rec["content"]["LastName"] == "Contoso" and rec["content"]["WorkEmail"] == "erin@fabrikam.example"
    assert rec["content"]["OrganizationID"], "associated with the organization of its e-mail domain"
    assert base64.b64decode(rec["content"]["Photo"]) == PHOTO, "the photo reached Pega"
    assert rec["content"]["pyStatusWork"] == "Active"

    unchanged = await inbound.run("contacts")
    assert unchanged.synced == 0

    await inbound.user_call("PATCH", f"contacts/{c['id']}", json={"categories": []})
    removed = await inbound.run("contacts")
    assert removed.outcomes["closed"] == 1, removed.as_dict()
    assert (await pega_contact(inbound, c["id"]))["content"]["pyStatusWork"] == "Closed"

    await inbound.user_call("PATCH", f"contacts/{c['id']}", json={"categories": ["PegaSASync"], "jobTitle": "CEO"})
    back = await inbound.run("contacts")
    assert back.outcomes["updated"] + back.outcomes["created"] == 1, back.as_dict()
    rec = await pega_contact(inbound, c["id"])
    assert rec["content"]["pyStatusWork"] == "Active" and rec["content"]["Title"] == "CEO", "reopened, not duplicated"

    await inbound.user_call("DELETE", f"contacts/{c['id']}")
    deleted = await inbound.run("contacts")
    assert deleted.outcomes["closed"] == 1, deleted.as_dict()
    assert (await pega_contact(inbound, c["id"]))["content"]["pyStatusWork"] == "Closed", "closed, not deleted"


async def test_private_contacts_are_skipped(inbound) -> None:
    await inbound.onboard()
    c = await inbound.user_call("POST", "contacts", json=contact_body(categories=["PegaSASync"],
                                                                      singleValueExtendedProperties=PRIVATE))
    report = await inbound.run("contacts")
    assert report.skipped["private"] == 1 and await pega_contact(inbound, c["id"]) is None, report.as_dict()


async def test_dry_run_plans_without_writing_anything(inbound) -> None:
    from shared.sync.inbound import dry_run

    await inbound.onboard()
    tagged = await inbound.user_call("POST", "contacts", json=contact_body(categories=["PegaSASync"]))
    other = await inbound.user_call("POST", "contacts", json=contact_body(givenName="Finn"))
    plan = await dry_run(inbound.services, mailbox=inbound.upn, kind="contacts", context=inbound.ctx)
    actions = {p.item_id: (p.action, p.reason) for p in plan}
    assert actions == {tagged["id"]: ("create", "new"), other["id"]: ("skip", "no_category")}
    assert await inbound.pega_records("contact") and await pega_contact(inbound, tagged["id"]) is None
    assert await inbound.services.state.cursors.list(inbound.upn) == []
    assert await inbound.links("contact") == []
    # the real round afterwards still sees everything (the dry run consumed no delta state)
    report = await inbound.run("contacts")
    assert report.outcomes["created"] == 1


async def test_an_outlook_contact_of_a_known_pega_contact_is_linked_not_duplicated(inbound) -> None:
    await inbound.onboard()
    before = [r for r in await inbound.pega_records("contact") if r["content"].get("WorkEmail") == "dana@fabrikam.example"]
    assert len(before) == 1
    c = await inbound.user_call("POST", "contacts", json={
        "givenName": "Dana", "surname": "Example", "jobTitle": "Buyer", "mobilePhone": "+1 425 555 0142",
        "emailAddresses": [{"address": "Dana@Fabrikam.example"}], "categories": ["PegaSASync"]})
    report = await inbound.run("contacts")
    assert report.outcomes["linked_existing"] == 1 and report.outcomes["created"] == 0, report.as_dict()
    after = [r for r in await inbound.pega_records("contact") if r["content"].get("WorkEmail") == "dana@fabrikam.example"]
    assert len(after) == 1, "no duplicate contact"
    content = after[0]["content"]
    assert content["ExchangeID"] == c["id"]
    assert content["Title"] == "Purchasing Manager", "Pega keeps its own values"
    assert content["MobilePhone"] == "+1 425 555 0142", "empty Pega fields are filled"
    assert (await inbound.run("contacts")).synced == 0


async def test_the_dedicated_contact_folder_is_read_too_so_outlook_edits_there_flow_back(inbound) -> None:
    """SYNC_CONTACT_FOLDER set: Pega → Exchange writes there, so the inbound round reads it (by id)
    as well as the default folder (`/users/{id}/contacts/delta`)."""
    import copy
    from dataclasses import replace

    from shared.runtime import Services

    settings = copy.copy(inbound.services.settings)
    settings.sync = settings.sync.model_copy(update={"contact_folder": "Pega Contacts"})
    svc = Services(settings=settings, state=inbound.services.state, queues=inbound.services.queues)
    ib = replace(inbound, services=svc)
    await ib.onboard()
    # the folder does not exist yet: the default folder syncs, the dedicated one is simply not there
    home = await ib.user_call("POST", "contacts", json=contact_body(categories=["PegaSASync"]))
    first = await ib.run("contacts")
    assert first.completed and first.outcomes["created"] == 1, first.as_dict()

    folder = await ib.user_call("POST", "contactFolders", json={"displayName": "Pega Contacts"})
    there = await ib.user_call("POST", f"contactFolders/{folder['id']}/contacts", json=contact_body(
        givenName="Fran", emailAddresses=[{"address": "fran@fabrikam.example"}], categories=["PegaSASync"]))
    second = await ib.run("contacts")
    assert second.outcomes["created"] == 1 and second.completed, second.as_dict()
    assert second.graph_requests_by_purpose.get("find_contact_folder") == 1, second.graph_requests_by_purpose

    await ib.user_call("PATCH", f"contacts/{there['id']}", json={"jobTitle": "Head of Purchasing"})
    edited = await ib.run("contacts")
    assert edited.outcomes["updated"] == 1, edited.as_dict()
    assert edited.graph_requests_by_purpose.get("find_contact_folder", 0) == 0, "the delta link carries the folder"
    assert (await pega_contact(ib, there["id"]))["content"]["Title"] == "Head of Purchasing"
    assert (await pega_contact(ib, home["id"]))["content"]["pyStatusWork"] == "Active"
    cursors = {c: await svc.state.cursors.get(ib.upn, "contacts", c) for c in ("contacts", "dedicated")}
    if ib.backend == "graph":
        assert "/contacts/delta" in cursors["contacts"].delta_link
        assert "contactFolders" not in cursors["contacts"].delta_link
        assert folder["id"] in cursors["dedicated"].delta_link.replace("%3D", "=")
    else:  # the EWS position names the folder it syncs
        from shared.ews.reader import Position

        assert Position.decode(cursors["contacts"].delta_link).folder == "contacts"
        assert Position.decode(cursors["dedicated"].delta_link).folder == "id:" + folder["id"]
