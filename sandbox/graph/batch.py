"""JSON batching: POST /v1.0/$batch with up to 20 requests, dependsOn, per-request status.

Each inner request is replayed against this server over loopback with the caller's token, so it
passes through the same pipeline and is throttled individually (a 429 inside a 200 envelope).
Requests run at most 4 at a time, as Graph sends them to Outlook; dependents of a failed request
get 424.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import ClientTimeout, web
from yarl import URL

from sandbox.graph.errors import GraphError, error_body
from sandbox.graph.odata import graph_json

MAX_REQUESTS = 20
PASS_HEADERS = ("Content-Type", "Location", "Retry-After", "ETag", "Preference-Applied")


async def handle(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    from sandbox.graph.app import _principal

    request["prefer"] = None
    _principal(sim, request)
    try:
        payload = await request.json()
        reqs = payload["requests"]
        assert isinstance(reqs, list)
    except (ValueError, KeyError, AssertionError, TypeError) as exc:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.") from exc
    if len(reqs) > MAX_REQUESTS:
        raise GraphError(400, "BadRequest", f"Number of requests in the batch exceeds the limit of {MAX_REQUESTS}.")
    ids: dict[str, dict[str, Any]] = {}
    for r in reqs:
        rid = str(r.get("id", ""))
        if not rid or not r.get("method") or not r.get("url"):
            raise GraphError(400, "BadRequest", "Each batch request needs id, method and url.")
        if rid.lower() in ids:
            raise GraphError(400, "BadRequest", f"Batch request ids must be unique; '{rid}' is repeated.")
        if r.get("body") is not None and not any(k.lower() == "content-type" for k in (r.get("headers") or {})):
            raise GraphError(400, "BadRequest", f"Request '{rid}' has a body but no Content-Type header.")
        ids[rid.lower()] = r
    for r in reqs:
        for dep in r.get("dependsOn") or []:
            if str(dep).lower() not in ids:
                raise GraphError(400, "BadRequest", f"Request '{r['id']}' depends on unknown id '{dep}'.")
    sem = asyncio.Semaphore(4)
    tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
    auth = request.headers.get("Authorization", "")

    async def run(r: dict[str, Any]) -> dict[str, Any]:
        for dep in r.get("dependsOn") or []:
            res = await tasks[str(dep).lower()]
            if res["status"] >= 400:
                return {"id": r["id"], "status": 424,
                        "body": error_body("BadRequest", "Failed dependency", request["request_id"])}
        async with sem:
            return await _execute(sim, auth, r)

    async def start_all() -> None:
        for r in reqs:
            tasks[str(r["id"]).lower()] = asyncio.ensure_future(run(r))

    await start_all()
    responses = [await tasks[str(r["id"]).lower()] for r in reqs]
    request["prefer"] = None
    return graph_json(request, {"responses": responses})


async def _execute(sim: Any, auth: str, r: dict[str, Any]) -> dict[str, Any]:
    url = str(r["url"])
    if url.startswith("http"):
        url = URL(url).raw_path_qs
    if not url.startswith("/"):
        url = "/" + url
    if not url.lower().startswith("/v1.0/"):
        url = "/v1.0" + url
    headers = {k: str(v) for k, v in (r.get("headers") or {}).items()}
    headers["Authorization"] = auth
    body = r.get("body")
    data: bytes | None = None
    if body is not None:
        data = json.dumps(body).encode() if isinstance(body, dict | list) else str(body).encode()
    assert sim.http is not None
    async with sim.http.request(str(r["method"]).upper(), URL(sim.self_base + url, encoded=True), data=data,
                                headers=headers, timeout=ClientTimeout(total=120)) as resp:
        raw = await resp.read()
        out_headers = {k: resp.headers[k] for k in PASS_HEADERS if k in resp.headers}
        parsed: Any = None
        if raw:
            ctype = resp.headers.get("Content-Type", "")
            parsed = json.loads(raw) if "json" in ctype else base64.b64encode(raw).decode()
        result: dict[str, Any] = {"id": r["id"], "status": resp.status, "headers": out_headers}
        if parsed is not None:
            result["body"] = parsed
        return result
