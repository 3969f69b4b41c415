"""Async client for the simulator's /_sim/ control API (tests, demos and benchmarks use it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp


class PegaSimControl:
    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._own = session is None
        self._session = session or aiohttp.ClientSession()
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def __aenter__(self) -> PegaSimControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own:
            await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(method, f"{self.base_url}/_sim{path}", json=body, timeout=self._timeout) as r:
            text = await r.text()
            if r.status >= 400:
                raise RuntimeError(f"/_sim{path} answered {r.status}: {text[:300]}")
            return await r.json(content_type=None) if text else None

    @staticmethod
    def _id(record_id: str) -> str:
        return quote(record_id, safe="")

    # state
    async def reset(self) -> dict[str, str]:
        return (await self._call("POST", "/reset"))["seeded"]

    async def state(self, kind: str | None = None) -> dict[str, Any]:
        return await self._call("GET", "/state" + (f"?kind={kind}" if kind else ""))

    async def records(self, kind: str) -> list[dict[str, Any]]:
        return (await self.state(kind))["records"]

    async def record(self, record_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/records/{self._id(record_id)}")

    async def purge(self, record_id: str) -> None:
        """An administrator purged the record (the APIs answer 404 for it from now on)."""
        await self._call("DELETE", f"/records/{self._id(record_id)}")

    async def touch(self, record_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/records/{self._id(record_id)}/touch")

    # faults, counters, tokens, config
    async def add_fault(self, **spec: Any) -> int:
        return (await self._call("POST", "/faults", spec))["id"]

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def requests(self) -> dict[str, Any]:
        return await self._call("GET", "/requests")

    async def reset_requests(self) -> None:
        await self._call("DELETE", "/requests")

    async def request_log(self, *, since: int = 0) -> dict[str, Any]:
        """Every API request since start: {total, value: [{at, method, path, status}]} from entry `since` on."""
        return await self._call("GET", f"/requests/log?since={since}")

    async def revoke_tokens(self) -> int:
        return (await self._call("POST", "/tokens/revoke"))["revoked"]

    async def config(self) -> dict[str, Any]:
        return await self._call("GET", "/config")

    async def configure(self, *, token_ttl_seconds: int | None = None, **outbound: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"outbound": outbound}
        if token_ttl_seconds is not None:
            body["tokenTtlSeconds"] = token_ttl_seconds
        return await self._call("PUT", "/config", body)

    async def outbound(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/outbound"))["calls"]

    async def clear_outbound(self) -> None:
        await self._call("DELETE", "/outbound")

    async def wait_outbound(
        self, count: int, *, states: Sequence[str] = ("delivered", "failed", "skipped"), within: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll until at least `count` outbound calls have finished (in one of `states`)."""
        deadline = time.monotonic() + within
        while True:
            calls = await self.outbound()
            done = [c for c in calls if c["state"] in states]
            if len(done) >= count:
                return calls
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(done)} of {count} outbound calls finished: {calls}")
            await asyncio.sleep(0.05)

    # case type allow-lists (DX API v2 AllowedStartingFields and action views)
    async def casetypes(self) -> dict[str, Any]:
        return await self._call("GET", "/casetypes")

    async def set_casetype(self, kind: str, *, allowed_starting_fields: Sequence[str] | None = None,
                           action_views: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if allowed_starting_fields is not None:
            body["allowedStartingFields"] = list(allowed_starting_fields)
        if action_views is not None:
            body["actionViews"] = {k: list(v) for k, v in action_views.items()}
        return await self._call("PUT", f"/casetypes/{kind}", body)

    async def drop_field(self, kind: str, field: str) -> dict[str, Any]:
        """A Pega side that lacks `field` in the case type's AllowedStartingFields and every action view."""
        current = (await self.casetypes())[kind]
        return await self.set_casetype(
            kind, allowed_starting_fields=[f for f in current["allowedStartingFields"] if f != field],
            action_views={a: [f for f in v if f != field] for a, v in current["actionViews"].items()})

    async def dropped(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/dropped"))["dropped"]

    # rep actions (the Pega UI)
    async def create_appointment(self, operator: str, content: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/rep/appointments", {"operator": operator, "content": content})

    async def update_appointment(self, record_id: str, operator: str, content: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PATCH", f"/rep/appointments/{self._id(record_id)}",
                                {"operator": operator, "content": content})

    async def cancel_appointment(self, record_id: str, operator: str, reason: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/rep/appointments/{self._id(record_id)}/cancel",
                                {"operator": operator, "reason": reason})

    async def send_email(self, operator: str, content: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/rep/emails", {"operator": operator, "content": content})

    async def reply_email(self, record_id: str, operator: str, content: dict[str, Any], *,
                          reply_all: bool = False) -> dict[str, Any]:
        verb = "reply-all" if reply_all else "reply"
        return await self._call("POST", f"/rep/emails/{self._id(record_id)}/{verb}",
                                {"operator": operator, "content": content})

    async def create_contact(self, operator: str, content: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/rep/contacts", {"operator": operator, "content": content})

    async def update_contact(self, record_id: str, operator: str, content: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PATCH", f"/rep/contacts/{self._id(record_id)}",
                                {"operator": operator, "content": content})

    async def close_contact(self, record_id: str, operator: str) -> dict[str, Any]:
        return await self._call("POST", f"/rep/contacts/{self._id(record_id)}/close", {"operator": operator})
