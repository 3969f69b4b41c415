"""Exchange → Pega tests against the real stand-ins: Graph simulator and Pega simulator over HTTP,
state in Azurite (tables isolated per test by a unique prefix), the real GraphGateway and PegaClient.

`inbound` gives a fresh Graph mailbox onboarded in our state store, an `agent` httpx client that
acts as the user's Outlook, and helpers to run rounds and inspect Pega and the link table.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from sandbox.ews.seed import SERVICE_PASSWORD as EWS_SERVICE_PASSWORD
from sandbox.ews.seed import SERVICE_USER as EWS_SERVICE_USER
from sandbox.graph.seed import AGENT_CLIENT_ID, AGENT_CLIENT_SECRET, SYNC_CLIENT_ID, SYNC_CLIENT_SECRET
from shared.config import PrivatePolicy, load_settings
from shared.graph.gateway import GraphGateway
from shared.pega import PegaClient
from shared.pega.factory import adapter_for
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.links import Link
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from shared.sync.context import SyncContext, insight_hooks
from shared.sync.inbound import RoundReport, run_delta_round


async def drop_tables(state: StateStore) -> None:
    """Delete a test's own state tables (its unique prefix), whatever state they are in."""
    for name in state.tables.names.all():
        try:
            await state.tables._service.delete_table(name)
        except Exception:
            pass


def sync_settings_env(graph_sim: Any, pega_sim: Any, conn: str, **extra: str) -> dict[str, str]:
    p = pega_sim.settings()
    env = {
        "AzureWebJobsStorage": conn,
        "GRAPH_TENANT_ID": graph_sim.tenant_id, "GRAPH_CLIENT_ID": SYNC_CLIENT_ID,
        "GRAPH_CLIENT_SECRET": SYNC_CLIENT_SECRET, "GRAPH_AUTHORITY_HOST": graph_sim.authority,
        "GRAPH_BASE_URL": graph_sim.graph_url, "GRAPH_CA_BUNDLE": str(graph_sim.ca_path),
        "GRAPH_TIMEOUT_SECONDS": "10",
        "PEGA_BASE_URL": p.base_url, "PEGA_CLIENT_ID": p.client_id, "PEGA_CLIENT_SECRET": p.client_secret or "",
        "PEGA_USERNAME": p.username, "PEGA_PASSWORD": p.password or "", "PEGA_TIMEOUT_SECONDS": "10",
    }
    env.update(extra)
    return env


@dataclass
class StorageRequests:
    """Every Table request of the test's state store as (method, table), recorded while `on`."""

    on: bool = False
    seen: list[tuple[str, str]] = field(default_factory=list)

    def hook(self, request: Any) -> None:
        if self.on:
            path = request.http_request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            self.seen.append((request.http_request.method, path.split("(", 1)[0]))


@dataclass
class Inbound:
    services: Services
    ctx: SyncContext
    upn: str
    graph: Any  # GraphSim
    pega_control: Any  # PegaSimControl
    agent: httpx.AsyncClient  # acts as the user (Outlook)
    backend: str = "graph"  # graph: an Exchange Online mailbox; ews: an on-premises one (EWS simulator)
    ews: Any = None  # EwsSim, for backend ews
    outlook: Any = None  # backend ews: the user's Outlook as Graph-shaped calls carried out over EWS
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    storage: StorageRequests = field(default_factory=StorageRequests)

    async def onboard(self, **overrides: Any) -> Mailbox:
        mb = Mailbox.with_defaults(self.upn, "alex", self.services.settings.sync)
        mb = replace(mb, backend=self.backend, **overrides)
        return await self.services.state.mailboxes.put(mb)

    async def inbound_mail(self, **message: Any) -> dict[str, Any]:
        """A message arriving in the Inbox, in the Graph simulator's vocabulary for both backends."""
        if self.backend == "graph":
            return dict(await self.graph.control.inbound_mail(self.upn, **message))
        sender = message.get("from") or {}
        body = {"subject": message.get("subject", ""), "body": message.get("body", ""),
                "bodyType": message.get("bodyType", "HTML"), "from": sender.get("address", "x@fabrikam.example"),
                "fromName": sender.get("name", ""), "to": message.get("to") or [self.upn], "cc": message.get("cc"),
                "categories": message.get("categories"), "internetMessageId": message.get("internetMessageId"),
                "receivedDateTime": message.get("receivedDateTime")}
        props = message.get("singleValueExtendedProperties") or {}
        level = props.get("Integer 0x0036") if isinstance(props, dict) else None
        if level is not None:
            body["sensitivity"] = ("Normal", "Personal", "Private", "Confidential")[int(level)]
        if message.get("inReplyTo"):
            body["inReplyTo"] = message["inReplyTo"]
        made = dict(self.ews.control("POST", f"mailboxes/{self.upn}/inbound-mail",
                                     {k: v for k, v in body.items() if v is not None}))
        return {**made, "immutableId": made["id"]}

    async def run(self, kind: str, **kw: Any) -> RoundReport:
        """A round, then (as the host's insight worker would) the insights it queued for this mailbox."""
        kw.setdefault("reason", "poll")
        report = await run_delta_round(self.services, mailbox=self.upn, kind=kind, context=self.ctx, **kw)
        await self.drain_insights()
        return report

    async def drain_insights(self) -> list[Any]:
        """Run this mailbox's `insight-work` messages from Azurite through the queue worker, as the host
        does (INSIGHTS_DEFERRED: auto, always). Messages of tests that ended are removed; a failing one stays queued.
        Returns the outcomes (shared.queues.worker.Outcome)."""
        from shared.queues import names
        from shared.queues.worker import run_message
        from shared.sync import insight_jobs

        sender = self.services.queues
        await sender.ensure(names.INSIGHT_WORK)
        q = sender.client(names.INSIGHT_WORK)
        mb = await self.services.state.mailboxes.get(self.upn)
        key = mb.key if mb is not None else self.upn.lower()
        outcomes: list[Any] = []
        while True:
            got = [m async for m in q.receive_messages(messages_per_page=32, visibility_timeout=30, max_messages=32)]
            if not got:
                return outcomes
            for m in got:
                body = json.loads(m.content).get("body") or {}
                if body.get("mailbox") != key:
                    if m.inserted_on is not None and m.inserted_on < self.started:
                        await q.delete_message(m)  # a test that ended before this one began
                    continue
                try:
                    outcomes.append(await run_message(
                        queue=names.INSIGHT_WORK, text=m.content, dequeue_count=int(m.dequeue_count or 1),
                        handlers=insight_jobs.handlers(self.services, context=self.ctx),
                        deadletters=self.services.state.deadletters, sender=sender, redact=insight_jobs.redact))
                except Exception:  # the host would retry it after the visibility timeout
                    continue
                await q.delete_message(m)

    async def links(self, kind: str) -> list[Link]:
        return await self.services.state.links.list(self.upn, kind=kind)

    async def pega_records(self, kind: str) -> list[dict[str, Any]]:
        return list(await self.pega_control.records(kind))

    async def pega_record(self, record_id: str) -> dict[str, Any]:
        return dict(await self.pega_control.record(record_id))

    async def replay_next_delta(self) -> None:
        """Exchange delivering pages again: Graph replays the next delta page; for EWS the stored sync
        states go back to the start, so the next round reads everything again."""
        if self.backend == "graph":
            await self.graph.control.replay_next_delta(self.upn)
            return
        for cursor in await self.services.state.cursors.list(self.upn):
            await self.services.state.cursors.save(replace(cursor, next_link="", delta_link=""))

    async def expire_delta_tokens(self) -> None:
        if self.backend == "graph":
            await self.graph.control.expire_delta_tokens(self.upn)
        else:
            self.ews.control("POST", "sync-states/invalidate", {"mailbox": self.upn})

    async def throttle_delta(self, *, retry_after: int) -> Callable[[], Awaitable[None]]:
        """The next delta read is throttled with this back-off; returns the clean-up."""
        if self.backend == "graph":
            fault = await self.graph.control.add_fault(path=f"users/{self.upn}/mailFolders/.*/messages/delta",
                                                       status=429, retry_after=retry_after, count=1)
            return lambda: self.graph.control.call("DELETE", f"faults/{fault['id']}")
        self.ews.control("POST", "faults", {"code": "ErrorServerBusy", "mailbox": self.upn, "count": 1,
                                            "operation": "SyncFolderItems", "backOffMilliseconds": retry_after * 1000})

        async def clear() -> None:
            self.ews.control("DELETE", "faults")
        return clear

    async def now(self) -> dt.datetime:
        """The Exchange side's clock (each simulator has its own, advanced by tests)."""
        if self.backend == "graph":
            state = await self.graph.control.call("GET", "clock")
        else:
            state = self.ews.control("POST", "clock", {"advanceSeconds": 0})
        return dt.datetime.fromisoformat(str(state["now"]).replace("Z", "+00:00"))

    async def advance_clock(self, seconds: float) -> None:
        if self.backend == "graph":
            await self.graph.control.advance_clock(seconds)
        else:
            self.ews.control("POST", "clock", {"advanceSeconds": seconds})

    async def touch(self, item_id: str, **same: Any) -> None:
        """A new change key without a content change (Outlook re-saving an item)."""
        if self.backend == "graph":
            await self.graph.control.touch(self.upn, item_id)
        else:
            await self.user_call("PATCH", f"events/{item_id}", json=same)

    async def app_call(self, method: str, path: str, **kw: Any) -> Any:
        """A write by the sync service itself (the Pega → Exchange side): the Graph app, or the EWS
        service account impersonating the rep."""
        if self.backend == "ews":
            return await self.user_call(method, path, **kw)
        async with await self.graph.http() as sync_app:
            r = await sync_app.request(method, f"/users/{self.upn}/{path.lstrip('/')}",
                                       headers={"Prefer": 'IdType="ImmutableId"'}, **kw)
            assert r.status_code < 300, r.text
            return r.json() if r.content else None

    async def user_call(self, method: str, path: str, **kw: Any) -> Any:
        if self.backend == "ews":
            resp = await self.outlook.request(method, f"users/{self.upn}/{path.lstrip('/')}", mailbox=self.upn,
                                              body=kw.get("json", kw.get("content")), params=kw.get("params"))
            return resp.json() if resp.body else None
        headers = {"Prefer": 'IdType="ImmutableId"', **kw.pop("headers", {})}
        r = await self.agent.request(method, f"/users/{self.upn}/{path.lstrip('/')}", headers=headers, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None


@pytest.fixture
def backend() -> str:
    """The mailbox backend of `inbound`. A suite runs for both with
    `pytestmark = pytest.mark.parametrize("backend", ["graph", "ews"])`."""
    return "graph"


@pytest.fixture
def pega_adapter() -> str:
    """The Pega adapter of `inbound` (PEGA_ADAPTER). A suite runs for both with
    `pytest.mark.parametrize("pega_adapter", ["sync-service", "dx-v2"])`."""
    return "dx-v2"


@pytest.fixture
async def inbound(request: pytest.FixtureRequest, backend: str, pega_adapter: str, graph_sim: Any, pega_sim: Any,
                  pega_control: Any, azurite_conn: str, tmp_path: Any) -> AsyncIterator[Inbound]:
    only = request.node.get_closest_marker("graph_only")
    if backend == "ews" and only is not None:
        pytest.skip(f"Graph only: {only.args[0] if only.args else ''}")
    ews_sim = request.getfixturevalue("ews_sim") if backend == "ews" else None
    extra: dict[str, str] = {} if ews_sim is None else {
        "EWS_URL": ews_sim.endpoint, "EWS_USERNAME": EWS_SERVICE_USER, "EWS_PASSWORD": EWS_SERVICE_PASSWORD,
        "EWS_TIMEOUT_SECONDS": "20"}
    marker = request.node.get_closest_marker("pega_mapping")
    if marker is not None:  # @pytest.mark.pega_mapping({...}): a mapping file overriding these parts
        path = tmp_path / "mapping.json"
        path.write_text(json.dumps(marker.args[0]))
        extra["PEGA_MAPPING_FILE"] = str(path)
    extra["PEGA_ADAPTER"] = pega_adapter
    env_marker = request.node.get_closest_marker("sync_env")
    if env_marker is not None:  # @pytest.mark.sync_env({"INSIGHTS_ANALYZER": "vader", ...})
        extra.update(env_marker.args[0])
    rules_marker = request.node.get_closest_marker("insights_rules")
    if rules_marker is not None:  # @pytest.mark.insights_rules("<yaml>"): an INSIGHTS_RULES_FILE with these rules
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(rules_marker.args[0], encoding="utf-8")
        extra["INSIGHTS_RULES_FILE"] = str(rules_path)
    settings = load_settings(sync_settings_env(graph_sim, pega_sim, azurite_conn, **extra))
    storage = StorageRequests()
    state = await StateStore.open(settings.storage, names=TableNames(prefix="si" + uuid.uuid4().hex[:10]),
                                  request_hook=storage.hook)
    queues = QueueSender.from_settings(settings.storage)
    services = Services(settings=settings, state=state, queues=queues)
    pega = PegaClient(settings.pega)
    # the insight hooks the host's own context uses: the engine the settings select
    hooks = insight_hooks(settings.insights)
    ctx = SyncContext(gateway=GraphGateway.from_settings(settings.graph, slots=state.graphslots), pega=pega, records=adapter_for(pega),
                      mapping=pega.mapping, email_insights=hooks["email_insights"],
                      appointment_insights=hooks["appointment_insights"])
    agent = await graph_sim.http(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    if ews_sim is None:
        user = await graph_sim.control.new_user("Rep " + uuid.uuid4().hex[:4])
        found = Inbound(services, ctx, str(user["userPrincipalName"]), graph_sim, pega_control, agent, storage=storage)
    else:
        from shared.ews.gateway import ews_gateway
        from shared.ews.writes import EwsWrites

        found = Inbound(services, ctx, ews_sim.new_mailbox(), graph_sim, pega_control, agent, backend="ews",
                        ews=ews_sim, outlook=EwsWrites(ews_gateway(settings.ews)), storage=storage)
    try:
        yield found
    finally:
        await agent.aclose()
        await ctx.gateway.close()
        await pega.close()
        await drop_tables(state)
        await services.close()


@pytest.fixture
def private_full() -> dict[str, Any]:
    return {"private_policy": PrivatePolicy.FULL}
