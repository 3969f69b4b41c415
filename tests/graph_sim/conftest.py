"""Helpers for the simulator's own tests: a webhook receiver and raw-HTTP access."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from sandbox.proc import free_port


@dataclass
class Receiver:
    """A tiny webhook endpoint: answers validation, records notifications, can be slowed or failed."""

    url: str
    lifecycle_url: str
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lifecycle: list[dict[str, Any]] = field(default_factory=list)
    validations: list[str] = field(default_factory=list)
    posts: int = 0
    fail_next: int = 0
    delay_seconds: float = 0.0
    hold: asyncio.Event | None = None  # when set: every notification POST waits until the test sets it
    echo_encoded: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, n: int, timeout: float = 30.0, *, lifecycle: bool = False) -> list[dict[str, Any]]:
        target = self.lifecycle if lifecycle else self.notifications
        deadline = asyncio.get_running_loop().time() + timeout
        while len(target) < n:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"expected {n} notifications, got {len(target)}: {target}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass
        return target


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    rec = Receiver(url=f"http://127.0.0.1:{port}/notify?code=abc", lifecycle_url=f"http://127.0.0.1:{port}/life")

    async def handle(request: web.Request) -> web.StreamResponse:
        token = request.query.get("validationToken")
        if token is not None:
            rec.validations.append(token)
            if rec.echo_encoded:
                from urllib.parse import quote

                return web.Response(text=quote(token), content_type="text/plain")
            return web.Response(text=token, content_type="text/plain")
        rec.posts += 1
        if rec.hold is not None:
            await rec.hold.wait()
        if rec.delay_seconds:
            await asyncio.sleep(rec.delay_seconds)
        if rec.fail_next > 0:
            rec.fail_next -= 1
            return web.Response(status=503)
        body = json.loads(await request.read())
        target = rec.lifecycle if request.path == "/life" else rec.notifications
        for n in body["value"]:
            n["_query"] = dict(request.query)
            target.append(n)
        rec.arrived.set()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/notify", handle)
    app.router.add_post("/life", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield rec
    await runner.cleanup()
