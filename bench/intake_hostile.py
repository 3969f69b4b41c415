"""Graph notification intake under hostile posts: how long a POST takes to be answered.

Whoever holds the function key (it is part of Graph's notification URL) can post anything. Before
issue 17 a POST of 1,000 notifications with unknown subscription ids read storage once per id and
ran out of the 2.5 s budget (503: Graph's own deliveries then failed too). The local host (the real
function_app, HTTP triggers only) on Azurite answers each case REPEATS times:

- baseline: one genuine notification (one subscription read, one round claimed or coalesced);
- 1,000 notifications with unknown (GUID) subscription ids;
- 1 genuine + 999 unknown;
- 1,000 notifications for the one known subscription (cache hits after the first POST).

Reported: status codes, p50/p95 milliseconds and the p50 ratio against the baseline of the same run.
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

from sandbox.proc import azurite_connection_string as conn_string
from sandbox.proc import free_port, python_module, start, start_azurite

RESULTS = Path(__file__).resolve().parent / "results"
REPEATS = 15
TENANT = "aaaaaaaa-0000-4000-8000-00000000c0de"
FUNCTION_KEY = "bench-function-key"
WORKERS_OFF = ("delta_worker", "outbound_worker", "delta_poll", "subscription_manager", "subscription_worker",
               "ops_incidents", "poison_delta_work", "poison_outbound_ops", "poison_subscription_work",
               "lease_recovery")


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _item(sub_id: str, state: str, n: int) -> dict[str, Any]:
    return {"subscriptionId": sub_id, "clientState": state, "changeType": "created", "tenantId": TENANT,
            "resource": f"Users/x/Messages/m{n}", "resourceData": {"id": f"m{n}", "@odata.etag": 'W/"1"'}}


async def _measure(api: str, conn: str) -> dict[str, Any]:
    from shared.config import load_settings
    from shared.storage.state import StateStore
    from shared.storage.subscriptions import SubscriptionRecord

    state = await StateStore.open(load_settings({"AzureWebJobsStorage": conn}).storage)
    sub = await state.subscriptions.put(SubscriptionRecord(
        subscription_id=str(uuid.uuid4()), mailbox="bench@contoso.example", kind="email", resource="/users/x/messages",
        client_state="bench-" + uuid.uuid4().hex, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    await state.close()
    cases = {
        "baseline: 1 genuine": lambda: [_item(sub.subscription_id, sub.client_state, 0)],
        "1,000 unknown ids": lambda: [_item(str(uuid.uuid4()), "x", i) for i in range(1000)],
        "1 genuine + 999 unknown": lambda: [_item(sub.subscription_id, sub.client_state, 0)]
        + [_item(str(uuid.uuid4()), "x", i) for i in range(999)],
        "1,000 for the known subscription": lambda: [_item(sub.subscription_id, sub.client_state, i)
                                                     for i in range(1000)],
    }
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for name, make in cases.items():
            times, statuses = [], []
            for _ in range(REPEATS):
                body = json.dumps({"value": make()})
                t0 = time.perf_counter()
                r = await http.post(f"{api}/graph/notifications", params={"code": FUNCTION_KEY}, content=body,
                                    headers={"Content-Type": "application/json"})
                times.append((time.perf_counter() - t0) * 1000)
                statuses.append(r.status_code)
            out[name] = {"statuses": sorted(set(statuses)), "p50_ms": round(_pct(times, 50), 1),
                         "p95_ms": round(_pct(times, 95), 1), "mean_ms": round(statistics.fmean(times), 1)}
    base = out["baseline: 1 genuine"]["p50_ms"]
    for v in out.values():
        v["ratio_p50_vs_baseline"] = round(v["p50_ms"] / max(0.1, base), 1)
    return out


def run() -> dict[str, Any]:
    azurite = start_azurite()
    conn = conn_string(azurite)
    port = free_port()
    args = ["--port", str(port), "--settings", "/dev/null"]
    for name in WORKERS_OFF:
        args += ["--disable", name]
    env = {"AzureWebJobsStorage": conn, "LOCAL_HOST_FUNCTION_KEY": FUNCTION_KEY, "LOCAL_HOST_MASTER_KEY": "m",
           "APP_MODE": "sandbox", "GRAPH_TENANT_ID": TENANT, "LOG_LEVEL": "WARNING"}
    host = start("bench-intake-host", python_module("sandbox.host", *args), wait_ports=[port], env=env, timeout=60)
    try:
        cases = asyncio.run(_measure(f"http://127.0.0.1:{port}/api", conn))
    finally:
        host.stop()
        azurite.stop()
    result: dict[str, Any] = {"benchmark": "notification intake under hostile posts", "repeats": REPEATS,
                              "budget_ms": 2500, "cases": cases}
    result["headline"] = {name: f"{v['statuses']} p50 {v['p50_ms']} ms (x{v['ratio_p50_vs_baseline']})"
                          for name, v in cases.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "intake_hostile.json").write_text(json.dumps(result, indent=2))
    _chart(result)
    return result


def _chart(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["cases"])
    p50 = [result["cases"][n]["p50_ms"] for n in names]
    p95 = [result["cases"][n]["p95_ms"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95")
    ax.axhline(result["budget_ms"], color="red", linestyle="--", label="intake budget 2.5 s")
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_ylabel("ms until answered")
    ax.set_title("POST /api/graph/notifications (local host on Azurite, 2-core machine)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "intake_hostile.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
