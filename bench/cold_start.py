"""Cold start: a fresh Python process imports the Functions app and handles its first Graph notification.

Against Azurite (one stored subscription), BENCH_COLD_RUNS (default 5) fresh processes each: import
`function_app` (as the Python worker does), then call the `graph_notifications` HTTP function with one
genuine notification — opening the state store, reading the subscription, the coalescer claim and the
queue send, i.e. everything before the 202 Graph waits for. Reported per run: seconds from process
creation to the answer (interpreter start included), the import alone, the first notification alone,
and the process's RSS after it. The first delta round (Graph read, Pega write, insights' model load) is
not part of it: it runs from the queue, after Graph has its answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import time
t_start = time.perf_counter()
import json, sys, asyncio
import psutil
created = psutil.Process().create_time()
import function_app  # noqa: F401  (what the worker imports)
t_import = time.perf_counter()
import azure.functions as func
from functions.graph_intake import graph_notifications

async def main():
    req = func.HttpRequest("POST", "http://127.0.0.1/api/graph/notifications",
                           headers={"content-type": "application/json"}, params={}, route_params={},
                           body=sys.argv[1].encode())
    t = time.perf_counter()
    resp = await graph_notifications(req)
    return resp.status_code, time.perf_counter() - t

status, first = asyncio.run(main())
print(json.dumps({"since_process_start_s": time.time() - created, "import_s": t_import - t_start,
                  "first_notification_s": first, "status": status,
                  "rss_mb": psutil.Process().memory_info().rss / 2**20}))
"""


async def _store_subscription(env: dict[str, str], sid: str) -> None:
    from shared.config import load_settings
    from shared.storage.state import StateStore
    from shared.storage.subscriptions import SubscriptionRecord

    state = await StateStore.open(load_settings(env).storage)
    try:
        await state.subscriptions.put(SubscriptionRecord(
            subscription_id=sid, mailbox="0f0f0f0f-0000-4000-8000-000000000001", kind="email", resource="/r",
            client_state="cold-start-state", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    finally:
        await state.close()


def run() -> dict[str, Any]:
    from sandbox.proc import azurite_connection_string, start_azurite

    runs = int(os.environ.get("BENCH_COLD_RUNS", "5"))
    az = start_azurite()
    out = []
    try:
        env = {"AzureWebJobsStorage": azurite_connection_string(az), "GRAPH_TENANT_ID": "t1", "APP_MODE": "sandbox"}
        sid = str(uuid.uuid4())
        asyncio.run(_store_subscription(env, sid))
        body = json.dumps({"value": [{"subscriptionId": sid, "clientState": "cold-start-state", "changeType": "created",
                                      "resource": "Users/x/Messages/y", "tenantId": "t1",
                                      "resourceData": {"id": "y", "@odata.etag": "e"}}]})
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AzureWebJobs", "GRAPH_", "PEGA_"))}
        child_env.update(env)
        for _ in range(runs):
            proc = subprocess.run([sys.executable, "-c", _CHILD, body], cwd=ROOT, env=child_env, capture_output=True,
                                  text=True, timeout=120, check=True)
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        az.stop()
    total = [r["since_process_start_s"] for r in out]
    result: dict[str, Any] = {
        "benchmark": "cold start: process start → first notification answered", "runs": out,
        "median_since_process_start_s": round(statistics.median(total), 3),
        "median_import_s": round(statistics.median(r["import_s"] for r in out), 3),
        "median_first_notification_s": round(statistics.median(r["first_notification_s"] for r in out), 3),
        "max_rss_mb": round(max(r["rss_mb"] for r in out), 1),
        "statuses": sorted({r["status"] for r in out}),
    }
    result["headline"] = {k: result[k] for k in ("median_since_process_start_s", "median_import_s",
                                                 "median_first_notification_s", "max_rss_mb", "statuses")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_start.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
