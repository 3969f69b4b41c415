"""The simulator process itself and the state-wide /_sim/ operations (reset, dump), on a private instance."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from tests.plugins.graph_sim import GraphSim, start_graph_sim


@pytest.fixture(scope="module")
def private_sim() -> Iterator[GraphSim]:
    sim = start_graph_sim()
    try:
        yield sim
    finally:
        assert sim.service is not None
        sim.service.stop()
        shutil.rmtree(sim.ca_path.parent, ignore_errors=True)


async def test_reset_and_state_dump(private_sim: GraphSim) -> None:
    ctl = private_sim.control
    health = await ctl.call("GET", "health")
    assert health["tenantId"] == private_sim.tenant_id and health["authority"] == private_sim.authority
    assert health["caPath"] == str(private_sim.ca_path) and private_sim.ca_path.exists()
    user = await ctl.new_user("Temp")
    await ctl.inbound_mail(user["userPrincipalName"], subject="hello", body="x")
    await ctl.set_throttle(concurrency=1)
    await ctl.add_fault(path="users/.*", status=503)
    state = await ctl.state()
    assert user["id"] in {u["id"] for u in state["users"]}
    [item] = [i for i in state["items"] if i["owner"] == user["id"]]
    assert item["data"]["subject"] == "hello" and item["changeKey"] and item["immutableId"] != item["id"]
    await ctl.reset()
    state = await ctl.state()
    assert sorted(u["userPrincipalName"] for u in state["users"]) == ["alex@contoso.example",
                                                                       "blair@contoso.example"]
    assert state["items"] == [] and (await ctl.call("GET", "throttle"))["concurrency"] == 4
    assert (await ctl.call("GET", "faults"))["rules"] == []
    async with httpx.AsyncClient(verify=str(private_sim.ca_path), timeout=10) as tls:
        meta = await tls.get(f"{private_sim.authority}/{private_sim.tenant_id}/v2.0/.well-known/openid-configuration")
    assert meta.json()["issuer"] == f"{private_sim.base_url}/{private_sim.tenant_id}/v2.0"  # same issuer on https


async def test_control_api_rejects_bad_input(private_sim: GraphSim) -> None:
    async with httpx.AsyncClient(base_url=private_sim.base_url, timeout=10) as http:
        assert (await http.post("/_sim/users", json={"userPrincipalName": "no-at-sign"})).status_code == 400
        dup = await http.post("/_sim/users", json={"userPrincipalName": "alex@contoso.example"})
        assert dup.status_code == 400
        assert (await http.post("/_sim/faults", json={"kind": "explode"})).status_code == 400
        assert (await http.post("/_sim/subscriptions/nope/lifecycle", json={"event": "missed"})).status_code == 404
        assert (await http.post("/_sim/users/nobody@x.example/inbound-mail", json={})).status_code == 404
