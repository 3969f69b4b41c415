"""Notification frequency end to end: a Graph fault injected in the simulator that lasts longer than
the frequency (1 minute, on an injected clock) produces exactly one failure email and one recovery
email in the rep's simulated mailbox (and the admin's), stuck messages become dead letters with their
cause, and concurrent workers and timers never send a second notice."""

from __future__ import annotations

import asyncio
import re

import pytest

from shared.errors import TransientError
from shared.ops.incidents import GaveUpError, evaluate_all, guard, should_give_up
from shared.ops.notices import GraphNotifier
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.storage.mailboxes import Mailbox
from tests.ops.conftest import inbox


def probe_handler(gateway):
    """Stands in for the delta worker: one Graph read of the rep's mailbox per message."""

    async def probe(env: Envelope) -> None:
        mb = env.body["mailbox"]
        await gateway.request("GET", f"users/{mb}/mailFolders/inbox/messages", mailbox=mb, params={"$top": 1})

    return probe


async def deliver(services, queue, handlers, env: Envelope, dequeue_count: int = 1):
    """What the queue trigger does with one message; a retryable failure re-raises (the host retries)."""
    try:
        return await run_message(queue=queue, text=env.dumps(), dequeue_count=dequeue_count, handlers=handlers,
                                 deadletters=services.state.deadletters, sender=services.queues)
    except TransientError:
        return None


async def failing_rep(graph_sim, services, gateway, people, clock):
    """The rep's mailbox onboarded, a guarded probe handler with the Graph notifier, and a 503 fault on
    the rep's mail folders: (rep, notifier, handlers, fault rule)."""
    rep = people.rep
    await services.state.mailboxes.put(Mailbox(upn=rep, pega_operator="rep"))
    notifier = GraphNotifier(gateway, sender=people.sender, admin=people.admin)
    handlers = {"delta.sync": guard(probe_handler(gateway), services=services, clock=clock, notifier=notifier)}
    rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503,
                                             code="ServiceUnavailable")
    return rep, notifier, handlers, rule


async def test_one_failure_email_and_one_recovery_email(graph_sim, services, gateway, people, clock, queue_name):
    rep, notifier, handlers, rule = await failing_rep(graph_sim, services, gateway, people, clock)
    try:
        first = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"})
        assert await deliver(services, queue_name, handlers, first) is None  # retried, not dead-lettered
        h = await services.state.health.get(rep, "email")
        assert h.consecutive_failures == 1 and h.failing_since is not None and not h.incident_open
        assert not await should_give_up(services, rep, "email", clock())
        assert await inbox(graph_sim, rep) == []

        clock.advance(seconds=30)  # still within the frequency: keeps retrying
        assert await deliver(services, queue_name, handlers, first, dequeue_count=2) is None
        assert await inbox(graph_sim, rep) == []

        clock.advance(seconds=31)  # failing for 61 s ≥ 1 min: give up on the stuck message
        outcome = await deliver(services, queue_name, handlers, first, dequeue_count=3)
        assert outcome is not None and outcome.status == "dead_lettered"
        letter = await services.state.deadletters.get(queue_name, first.id)
        assert letter is not None and letter.message == first.dumps()
        assert "GaveUpError" in letter.cause and "GraphUnavailableError" in letter.cause and "503" in letter.cause

        # Many workers and timers at once, all past the frequency: no second notice.
        others = [Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"})
                  for _ in range(5)]
        results = await asyncio.gather(
            *(deliver(services, queue_name, handlers, e) for e in others),
            *(evaluate_all(services, now=clock(), notifier=notifier) for _ in range(3)))
        assert all(r.status == "dead_lettered" for r in results[:5])
        clock.advance(minutes=10)
        await evaluate_all(services, now=clock(), notifier=notifier)

        failure_mails = await inbox(graph_sim, rep)
        assert len(failure_mails) == 1, [m["subject"] for m in failure_mails]
        mail = failure_mails[0]
        assert "failing" in mail["subject"] and rep in mail["subject"]
        text = mail["body"]["content"]
        for must in (rep, "email", "Failing since:", "GraphUnavailableError", "What to do", "deadletters replay"):
            assert must in text
        assert len(await inbox(graph_sim, people.admin)) == 1  # the admin got the same one notice
        h = await services.state.health.get(rep, "email")
        assert h.incident_open and h.incident_notified_at is not None
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")

    # Recovery: the first success closes the incident; concurrent successes and timers send one notice.
    clock.advance(minutes=1)
    again = [Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"}) for _ in range(4)]
    results = await asyncio.gather(*(deliver(services, queue_name, handlers, e) for e in again),
                                   *(evaluate_all(services, now=clock(), notifier=notifier) for _ in range(2)))
    assert all(r.status == "done" for r in results[:4])
    await evaluate_all(services, now=clock(), notifier=notifier)
    mails = await inbox(graph_sim, rep)
    recovery = [m for m in mails if "recovered" in m["subject"]]
    assert len(mails) == 2 and len(recovery) == 1, [m["subject"] for m in mails]
    assert rep in recovery[0]["body"]["content"] and "deadletters replay" in recovery[0]["body"]["content"]
    assert len(await inbox(graph_sim, people.admin)) == 2
    h = await services.state.health.get(rep, "email")
    assert not h.incident_open and h.consecutive_failures == 0


async def test_a_failure_after_a_long_silence_starts_a_new_streak(graph_sim, services, gateway, people, clock,
                                                                  queue_name):
    """Chaos seed 52: after the wall clock jumped 7 days (or the host was stopped for hours), the next
    failure made a streak that had one failure a week ago look a week long, and the work was given
    up at once. Failures far apart are no evidence of a sustained outage: the streak starts again."""
    rep, _, handlers, rule = await failing_rep(graph_sim, services, gateway, people, clock)
    try:
        env = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"})
        assert await deliver(services, queue_name, handlers, env) is None
        clock.advance(seconds=7 * 86400)  # the clock jumps a week
        assert await deliver(services, queue_name, handlers, env, dequeue_count=2) is None  # retried, not given up
        h = await services.state.health.get(rep, "email")
        assert h.consecutive_failures == 1 and h.failing_since == clock() and not h.incident_open
        assert await services.state.deadletters.get(queue_name, env.id) is None

        clock.advance(seconds=61)  # a sustained streak past the frequency still gives up
        outcome = await deliver(services, queue_name, handlers, env, dequeue_count=3)
        assert outcome is not None and outcome.status == "dead_lettered"
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")


async def test_work_that_waits_is_not_given_up_over_a_stale_streak(services, clock, queue_name):
    """Chaos seed 54: an operation waiting for its create (the engine records no failure for a wait)
    was given up two minutes after a 7-day clock jump, because the mailbox's last recorded failure,
    from before the jump, made the streak look a week long although nothing had failed since."""
    from shared.storage.health import record_failure

    mailbox = "waits@contoso.example"
    await services.state.health.update(mailbox, "calendar", record_failure("Graph 502", transient=True, now=clock()))
    clock.advance(seconds=7 * 86400)

    async def waiting(env: Envelope) -> None:
        raise TransientError("waits for its create", retry_after=5.0)

    handlers = {"delta.sync": guard(waiting, services=services, clock=clock, record_outcome=False)}
    env = Envelope(type="delta.sync", body={"mailbox": mailbox, "kind": "calendar", "reason": "poll"})
    outcome = await deliver(services, queue_name, handlers, env)
    assert outcome is not None and outcome.status == "deferred"  # waits on, not dead-lettered
    assert await services.state.deadletters.get(queue_name, env.id) is None
    assert not await should_give_up(services, mailbox, "calendar", clock())


async def test_a_new_incident_after_recovery_notifies_again_and_flapping_does_not(
        graph_sim, services, gateway, people, clock, queue_name):
    rep = people.rep
    await services.state.mailboxes.put(Mailbox(upn=rep, pega_operator="rep"))
    notifier = GraphNotifier(gateway, sender=people.sender, admin="")
    handlers = {"delta.sync": guard(probe_handler(gateway), services=services, clock=clock, notifier=notifier)}
    env = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "calendar", "reason": "poll"})
    rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
    try:
        for _ in range(5):  # failures interleaved with successes never last a minute: no notice
            await deliver(services, queue_name, handlers, env)
            clock.advance(seconds=40)
            await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
            assert (await deliver(services, queue_name, handlers, env)).status == "done"
            rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
        assert await inbox(graph_sim, rep) == []
        for _ in range(2):  # two incidents in a row: two failure notices, two recovery notices
            await deliver(services, queue_name, handlers, env)
            clock.advance(minutes=2)
            assert (await deliver(services, queue_name, handlers, env)).status == "dead_lettered"
            await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
            assert (await deliver(services, queue_name, handlers, env)).status == "done"
            rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
    subjects = sorted(m["subject"] for m in await inbox(graph_sim, rep))
    assert len(subjects) == 4 and sum("recovered" in s for s in subjects) == 2


async def test_a_notice_that_could_not_be_sent_is_retried_once_by_the_timer(
        graph_sim, services, gateway, people, clock, queue_name):
    rep = people.rep
    await services.state.mailboxes.put(Mailbox(upn=rep, pega_operator="rep"))
    notifier = GraphNotifier(gateway, sender=people.sender, admin="")
    handlers = {"delta.sync": guard(probe_handler(gateway), services=services, clock=clock, notifier=notifier)}
    env = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "contacts", "reason": "poll"})
    read_fault = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
    send_fault = await graph_sim.control.add_fault(path=re.escape(f"users/{people.sender}/sendMail"), status=503)
    try:
        await deliver(services, queue_name, handlers, env)
        clock.advance(minutes=2)
        assert (await deliver(services, queue_name, handlers, env)).status == "dead_lettered"
        h = await services.state.health.get(rep, "contacts")
        assert h.incident_open and h.incident_notified_at is None  # claim released: sendMail failed
        await graph_sim.control.call("DELETE", f"faults/{send_fault['id']}")
        evs = await asyncio.gather(*(evaluate_all(services, now=clock(), notifier=notifier) for _ in range(3)))
        assert sum(e.action == "notified" for batch in evs for e in batch) == 1
        assert len(await inbox(graph_sim, rep)) == 1
    finally:
        for rule in (read_fault, send_fault):
            await graph_sim.control.call("DELETE", f"faults/{rule['id']}")


def test_gave_up_error_is_permanent():
    from shared.errors import PermanentError

    assert issubclass(GaveUpError, PermanentError)


@pytest.mark.parametrize("direction,kind,expected", [("inbound", "email", "email"),
                                                     ("outbound", "appointment", "calendar"),
                                                     ("outbound", "contact", "contacts")])
def test_health_kind(direction, kind, expected):
    from shared.ops.incidents import health_kind

    assert health_kind(kind, direction) == expected


async def test_the_real_delta_round_under_the_guard(graph_sim, pega_sim, pega_control, services, ops_env, people,
                                                    clock, queue_name):
    """The Exchange → Pega engine itself (it records health; the guard decides and notifies)."""
    import dataclasses

    from shared.config import load_settings
    from shared.graph.gateway import GraphGateway
    from shared.pega import PegaClient, PegaRecords
    from shared.sync.context import SyncContext
    from shared.sync.inbound import run_delta_round

    p = pega_sim.settings()
    settings = load_settings({**ops_env, "PEGA_BASE_URL": p.base_url,
                              "PEGA_CLIENT_ID": p.client_id, "PEGA_CLIENT_SECRET": p.client_secret or "",
                              "PEGA_USERNAME": p.username, "PEGA_PASSWORD": p.password or ""})
    svc = dataclasses.replace(services, settings=settings)
    rep = people.rep
    await svc.state.mailboxes.put(Mailbox.with_defaults(rep, "alex", settings.sync))
    await graph_sim.control.inbound_mail(rep, subject="Renewal", body="hi",
                                         **{"from": {"address": "dana@fabrikam.example"}})
    pega = PegaClient(settings.pega)
    gw = GraphGateway.from_settings(settings.graph)
    ctx = SyncContext(gateway=gw, pega=pega, records=PegaRecords(pega), mapping=pega.mapping, email_insights=None)
    notifier = GraphNotifier(gw, sender=people.sender, admin=people.admin)

    async def delta(env: Envelope) -> None:
        await run_delta_round(svc, mailbox=env.body["mailbox"], kind=env.body["kind"], reason=env.body["reason"],
                              context=ctx)

    handlers = {"delta.sync": guard(delta, services=svc, record_outcome=False, clock=clock, notifier=notifier)}
    env = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"})
    rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
    try:
        assert await deliver(svc, queue_name, handlers, env) is None
        clock.advance(minutes=2)
        assert (await deliver(svc, queue_name, handlers, env, dequeue_count=2)).status == "dead_lettered"
        assert (await deliver(svc, queue_name, handlers, env, dequeue_count=3)).status == "dead_lettered"
        assert len(await inbox(graph_sim, rep)) == 1
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
    try:
        assert (await deliver(svc, queue_name, handlers, env)).status == "done"
    finally:
        await gw.close()
        await pega.close()
    subjects = [m["subject"] for m in await inbox(graph_sim, rep)]
    assert len(subjects) == 2 and sum("recovered" in s for s in subjects) == 1, subjects
    assert len([r for r in await pega_control.records("email") if r["content"].get("Subject") == "Renewal"]) == 1



async def test_work_given_up_during_an_incident_is_resumed_when_it_closes(
        graph_sim, services, gateway, people, clock, queue_name):
    """Chaos seed 23: messages dead-lettered by the notification-frequency guard waited for a person
    to replay them although the mailbox recovered — the work was lost until then. When the incident
    closes, exactly the given-up letters of that mailbox and kind are replayed; others stay listed."""
    from shared.ops.deadletters import list_letters
    from shared.storage.deadletters import DeadLetter

    rep = people.rep
    await services.state.mailboxes.put(Mailbox(upn=rep, pega_operator="rep"))
    notifier = GraphNotifier(gateway, sender=people.sender, admin="")
    handlers = {"delta.sync": guard(probe_handler(gateway), services=services, clock=clock, notifier=notifier)}
    env = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "email", "reason": "poll"})
    other_kind = Envelope(type="delta.sync", body={"mailbox": rep, "kind": "contacts", "reason": "poll"})
    rule = await graph_sim.control.add_fault(path=re.escape(f"users/{rep}/mailFolders"), status=503)
    try:
        await deliver(services, queue_name, handlers, env)
        clock.advance(minutes=2)
        assert (await deliver(services, queue_name, handlers, env, dequeue_count=2)).status == "dead_lettered"
    finally:
        await graph_sim.control.call("DELETE", f"faults/{rule['id']}")
    await services.state.deadletters.add(DeadLetter(queue=queue_name, message_id=other_kind.id,
                                                    message=other_kind.dumps(), cause="GaveUpError: contacts failing",
                                                    attempts=3))
    [letter] = [v for v in await list_letters(services, mailbox=rep) if v.kind == "email"]
    assert letter.cause.startswith("GaveUpError")

    clock.advance(minutes=1)
    assert (await deliver(services, queue_name, handlers, env)).status == "done"  # recovered
    await evaluate_all(services, now=clock(), notifier=notifier)
    pending = await list_letters(services, mailbox=rep)
    assert [v.kind for v in pending] == ["contacts"], "only the recovered kind's given-up work is resumed"
    replayed = [v for v in await list_letters(services, mailbox=rep, include_replayed=True) if v.kind == "email"]
    assert replayed and replayed[0].replayed_at is not None
