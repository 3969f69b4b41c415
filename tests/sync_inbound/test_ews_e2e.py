"""What only on-premises mailboxes have: a hybrid run (one Exchange Online and one on-premises rep in
one deployment) and push through EWS pull subscriptions. The inbound scenario suites themselves
(test_email_e2e, test_calendar_e2e, test_contacts_e2e) run for both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from sandbox.ews.seed import SERVICE_PASSWORD, SERVICE_USER
from shared.config import load_settings
from shared.graph.gateway import GraphGateway
from shared.pega import PegaClient, PegaRecords
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from shared.sync.context import SyncContext
from shared.sync.inbound import RoundReport, run_delta_round
from tests.plugins.ews_sim import EwsSim
from tests.sync_inbound.conftest import sync_settings_env


@dataclass
class OnPrem:
    services: Services
    ctx: SyncContext
    upn: str
    ews: EwsSim
    pega_control: Any

    async def onboard(self, **overrides: Any) -> Mailbox:
        mb = replace(Mailbox.with_defaults(self.upn, "alex", self.services.settings.sync), backend="ews", **overrides)
        return await self.services.state.mailboxes.put(mb)

    async def run(self, kind: str, **kw: Any) -> RoundReport:
        kw.setdefault("reason", "poll")
        return await run_delta_round(self.services, mailbox=self.upn, kind=kind, context=self.ctx, **kw)

    def outlook(self) -> Any:
        """The rep's Outlook: exchangelib as the rep (impersonated by the test's own account)."""
        return self.ews.account(self.upn)


@pytest.fixture
async def onprem(graph_sim: Any, ews_sim: EwsSim, pega_sim: Any, pega_control: Any,
                 azurite_conn: str) -> AsyncIterator[OnPrem]:
    settings = load_settings(sync_settings_env(graph_sim, pega_sim, azurite_conn, EWS_URL=ews_sim.endpoint,
                                               EWS_USERNAME=SERVICE_USER, EWS_PASSWORD=SERVICE_PASSWORD,
                                               EWS_TIMEOUT_SECONDS="20"))
    state = await StateStore.open(settings.storage, names=TableNames(prefix="ew" + uuid.uuid4().hex[:10]))
    services = Services(settings=settings, state=state, queues=QueueSender.from_settings(settings.storage))
    pega = PegaClient(settings.pega)
    ctx = SyncContext(gateway=GraphGateway.from_settings(settings.graph), pega=pega, records=PegaRecords(pega),
                      mapping=pega.mapping)
    try:
        yield OnPrem(services, ctx, ews_sim.new_mailbox(), ews_sim, pega_control)
    finally:
        await ctx.gateway.close()
        await pega.close()
        for name in [*state.tables.names.all(), state.tables.names.prefix + "roundlease"]:
            try:
                await state.tables._service.delete_table(name)
            except Exception:
                pass
        await services.close()


def _mail(op: OnPrem, **body: Any) -> dict[str, Any]:
    return dict(op.ews.control("POST", f"mailboxes/{op.upn}/inbound-mail", body))







async def test_hybrid_one_online_and_one_onprem_rep(onprem: OnPrem, graph_sim: Any) -> None:
    await onprem.onboard()
    _mail(onprem, subject="on-premises mail")
    online = await graph_sim.control.new_user("Online rep")
    upn = str(online["userPrincipalName"])
    await onprem.services.state.mailboxes.put(Mailbox.with_defaults(upn, "alex", onprem.services.settings.sync))
    await graph_sim.control.inbound_mail(upn, subject="online mail", body="hi",
                                         **{"from": {"address": "buyer@fabrikam.example", "name": "Buyer"}})
    onprem_report = await onprem.run("email")
    online_report = await run_delta_round(onprem.services, mailbox=upn, kind="email", reason="poll",
                                          context=onprem.ctx)
    assert onprem_report.outcomes["created"] == 1 and online_report.outcomes["created"] == 1


async def test_pull_subscription_asks_for_rounds_of_the_kinds_that_changed(onprem: OnPrem) -> None:
    from shared.ews.events import poll_mailbox

    mb = await onprem.onboard()
    coalescer = onprem.services.state.coalescer

    async def started() -> None:  # the rounds the poll asked for have begun (the queue is not drained here)
        for kind in ("email", "calendar", "contacts"):
            await coalescer.begin_round(onprem.upn, kind)

    assert await poll_mailbox(onprem.services, mb) == ["calendar", "contacts", "email"]  # subscribed: read all
    await started()
    assert await poll_mailbox(onprem.services, mb) == []  # nothing happened
    _mail(onprem, subject="pushed")
    assert await poll_mailbox(onprem.services, mb) == ["email"]
    await started()
    # Exchange dropped the subscription (not polled within its timeout): subscribe again, read all
    onprem.ews.control("POST", "clock", {"advanceSeconds": 31 * 60})
    assert await poll_mailbox(onprem.services, mb) == ["calendar", "contacts", "email"]
