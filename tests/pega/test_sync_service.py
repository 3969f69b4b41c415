"""The sync-service adapter against the simulator's implementation of pega-service.openapi.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from sandbox.pega.control import PegaSimControl
from shared.pega import AppointmentData, Attendee, ContactData, EmailData, PegaClient, RecordKind, UpsertAction
from shared.pega.adapter import PegaAdapter
from shared.pega.errors import PegaConflictError, PegaNotFoundError
from shared.pega.factory import adapter_for
from shared.pega.service import SyncServiceRecords
from tests.plugins.pega_sim import PegaSim

BASE = "/prweb/api/ExchangeSync/v1"


@pytest.fixture
def service(pega_client: PegaClient) -> SyncServiceRecords:
    adapter = adapter_for(pega_client, "sync-service")
    assert isinstance(adapter, SyncServiceRecords) and isinstance(adapter, PegaAdapter)
    return adapter


def appointment(subject: str = "Fleet review") -> AppointmentData:
    return AppointmentData(subject=subject, start=datetime(2026, 12, 1, 9, tzinfo=UTC),
                           end=datetime(2026, 12, 1, 10, tzinfo=UTC), time_zone="Europe/Berlin",
                           attendees=[Attendee("dana@fabrikam.example", "Dana")], operator="alex")


async def test_upsert_by_external_id_creates_once_then_updates(service: SyncServiceRecords,
                                                               pega_control: PegaSimControl) -> None:
    first = await service.upsert_appointment("AAMk-1", appointment())
    again = await service.upsert_appointment("AAMk-1", appointment())
    assert first.action is UpsertAction.CREATED and again.action is UpsertAction.UNCHANGED and again.id == first.id
    moved = await service.upsert_appointment("AAMk-1", AppointmentData(location="Room 2"))
    assert moved.action is UpsertAction.UPDATED and moved.etag != first.etag
    rec = await pega_control.record(first.id)
    assert rec["content"]["ExchangeID"] == "AAMk-1" and rec["content"]["Location"] == "Room 2"
    assert rec["content"]["Attendees"][0]["Email"] == "dana@fabrikam.example"
    case, data = await service.get_appointment(first.id)
    assert data.subject == "Fleet review" and data.start == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert data.attendees == [Attendee("dana@fabrikam.example", "Dana")] and case.etag == moved.etag
    assert case.status == "New" and await service.case_status(first.id) == "New"


async def test_an_upsert_without_a_lookup_is_still_one_record(service: SyncServiceRecords,
                                                             pega_control: PegaSimControl) -> None:
    """`expectAbsent` only skips nothing here: the upsert is atomic inside Pega, a replay updates."""
    a = await service.upsert_email("AAMk-m", EmailData(subject="Quote", internet_message_id="<m1@x>"), absent=True)
    b = await service.upsert_email("AAMk-m", EmailData(subject="Quote"), absent=True)
    assert a.id == b.id and b.action is UpsertAction.UNCHANGED
    assert await service.emails_by_internet_message_id(["<m1@x>", "<none@x>"]) == {"<m1@x>": a.id}
    assert len([r for r in await pega_control.records("email") if r["content"].get("ExchangeID") == "AAMk-m"]) == 1


async def test_if_match_guards_the_callers_merge(service: SyncServiceRecords, pega_control: PegaSimControl) -> None:
    made = await service.upsert_appointment("AAMk-2", appointment())
    await pega_control.touch(made.id)  # a rep saved it since
    with pytest.raises(PegaConflictError):
        await service.upsert_appointment("AAMk-2", AppointmentData(location="x"), expected_etag=made.etag)


async def test_batch_upsert_and_lookup_up_to_100(service: SyncServiceRecords, pega_control: PegaSimControl) -> None:
    items = [{"externalId": f"AAMk-b{i}", "appointment": {"subject": f"s{i}"}} for i in range(100)]
    results = await service.upsert_many(RecordKind.APPOINTMENT, items)
    assert [r["action"] for r in results] == ["created"] * 100
    found = await service.existing_ids(RecordKind.APPOINTMENT, [f"AAMk-b{i}" for i in range(150)])
    assert len(found) == 100
    with pytest.raises(ValueError):
        await service.upsert_many(RecordKind.APPOINTMENT, [*items, items[0]])
    counts = (await pega_control.requests())["byRoute"]
    assert counts[f"POST {BASE}/{{collection}}/upsert"] == 1
    assert counts[f"POST {BASE}/lookups/external-ids"] == 2  # 150 ids: two calls


async def test_a_bad_item_is_a_400_naming_the_field(pega_sim: PegaSim, pega_client: PegaClient,
                                                    service: SyncServiceRecords) -> None:
    [bad] = await service.upsert_many(RecordKind.CONTACT, [{"contact": {}}])
    assert bad["error"]["status"] == 400 and bad["error"]["field"] == "externalId", "per item, the batch goes on"
    [bad] = await service.upsert_many(RecordKind.CONTACT, [{"externalId": "x", "contact": "not an object"}])
    assert bad["error"]["field"] == "contact"
    token = await pega_client.tokens.get_token()  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as s, s.post(
        f"{pega_sim.base_url}{BASE}/contacts/upsert", json={"items": [{}] * 101},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 400 and (await r.json())["error"]["field"] == "items"
    async with aiohttp.ClientSession() as s, s.get(f"{pega_sim.base_url}{BASE}/about") as r:
        assert r.status == 401


async def test_contacts_close_with_comments_reopen_and_adopt(service: SyncServiceRecords,
                                                            pega_control: PegaSimControl) -> None:
    made = await service.upsert_contact("AAMk-c", ContactData(first_name="Sam", last_name="Example",
                                                              email="sam@fabrikam.example"))
    await service.close_contact(made.id, comments="left the company")
    rec = await pega_control.record(made.id)
    assert rec["content"]["pyStatusWork"] == "Closed" and rec["content"]["CloseComments"] == "left the company"
    assert await service.find_contact_by_email("sam@fabrikam.example") is None, "closed contacts do not count"
    reopened = await service.upsert_contact("AAMk-c", ContactData(first_name="Sam"))
    assert reopened.action is UpsertAction.UPDATED
    assert (await pega_control.record(made.id))["content"]["pyStatusWork"] == "Active"
    seeded = await pega_control.reset()
    adopted = await service.adopt_contact(seeded["dana"], "AAMk-d", ContactData(first_name="Other", mobile_phone="+1"))
    content = (await pega_control.record(seeded["dana"]))["content"]
    assert adopted.action is UpsertAction.UPDATED
    assert content["FirstName"] == "Dana" and content["MobilePhone"] == "+1" and content["ExchangeID"] == "AAMk-d"


async def test_party_and_opportunity_lookups(service: SyncServiceRecords, pega_control: PegaSimControl) -> None:
    seeded = await pega_control.reset()
    dana = await service.find_contact_by_email("DANA@fabrikam.example")
    assert dana is not None and dana.id == seeded["dana"]
    assert dana.row[service.m.contact.organization_id] == seeded["fabrikam"]
    assert (await service.find_lead_by_email("lee@northwind.example")).id == seeded["lee"]  # type: ignore[union-attr]
    org = await service.find_organization_by_domain("@fabrikam.example")
    assert org is not None and org.id == seeded["fabrikam"]
    opp = await service.find_open_opportunity(organization_id=seeded["fabrikam"])
    assert opp is not None and opp.id == seeded["opportunity"]
    op = await service.find_operator_by_email("alex@contoso.example")
    assert op is not None and op.row[service.m.operator.operator_id] == "alex"
    assert await service.find_contact_by_email("nobody@fabrikam.example") is None


async def test_report_external_id_and_unknown_records(service: SyncServiceRecords, pega_client: PegaClient,
                                                      pega_control: PegaSimControl) -> None:
    case = await pega_client.create_case("PegaSA-Work-Appointment", {"Subject": "made in Pega"})
    await service.set_external_id(RecordKind.APPOINTMENT, case.id, "AAMk-r")
    assert (await pega_control.record(case.id))["content"]["ExchangeID"] == "AAMk-r"
    with pytest.raises(PegaNotFoundError):
        await service.get_contact("PEGACRM-ENTITY-CONTACT CON-999999")
    about: dict[str, Any] = await service.about()
    assert about["contractVersion"] == "1.0" and about["batchLimit"] == 100


def test_the_contract_is_valid_openapi_and_names_every_neutral_field() -> None:
    """pega-service.openapi.yaml is what a Pega developer builds from: it must stay in step with the
    records the adapter sends (every field of the neutral models, camelCase)."""
    import dataclasses
    from pathlib import Path

    import yaml
    from openapi_spec_validator import validate

    from shared.pega.service import camel

    spec = yaml.safe_load((Path(__file__).parents[2] / "pega-service.openapi.yaml").read_text())
    validate(spec)
    schemas = spec["components"]["schemas"]
    links = set(schemas["Links"]["properties"])
    for name, cls in (("Appointment", AppointmentData), ("Email", EmailData), ("Contact", ContactData)):
        declared = links | set(schemas[name]["allOf"][1]["properties"])
        wanted = {camel(f.name) for f in dataclasses.fields(cls)}
        assert wanted <= declared, f"{name}: {sorted(wanted - declared)} missing from the contract"
    assert schemas["UpsertItem"]["properties"].keys() >= {"externalId", "knownId", "ifMatch", "extra"}
    assert spec["paths"]["/{collection}/upsert"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["properties"]["items"]["maxItems"] == 100
