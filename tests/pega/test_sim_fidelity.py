"""The Pega simulator refuses or drops what real Pega refuses or drops (issue 14).

Shapes follow Pega's recorded DX API v2 responses (create status `New`, `nextAssignmentInfo`,
IDs `<work pool> <businessID>`, `caseInfo.stages`/`sla`), error field references with a leading
`.`, `distinctResultsOnly`, `/count` rules, and the field allow-lists of DX API v2 (the case
type's AllowedStartingFields on create, the action's view on an action).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from sandbox.pega.control import PegaSimControl
from sandbox.pega.store import Actor, Store
from shared.errors import PermanentError
from shared.pega import AppointmentData, PegaClient, PegaRecords, RecordKind
from shared.pega.errors import PegaFieldDroppedError
from shared.pega.mapping import PegaMapping
from tests.plugins.pega_sim import PegaSim


def test_every_save_gets_a_unique_etag() -> None:
    """Regression: the stamp was ordered at microsecond precision but printed in milliseconds, so two
    saves within one millisecond shared an eTag (a stale If-Match then passed)."""
    store = Store(mapping=PegaMapping())
    actor = Actor(operator="alex")
    rec = store.create("appointment", {"Subject": "x"}, actor)
    etags = [rec.etag]
    for i in range(300):  # in-memory saves take microseconds: many fall within one millisecond
        etags.append(store.update(rec, {"Subject": f"x{i}"}, actor).etag)
        etags.append(store.touch(rec).etag)
    assert len(set(etags)) == len(etags)


# ------------------------------------------------------------------ over HTTP, through the client

APPOINTMENT = "PegaSA-Work-Appointment"


async def _raw(pega_sim: PegaSim, client: PegaClient, method: str, path: str,
               body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    token = await client.tokens.get_token()  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as s, s.request(
        method, f"{pega_sim.base_url}/prweb/api/application/v2/{path}", json=body,
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        return r.status, await r.json()


async def test_create_answers_like_recorded_dx_v2(pega_sim: PegaSim, pega_client: PegaClient) -> None:
    status, body = await _raw(pega_sim, pega_client, "POST", "cases",
                              {"caseTypeID": APPOINTMENT, "content": {"Subject": "Fleet review"}})
    assert status == 201
    info = body["data"]["caseInfo"]
    assert body["ID"] == info["ID"] == f"PEGASA-WORK {info['businessID']}"
    assert info["status"] == "New" and info["content"]["pyStatusWork"] == "New"
    assert body["nextAssignmentInfo"]["ID"].startswith(f"ASSIGN-WORKLIST {body['ID']}!")
    assert body["nextAssignmentInfo"]["className"] == APPOINTMENT
    assert [s["ID"] for s in info["stages"]] == ["PRIM0", "PRIM1", "PRIM2"]
    assert info["stageID"] == "PRIM1" and info["sla"] == {"goal": "", "deadline": ""} and info["caseTypeIcon"]


async def test_error_field_references_carry_a_leading_dot(pega_sim: PegaSim, pega_client: PegaClient) -> None:
    status, body = await _raw(pega_sim, pega_client, "POST", "cases", {"content": {}})
    assert status == 400
    assert body["errorDetails"][0]["erroneousInputOutputFieldInPage"] == ".caseTypeID"


async def test_create_drops_fields_outside_allowed_starting_fields(
    pega_sim: PegaSim, pega_client: PegaClient, pega_control: PegaSimControl
) -> None:
    status, body = await _raw(pega_sim, pega_client, "POST", "cases", {
        "caseTypeID": APPOINTMENT, "content": {"Subject": "s", "NotOnTheCaseType": "x", "pyStatusWork": "Resolved"}})
    assert status == 201, "dropped silently, never an error"
    content = body["data"]["caseInfo"]["content"]
    assert content["Subject"] == "s" and "NotOnTheCaseType" not in content and content["pyStatusWork"] == "New"
    assert await pega_control.dropped() == [{"caseID": body["ID"], "caseTypeID": APPOINTMENT, "verb": "create",
                                             "fields": ["NotOnTheCaseType", "pyStatusWork"]}]


async def test_action_keeps_only_the_fields_of_its_view(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "s", "ExchangeID": "AAMk1"}, must_keep=["ExchangeID"])
    updated = await pega_client.case_action(case.id, "pyUpdateCaseDetails", {"Location": "Room 2", "Bogus": 1})
    assert updated.content["Location"] == "Room 2" and "Bogus" not in updated.content
    cancelled = await pega_client.case_action(case.id, "CancelAppointment", {"Description": "why", "Subject": "no"})
    assert cancelled.status == "Resolved-Cancelled"
    assert cancelled.content["Description"] == "why" and cancelled.content["Subject"] == "s"
    dropped = {d["verb"]: d["fields"] for d in await pega_control.dropped()}
    assert dropped == {"action:pyUpdateCaseDetails": ["Bogus"], "action:CancelAppointment": ["Subject"]}


async def test_client_refuses_a_create_that_lost_the_external_id(
    pega_client: PegaClient, pega_control: PegaSimControl
) -> None:
    await pega_control.drop_field("appointment", "ExchangeID")
    with pytest.raises(PegaFieldDroppedError) as err:
        await pega_client.create_case(APPOINTMENT, {"Subject": "s", "ExchangeID": "AAMk2"}, must_keep=["ExchangeID"])
    assert err.value.fields == ["ExchangeID"] and err.value.record_id.startswith("PEGASA-WORK A-")
    assert "AllowedStartingFields" in str(err.value) and isinstance(err.value, PermanentError)


async def test_records_upsert_refuses_to_continue_without_the_external_id(
    pega_records: PegaRecords, pega_control: PegaSimControl
) -> None:
    """Without the check every replay would create another case (the external-id lookup finds none)."""
    await pega_control.drop_field("appointment", "ExchangeID")
    data = AppointmentData(subject="Fleet review", start=datetime(2026, 12, 1, 9, tzinfo=UTC),
                           end=datetime(2026, 12, 1, 10, tzinfo=UTC))
    with pytest.raises(PegaFieldDroppedError):
        await pega_records.upsert_appointment("AAMk-dropped", data)


async def test_reporting_the_external_id_refuses_a_view_without_it(
    pega_records: PegaRecords, pega_control: PegaSimControl
) -> None:
    case = await pega_records.client.create_case(APPOINTMENT, {"Subject": "made in Pega"})
    await pega_control.set_casetype("appointment", action_views={"pyUpdateCaseDetails": ["Subject"]})
    with pytest.raises(PegaFieldDroppedError, match="view"):
        await pega_records.set_external_id(RecordKind.APPOINTMENT, case.id, "AAMk-report")


async def test_distinct_results_only_is_honoured(pega_sim: PegaSim, pega_client: PegaClient) -> None:
    for first in ("Ann", "Bob", "Cid"):
        await pega_client.sa_create("contacts", {"FirstName": first, "LastName": "Distinct", "Segment": "S"})
    query = {"select": [{"field": "Segment"}], "filter": {"filterConditions": {
        "F1": {"lhs": {"field": "LastName"}, "comparator": "EQ", "rhs": {"value": "Distinct"}}}}}
    status, body = await _raw(pega_sim, pega_client, "POST", "data_views/D_ContactList", {"query": query})
    assert status == 200 and len(body["data"]) == 3
    status, body = await _raw(pega_sim, pega_client, "POST", "data_views/D_ContactList",
                              {"query": {**query, "distinctResultsOnly": True}})
    assert status == 200 and [r["Segment"] for r in body["data"]] == ["S"]


async def test_count_with_a_query_needs_a_select(pega_sim: PegaSim, pega_client: PegaClient) -> None:
    status, body = await _raw(pega_sim, pega_client, "POST", "data_views/D_ContactList/count",
                              {"query": {"filter": {"filterConditions": {
                                  "F1": {"lhs": {"field": "LastName"}, "comparator": "EQ", "rhs": {"value": "x"}}}}}})
    assert status == 400 and body["errorDetails"][0]["erroneousInputOutputFieldInPage"] == ".query.select"
    status, body = await _raw(pega_sim, pega_client, "POST", "data_views/D_ContactList/count",
                              {"query": {"select": [{"field": "pzInsKey"}]}})
    assert status == 200 and body["resultCount"] >= 1
    status, body = await _raw(pega_sim, pega_client, "POST", "data_views/D_ContactList/count", {})
    assert status == 200


async def test_bad_allow_list_is_a_400_and_reset_restores_the_defaults(pega_control: PegaSimControl) -> None:
    with pytest.raises(RuntimeError, match="400"):
        await pega_control._call("PUT", "/casetypes/appointment", {"allowedStartingFields": "ExchangeID"})
    await pega_control.drop_field("email", "ExchangeID")
    assert "ExchangeID" not in (await pega_control.casetypes())["email"]["allowedStartingFields"]
    await pega_control.reset()
    assert "ExchangeID" in (await pega_control.casetypes())["email"]["allowedStartingFields"]
