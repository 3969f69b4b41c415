"""Scale bench: Table storage requests per timer tick, per notification and per Pega API call as the
tenant grows (issue 16: a flat line per call is the goal; a tick's work may only grow with what is due).

Against Azurite, N simulated mailboxes (BENCH_SCALE_SIZES, default 100,500,2000, onboarded
cumulatively) are written through the product's repositories (a mailbox row with its UPN, operator and
schedule rows; three subscriptions each). Every HTTP request the Table SDK client sends is counted
(a raw request hook on the real client). For each N:
- one notification through intake (subscription lookup, coalescer claim);
- `by_operator` (every Pega API call) and a mailbox's subscription listing (every ensure);
- the safety-net poll over a whole interval (15 ticks of SYNC_POLL_INTERVAL_MINUTES=15): requests per
  tick and per mailbox looked at;
- the subscription upkeep ticks over ten minutes: requests per tick and per mailbox.
Queue sends are counted by a recording stand-in (this bench measures Table requests). The design
before issue 16 is given beside it from its code (not run): a poll tick read every mailbox's health
(1 + N requests, plus a listing page per 1,000 mailboxes), a notification's subscription query and
`by_operator` scanned a partition that grows with N.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


class _Requests:
    def __init__(self) -> None:
        self.on = False
        self.count = 0

    def hook(self, request: Any) -> None:
        if self.on:
            self.count += 1

    async def measure(self, call: Any) -> int:
        self.count, self.on = 0, True
        try:
            await call()
        finally:
            self.on = False
        return self.count


class _Queues:
    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    async def send(self, queue: str, envelope: Any, *, delay_seconds: int = 0) -> str:
        self.sent[envelope.type] += 1
        return uuid.uuid4().hex

    async def close(self) -> None:
        return None


async def _onboard(state: Any, start: int, stop: int) -> None:
    from shared.storage.mailboxes import KINDS, Mailbox
    from shared.storage.subscriptions import SubscriptionRecord

    gate = asyncio.Semaphore(16)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)

    async def one(i: int) -> None:
        async with gate:
            oid = str(uuid.UUID(int=i + 1))
            await state.mailboxes.put(Mailbox(upn=f"rep{i}@contoso.example", pega_operator=f"op{i}", user_id=oid,
                                              state_key=oid))
            for kind in KINDS:
                await state.subscriptions.put(SubscriptionRecord(
                    subscription_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{i}/{kind}")), mailbox=oid, kind=kind,
                    resource=f"/users/{oid}/{kind}", client_state=f"cs-{i}-{kind}", expires_at=expires))

    await asyncio.gather(*(one(i) for i in range(start, stop)))


async def _run(sizes: list[int]) -> dict[str, Any]:
    from functions.subscriptions import ENSURE_EVERY_MINUTES, ensure_due
    from sandbox.proc import azurite_connection_string, start_azurite
    from shared.config import load_settings
    from shared.runtime import Services
    from shared.storage.state import StateStore
    from shared.storage.tables import TableNames
    from shared.sync.notifications import ChangeNotification, accept_change_notifications
    from shared.sync.poll import poll_due

    az = start_azurite()
    try:
        settings = load_settings({"AzureWebJobsStorage": azurite_connection_string(az), "GRAPH_TENANT_ID": "t1",
                                  "SYNC_POLL_INTERVAL_MINUTES": "15"})
        requests = _Requests()
        state = await StateStore.open(settings.storage, names=TableNames(prefix="scale" + uuid.uuid4().hex[:6]),
                                      request_hook=requests.hook)
        queues = _Queues()
        svc = Services(settings=settings, state=state, queues=queues)  # type: ignore[arg-type]
        rows = []
        done = 0
        base = int(dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp() // 60)
        try:
            for n in sizes:
                t0 = time.perf_counter()
                await _onboard(state, done, n)
                onboard_s = time.perf_counter() - t0
                done = n
                i = n - 1
                sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{i}/email"))
                note = ChangeNotification(subscription_id=sid, client_state=f"cs-{i}-email", change_type="created",
                                          resource="r", resource_id="x", etag="e", tenant_id="t1")
                await state.mailboxes.by_operator("op0")  # the once-per-process index check
                await poll_due(svc, now=dt.datetime.fromtimestamp((base - 100) * 60, dt.UTC))  # schedule check
                for schedule in ("poll", "subscriptions"):  # steady state: the previous minute ticked
                    await state.mailboxes.save_tick(schedule, base - 1)
                mid = n // 2
                per_notification = await requests.measure(lambda note=note: accept_change_notifications(svc, [note]))
                per_operator = await requests.measure(lambda mid=mid: state.mailboxes.by_operator(f"op{mid}"))
                per_listing = await requests.measure(
                    lambda mid=mid: state.subscriptions.for_mailbox(str(uuid.UUID(int=mid + 1))))
                poll_ticks, poll_rounds = [], 0
                for m in range(15):  # a whole interval: every mailbox visited once
                    queues.sent.clear()
                    now = dt.datetime.fromtimestamp((base + m) * 60, dt.UTC)
                    poll_ticks.append(await requests.measure(lambda now=now: poll_due(svc, now=now)))
                    poll_rounds += queues.sent["delta.sync"]
                ensure_ticks, ensured = [], 0
                for m in range(ENSURE_EVERY_MINUTES):
                    queues.sent.clear()
                    now = dt.datetime.fromtimestamp((base + m) * 60, dt.UTC)
                    ensure_ticks.append(await requests.measure(lambda now=now: ensure_due(svc, now=now)))
                    ensured += queues.sent["subscriptions.ensure"]
                base += 10_000  # the next size's ticks at other minutes (coalescer rows of this size are pending)
                row = {
                    "mailboxes": n, "onboard_seconds": round(onboard_s, 1),
                    "requests_per_notification": per_notification,
                    "requests_per_by_operator": per_operator,
                    "requests_per_subscription_listing": per_listing,
                    "poll_requests_per_tick_mean": round(sum(poll_ticks) / len(poll_ticks), 1),
                    "poll_requests_per_tick_max": max(poll_ticks),
                    "poll_requests_per_mailbox_visited": round(sum(poll_ticks) / max(1, n), 2),
                    "poll_rounds_enqueued_per_interval": poll_rounds,
                    "ensure_requests_per_tick_mean": round(sum(ensure_ticks) / len(ensure_ticks), 1),
                    "ensure_requests_per_mailbox": round(sum(ensure_ticks) / max(1, n), 2),
                    "ensures_sent_per_10_minutes": ensured,
                    "before_issue_16_poll_requests_per_tick": 1 + n + n // 1000,
                    "before_issue_16_ensure_tick_requests": 1 + n // 1000,
                }
                rows.append(row)
                print(f"  scale N={n}: {json.dumps(row)}", flush=True)
        finally:
            await state.close()
    finally:
        az.stop()
    return {"benchmark": "Table requests per call and per tick vs mailboxes (Azurite)", "rows": rows}


def run() -> dict[str, Any]:
    sizes = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "100,500,2000").split(",") if s.strip()]
    result = asyncio.run(_run(sizes))
    last = result["rows"][-1]
    result["headline"] = {k: last[k] for k in ("mailboxes", "requests_per_notification", "requests_per_by_operator",
                                               "poll_requests_per_mailbox_visited", "ensure_requests_per_mailbox")}
    result["headline"]["flat"] = all(
        r["requests_per_notification"] == result["rows"][0]["requests_per_notification"]
        and r["requests_per_by_operator"] == result["rows"][0]["requests_per_by_operator"] for r in result["rows"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_storage.json").write_text(json.dumps(result, indent=2))
    _chart(result)
    return result


def _chart(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    ns = [r["mailboxes"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ns, [r["requests_per_notification"] for r in rows], "o-", label="per notification")
    a.plot(ns, [r["requests_per_by_operator"] for r in rows], "s-", label="per Pega API call (by_operator)")
    a.plot(ns, [r["poll_requests_per_mailbox_visited"] for r in rows], "^-", label="poll, per mailbox visited")
    a.plot(ns, [r["ensure_requests_per_mailbox"] for r in rows], "v-", label="upkeep, per mailbox")
    a.set_xscale("log")
    a.set_xlabel("mailboxes")
    a.set_ylabel("Table requests")
    a.set_title("per call: flat")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    b.plot(ns, [r["poll_requests_per_tick_mean"] for r in rows], "o-", label="poll tick (now: what is due)")
    b.plot(ns, [r["before_issue_16_poll_requests_per_tick"] for r in rows], "x--", label="poll tick before: every mailbox read (its enqueues not counted)")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("mailboxes")
    b.set_ylabel("Table requests per minute tick")
    b.set_title("safety-net poll, interval 15 min")
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "scale_storage.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
