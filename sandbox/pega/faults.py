"""Fault injection and request counting for the Pega API routes (never for /_sim/).

A fault matches by method and a path substring and fires `times` times. It can delay the answer
(`delay_seconds`), answer an error instead of running the handler (`status`, optional
`retry_after`), or run the handler and then answer the error anyway (`after_write`: the write
happened but the caller never learns it, which is what makes retries dangerous). A `stale_etag`
fault makes the next write to the matching record find its eTag already moved on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
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
    id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and self.path_contains in path and self.times > 0


@dataclass
class Faults:
    faults: list[Fault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, spec: dict[str, Any]) -> Fault:
        allowed = {"method", "path_contains", "status", "retry_after", "delay_seconds", "times", "after_write",
                   "stale_etag"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = Fault(**spec)
        if fault.status is None and not fault.delay_seconds and not fault.stale_etag:
            raise ValueError("a fault needs status, delay_seconds or stale_etag")
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
    fault = faults.take(request.method, request.path)
    if fault is None:
        return await handler(request)
    if fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault.status is None:
        return await handler(request)
    if fault.after_write:
        await handler(request)
    return _error(fault)
