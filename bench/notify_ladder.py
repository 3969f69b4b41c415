"""Throughput curve of the notification path: a ladder of change rates on the whole `make run` stack.

For each rate (BENCH_LADDER_RATES, default 10,25,50,100 changes/s across BENCH_LADDER_MAILBOXES=20
mailboxes) mails from a known contact arrive for BENCH_LADDER_SECONDS (default 10 s); Graph notifies,
intake enqueues coalesced rounds, the delta worker writes the email cases into Pega. Per step:
latency p50/p99 (Pega record creation minus delivery, one machine, one clock), items arrived, and
CPU per item of every process of the stack (psutil, children included: the host's attachment parser)
and of this driver. A step ends when every item arrived or BENCH_LADDER_SETTLE seconds (default 30)
after the last send; items still missing then count as slower than the settle time, so a saturated
step shows p99 = None (not measurable) rather than a flattering figure. Four mails before the first
step warm the host up (its insights worker starts and loads the model once per host); they are not
reported. CPU of the host's worker processes (model, attachment parser) is reported apart as
`host.workers`.

With insights on, new records may arrive without their insight fields, which the insight worker
writes after them (INSIGHTS_DEFERRED: while the model is busy, by default); a step then also waits (up to one more settle time) for
every record's fields and reports `insights_p50_ms`/`insights_p99_ms` (the fields' write minus
delivery) beside the records' latency, and the step's CPU includes the model's work.

The knee is the highest rate whose step delivered everything with p99 <= 1 s. The steps run one after
the other on the same stack (a step's backlog is drained before the next starts), on a machine shared
with the stack: compare ratios (CPU per item by process), not absolute seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench._cpu import ProcessCpu
from bench.notify_latency import _pct, _ports
from sandbox.run import Stack, start_stack
from sandbox.settings import SandboxPorts, sandbox_settings

RESULTS = Path(__file__).resolve().parent / "results"


def _suffix() -> str:
    """BENCH_SUFFIX names a variant's result files (e.g. `_no_insights`), so variants do not overwrite."""
    return os.environ.get("BENCH_SUFFIX", "")
P99_TARGET_MS = 1000.0


def _config() -> dict[str, Any]:
    return {
        "rates": [float(r) for r in os.environ.get("BENCH_LADDER_RATES", "10,25,50,100").split(",") if r.strip()],
        "mailboxes": int(os.environ.get("BENCH_LADDER_MAILBOXES", "20")),
        "seconds": float(os.environ.get("BENCH_LADDER_SECONDS", "10")),
        "settle": float(os.environ.get("BENCH_LADDER_SETTLE", "30")),
    }


async def _onboard(http: httpx.AsyncClient, graph: str, api: str, master: dict[str, str], n: int) -> list[str]:
    upns = []
    for _ in range(n):
        tag = uuid.uuid4().hex[:8]
        upn = f"rep{tag}@contoso.example"
        (await http.post(f"{graph}/_sim/users", json={"userPrincipalName": upn})).raise_for_status()
        # one Pega operator per mailbox: onboarding refuses an operator another active mailbox has (409)
        (await http.put(f"{api}/admin/mailboxes/{upn}", json={"pega_operator": f"rep{tag}"},
                        headers=master)).raise_for_status()
        upns.append(upn)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # every mailbox subscribed and its (empty) backfill done
        ready = 0
        for upn in upns:
            d = (await http.get(f"{api}/admin/mailboxes/{upn}", headers=master)).json()
            subs = d["subscriptions"]
            subs_ok = bool(subs) and all(s["status"] == "active" for s in subs) and \
                {s["kind"] for s in subs} == {"email", "calendar", "contacts"}
            ready += subs_ok and all(v == "done" for v in d["backfill"].values())
        if ready == len(upns):
            return upns
        await asyncio.sleep(1)
    raise RuntimeError("the mailboxes did not finish onboarding in 180 s")


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _step(http: httpx.AsyncClient, graph: str, pega: str, upns: list[str], rate: float, seconds: float,
                settle: float, cpu: ProcessCpu, *, insights: bool = False) -> dict[str, Any]:
    sent: dict[str, float] = {}
    errors = 0
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()

    async def one(i: int) -> None:
        nonlocal errors
        t0 = time.time()
        try:
            r = await http.post(f"{graph}/_sim/users/{upns[i % len(upns)]}/inbound-mail", json={
                "from": {"address": "dana@fabrikam.example", "name": "Dana"},
                "subject": f"Order update {i}", "body": f"Thanks, delivery {i} arrived. Could you send the invoice?"})
            r.raise_for_status()
            sent[r.json()["immutableId"]] = t0
        except httpx.HTTPError:
            errors += 1

    start = time.time()
    total = int(rate * seconds)
    tasks = []
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - time.time()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    send_seconds = time.time() - start
    deadline = time.monotonic() + settle
    created: dict[str, float] = {}
    enriched: dict[str, float] = {}  # records carrying their insight fields: the time of that write
    duplicates = 0
    records_done: float | None = None
    while True:
        records = (await http.get(f"{pega}/_sim/state", params={"kind": "email", "createdSince": since})).json()
        created, enriched, duplicates = {}, {}, 0
        for rec in records["records"]:
            xid = rec["content"].get("ExchangeID")
            if xid in sent:
                if xid in created:
                    duplicates += 1
                    continue
                created[xid] = _ts(rec["createdAt"])
                if rec["content"].get("SentimentLabel"):
                    enriched[xid] = _ts(rec["updatedAt"])
        if len(created) == len(sent) and records_done is None:
            records_done = time.monotonic()
        # with insights on (deferred by default) the step also waits for their fields, a while longer
        if (len(created) == len(sent) and (not insights or len(enriched) == len(sent))) \
                or time.monotonic() > deadline + (settle if records_done is not None and insights else 0):
            break
        await asyncio.sleep(0.5)
    used = cpu.seconds()
    rss = cpu.rss_mb()
    lat = [(created[x] - sent[x]) * 1000 for x in created]
    ins_lat = [(enriched[x] - sent[x]) * 1000 for x in enriched]
    complete = len(created) == len(sent) and not errors
    n = max(1, len(created))
    insight_steps = {
        "insights_arrived": len(enriched),
        "insights_p50_ms": round(_pct(ins_lat, 50)) if ins_lat else None,
        "insights_p99_ms": round(_pct(ins_lat, 99)) if ins_lat and len(enriched) == len(sent) else None,
    } if insights else {}
    return {
        "rate_per_second": rate, "sent": len(sent), "send_errors": errors, "arrived": len(created),
        "duplicates": duplicates, "achieved_send_rate": round(len(sent) / max(0.001, send_seconds), 1),
        "p50_ms": round(_pct(lat, 50)) if lat else None,
        "p99_ms": round(_pct(lat, 99)) if lat and complete else None,
        "max_ms": round(max(lat)) if lat and complete else None,
        "cpu_ms_per_item": {k: round(v * 1000 / n, 2) for k, v in used.items()},
        "rss_mb": rss,
        **insight_steps,
    }


async def _measure(ports: SandboxPorts, settings: dict[str, str], stack: Stack, cfg: dict[str, Any]) -> list[Any]:
    graph, pega = f"http://127.0.0.1:{ports.graph}", f"http://127.0.0.1:{ports.pega}"
    api = f"http://127.0.0.1:{ports.host}/api"
    master = {"x-functions-key": settings["LOCAL_HOST_MASTER_KEY"]}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        upns = await _onboard(http, graph, api, master, cfg["mailboxes"])
        # warm-up, not reported: the host's first items start its insights worker and load the model
        # (a second or two, once per host), which would otherwise land in the first step's p99
        insights = settings.get("INSIGHTS_ENABLED", "true").lower() != "false"
        warm = await _step(http, graph, pega, upns, 2.0, 2.0, cfg["settle"],
                           ProcessCpu({svc.name: svc.proc.pid for svc in stack.services}, split=("host",)),
                           insights=insights)
        print(f"  ladder warm-up (not reported): {warm['arrived']}/{warm['sent']} arrived", flush=True)
        steps = []
        for rate in cfg["rates"]:
            cpu = ProcessCpu({svc.name: svc.proc.pid for svc in stack.services}, split=("host",))
            step = await _step(http, graph, pega, upns, rate, cfg["seconds"], cfg["settle"], cpu, insights=insights)
            steps.append(step)
            print(f"  ladder {rate:g}/s: {json.dumps(step)}", flush=True)
            if step["p99_ms"] is None and step["arrived"] < step["sent"]:
                break  # saturated: higher rates only pile up a backlog
        return steps


def knee(steps: list[dict[str, Any]]) -> float | None:
    """The highest rate that delivered everything with p99 within the target."""
    ok = [s["rate_per_second"] for s in steps if s["p99_ms"] is not None and s["p99_ms"] <= P99_TARGET_MS
          and s["arrived"] == s["sent"] and not s["duplicates"]]
    return max(ok) if ok else None


def run() -> dict[str, Any]:
    cfg = _config()
    ports = _ports()
    settings = sandbox_settings(ports)
    # the variants compared in docs/performance.md: insights settings, and Graph's shared mailbox slots
    settings.update({k: v for k, v in os.environ.items() if k.startswith(("INSIGHTS_", "GRAPH_SHARED_MAILBOX_SLOTS"))})
    stack = Stack()
    try:
        start_stack(ports, settings, stack=stack)
        steps = asyncio.run(_measure(ports, settings, stack, cfg))
    finally:
        stack.stop()
    result: dict[str, Any] = {
        "benchmark": "notification rate ladder (whole make-run stack)", **cfg,
        "insights": {k: v for k, v in settings.items() if k.startswith("INSIGHTS_")},
        "steps": steps, "knee_rate_per_second": knee(steps), "p99_target_ms": P99_TARGET_MS,
    }
    result["headline"] = {"knee_rate_per_second": result["knee_rate_per_second"],
                          "steps": {f"{s['rate_per_second']:g}/s": {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
                                                                   "arrived": f"{s['arrived']}/{s['sent']}",
                                                                   "host_cpu_ms_per_item":
                                                                       s["cpu_ms_per_item"].get("host"),
                                                                   "host_workers_cpu_ms_per_item":
                                                                       s["cpu_ms_per_item"].get("host.workers"),
                                                                   "insights_p50_ms": s.get("insights_p50_ms"),
                                                                   "insights_p99_ms": s.get("insights_p99_ms")}
                                    for s in steps}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"notify_ladder{_suffix()}.json").write_text(json.dumps(result, indent=2))
    _chart(result)
    return result


def _chart(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    rates = [s["rate_per_second"] for s in steps]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(rates, [(s["p50_ms"] or 0) / 1000 for s in steps], "o-", label="p50")
    a.plot([r for r, s in zip(rates, steps, strict=True) if s["p99_ms"] is not None],
           [s["p99_ms"] / 1000 for s in steps if s["p99_ms"] is not None], "s-", label="p99")
    for r, s in zip(rates, steps, strict=True):
        if s["p99_ms"] is None:
            a.annotate(f"saturated\n{s['arrived']}/{s['sent']}", (r, (s["p50_ms"] or 0) / 1000), fontsize=8)
    a.axhline(result["p99_target_ms"] / 1000, linestyle="--", color="grey")
    a.set_xlabel("changes per second")
    a.set_ylabel("seconds, delivery → Pega record")
    a.set_title(f"knee: {result['knee_rate_per_second']} changes/s (p99 ≤ 1 s)")
    a.legend()
    a.grid(alpha=0.3)
    names = sorted({k for s in steps for k in s["cpu_ms_per_item"]})
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        b.bar([i + j * width for i in range(len(steps))], [s["cpu_ms_per_item"].get(name, 0) for s in steps],
              width, label=name)
    b.set_xticks([i + 0.4 - width / 2 for i in range(len(steps))], [f"{r:g}/s" for r in rates])
    b.set_ylabel("CPU ms per item")
    b.set_title("CPU per item by process")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"notify_ladder{_suffix()}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
