"""Contacts through the real msgraph-sdk: folders, CRUD, categories, photo, the private flag."""

from __future__ import annotations

import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.contacts.contacts_request_builder import ContactsRequestBuilder
from msgraph.generated.users.item.contacts.item.contact_item_request_builder import ContactItemRequestBuilder

from tests.graph_sim.sdk import prefer

PRIVATE = "Integer 0x0036"


async def test_contact_crud_in_default_and_child_folder(graph_client, graph_sim, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    c = await mb.contacts.post(Contact(given_name="Dana", surname="Example", company_name="Fabrikam",
                                       email_addresses=[EmailAddress(address="dana@fabrikam.example", name="Dana")],
                                       categories=["Pega"]))
    assert c.display_name == "Dana Example" and c.categories == ["Pega"]
    await graph_sim.control.advance_clock(2)
    upd = await mb.contacts.by_contact_id(c.id).patch(Contact(job_title="CFO"))
    assert upd.job_title == "CFO" and upd.change_key != c.change_key
    assert upd.last_modified_date_time > c.last_modified_date_time
    folder = await mb.contact_folders.post(ContactFolder(display_name="Pega"))
    inside = await mb.contact_folders.by_contact_folder_id(folder.id).contacts.post(Contact(given_name="Eve"))
    assert inside.parent_folder_id == folder.id
    assert [x.given_name for x in (await mb.contacts.get()).value] == ["Dana"]  # default folder only
    assert [f.display_name for f in (await mb.contact_folders.get()).value] == ["Pega"]
    await mb.contacts.by_contact_id(c.id).delete()
    with pytest.raises(APIError) as err:
        await mb.contacts.by_contact_id(c.id).get()
    assert err.value.response_status_code == 404


async def test_contact_photo_and_size_limit(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    c = await mb.contacts.post(Contact(given_name="Pic"))
    with pytest.raises(APIError) as err:
        await mb.contacts.by_contact_id(c.id).photo.content.get()
    assert err.value.response_status_code == 404
    jpeg = b"\xff\xd8\xff\xe0" + b"x" * 1000
    await mb.contacts.by_contact_id(c.id).photo.content.put(jpeg)
    assert await mb.contacts.by_contact_id(c.id).photo.content.get() == jpeg
    after = await mb.contacts.by_contact_id(c.id).get()
    assert after.change_key != c.change_key
    with pytest.raises(APIError) as err:
        await mb.contacts.by_contact_id(c.id).photo.content.put(b"x" * (4 * 1024 * 1024 + 1))
    assert err.value.response_status_code == 413


async def test_private_flag_is_mapi_sensitivity(graph_client, sim_user) -> None:
    mb = graph_client.users.by_user_id(sim_user["id"])
    secret = await mb.contacts.post(Contact(given_name="Secret", single_value_extended_properties=[
        SingleValueLegacyExtendedProperty(id=PRIVATE, value="2")]))
    await mb.contacts.post(Contact(given_name="Open"))
    q = ContactItemRequestBuilder.ContactItemRequestBuilderGetQueryParameters(
        expand=[f"singleValueExtendedProperties($filter=id eq '{PRIVATE}')"])
    got = await mb.contacts.by_contact_id(secret.id).get(request_configuration=prefer(query_parameters=q))
    assert [(p.id, p.value) for p in got.single_value_extended_properties] == [(PRIVATE, "2")]
    lq = ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(
        filter="singleValueExtendedProperties/Any(ep: ep/id eq 'Integer 0x36' and ep/value eq '2')")
    found = await mb.contacts.get(request_configuration=prefer(query_parameters=lq))
    assert [c.given_name for c in found.value] == ["Secret"]
