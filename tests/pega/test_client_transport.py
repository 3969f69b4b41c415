"""The real Pega client against the simulator over HTTP: tokens, errors, eTags, SA API v1 bodies."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import quote

import pytest

from sandbox.pega.control import PegaSimControl
from shared.errors import PermanentError, TransientError
from shared.pega import PegaClient
from shared.pega.errors import (
    PegaAuthError,
    PegaBadRequestError,
    PegaConflictError,
    PegaForbiddenError,
    PegaNotFoundError,
    PegaTransientError,
)
from tests.plugins.pega_sim import PegaSim

APPOINTMENT = "PegaSA-Work-Appointment"


async def test_token_is_cached_and_reused(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    before = (await pega_control.requests())["tokensIssued"]
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "one"})
    await pega_client.get_case(case.id)
    await pega_client.get_case(case.id)
    assert (await pega_control.requests())["tokensIssued"] == before + 1
    assert pega_client.tokens is not None


async def test_bad_client_secret_is_a_permanent_auth_error(pega_sim: PegaSim, pega_control: PegaSimControl) -> None:
    async with pega_sim.client(client_secret="wrong") as client:
        with pytest.raises(PegaAuthError) as err:
            await client.get_case("PEGASA-WORK-APPOINTMENT A-1")
    assert isinstance(err.value, PermanentError)
    assert err.value.status == 401


async def test_token_refreshed_once_on_401(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "x"})
    assert await pega_control.revoke_tokens() >= 1
    again = await pega_client.get_case(case.id)  # 401 -> new token -> retried
    assert again.id == case.id
    assert (await pega_control.requests())["byRoute"]["GET /prweb/api/application/v2/cases/{case_id}"] == 2


async def test_token_refreshed_before_expiry(pega_sim: PegaSim, pega_control: PegaSimControl) -> None:
    await pega_control.configure(token_ttl_seconds=2)
    # skew 1.5s: a 2 s token is reused for ~0.5 s, then fetched again before it expires
    async with pega_sim.client(token_refresh_skew_seconds=1.5) as client:
        case = await client.create_case(APPOINTMENT, {"Subject": "ttl"})
        await client.get_case(case.id)
        issued = (await pega_control.requests())["tokensIssued"]
        await asyncio.sleep(0.7)
        await client.get_case(case.id)
        assert (await pega_control.requests())["tokensIssued"] == issued + 1
        counts = (await pega_control.requests())["byRoute"]
        assert counts["GET /prweb/api/application/v2/cases/{case_id}"] == 2  # no 401 round trip needed


async def test_sa_basic_auth(pega_sim: PegaSim, pega_control: PegaSimControl) -> None:
    async with pega_sim.client() as good:
        await good.authenticate()
    async with pega_sim.client(password="nope") as bad:
        with pytest.raises(PegaAuthError):
            await bad.authenticate()
    async with pega_sim.client(username="no-api-role", password="sandbox-no-api-password") as norole:
        with pytest.raises(PegaForbiddenError):
            await norole.sa_get("contacts", "PEGACRM-ENTITY-CONTACT CON-1")


async def test_case_ids_with_spaces_round_trip(pega_client: PegaClient) -> None:
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "Quarterly review", "Location": "Room 1"})
    assert case.id.startswith("PEGASA-WORK A-") and " " in case.id  # <work pool> <businessID>, as recorded
    assert case.etag and case.etag.startswith('"') and case.etag.endswith(' GMT"')
    got = await pega_client.get_case(case.id)
    assert got.content["Subject"] == "Quarterly review"
    assert got.case_type_id == APPOINTMENT
    assert got.status == "New"  # a created case is New in recorded DX API v2 responses


async def test_unknown_case_type_and_case_are_permanent(pega_client: PegaClient) -> None:
    with pytest.raises(PegaBadRequestError) as err:
        await pega_client.create_case("PegaSA-Work-Nope", {})
    assert "caseTypeID" in str(err.value)
    with pytest.raises(PegaNotFoundError):
        await pega_client.get_case("PEGASA-WORK-APPOINTMENT A-999999")
    with pytest.raises(PegaNotFoundError):
        await pega_client.query_data_view("D_NoSuchView")


async def test_stale_etag_is_reread_and_retried_once(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "a", "Location": "old"})
    await pega_control.touch(case.id)  # someone else saved it: our eTag is stale
    updated = await pega_client.case_action(case.id, "pyUpdateCaseDetails", {"Subject": "b"}, etag=case.etag)
    assert updated.content["Subject"] == "b"
    assert updated.content["Location"] == "old"  # only our field was written
    assert updated.etag != case.etag
    counts = (await pega_control.requests())["byRoute"]
    assert counts["PATCH /prweb/api/application/v2/cases/{case_id}/actions/{action_id}"] == 2


async def test_stale_etag_twice_is_a_conflict_not_an_overwrite(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "a"})
    # the record moves on before each of our two attempts
    await pega_control.add_fault(method="PATCH", path_contains="/actions/", stale_etag=True, times=2)
    with pytest.raises(PegaConflictError):
        await pega_client.case_action(case.id, "pyUpdateCaseDetails", {"Subject": "mine"}, etag=case.etag)
    assert (await pega_control.record(case.id))["content"]["Subject"] == "a"


async def test_conflict_resolver_sees_fresh_record_and_can_withdraw(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    case = await pega_client.create_case(APPOINTMENT, {"Subject": "a"})
    await pega_control.touch(case.id)
    seen = []

    def resolver(fresh: dict) -> None:
        seen.append(fresh["Subject"])
        return None

    with pytest.raises(PegaConflictError):
        await pega_client.case_action(case.id, "pyUpdateCaseDetails", {"Subject": "b"}, etag=case.etag,
                                      on_conflict=resolver)
    assert seen == ["a"]


async def test_missing_if_match_is_refused(pega_sim: PegaSim, pega_client: PegaClient) -> None:
    import aiohttp

    case = await pega_client.create_case(APPOINTMENT, {"Subject": "a"})
    token = await pega_client.tokens.get_token()  # type: ignore[union-attr]
    url = f"{pega_sim.base_url}/prweb/api/application/v2/cases/{case.id.replace(' ', '%20')}/actions/pyUpdateCaseDetails"
    async with aiohttp.ClientSession() as s, s.patch(url, json={"content": {}},
                                                     headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 412


async def test_throttling_and_5xx_are_transient_with_retry_after(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    await pega_control.add_fault(method="POST", path_contains="/cases", status=429, retry_after=7)
    with pytest.raises(PegaTransientError) as err:
        await pega_client.create_case(APPOINTMENT, {"Subject": "x"})
    assert isinstance(err.value, TransientError)
    assert err.value.retry_after == 7
    await pega_control.add_fault(method="POST", path_contains="/data_views/", status=503)
    with pytest.raises(TransientError):
        await pega_client.query_data_view("D_ContactList")
    assert await pega_client.query_data_view("D_ContactList")  # fault used up


async def test_slow_answer_times_out_as_transient(pega_sim: PegaSim, pega_control: PegaSimControl) -> None:
    await pega_control.add_fault(method="GET", path_contains="/authenticate", delay_seconds=2)
    async with pega_sim.client(timeout_seconds=0.3) as client:
        with pytest.raises(TransientError, match="timed out"):
            await client.authenticate()


async def test_sa_contact_create_get_update_bodies(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    created = await pega_client.sa_create("contacts", {"FirstName": "Kim", "LastName": "Example",
                                                         "Email": "kim@fabrikam.example"})
    assert created.id.startswith("PEGACRM-ENTITY-CONTACT CON-")
    assert created.obj_class == "Pega-API-CaseManagement-Case"
    got = await pega_client.sa_get("contacts", created.id)
    assert got.content["LastName"] == "Example" and got.etag
    updated = await pega_client.sa_update("contacts", created.id, {"LastName": "Example-Updated"}, etag=got.etag)
    assert updated.etag and updated.etag != got.etag
    assert (await pega_client.sa_get("contacts", created.id)).content["LastName"] == "Example-Updated"
    # stale eTag on SA v1 is 412 -> re-read and retried once
    await pega_control.touch(created.id)
    await pega_client.sa_update("contacts", created.id, {"Title": "CTO"}, etag=updated.etag)
    assert (await pega_control.record(created.id))["content"]["Title"] == "CTO"
    with pytest.raises(PegaNotFoundError):
        await pega_client.sa_get("contacts", "PEGACRM-ENTITY-CONTACT CON-9999")


async def test_sa_page_list_rows_update_with_pzindexes_or_append(pega_client: PegaClient, pega_control: PegaSimControl) -> None:
    created = await pega_client.sa_create("contacts", {"LastName": "Rows", "Addresses": [
        {"pxObjClass": "Data-Address-Postal", "pyCity": "Redmond"}]})
    await pega_client.sa_update("contacts", created.id, {"Addresses": [
        {"pxObjClass": "Data-Address-Postal", "pyCity": "Seattle", "pzIndexes": {"Index_Address": "0"}}]})
    await pega_client.sa_update("contacts", created.id, {"Addresses": [
        {"pxObjClass": "Data-Address-Postal", "pyCity": "Berlin"}]})
    rows = (await pega_control.record(created.id))["content"]["Addresses"]
    assert [r["pyCity"] for r in rows] == ["Seattle", "Berlin"]


async def test_sa_update_without_if_match_is_403(pega_sim: PegaSim, pega_control: PegaSimControl) -> None:
    import aiohttp

    dana = (await pega_control.reset())["dana"]  # ids are never reused, so the seeded one is asked for
    url = f"{pega_sim.base_url}/prweb/api/v1/contacts/{quote(dana, safe='')}"
    basic = "Basic " + base64.b64encode(f"{pega_sim.username}:{pega_sim.password}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": basic}) as s:
        async with s.put(url, json={"content": {"Title": "x"}}) as r:
            assert r.status == 403
            assert (await r.json())["errors"][0]["ID"] == "Pega_API_020"
        async with s.put(url, json={"content": {"Title": "x"}}, headers={"If-Match": '"old"'}) as r:
            assert r.status == 412
            assert (await r.json())["errors"][0]["ID"] == "Pega_API_021"
        async with s.get(url) as r:
            etag = r.headers["etag"]
        async with s.put(url, json={"Title": "no content wrapper"}, headers={"If-Match": etag}) as r:
            assert r.status == 400
            assert (await r.json())["errors"][0]["ID"] == "Pega_API_006"
