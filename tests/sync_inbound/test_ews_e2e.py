"""Exchange → Pega for an ON-PREMISES mailbox (backend ews): the same round, planner and Pega side,
reading the EWS simulator through the real exchangelib; the rep's Outlook is exchangelib too.

Also a hybrid run: one Exchange Online (Graph) and one on-premises (EWS) rep in one deployment.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from sandbox.ews.seed import SERVICE_PASSWORD, SERVICE_USER
from shared.config import load_settings
from shared.ews.errors import EwsThrottledError
from shared.graph.gateway import GraphGateway
from shared.pega import PegaClient, PegaRecords
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from shared.sync.context import SyncContext
from shared.sync.inbound import RoundReport, run_delta_round
from shared.sync.mapping import LINK_KIND
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


async def test_email_reaches_pega_once_private_and_drafts_skipped(onprem: OnPrem) -> None:
    await onprem.onboard()
    first = _mail(onprem, subject="Quote request", body="<p>Please quote</p>", **{"from": "buyer@fabrikam.example"})
    _mail(onprem, subject="Private", sensitivity="Private")
    from exchangelib import Message

    account = onprem.outlook()
    Message(account=account, folder=account.drafts, subject="draft").save()
    report = await onprem.run("email")
    assert report.completed and report.outcomes["created"] == 1 and report.skipped["private"] == 1
    links = await onprem.services.state.links.list(onprem.upn, kind=LINK_KIND["email"])
    assert [lk.graph_id for lk in links] == [first["id"]]
    again = await onprem.run("email")
    assert again.outcomes["created"] == 0  # the sync state moved on: nothing new


async def test_calendar_series_with_modified_and_deleted_occurrences(onprem: OnPrem) -> None:
    from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
    from exchangelib.recurrence import DailyPattern, NumberedPattern, Recurrence

    await onprem.onboard()
    account = onprem.outlook()
    berlin = EWSTimeZone("Europe/Berlin")
    now = dt.datetime.now(dt.UTC)
    start = EWSDateTime(now.year, now.month, now.day, 9, 0, tzinfo=berlin) + dt.timedelta(days=2)
    single = CalendarItem(account=account, folder=account.calendar, subject="Customer call", start=start,
                          end=start + dt.timedelta(hours=1))
    single.save()
    series = CalendarItem(account=account, folder=account.calendar, subject="Standup", start=start,
                          end=start + dt.timedelta(minutes=15),
                          recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                                boundary=NumberedPattern(start=start.date(), number=5)))
    series.save()
    report = await onprem.run("calendar")
    assert report.outcomes["created"] == 6, report.as_dict()
    occurrences = list(account.calendar.view(start=start - dt.timedelta(hours=1), end=start + dt.timedelta(days=6)))
    standups = [o for o in occurrences if o.subject == "Standup"]
    standups[1].subject = "Standup (moved)"
    standups[1].save(update_fields=["subject"])
    gone_occurrence, gone_single = standups[2].id, single.id  # delete() forgets the id
    standups[2].delete()
    single.delete()
    report = await onprem.run("calendar")
    assert report.outcomes["updated"] >= 1 and report.outcomes["cancelled"] == 2, report.as_dict()
    links = {lk.graph_id: lk for lk in await onprem.services.state.links.list(onprem.upn, kind=LINK_KIND["calendar"])}
    assert links[gone_occurrence].state != "active" and links[gone_single].state != "active"
    assert links[standups[1].id].state == "active"


async def test_contacts_by_category_and_closed_when_removed(onprem: OnPrem) -> None:
    from exchangelib import Contact
    from exchangelib.indexed_properties import EmailAddress

    await onprem.onboard()
    account = onprem.outlook()
    tagged = Contact(account=account, folder=account.contacts, display_name="Ann Lee", given_name="Ann",
                     surname="Lee", categories=["PegaSASync"],
                     email_addresses=[EmailAddress(email="ann@fabrikam.example", label="EmailAddress1")])
    tagged.save()
    Contact(account=account, folder=account.contacts, display_name="Not synced", given_name="No").save()
    report = await onprem.run("contacts")
    assert report.outcomes["created"] == 1 and report.skipped["no_category"] == 1
    tagged.categories = []
    tagged.save(update_fields=["categories"])
    report = await onprem.run("contacts")
    assert report.outcomes["closed"] == 1


async def test_server_busy_defers_with_its_back_off_and_keeps_the_position(onprem: OnPrem) -> None:
    await onprem.onboard()
    _mail(onprem, subject="one")
    onprem.ews.control("POST", "faults", {"code": "ErrorServerBusy", "mailbox": onprem.upn,
                                          "operation": "SyncFolderItems", "backOffMilliseconds": 45_000})
    with pytest.raises(EwsThrottledError) as caught:
        await onprem.run("email")
    assert caught.value.retry_after == 45.0
    health = await onprem.services.state.health.get(onprem.upn, "email")
    assert health is not None and health.throttled >= 1
    report = await onprem.run("email")
    assert report.completed and report.outcomes["created"] == 1


async def test_invalid_sync_state_starts_a_full_resync_without_duplicates(onprem: OnPrem) -> None:
    await onprem.onboard()
    _mail(onprem, subject="one")
    assert (await onprem.run("email")).outcomes["created"] == 1
    onprem.ews.control("POST", "sync-states/invalidate", {"mailbox": onprem.upn})
    _mail(onprem, subject="two")
    report = await onprem.run("email")
    assert report.full_resync and report.outcomes["created"] == 1
    assert len(await onprem.services.state.links.list(onprem.upn, kind=LINK_KIND["email"])) == 2


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
