"""The same message delta pages parsed through msgraph-sdk models vs our raw path (same run).

Pages are fetched once from the Graph simulator as raw bytes (the production $select, Prefer
odata.maxpagesize), then parsed by (a) `json.loads` + shared.sync.records.parse_page — the hot
path of the delta worker — and (b) what the SDK does for `...messages.delta.get()`: Kiota's JSON
parse node → `DeltaGetResponse` with `Message` models. The SDK's first (cold) deserialization,
which lazily imports ~1,200 modules, is reported separately from its warm per-message cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

BODY = ("<html><body><p>Hello Alex,</p><p>Thanks for the call today. As discussed we would like a quote for "
        "the fleet renewal: 40 vehicles, 3-year lease, maintenance included. Could you also send the "
        "pricing for the optional telematics package?</p><p>Best regards,<br>Dana</p>"
        "<div>-----Original Message----- From: Alex Sent: Monday To: Dana Subject: Fleet</div></body></html>")


async def _pages(n: int, page_size: int) -> list[bytes]:
    import httpx

    from bench._inbound_stack import Stack
    from sandbox.graph.seed import SYNC_CLIENT_ID, SYNC_CLIENT_SECRET, TENANT_ID
    from sandbox.proc import ROOT, free_port, python_module, start
    from shared.sync.source import MESSAGE_SELECT, SENSITIVITY_EXPAND

    gport, tport = free_port(), free_port()
    cert_dir = ROOT / ".sandbox" / f"graph-certs-{gport}"
    svc = start("graph-sim", python_module("sandbox.graph", "--port", str(gport), "--tls-port", str(tport),
                                           "--cert-dir", str(cert_dir), "--log-level", "WARNING"),
                wait_ports=[gport, tport])
    try:
        stack = Stack("", f"http://127.0.0.1:{gport}", "", "", "", [])
        upn = await stack.new_user()
        async with httpx.AsyncClient(base_url=stack.graph_base, timeout=300) as http:
            r = await http.post(f"/_sim/users/{upn}/inbound-mail", json={
                "subject": "RE: Fleet renewal", "body": {"contentType": "html", "content": BODY}, "count": n,
                "from": {"address": "dana@fabrikam.example", "name": "Dana"}, "cc": ["blair@contoso.example"]})
            r.raise_for_status()
            tok = await http.post(f"/{TENANT_ID}/oauth2/v2.0/token", data={
                "client_id": SYNC_CLIENT_ID, "client_secret": SYNC_CLIENT_SECRET,
                "scope": "https://graph.microsoft.com/.default", "grant_type": "client_credentials"})
            headers = {"Authorization": f"Bearer {tok.json()['access_token']}",
                       "Prefer": f'odata.maxpagesize={page_size}, IdType="ImmutableId"'}
            url: str | None = f"/v1.0/users/{upn}/mailFolders/inbox/messages/delta"
            params: dict[str, str] | None = {"$select": MESSAGE_SELECT, "$expand": SENSITIVITY_EXPAND}
            pages: list[bytes] = []
            while url:
                r = await http.get(url, params=params, headers=headers)
                r.raise_for_status()
                pages.append(r.content)
                body = r.json()
                url, params = body.get("@odata.nextLink"), None
            return pages
    finally:
        svc.stop()


def _raw(pages: list[bytes]) -> int:
    from shared.sync.records import parse_page

    return sum(len(parse_page(json.loads(p), "email").items) for p in pages)


def _sdk(pages: list[bytes]) -> int:
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_get_response import DeltaGetResponse

    factory = JsonParseNodeFactory()
    n = 0
    for p in pages:
        resp = factory.get_root_parse_node("application/json", p).get_object_value(DeltaGetResponse)
        n += len(resp.value or [])
    return n


def _timed(fn: Any, pages: list[bytes], reps: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(reps):
        t = time.perf_counter()
        n = fn(pages)
        times.append(time.perf_counter() - t)
    return min(times), n


def _chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    labels = ["raw JSON → records", "msgraph-sdk models (warm)"]
    values = [result["raw_ms_per_message"], result["sdk_ms_per_message"]]
    bars = ax.bar(labels, values, color=["#228833", "#ee6677"])
    ax.set_yscale("log")
    ax.set_ylabel("ms per message (log)")
    ax.set_title(f"{result['messages']} messages, same pages: SDK/raw = {result['ratio']}×")
    for b, v in zip(bars, values, strict=True):
        ax.annotate(f"{v:.3f} ms", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run() -> dict[str, Any]:
    n = int(os.environ.get("BENCH_PARSE_MESSAGES", "1000"))
    page_size = int(os.environ.get("BENCH_PARSE_PAGE", "100"))
    pages = asyncio.run(_pages(n, page_size))
    t_cold = time.perf_counter()
    _sdk(pages[:1])
    sdk_cold = time.perf_counter() - t_cold
    raw_s, raw_n = _timed(_raw, pages, 5)
    sdk_s, sdk_n = _timed(_sdk, pages, 1)
    if raw_n != sdk_n or raw_n != n:
        raise AssertionError(f"parsed counts differ: raw {raw_n}, sdk {sdk_n}, expected {n}")
    result: dict[str, Any] = {
        "messages": n, "pages": len(pages), "page_bytes_mean": int(statistics.mean(len(p) for p in pages)),
        "raw_seconds": round(raw_s, 4), "sdk_seconds": round(sdk_s, 3),
        "raw_ms_per_message": round(raw_s * 1000 / n, 4), "sdk_ms_per_message": round(sdk_s * 1000 / n, 3),
        "sdk_first_page_cold_seconds": round(sdk_cold, 2), "ratio": round(sdk_s / raw_s, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inbound_parse.json").write_text(json.dumps(result, indent=2))
    _chart(result, RESULTS / "inbound_parse.png")
    result["headline"] = {k: result[k] for k in ("messages", "raw_ms_per_message", "sdk_ms_per_message", "ratio")}
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
