"""Notification → Pega write latency on the sandbox, at a steady change rate across 20 mailboxes.

The whole product runs as in `make run` (Azurite, Graph and Pega simulators, the local Functions
host with the project's host.json): a mail from a known contact lands in a mailbox, Graph notifies,
intake enqueues a coalesced round, the delta worker writes the email case into Pega. Latency is
the Pega record's creation time minus the moment the mail was delivered (one machine, one clock).

Baseline measured in the same run: one direct Pega case create through the same client (the
irreducible write), so the ratio says what the whole notification path adds on top of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from sandbox.proc import free_port
from sandbox.run import Stack, start_stack
from sandbox.settings import SandboxPorts, sandbox_settings

RESULTS = Path(__file__).resolve().parent / "results"
MAILBOXES = 20
RATE_PER_SECOND = 4.0  # changes per second across all mailboxes
DURATION_SECONDS = 60.0
SETTLE_SECONDS = 60.0


def _ports() -> SandboxPorts:
    return SandboxPorts(**{k: free_port() for k in ("host", "graph", "graph_tls", "pega", "ews", "blob", "queue", "table")})


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


async def _baseline(settings: dict[str, str], n: int = 30) -> list[float]:
    from shared.config import load_settings
    from shared.pega import PegaClient

    pega = PegaClient(load_settings(settings).pega)
    out = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            await pega.create_case(pega.mapping.case_types.email, {"Subject": f"baseline {i}"})
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        await pega.close()
    return out


async def _measure(ports: SandboxPorts, settings: dict[str, str]) -> dict[str, Any]:
    graph = f"http://127.0.0.1:{ports.graph}"
    pega = f"http://127.0.0.1:{ports.pega}"
    api = f"http://127.0.0.1:{ports.host}/api"
    master = {"x-functions-key": settings["LOCAL_HOST_MASTER_KEY"]}
    async with httpx.AsyncClient(timeout=60) as http:
        upns = []
        for _ in range(MAILBOXES):
            upn = f"rep{uuid.uuid4().hex[:8]}@contoso.example"
            (await http.post(f"{graph}/_sim/users", json={"userPrincipalName": upn})).raise_for_status()
            # each rep their own Pega operator (one operator on two active mailboxes is refused)
            (await http.put(f"{api}/admin/mailboxes/{upn}", json={"pega_operator": f"op-{upn.split('@')[0]}"},
                            headers=master)).raise_for_status()
            upns.append(upn)
        # wait until every mailbox has its subscriptions and finished its (empty) backfill
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = 0
            for upn in upns:
                d = (await http.get(f"{api}/admin/mailboxes/{upn}", headers=master)).json()
                subs_ok = len([s for s in d["subscriptions"] if s["status"] == "active"]) == 4
                ready += subs_ok and all(v == "done" for v in d["backfill"].values())
            if ready == len(upns):
                break
            await asyncio.sleep(1)
        sent: dict[str, float] = {}
        interval = 1.0 / RATE_PER_SECOND
        start = time.time()
        i = 0
        while time.time() - start < DURATION_SECONDS:
            upn = upns[i % len(upns)]
            t0 = time.time()
            r = await http.post(f"{graph}/_sim/users/{upn}/inbound-mail", json={
                "from": {"address": "dana@fabrikam.example", "name": "Dana"},
                "subject": f"Order update {i}", "body": "Thanks, the delivery arrived. Could you send the invoice?"})
            r.raise_for_status()
            sent[r.json()["immutableId"]] = t0
            i += 1
            await asyncio.sleep(max(0.0, start + i * interval - time.time()))
        # collect: every delivered mail's case, by its Exchange id
        deadline = time.monotonic() + SETTLE_SECONDS
        found: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:
            records = (await http.get(f"{pega}/_sim/state", params={"kind": "email"})).json()["records"]
            found = {}
            for rec in records:
                xid = rec["content"].get("ExchangeID")
                if xid in sent:
                    found.setdefault(xid, []).append(rec)
            if len(found) == len(sent):
                break
            await asyncio.sleep(1)
        graph_counts = (await http.get(f"{graph}/_sim/requests")).json()["value"]
    latencies = []
    for xid, recs in found.items():
        created = dt.datetime.fromisoformat(recs[0]["createdAt"].replace("Z", "+00:00")).timestamp()
        latencies.append((created - sent[xid]) * 1000)
    duplicates = sum(len(r) - 1 for r in found.values())
    graph_requests = sum(int(r["requests"]) for r in graph_counts
                         if r.get("userPrincipalName") in upns and r.get("app") == settings["GRAPH_CLIENT_ID"])
    return {"sent": len(sent), "arrived": len(found), "duplicates": duplicates, "latencies_ms": latencies,
            "graph_requests_per_item": round(graph_requests / max(1, len(sent)), 2)}


def run() -> dict[str, Any]:
    ports = _ports()
    settings = sandbox_settings(ports)
    stack = Stack()
    try:
        start_stack(ports, settings, stack=stack)
        measured = asyncio.run(_measure(ports, settings))
        baseline = asyncio.run(_baseline(settings))
    finally:
        stack.stop()
    lat = measured.pop("latencies_ms")
    result: dict[str, Any] = {
        "benchmark": "notification → Pega write latency",
        "mailboxes": MAILBOXES, "rate_per_second": RATE_PER_SECOND, "duration_seconds": DURATION_SECONDS,
        **measured,
        "latency_ms": {"p50": round(_pct(lat, 50)), "p90": round(_pct(lat, 90)), "p99": round(_pct(lat, 99)),
                       "max": round(max(lat)), "mean": round(statistics.fmean(lat))} if lat else {},
        "baseline_direct_pega_create_ms": {"p50": round(_pct(baseline, 50), 1), "p99": round(_pct(baseline, 99), 1)},
    }
    if lat:
        result["ratio_p50_vs_direct_pega_create"] = round(_pct(lat, 50) / max(0.1, _pct(baseline, 50)), 1)
    result["headline"] = {"p50_ms": result["latency_ms"].get("p50"), "p99_ms": result["latency_ms"].get("p99"),
                          "arrived": f"{measured['arrived']}/{measured['sent']}", "duplicates": measured["duplicates"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "notify_latency.json").write_text(json.dumps(result, indent=2))
    _chart(lat, result)
    return result


def _chart(lat: list[float], result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if lat:
        s = sorted(v / 1000 for v in lat)
        ax.plot(s, [(i + 1) / len(s) for i in range(len(s))], label="notification → Pega write")
        for p in (50, 99):
            v = _pct(lat, p) / 1000
            ax.axvline(v, linestyle="--", color="grey")
            ax.text(v, 0.05 if p == 50 else 0.15, f" p{p} {v:.2f}s", fontsize=8)
    ax.set_xlabel("seconds from delivery to Pega record")
    ax.set_ylabel("share of items")
    ax.set_title(f"{result['mailboxes']} mailboxes, {result['rate_per_second']} changes/s, "
                 f"{result['arrived']}/{result['sent']} arrived, {result['duplicates']} duplicates")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "notify_latency.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
