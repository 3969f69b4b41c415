"""Health summaries from real state in Azurite: lag, backlog (pending round, round in progress, backfill,
dead letters), counters with skip reasons, throttling, subscriptions with expiry, incidents."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from shared.errors import PermanentError
from shared.ops.health import mailbox_health, tenant_health
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.storage.cursors import Cursor
from shared.storage.health import record_failure, record_success
from shared.storage.mailboxes import Mailbox
from shared.storage.subscriptions import SubscriptionRecord


async def test_mailbox_and_tenant_health(services, queue_name):
    now = dt.datetime.now(dt.UTC)
    upn = f"h-{uuid.uuid4().hex[:6]}@contoso.example"
    mb = Mailbox.with_defaults(upn, "alex", services.settings.sync)
    await services.state.mailboxes.put(dataclasses.replace(mb, contacts_enabled=False, backfill={
        "email": "pending", "email:inbox": "done", "email:sentitems": "in_progress:4", "calendar": "done"}))
    h = services.state.health
    await h.update(upn, "email", record_success(synced=7, skipped={"private": 2, "draft": 1},
                                                now=now - dt.timedelta(minutes=5)))
    await h.update(upn, "calendar", record_success(synced=3, now=now - dt.timedelta(hours=2)))
    await h.update(upn, "calendar", record_failure("GraphThrottledError: GET /v1.0/users/x@y.example/events 429 "
                                                   "about 'Board meeting'", throttled=True,
                                                   now=now - dt.timedelta(minutes=40)))
    await h.update(upn, "calendar", lambda x: dataclasses.replace(x, incident_open=True, incident_notified_at=now))
    await services.state.coalescer.request(upn, "email")
    await services.state.cursors.save(Cursor(mailbox=upn, kind="calendar", folder="calendarView",
                                             next_link="https://graph/next", last_round_at=now))
    for kind, exp in (("email", now + dt.timedelta(hours=3)), ("email", now + dt.timedelta(days=5)),
                      ("calendar", now + dt.timedelta(days=6))):
        await services.state.subscriptions.put(SubscriptionRecord(
            subscription_id=str(uuid.uuid4()), mailbox=upn, kind=kind, resource=f"/users/{upn}/{kind}",
            client_state="x", expires_at=exp))

    async def broken(_):
        raise PermanentError("nope")

    for _ in range(2):
        await run_message(queue=queue_name, text=Envelope(type="delta.sync", body={
            "mailbox": upn, "kind": "calendar"}).dumps(), dequeue_count=1, handlers={"delta.sync": broken},
            deadletters=services.state.deadletters, sender=services.queues)

    doc = await mailbox_health(services, upn, now=now)
    kinds = {k["kind"]: k for k in doc["kinds"]}
    email, cal, contacts = kinds["email"], kinds["calendar"], kinds["contacts"]
    assert email["state"] == "ok" and email["lag_seconds"] == 300 and email["synced"] == 7
    assert email["skip_reasons"] == {"private": 2, "draft": 1} and email["skipped"] == 3
    assert email["backlog"]["round_pending_since"] and not email["backlog"]["round_in_progress"]
    assert email["backlog"]["backfill"] == "sentitems in_progress:4"
    assert sorted(s["expires_in_seconds"] // 3600 for s in email["subscriptions"]) == [3, 120]
    assert cal["state"] == "incident" and cal["incident"]["open"] and cal["throttled"] == 1
    assert cal["consecutive_failures"] == 1 and cal["lag_seconds"] == 7200
    # a throttled round is retried, not failed work: it counts as a retry (issue #11: the `failed` counter
    # used to mix transient retries with work that did not make it)
    assert cal["retries"] == 1 and cal["failed"] == 0
    assert cal["backlog"]["round_in_progress"] and cal["backlog"]["dead_letters"] == 2
    assert cal["backlog"]["backfill"] == "done"
    assert "x@y.example" not in cal["last_error"] and "Board meeting" not in cal["last_error"]
    assert cal["last_error"].startswith("GraphThrottledError")
    assert contacts["state"] == "disabled"
    assert doc["incident_open"] is True

    t = await tenant_health(services, now=now)
    assert t["mailboxes"]["total"] >= 1
    row = next(r for r in t["mailbox_rows"] if r["upn"] == upn)
    assert row["incident_open"] and row["kinds"]["calendar"]["dead_letters"] == 2
    assert any(i["mailbox"] == upn and i["kind"] == "calendar" for i in t["incidents_open"])
    assert t["subscriptions"]["expiring_within_24h"] >= 1 and t["subscriptions"]["active"] >= 3
    assert t["dead_letters"]["per_queue"][queue_name] == 2
    assert t["totals_by_kind"]["email"]["synced"] >= 7
