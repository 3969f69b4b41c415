"""What one notification round costs in storage and Pega requests (issue 16: at 50 changes/s over 20
mailboxes nearly every notification is a round of its own, so these per-round requests are most of the
host's and Azurite's CPU per item). Counted on the real clients against Azurite, the Graph and the
Pega simulators; the counts are budgets — a change that adds a request per round fails here."""

from __future__ import annotations

from collections import Counter

import pytest

from shared.sync.inbound import run_delta_round

from .conftest import Inbound

DANA = {"from": {"address": "dana@fabrikam.example", "name": "Dana"}}
pytestmark = pytest.mark.sync_env({"INSIGHTS_ENABLED": "false"})


async def _round(inbound: Inbound) -> tuple[object, Counter[tuple[str, str]], list[str]]:
    """A notification round, with the Table requests (method, table without the test's prefix) and
    the Pega API paths it sent (token requests aside)."""
    prefix = inbound.services.state.tables.names.prefix
    log_from = int((await inbound.pega_control.request_log())["total"])
    inbound.storage.seen.clear()
    inbound.storage.on = True
    try:
        report = await run_delta_round(inbound.services, mailbox=inbound.upn, kind="email", reason="notification",
                                       context=inbound.ctx)
    finally:
        inbound.storage.on = False
    tables = Counter((m, t.removeprefix(prefix)) for m, t in inbound.storage.seen)
    pega = [e["path"] for e in (await inbound.pega_control.request_log(since=log_from))["value"]
            if "/oauth2/" not in e["path"]]  # a token is fetched when the client first needs one
    return report, tables, pega


async def test_a_round_for_one_new_mail_costs_its_budget_of_requests(inbound: Inbound) -> None:
    await inbound.onboard()
    await run_delta_round(inbound.services, mailbox=inbound.upn, kind="email", reason="onboard", context=inbound.ctx)
    await inbound.inbound_mail(subject="Order", body="Thanks, it arrived.", **DANA)
    report, tables, pega = await _round(inbound)
    assert report.outcomes["created"] == 1, report.as_dict()
    # the lease is let go with one conditional delete
    assert tables[("GET", "roundlease")] == 0, tables
    # Inbox: marked in flight, then advanced; Sent Items (no items): advanced only
    assert tables[("PUT", "cursors")] == 3, tables
    assert sum(tables.values()) <= 15, tables
    # the Exchange-id and internetMessageId lookups before the create share one data-view query
    assert sum(1 for p in pega if p.endswith("/D_EmailList")) == 1, pega
    assert len(pega) <= 4, pega


async def test_a_round_with_nothing_new_writes_each_cursor_once(inbound: Inbound) -> None:
    await inbound.onboard()
    await run_delta_round(inbound.services, mailbox=inbound.upn, kind="email", reason="onboard", context=inbound.ctx)
    report, tables, pega = await _round(inbound)
    assert report.items == 0, report.as_dict()
    assert tables[("PUT", "cursors")] == tables[("GET", "cursors")] == 2, tables
    assert pega == []
