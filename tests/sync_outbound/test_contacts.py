"""Contacts: Pega → the rep's Outlook contacts with the sync category, photo, update, close."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest

from tests.sync_outbound.conftest import b64, new_pega_contact

pytestmark = pytest.mark.parametrize("backend", ["graph", "ews"])

JPEG = b"\xff\xd8\xff\xe0" + os.urandom(2048) + b"\xff\xd9"


def contact_body(rep, pega_id, **extra):
    body = {"pegaId": pega_id, "operator": rep.operator, "givenName": "Dana", "surname": "Lopez",
            "emailAddresses": [{"email": "dana@fabrikam.example", "name": "Dana Lopez"}],
            "businessPhones": ["+1 555 0100"], "companyName": "Fabrikam", "jobTitle": "Buyer",
            "businessAddress": {"city": "Seattle", "countryOrRegion": "US"}, "changedAt": "2026-11-20T10:00:00Z"}
    body.update(extra)
    return body


async def test_create_with_category_photo_and_link(api, rep, pega_records, outlook, state):
    pega_id = await new_pega_contact(pega_records)
    op = await api.run("POST", "pega/v1/contacts",
                       contact_body(rep, pega_id, photo={"contentType": "image/jpeg", "contentBytes": b64(JPEG)}))
    c = await outlook.contact(rep.upn, op["exchangeId"])
    assert (c.given_name, c.surname, c.display_name) == ("Dana", "Lopez", "Dana Lopez")
    assert c.categories == ["PegaSASync"]
    assert c.email == "dana@fabrikam.example"
    assert c.business_city == "Seattle"
    assert c.photo == JPEG
    link = await state.links.by_pega_id(rep.upn, pega_id)
    assert link.kind == "contact" and link.graph_change_key == c.change_key
    assert link.snapshot["photo"].startswith("#sha256:")
    rec, _ = await pega_records.get_contact(pega_id)
    assert rec.content[pega_records.m.contact.external_id] == op["exchangeId"]


async def test_update_patches_changed_fields_and_close_clears_the_category(api, rep, pega_records, outlook, state):
    pega_id = await new_pega_contact(pega_records)
    op = await api.run("POST", "pega/v1/contacts", contact_body(rep, pega_id))
    path = f"pega/v1/contacts/{quote(pega_id, safe='')}"
    await api.run("PATCH", path, {"operator": rep.operator, "jobTitle": "Head of Purchasing",
                                  "mobilePhone": "+1 555 0199", "changedAt": "2026-11-20T11:00:00Z"})
    c = await outlook.contact(rep.upn, op["exchangeId"])
    assert c.job_title == "Head of Purchasing" and c.mobile_phone == "+1 555 0199"
    assert c.company == "Fabrikam" and c.categories == ["PegaSASync"]
    # an older Pega change arriving late does not overwrite the newer one
    late = await api.run("PATCH", path, {"operator": rep.operator, "jobTitle": "Buyer",
                                         "changedAt": "2026-11-20T10:30:00Z"})
    assert (await outlook.contact(rep.upn, op["exchangeId"])).job_title == "Head of Purchasing"
    assert late["exchangeId"] == op["exchangeId"]
    await api.run("POST", f"{path}/close", {"operator": rep.operator, "changedAt": "2026-11-20T12:00:00Z"})
    c = await outlook.contact(rep.upn, op["exchangeId"])
    assert c.categories == []  # kept for the rep, no longer synced
    assert (await state.links.by_pega_id(rep.upn, pega_id)).state == "closed"
