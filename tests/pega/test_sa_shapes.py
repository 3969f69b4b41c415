"""Sales Automation contact shapes: WorkEmail, OfficePhone, Company and the embedded Address page
(Data-Address-Postal: pyStreet, pyCity ...), written through dotted mapping names."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sandbox.pega.control import PegaSimControl
from shared.pega import ContactData, PegaRecords, UpsertAction
from shared.pega.convert import changed_fields, from_content, to_content
from shared.pega.factory import adapter_for
from shared.pega.mapping import ContactFields

text = st.one_of(st.none(), st.text(min_size=1, max_size=20))


@given(first=text, email=text, phone=text, street=text, city=text, country=text)
def test_contact_round_trips_through_the_sa_shape(first: Any, email: Any, phone: Any, street: Any, city: Any,
                                                   country: Any) -> None:
    data = ContactData(first_name=first, email=email, business_phone=phone, street=street, city=city, country=country)
    content = to_content(data, ContactFields())
    assert from_content(ContactData, content, ContactFields()) == data
    if city is not None:
        assert content["Address"]["pyCity"] == city and "Address.pyCity" not in content
    assert changed_fields(content, content) == {}, "what is there already changes nothing"


def test_changed_fields_touches_only_the_changed_leaves_of_a_page() -> None:
    current = {"WorkEmail": "a@x", "Address": {"pxObjClass": "Data-Address-Postal", "pyCity": "Redmond",
                                               "pyStreet": "1 Main"}}
    assert changed_fields(current, {"WorkEmail": "a@x", "Address": {"pyCity": "Redmond"}}) == {}
    assert changed_fields(current, {"Address": {"pyCity": "Seattle", "pyStreet": "1 Main"}}) == {
        "Address": {"pyCity": "Seattle"}}


async def test_both_adapters_store_sa_contact_shapes(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    data = ContactData(first_name="Sam", last_name="Example", email="sam@fabrikam.example", business_phone="+1 1",
                       company_name="Fabrikam", street="1 Main St", city="Redmond", state="WA", country="US")
    for adapter in ("dx-v2", "sync-service"):
        made = await adapter_for(pega_records.client, adapter).upsert_contact(f"AAMk-sa-{adapter}", data)
        content = (await pega_control.record(made.id))["content"]
        assert content["WorkEmail"] == "sam@fabrikam.example" and content["OfficePhone"] == "+1 1"
        assert content["Company"] == "Fabrikam"
        assert content["Address"] == {"pyStreet": "1 Main St", "pyCity": "Redmond", "pyState": "WA", "pyCountry": "US"}
        again = await adapter_for(pega_records.client, adapter).upsert_contact(f"AAMk-sa-{adapter}", data)
        assert again.action is UpsertAction.UNCHANGED, adapter
        moved = await adapter_for(pega_records.client, adapter).upsert_contact(
            f"AAMk-sa-{adapter}", ContactData(city="Seattle"))
        assert moved.action is UpsertAction.UPDATED
        content = (await pega_control.record(made.id))["content"]
        assert content["Address"]["pyCity"] == "Seattle" and content["Address"]["pyStreet"] == "1 Main St"


async def test_adopting_fills_only_the_empty_leaves_of_the_address(pega_records: PegaRecords,
                                                                   pega_control: PegaSimControl) -> None:
    seeded = await pega_control.reset()
    await pega_records.adopt_contact(seeded["dana"], "AAMk-dana", ContactData(city="Redmond", company_name="Other"))
    content = (await pega_control.record(seeded["dana"]))["content"]
    assert content["Address"] == {"pyCity": "Redmond"} and content["Company"] == "Fabrikam"
    assert content["ExchangeID"] == "AAMk-dana"
