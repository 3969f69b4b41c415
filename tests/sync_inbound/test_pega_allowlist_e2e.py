"""A Pega side that drops the external id (DX API v2 AllowedStartingFields without ExchangeID).

Real DX API v2 drops fields a case type does not allow on create without an error. The sync's
idempotency rests on the external id being stored: without it every replay would create another
case. The client reads it back after the create and refuses to go on; the item is dead-lettered with
a cause that names the field and the rule to fix, and nothing is linked. Real Graph and Pega
simulators over HTTP, state in Azurite.
"""

from __future__ import annotations

import datetime as dt

import pytest

from shared.storage.failures import DEAD_LETTERED
from tests.sync_inbound.test_correctness_e2e import event_body, retry_parked, sim_now

pytestmark = pytest.mark.parametrize("backend", ["graph"])


async def test_a_dropped_external_id_dead_letters_the_item_with_its_fix(inbound) -> None:
    await inbound.onboard()
    await inbound.pega_control.drop_field("appointment", "ExchangeID")
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Fleet review", now + dt.timedelta(days=1)))
    report = await inbound.run("calendar")
    assert list(report.failed) == [ev["id"]] and report.outcomes.get("created", 0) == 0, report.as_dict()
    [failure] = await inbound.services.state.failures.for_mailbox(inbound.upn)
    assert failure.status == DEAD_LETTERED, "a retry cannot fix a Pega rule: dead-lettered at once"
    assert "ExchangeID" in failure.cause and "AllowedStartingFields" in failure.cause
    assert await inbound.links("event") == [], "never linked to a case that cannot be found again"
    [orphan] = [r for r in await inbound.pega_records("appointment") if r["content"].get("Subject") == "Fleet review"]
    assert orphan["id"] in failure.cause, "the case to withdraw is named"

    # the Pega side is fixed: the replayed item creates one case that carries the id, and links it
    await inbound.pega_control.reset()
    assert await retry_parked(inbound, "calendar") == ["created"]
    cases = [r for r in await inbound.pega_records("appointment") if r["content"].get("ExchangeID") == ev["id"]]
    assert len(cases) == 1
    assert [link.pega_id for link in await inbound.links("event")] == [cases[0]["id"]]


async def test_the_documented_pega_configuration_drops_nothing_the_sync_writes(inbound) -> None:
    """With the allow-lists docs/pega-setup.md asks for, no field the sync writes is dropped (creates,
    updates, cancels): the case types' lists and the mapping agree."""
    await inbound.onboard()
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Fleet review", now + dt.timedelta(days=1)))
    await inbound.inbound_mail(subject="Quote", body="<p>Please send the quote</p>",
                               **{"from": {"address": "dana@fabrikam.example", "name": "Dana"}})
    assert (await inbound.run("calendar")).outcomes["created"] == 1
    assert (await inbound.run("email")).outcomes["created"] == 1
    await inbound.user_call("PATCH", f"events/{ev['id']}", json={"location": {"displayName": "Room 2"}})
    assert (await inbound.run("calendar")).outcomes["updated"] == 1
    await inbound.user_call("DELETE", f"events/{ev['id']}")
    assert (await inbound.run("calendar")).outcomes["cancelled"] == 1
    assert await inbound.pega_control.dropped() == []


@pytest.mark.parametrize("pega_adapter", ["sync-service"])
async def test_the_sync_service_adapter_speaks_only_the_contract(inbound) -> None:
    """PEGA_ADAPTER=sync-service: every Pega call of a round goes to the Service REST contract."""
    await inbound.onboard()
    await inbound.pega_control.reset_requests()
    now = await sim_now(inbound)
    ev = await inbound.user_call("POST", "events", json=event_body("Fleet review", now + dt.timedelta(days=1)))
    assert (await inbound.run("calendar")).outcomes["created"] == 1
    await inbound.user_call("DELETE", f"events/{ev['id']}")
    assert (await inbound.run("calendar")).outcomes["cancelled"] == 1
    routes = (await inbound.pega_control.requests())["byRoute"]
    assert routes and all("/prweb/api/ExchangeSync/v1/" in r or "oauth2" in r for r in routes), routes
    [rec] = [r for r in await inbound.pega_records("appointment") if r["content"].get("ExchangeID") == ev["id"]]
    assert rec["content"]["pyStatusWork"] == "Resolved-Cancelled" and rec["content"]["ContactID"]
