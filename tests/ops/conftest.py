"""Fixtures for the operations suite: per-test isolated state (own table prefix), a Graph gateway
against the session's Graph simulator, fresh simulated mailboxes, and an injectable clock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.graph.seed import SYNC_CLIENT_ID, SYNC_CLIENT_SECRET
from shared.config import load_settings
from shared.graph.gateway import GraphGateway
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.state import StateStore
from shared.storage.tables import TableNames


class FakeClock:
    """Now, as the code under test sees it; tests move it instead of sleeping for minutes."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.t = start or dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, **kw: float) -> dt.datetime:
        self.t += dt.timedelta(**kw)
        return self.t


@dataclass
class People:
    rep: str
    admin: str
    sender: str


def graph_env(graph_sim: Any) -> dict[str, str]:
    return {"GRAPH_TENANT_ID": graph_sim.tenant_id, "GRAPH_CLIENT_ID": SYNC_CLIENT_ID,
            "GRAPH_CLIENT_SECRET": SYNC_CLIENT_SECRET, "GRAPH_AUTHORITY_HOST": graph_sim.authority,
            "GRAPH_BASE_URL": graph_sim.graph_url, "GRAPH_CA_BUNDLE": str(graph_sim.ca_path),
            "GRAPH_TIMEOUT_SECONDS": "10"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def people(graph_sim: Any) -> People:
    c = graph_sim.control
    rep, admin, sender = (await c.new_user("Rep"), await c.new_user("Admin"), await c.new_user("Sync notices"))
    return People(rep["userPrincipalName"].lower(), admin["userPrincipalName"].lower(),
                  sender["userPrincipalName"].lower())


@pytest.fixture
def ops_env(azurite_conn: str, graph_sim: Any, people: People) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite_conn, "APP_MODE": "sandbox", **graph_env(graph_sim),
            "SYNC_NOTIFICATION_FREQUENCY_MINUTES": "1", "SYNC_FAILURE_NOTICE_SENDER": people.sender,
            "SYNC_FAILURE_NOTICE_ADMIN": people.admin}


@pytest.fixture
async def services(ops_env: dict[str, str]) -> AsyncIterator[Services]:
    settings = load_settings(ops_env)
    prefix = "t" + uuid.uuid4().hex[:10]
    state = await StateStore.open(settings.storage, names=TableNames(prefix=prefix))
    svc = Services(settings=settings, state=state, queues=QueueSender.from_settings(settings.storage))
    yield svc
    await svc.close()


@pytest.fixture
async def gateway(services: Services) -> AsyncIterator[GraphGateway]:
    gw = GraphGateway.from_settings(services.settings.graph)
    yield gw
    await gw.close()


@pytest.fixture
def queue_name() -> str:
    return "q" + uuid.uuid4().hex[:12]


async def inbox(graph_sim: Any, upn: str, *, subject_prefix: str = "Pega Exchange Sync") -> list[dict[str, Any]]:
    """Messages in a simulated mailbox's Inbox whose subject starts with `subject_prefix`."""
    state = await graph_sim.control.state()
    uid = next(u["id"] for u in state["users"] if u["userPrincipalName"].lower() == upn.lower())
    inbox_ids = {f["id"] for f in state["folders"] if f["owner"] == uid and f.get("wellKnownName") == "inbox"}
    return [it["data"] for it in state["items"] if it["owner"] == uid and it["kind"] == "message"
            and it["folderId"] in inbox_ids and str(it["data"].get("subject", "")).startswith(subject_prefix)]
