"""Fault injection and request counting for the Pega API routes (never for /_sim/).

A fault matches by method and a path substring and fires `times` times. It can delay the answer
(`delay_seconds`), answer an error instead of running the handler (`status`, optional
`retry_after`), or run the handler and then answer the error anyway (`after_write`: the write
happened but the caller never learns it, which is what makes retries dangerous). A `stale_etag`
fault makes the next write to the matching record find its eTag already moved on. A
`duplicate_write` fault runs the handler twice (a create then exists twice: not something Pega does —
it exists so the chaos harness can prove it notices a duplicate). Every API request is also kept in
a request log (time, method, path, status) for the harness's write counts.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from sandbox.pega.errors import v2_error

_ids = itertools.count(1)


@dataclass
class Fault:
    method: str = "*"
    path_contains: str = ""
    status: int | None = None
    retry_after: float | None = None
    delay_seconds: float = 0.0
    times: int = 1
    after_write: bool = False
    stale_etag: bool = False
    duplicate_write: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and self.path_contains in path and self.times > 0


@dataclass
class Faults:
    faults: list[Fault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200_000))

    def add(self, spec: dict[str, Any]) -> Fault:
        allowed = {"method", "path_contains", "status", "retry_after", "delay_seconds", "times", "after_write",
                   "stale_etag", "duplicate_write"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = Fault(**spec)
        if fault.status is None and not fault.delay_seconds and not fault.stale_etag and not fault.duplicate_write:
            raise ValueError("a fault needs status, delay_seconds, stale_etag or duplicate_write")
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str, *, stale: bool = False) -> Fault | None:
        for f in self.faults:
            if f.stale_etag == stale and f.matches(method, path):
                f.times -= 1
                f.fired += 1
                return f
        return None

    def dump(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.faults]


def _error(fault: Fault) -> web.Response:
    status = fault.status or 500
    resp = v2_error(status, "Too Many Requests" if status == 429 else "Internal Server Error",
                    f"Injected fault {fault.id}", code="Error_Injected")
    if fault.retry_after is not None:
        resp.headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer()
                                          else fault.retry_after)
    return resp


@web.middleware
async def fault_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/_sim/"):
        return await handler(request)
    faults: Faults = request.app["faults"]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
    faults.counts[f"{request.method} {route}"] += 1
    entry: dict[str, Any] = {"at": time.time(), "method": request.method, "path": request.path, "status": None}
    faults.log.append(entry)
    resp = await _answer(request, handler, faults.take(request.method, request.path))
    entry["status"] = resp.status
    return resp


async def _answer(request: web.Request, handler: Any, fault: Fault | None) -> web.StreamResponse:
    if fault is None:
        return await handler(request)
    if fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault.duplicate_write:
        await request.read()  # cached on the request, so the handler can read it twice
        first = await handler(request)
        if first.status < 300:
            await handler(request)  # the same write again
        return first
    if fault.status is None:
        return await handler(request)
    if fault.after_write:
        await handler(request)
    return _error(fault)
