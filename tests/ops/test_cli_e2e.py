"""`pes-admin` over the HTTP admin API of the real app (local host, Azurite, Graph and Pega simulators):
onboard, a dry run with reasons, health and the status table after a real delta round and an open
incident, dead letters listed and replayed, a resync with its progress bar — and direct mode."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import uuid

import aiohttp
import pytest
from rich.console import Console

from sandbox.graph.seed import AGENT_CLIENT_ID, AGENT_CLIENT_SECRET
from shared.admin.cli import run
from shared.config import load_settings
from shared.errors import PermanentError
from shared.graph.gateway import GraphGateway
from shared.ops.incidents import evaluate
from shared.ops.notices import GraphNotifier
from shared.ops.privacy import mailbox_id
from shared.pega import PegaClient, PegaRecords
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.sender import QueueSender
from shared.queues.worker import run_message
from shared.runtime import Services
from shared.storage.health import record_failure
from shared.storage.state import StateStore
from shared.sync.context import SyncContext
from shared.sync.inbound import run_delta_round
from tests.ops.conftest import graph_env, inbox
from tests.plugins.app_host import MASTER_KEY, fast_host_json, start_app_host

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
PRIVATE = [{"id": "Integer 0x0036", "value": "2"}]
WORKERS_OFF = ("delta_poll", "subscription_manager", "subscription_worker", "poison_delta_work",
               "poison_outbound_ops", "poison_subscription_work", "insight_worker", "poison_insight_work", "ops_incidents", "delta_worker",
               "outbound_worker")


def app_env(azurite_conn, graph_sim, pega_sim, sender: str) -> dict[str, str]:
    p = pega_sim.settings()
    return {"AzureWebJobsStorage": azurite_conn, **graph_env(graph_sim),
            "PEGA_BASE_URL": p.base_url, "PEGA_CLIENT_ID": p.client_id, "PEGA_CLIENT_SECRET": p.client_secret or "",
            "PEGA_USERNAME": p.username, "PEGA_PASSWORD": p.password or "", "PEGA_TIMEOUT_SECONDS": "10",
            "SYNC_NOTIFICATION_FREQUENCY_MINUTES": "1", "SYNC_FAILURE_NOTICE_SENDER": sender,
            "SYNC_PUSH_ENABLED": "false"}


@pytest.fixture(scope="module")
def world(azurite_conn, graph_sim, pega_sim, tmp_path_factory):
    sender = f"notices-{uuid.uuid4().hex[:6]}@contoso.example"
    asyncio.run(graph_sim.control.call("POST", "users", {"userPrincipalName": sender, "displayName": "Notices"}))
    env = app_env(azurite_conn, graph_sim, pega_sim, sender)
    host = start_app_host(azurite_conn, settings=env, app="tests.ops.ops_app:app",
                          host_json=fast_host_json(tmp_path_factory.mktemp("ops")), disable=WORKERS_OFF)
    yield env, host
    host.stop()


@pytest.fixture
async def svc(world):
    env, _ = world
    settings = load_settings(env)
    s = Services(settings=settings, state=await StateStore.open(settings.storage),
                 queues=QueueSender.from_settings(settings.storage))
    yield s
    await s.close()


async def cli(*argv: str, host=None, env=None) -> tuple[int, str]:
    buf = io.StringIO()
    console = Console(file=buf, width=240, force_terminal=False, color_system=None)
    if host is not None:
        argv = ("--url", host.url, "--key", MASTER_KEY, *argv)
    code = await run(list(argv), environ=env or {}, console=console)
    if os.environ.get("PES_TEST_SHOW_CLI"):  # to look at the tables: PES_TEST_SHOW_CLI=1 pytest -s
        print(f"$ pes-admin {' '.join(argv[4:] if host is not None else argv)}\n{buf.getvalue()}")
    return code, buf.getvalue()


async def seed_mailbox(graph_sim, upn: str) -> None:
    c = graph_sim.control
    await c.inbound_mail(upn, subject="Fleet pricing", body="numbers attached", **{"from": DANA})
    await c.inbound_mail(upn, subject="Hello", body="hi", **{"from": {"address": "someone@unknown-co.example"}})
    agent = await graph_sim.http(AGENT_CLIENT_ID, AGENT_CLIENT_SECRET)
    try:
        r = await agent.post(f"/users/{upn}/mailFolders/inbox/messages",
                             json={"subject": "draft", "toRecipients": [{"emailAddress": DANA}]})
        assert r.status_code == 201, r.text
        r = await agent.post(f"/users/{upn}/sendMail", json={"message": {
            "subject": "Salary talk", "body": {"contentType": "text", "content": "confidential"},
            "toRecipients": [{"emailAddress": DANA}], "singleValueExtendedProperties": PRIVATE}})
        assert r.status_code == 202, r.text
    finally:
        await agent.aclose()


@contextlib.asynccontextmanager
async def delta_worker(svc: Services, ctx: SyncContext, upn: str):
    """Stands in for the delta-work queue trigger, for this mailbox only (other tests' messages are left alone)."""
    stop = asyncio.Event()

    async def loop():
        client = svc.queues.client(names.DELTA_WORK)
        while not stop.is_set():
            key = (await svc.state.mailboxes.get(upn)).key  # messages name the mailbox by its key
            async for m in client.receive_messages(messages_per_page=32, visibility_timeout=2):
                env = Envelope.loads(m.content)
                if env.body.get("mailbox") not in (upn, key):
                    continue
                await run_delta_round(svc, mailbox=upn, kind=env.body["kind"], reason=env.body["reason"],
                                      full_resync=bool(env.body.get("full_resync")), context=ctx)
                await client.delete_message(m)
            await asyncio.sleep(0.3)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task


async def test_cli_over_the_admin_api(world, svc, graph_sim, pega_control, queue_name):
    env, host = world
    rep = (await graph_sim.control.new_user("Rep"))["userPrincipalName"].lower()

    code, out = await cli("onboard", rep, "--operator", "op-" + uuid.uuid4().hex[:10], "--no-contacts", host=host)
    assert code == 0 and f"Onboarded {rep}" in out, out
    await seed_mailbox(graph_sim, rep)

    # dry run with reasons: one would sync, three excluded, nothing written
    code, out = await cli("dry-run", rep, "--kind", "email", host=host)
    assert code == 0, out
    assert "these 1 items would sync; these 3 are excluded" in out, out
    for reason in ("draft", "private item", "no matching contact or account in Pega"):
        assert reason in out, out
    assert "Salary talk" not in out and "Fleet pricing" not in out  # ids and reasons, never subjects
    code, out = await cli("--json", "dry-run", rep, "--kind", "email", host=host)
    doc = json.loads(out)
    assert doc["counts"]["excluded_by_reason"] == {"no_association": 1, "draft": 1, "private": 1}
    assert doc["counts"]["by_action"] == {"create": 1}
    assert await pega_control.records("email") == [] or all(
        r["content"].get("Subject") != "Fleet pricing" for r in await pega_control.records("email"))

    # a real round, then a calendar incident (failing for 2 minutes, notice sent)
    pega = PegaClient(svc.settings.pega)
    ctx = SyncContext(gateway=GraphGateway.from_settings(svc.settings.graph), pega=pega, records=PegaRecords(pega),
                      mapping=pega.mapping)
    try:
        report = await run_delta_round(svc, mailbox=rep, kind="email", reason="test", context=ctx)
        assert report.synced == 1, report.as_dict()
        t0 = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
        key = (await svc.state.mailboxes.get(rep)).key  # state is keyed by the mailbox's object id
        await svc.state.health.update(key, "calendar", record_failure("GraphUnavailableError: Graph 503", now=t0))
        ev = await evaluate(svc, key, "calendar", notifier=GraphNotifier(ctx.gateway, sender=env[
            "SYNC_FAILURE_NOTICE_SENDER"]))
        assert ev.action == "opened"
        assert len(await inbox(graph_sim, rep)) == 1

        code, out = await cli("health", rep, host=host)
        assert code == 0, out
        assert "private=1" in out and "draft=1" in out and "no_association=1" in out, out
        assert "OPEN" in out and "GraphUnavailableError" in out, out
        code, out = await cli("--json", "health", rep, host=host)
        doc = json.loads(out)
        email = next(k for k in doc["kinds"] if k["kind"] == "email")
        cal = next(k for k in doc["kinds"] if k["kind"] == "calendar")
        assert email["state"] == "ok" and email["synced"] == 1 and email["lag_seconds"] is not None
        assert email["skip_reasons"] == {"draft": 1, "no_association": 1, "private": 1}
        assert cal["state"] == "incident" and cal["incident"]["open"] and cal["incident"]["notified_at"]
        assert next(k for k in doc["kinds"] if k["kind"] == "contacts")["state"] == "disabled"
        assert set(doc["queues"]) >= {"delta-work", "outbound-ops", "delta-work-poison"}

        code, out = await cli("status", host=host)
        row = next(line for line in out.splitlines() if rep in line)
        assert "OPEN" in row and "ok" in row and "incident" in row, out

        # dead letters: list and replay through the API
        async def broken(_env):
            raise PermanentError("Pega 500 while writing the case")

        dead = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"})
        await run_message(queue=queue_name, text=dead.dumps(), dequeue_count=1, handlers={"delta.sync": broken},
                          deadletters=svc.state.deadletters, sender=svc.queues)
        code, out = await cli("deadletters", "list", "--mailbox", rep, host=host)
        assert code == 0 and dead.id in out and "Pega 500" in out, out
        code, out = await cli("deadletters", "show", queue_name, dead.id, host=host)
        assert json.loads(out)["message"]["id"] == dead.id
        code, out = await cli("deadletters", "replay", "--mailbox", rep, host=host)
        assert code == 0 and "Replayed 1, skipped 0, failed 0" in out, out
        code, out = await cli("deadletters", "replay", "--queue", queue_name, "--id", dead.id, host=host)
        assert "Replayed 0, skipped 1" in out and "already replayed" in out, out
        peeked = await svc.queues.client(queue_name).peek_messages(max_messages=5)
        assert [m.content for m in peeked] == [dead.dumps()]

        # resync with a progress bar, while a worker processes the round
        async with delta_worker(svc, ctx, rep):
            code, out = await cli("resync", rep, "--kind", "email", "--wait", "--timeout", "60", host=host)
        assert code == 0 and "resync done" in out, out
    finally:
        await ctx.gateway.close()
        await pega.close()

    code, out = await cli("offboard", rep, host=host)
    assert code == 0 and "Offboarded" in out


async def test_admin_api_needs_the_admin_key_and_validates(world):
    _, host = world
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{host.url}/admin/health") as r:
            assert r.status == 401
        async with s.get(f"{host.url}/admin/health", headers={"x-functions-key": host.function_key}) as r:
            assert r.status == 401  # a function key is not enough
        hdr = {"x-functions-key": MASTER_KEY}
        async with s.get(f"{host.url}/admin/mailboxes/not-an-upn/health", headers=hdr) as r:
            assert r.status == 400
        async with s.get(f"{host.url}/admin/mailboxes/nobody@contoso.example/health", headers=hdr) as r:
            assert r.status == 404
        async with s.post(f"{host.url}/admin/deadletters/replay", headers=hdr, data=b"{}") as r:
            assert r.status == 400
        async with s.post(f"{host.url}/admin/mailboxes/nobody@contoso.example/resync", headers=hdr,
                          data=json.dumps({"kind": "email"})) as r:
            assert r.status == 400


async def test_direct_mode_and_pseudonym(world, svc, graph_sim):
    env, _ = world
    upn = (await graph_sim.control.new_user("Direct"))["userPrincipalName"].lower()
    code, out = await cli("--direct", "onboard", upn, "--operator", "op-" + uuid.uuid4().hex[:10], env=env)
    assert code == 0 and "Onboarded" in out, out
    await graph_sim.control.inbound_mail(upn, subject="Hi", body="x", **{"from": {"address": "x@unknown.example"}})
    code, out = await cli("--direct", "dry-run", upn, "--kind", "email", "--max-pages", "5", env=env)
    assert code == 0 and "these 0 items would sync; these 1 are excluded" in out, out
    code, out = await cli("--direct", "dry-run", upn, "--kind", "email", "--max-pages", "500", env=env)
    assert code == 2 and "max_pages" in out
    code, out = await cli("--direct", "--json", "status", env=env)
    rows = {r["upn"]: r for r in json.loads(out)["mailbox_rows"]}
    assert rows[upn]["status"] == "active"
    code, out = await cli("pseudonym", upn.upper())
    assert out.strip() == mailbox_id(upn) and upn not in out
    code, out = await cli("status", env={})
    assert code == 2 and "PES_ADMIN_URL" in out
