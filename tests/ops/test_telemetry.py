"""Telemetry: one item's spans linked from Graph notification intake to the Pega write by one trace id,
and a sample run (a synced email, a failure incident with its notice, a dead letter) whose every span,
metric point and log record — captured by in-memory exporters behind the production privacy
processors — holds no address, subject, body or secret."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sandbox.graph.seed import SYNC_CLIENT_SECRET
from shared.config import load_settings
from shared.graph.gateway import GraphGateway
from shared.ops import telemetry
from shared.ops.hooks import delta_handlers
from shared.ops.incidents import guard
from shared.ops.notices import GraphNotifier
from shared.ops.privacy import mailbox_id
from shared.ops.queue_tracing import TracingQueueSender, traced_all
from shared.pega import PegaClient, PegaRecords
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.runtime import Services
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from shared.storage.subscriptions import SubscriptionRecord
from shared.storage.tables import TableNames
from shared.sync.context import SyncContext
from shared.sync.notifications import ChangeNotification, accept_change_notifications
from tests.ops.conftest import FakeClock, graph_env

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
SUBJECT = "Fleet pricing for Q3 renewal"
BODY = "our confidential numbers are 4242"


@pytest.fixture(scope="module")
def otel():
    spans, reader, logs = InMemorySpanExporter(), InMemoryMetricReader(), InMemoryLogRecordExporter()
    telemetry.configure_for_tests(spans, reader, log_exporter=logs)
    shared_log = logging.getLogger("shared")
    old = shared_log.level
    shared_log.setLevel(logging.INFO)
    yield spans, reader, logs
    shared_log.setLevel(old)
    telemetry.uninstrument_for_tests()
    spans.shutdown()


@pytest.fixture
async def world(otel, azurite_conn, graph_sim, pega_sim, pega_control, people):
    p = pega_sim.settings()
    env = {"AzureWebJobsStorage": azurite_conn, **graph_env(graph_sim), "PEGA_BASE_URL": p.base_url,
           "PEGA_CLIENT_ID": p.client_id, "PEGA_CLIENT_SECRET": p.client_secret or "", "PEGA_USERNAME": p.username,
           "PEGA_PASSWORD": p.password or "", "SYNC_NOTIFICATION_FREQUENCY_MINUTES": "1",
           "SYNC_FAILURE_NOTICE_SENDER": people.sender, "SYNC_FAILURE_NOTICE_ADMIN": people.admin}
    settings = load_settings(env)
    telemetry.set_remote_hosts_for_tests(telemetry.remote_hosts(settings))
    state = await StateStore.open(settings.storage, names=TableNames(prefix="tel" + uuid.uuid4().hex[:8]))
    svc = Services(settings=settings, state=state, queues=TracingQueueSender.from_settings(settings.storage))
    pega = PegaClient(settings.pega)
    ctx = SyncContext(gateway=GraphGateway.from_settings(settings.graph), pega=pega, records=PegaRecords(pega),
                      mapping=pega.mapping, email_insights=None)
    await svc.state.mailboxes.put(Mailbox.with_defaults(people.rep, "alex", settings.sync))
    sub = await svc.state.subscriptions.put(SubscriptionRecord(
        subscription_id=str(uuid.uuid4()), mailbox=people.rep, kind="email",
        resource=f"/users/{people.rep}/mailFolders('inbox')/messages", client_state="cs-" + uuid.uuid4().hex,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)))
    otel[0].clear()
    yield svc, ctx, sub, env
    await ctx.gateway.close()
    await pega.close()
    await svc.close()


async def take_round_message(svc: Services, mailbox: str) -> str:
    client = svc.queues.client(names.DELTA_WORK)
    for _ in range(50):
        async for m in client.receive_messages(messages_per_page=32, visibility_timeout=2):
            if Envelope.loads(m.content).body.get("mailbox") == mailbox:
                await client.delete_message(m)
                return str(m.content)
    raise AssertionError("the delta round message never arrived")


async def intake_to_pega(svc, ctx, sub, graph_sim, rep) -> tuple[str, Envelope]:
    """Notification intake → queue → delta worker → Graph reads → Pega write, as the app does it."""
    sent = await graph_sim.control.inbound_mail(rep, subject=SUBJECT, body=BODY, **{"from": DANA})
    with telemetry.server_span("POST graph/notifications", **{"http.route": "graph/notifications"}) as root:
        result = await accept_change_notifications(svc, [ChangeNotification(
            subscription_id=sub.subscription_id, client_state=sub.client_state, change_type="created",
            resource=f"Users/{rep}/Messages/{sent['id']}", resource_id=sent["id"], etag='W/"1"',
            tenant_id=graph_sim.tenant_id)])
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert result.enqueued == 1
    text = await take_round_message(svc, rep)
    env = Envelope.loads(text)

    handlers = delta_handlers(svc, context=ctx)  # the product hook: tracing, metrics, notification-frequency guard
    out = await run_message(queue=names.DELTA_WORK, text=text, dequeue_count=1, handlers=handlers,
                            deadletters=svc.state.deadletters, sender=svc.queues)
    assert out.status == "done"
    return trace_id, env


async def test_one_trace_from_notification_intake_to_the_pega_write(otel, world, graph_sim, pega_sim, people):
    spans_exp = otel[0]
    svc, ctx, sub, _ = world
    trace_id, env = await intake_to_pega(svc, ctx, sub, graph_sim, people.rep)
    assert env.traceparent and env.traceparent.split("-")[1] == trace_id  # the context travelled in the envelope

    spans = [s for s in spans_exp.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    root = next(s for s in spans if s.kind == SpanKind.SERVER and s.name == "POST graph/notifications")
    consumer = next(s for s in spans if s.kind == SpanKind.CONSUMER and s.name == "process delta.sync")
    assert consumer.parent is not None and consumer.parent.span_id == root.context.span_id
    assert consumer.attributes["pes.mailbox"] == mailbox_id(people.rep)
    assert "pes.items.synced" in otel[1].get_metrics_data().to_json()

    def url(s):
        return str(s.attributes.get("url.full") or s.attributes.get("http.url") or "")

    graph_calls = [s for s in spans if s.kind == SpanKind.CLIENT and graph_sim.graph_url in url(s)]
    pega_writes = [s for s in spans if s.kind == SpanKind.CLIENT and url(s).startswith(pega_sim.base_url)
                   and str(s.attributes.get("http.request.method") or s.attributes.get("http.method")) in
                   ("POST", "PUT", "PATCH")]
    assert graph_calls, "no Graph call in the trace"
    assert pega_writes, f"no Pega write in the trace: {[(s.name, url(s)) for s in spans]}"

    # every Graph/Pega span descends from the consumer span, which descends from intake
    by_id = {s.context.span_id: s for s in spans}

    def ancestors(s):
        while s.parent is not None and s.parent.span_id in by_id:
            s = by_id[s.parent.span_id]
            yield s

    for s in (*graph_calls, *pega_writes):
        chain = list(ancestors(s))
        assert consumer in chain and root in chain, s.name


async def test_sample_run_emits_no_addresses_content_or_secrets(otel, world, graph_sim, people):
    spans_exp, reader, logs_exp = otel
    svc, ctx, sub, env = world
    rep = people.rep
    await intake_to_pega(svc, ctx, sub, graph_sim, rep)

    # a failure incident: Graph fault for longer than the frequency → dead letter + failure notice
    clock = FakeClock()
    notifier = GraphNotifier(ctx.gateway, sender=people.sender, admin=people.admin)

    async def probe(e: Envelope) -> None:
        await ctx.gateway.request("GET", f"users/{rep}/mailFolders/inbox/messages", mailbox=rep,
                                  params={"$filter": f"from/emailAddress/address eq '{DANA['address']}'"})

    handlers = traced_all({"delta.sync": guard(probe, services=svc, clock=clock, notifier=notifier)},
                          queue="telemetry-test")
    rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
    try:
        e = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "calendar", "reason": "poll"})
        for _ in range(2):
            try:
                out = await run_message(queue="telemetry-test", text=e.dumps(), dequeue_count=1, handlers=handlers,
                                        deadletters=svc.state.deadletters, sender=svc.queues)
            except Exception:
                out = None
            clock.advance(minutes=2)
        assert out is not None and out.status == "dead_lettered"
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
    telemetry.record_remote_call("pega", 429, mailbox=rep, kind="email", direction=telemetry.INBOUND)
    telemetry.set_incident_open(rep, "calendar", True)
    logging.getLogger("shared.ops.test").warning("checking %s (token=%s)", rep, "s3cr3t-value")

    spans = spans_exp.get_finished_spans()
    points = reader.get_metrics_data()
    records = logs_exp.get_finished_logs()
    assert len(spans) > 20 and records
    blob = "\n".join([*(s.to_json() for s in spans), points.to_json(), *(r.to_json() for r in records)])

    # captured for real: our pseudonymous id, the workbook's metric names, the failure in the logs
    assert mailbox_id(rep) in blob
    metric_names = {m.name for rm in points.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"pes.items.synced", "pes.items.failed", "pes.items.deadlettered", "pes.sync.latency",
            "pes.remote.calls", "pes.incidents.open"} <= metric_names
    opened = [r for r in records if "incident opened" in str(r.log_record.body)]
    assert opened and opened[0].log_record.attributes["pes.mailbox"] == mailbox_id(rep)
    assert opened[0].log_record.attributes["pes.event"] == "incident_opened"
    calls = [(dict(p.attributes), p.value) for rm in points.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics if m.name == "pes.remote.calls" for p in m.data.data_points]
    graph_503 = [a for a, _ in calls if a.get("pes.service") == "graph" and a.get("pes.status_code") == "503"]
    assert graph_503 and all(a.get("pes.mailbox") == mailbox_id(rep) for a in graph_503)
    assert any(a.get("pes.service") == "pega" and a.get("pes.status_code", "").startswith("2") for a, _ in calls)

    low = blob.lower()
    forbidden = [rep, people.admin, people.sender, DANA["address"], rep.replace("@", "%40"), SUBJECT, BODY,
                 "failing for", "sync is failing",  # the notice's subject line
                 SYNC_CLIENT_SECRET, env["PEGA_CLIENT_SECRET"], env["PEGA_PASSWORD"], "s3cr3t-value", "bearer ", "eyj"]
    leaks = [f for f in forbidden if f and f.lower() in low]
    assert not leaks, f"telemetry leaked {leaks}"
    assert not re.search(r"[a-z0-9._-]+@[a-z0-9-]+\.[a-z]", low), "an email address reached telemetry"
