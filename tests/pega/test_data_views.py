"""DX API v2 data views in the simulator, through the client: filters, logic, paging."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from shared.pega import PegaClient
from shared.pega.errors import PegaBadRequestError
from shared.pega.query import Condition, Query, eq
from tests.plugins.pega_sim import PegaSim


@pytest.fixture
async def people(pega_client: PegaClient) -> list[str]:
    ids = []
    for first, email, org in [("Ann", "ann@fabrikam.example", "F"), ("Bob", "BOB@Fabrikam.example", "F"),
                              ("Cid", "cid@northwind.example", "N"), ("Dee", "", "N")]:
        rec = await pega_client.sa_create("contacts", {"FirstName": first, "LastName": "Q", "Email": email,
                                                        "Segment": org, "Score": len(ids) * 10})
        ids.append(rec.id)
    return ids


async def names(client: PegaClient, query: Query, **kw: Any) -> list[str]:
    rows = await client.query_data_view("D_ContactList", query, **kw)
    return sorted(r["FirstName"] for r in rows if r.get("LastName") == "Q")


@pytest.mark.parametrize(("condition", "expected"), [
    (Condition("Email", "EQ", "ann@fabrikam.example"), ["Ann"]),
    (Condition("Email", "EQ", "bob@fabrikam.example"), []),
    (Condition("Email", "EQ", "bob@fabrikam.example", ignore_case=True), ["Bob"]),
    (Condition("Segment", "NEQ", "F"), ["Cid", "Dee"]),
    (Condition("FirstName", "IN", ["Ann", "Dee"]), ["Ann", "Dee"]),
    (Condition("FirstName", "NOT_IN", ["Ann", "Dee"]), ["Bob", "Cid"]),
    (Condition("Email", "CONTAINS", "fabrikam", ignore_case=True), ["Ann", "Bob"]),
    (Condition("Email", "NOT_CONTAINS", "fabrikam"), ["Bob", "Cid", "Dee"]),
    (Condition("Email", "STARTS_WITH", "cid@"), ["Cid"]),
    (Condition("Email", "ENDS_WITH", "@fabrikam.example", ignore_case=True), ["Ann", "Bob"]),
    (Condition("Email", "IS_NULL"), ["Dee"]),
    (Condition("Email", "IS_NOT_NULL"), ["Ann", "Bob", "Cid"]),
    (Condition("Score", "GTE", 20), ["Cid", "Dee"]),
    (Condition("Score", "LT", 10), ["Ann"]),
])
async def test_comparators(pega_client: PegaClient, people: list[str], condition: Condition, expected: list[str]) -> None:
    assert await names(pega_client, Query([condition])) == expected


async def test_logic_with_and_or_parentheses(pega_client: PegaClient, people: list[str]) -> None:
    q = Query([eq("Segment", "N"), eq("FirstName", "Ann"), eq("FirstName", "Cid")], logic="F2 OR (F1 AND F3)")
    assert await names(pega_client, q) == ["Ann", "Cid"]
    q = Query([eq("Segment", "N"), eq("FirstName", "Ann"), eq("FirstName", "Cid")], logic="(F2 OR F1) AND NOT F3")
    assert await names(pega_client, q) == ["Ann", "Dee"]
    with pytest.raises(PegaBadRequestError, match="logic"):
        await names(pega_client, Query([eq("Segment", "N")], logic="F1 AND F9"))
    with pytest.raises(PegaBadRequestError):
        await names(pega_client, Query([eq("Segment", "N")], logic="(F1"))


async def test_paging_walks_all_pages(pega_sim: PegaSim, pega_control: Any, people: list[str]) -> None:
    async with pega_sim.client(data_view_page_size=1) as client:
        rows = await client.query_data_view("D_ContactList", Query([eq("LastName", "Q")], sort=[("FirstName", "DESC")]))
    assert [r["FirstName"] for r in rows] == ["Dee", "Cid", "Bob", "Ann"]
    counts = (await pega_control.requests())["byRoute"]
    assert counts["POST /prweb/api/application/v2/data_views/{data_view_id}"] == 5  # 4 full pages + 1 empty


async def _raw(pega_sim: PegaSim, client: PegaClient, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    token = await client.tokens.get_token()  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as s, s.post(
        f"{pega_sim.base_url}/prweb/api/application/v2/data_views/D_ContactList", json=body,
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        return r.status, await r.json()


async def test_paging_shapes_and_both_kinds_is_400(pega_sim: PegaSim, pega_client: PegaClient, people: list[str]) -> None:
    status, body = await _raw(pega_sim, pega_client, {"paging": {"pageNumber": 2, "pageSize": 2}})
    assert status == 200
    assert body["pageNumber"] == 2 and body["pageSize"] == 2 and len(body["data"]) == 2
    assert body["data"][0]["pzRank"] == 3
    assert body["pxObjClass"] == "Pega-API-DataExploration-Data"
    status, body = await _raw(pega_sim, pega_client, {"paging": {"maxResultsToFetch": 2}})
    assert status == 200 and body["resultCount"] == 2 and body["hasMoreResults"] is True
    assert "pageNumber" not in body
    status, body = await _raw(pega_sim, pega_client, {"paging": {"pageNumber": 1, "pageSize": 2, "maxResultsToFetch": 2}})
    assert status == 400
    assert body["errorDetails"][0]["erroneousInputOutputFieldInPage"] == ".paging"
    status, body = await _raw(pega_sim, pega_client, {"paging": {"pageNumber": 1, "pageSize": 5001}})
    assert status == 400


async def test_select_returns_only_the_selected_fields(pega_client: PegaClient, people: list[str]) -> None:
    rows = await pega_client.query_data_view("D_ContactList", Query([eq("FirstName", "Ann")], select=["Email"]))
    assert rows == [{"pxObjClass": "PegaCRM-Entity-Contact", "Email": "ann@fabrikam.example", "pzRank": 1}]
