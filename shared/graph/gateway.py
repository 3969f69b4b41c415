"""One gateway for every Graph call the service makes.

Calls go through the msgraph-sdk request adapter, so authentication (azure-identity), the
Kiota/Graph middleware and host allow-listing are the SDK's own; but responses come back as raw
bytes parsed with `json.loads` into our typed records. The SDK's model deserialization (~14 ms a
message, graph.md §9) therefore never sits on the per-item path.

Two deliberate departures from the SDK defaults:
- the retry middleware is off: a throttled call raises GraphThrottledError with Retry-After, and
  the queue (not a sleeping worker) waits, so one throttled mailbox never blocks the others;
- at most `max_concurrency_per_mailbox` (Outlook's limit: 4) requests per mailbox run at once:
  across every instance when the gateway is given the slots table (shared.graph.mailbox_slots,
  `GRAPH_SHARED_MAILBOX_SLOTS`), else in this instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from shared.config import GraphSettings
from shared.graph.credentials import GRAPH_SCOPE, RenewableCredential, graph_credential
from shared.graph.errors import GraphTokenRejectedError, GraphUnavailableError, error_from_response
from shared.graph.mailbox_slots import SharedMailboxLimiter
from shared.storage.tables import Table

log = logging.getLogger(__name__)

IMMUTABLE_ID = 'IdType="ImmutableId"'
BATCH_MAX = 20  # requests per JSON batch (Graph's limit)


@dataclass(frozen=True)
class GraphResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == low), None)


def encode_query(params: Mapping[str, str | int] | None) -> str:
    """OData-friendly query encoding: keeps `$ ( ) ' , = :` readable as Graph expects them."""
    if not params:
        return ""
    safe = "$()',=:@/"
    return "?" + "&".join(f"{quote(str(k), safe=safe)}={quote(str(v), safe=safe)}" for k, v in params.items())


class MailboxLimiter:
    """Per-mailbox concurrency cap for this instance (Outlook allows 4 per app and mailbox)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sems: dict[str, asyncio.Semaphore] = {}
        self.peak: dict[str, int] = {}
        self._active: dict[str, int] = {}

    def slot(self, mailbox: str) -> _Slot:
        key = mailbox.lower()
        sem = self._sems.get(key)
        if sem is None:
            sem = self._sems[key] = asyncio.Semaphore(self.limit)
        return _Slot(self, key, sem)


class _Slot:
    def __init__(self, owner: MailboxLimiter, key: str, sem: asyncio.Semaphore) -> None:
        self.owner, self.key, self.sem = owner, key, sem

    async def __aenter__(self) -> None:
        await self.sem.acquire()
        n = self.owner._active.get(self.key, 0) + 1
        self.owner._active[self.key] = n
        self.owner.peak[self.key] = max(self.owner.peak.get(self.key, 0), n)

    async def __aexit__(self, *exc: object) -> None:
        self.owner._active[self.key] -= 1
        self.sem.release()


class GraphGateway:
    def __init__(self, *, adapter: Any, base_url: str, limiter: MailboxLimiter | SharedMailboxLimiter,
                 credential: Any = None, slot_margin: float = 40.0) -> None:
        self._adapter = adapter
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self._credential = credential
        self._slot_margin = slot_margin  # a slot is renewed when less than this is left (the request timeout + 10 s)
        self._sdk: Any = None

    @classmethod
    def from_settings(cls, settings: GraphSettings, *, slots: Table | None = None) -> GraphGateway:
        """`slots`: the `graphslots` table; with it (and `GRAPH_SHARED_MAILBOX_SLOTS`, the default) the
        per-mailbox limit holds across instances."""
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph import GraphRequestAdapter
        from msgraph_core import GraphClientFactory

        credential = RenewableCredential(lambda: graph_credential(settings))
        host = urlsplit(settings.base_url).hostname or "graph.microsoft.com"
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
        timeout = httpx.Timeout(settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds))
        client = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(timeout=timeout, http2=False),
            options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False)},
        )
        adapter = GraphRequestAdapter(auth, client=client)
        adapter.base_url = settings.base_url
        margin = settings.timeout_seconds + 10.0
        limiter: MailboxLimiter | SharedMailboxLimiter = MailboxLimiter(settings.max_concurrency_per_mailbox)
        if slots is not None and settings.shared_mailbox_slots:
            limiter = SharedMailboxLimiter(settings.max_concurrency_per_mailbox, slots, renew_margin=margin)
        return cls(adapter=adapter, base_url=settings.base_url, limiter=limiter, credential=credential,
                   slot_margin=margin)

    def use_slots(self, slots: Table) -> None:
        """Take the per-mailbox slots from `slots` from now on (a no-op for the table already in use).
        The former limiter's rows are left to expire: its table may already be closed."""
        if isinstance(self.limiter, SharedMailboxLimiter):
            if self.limiter.table is slots:
                return
            self.limiter.abandon()
        self.limiter = SharedMailboxLimiter(self.limiter.limit, slots, renew_margin=self._slot_margin)

    def sdk(self) -> Any:
        """The typed GraphServiceClient on the same adapter, for rare calls where models help."""
        if self._sdk is None:
            from msgraph import GraphServiceClient

            self._sdk = GraphServiceClient(request_adapter=self._adapter)
        return self._sdk

    def url(self, path_or_url: str, params: Mapping[str, str | int] | None = None) -> str:
        if path_or_url.startswith(("https://", "http://")):
            if not path_or_url.startswith(self.base_url.split("/v1.0")[0]):
                raise ValueError("refusing to send a Graph token to a foreign host")
            return path_or_url + (encode_query(params).replace("?", "&", 1) if params and "?" in path_or_url
                                  else encode_query(params))
        return f"{self.base_url}/{path_or_url.lstrip('/')}{encode_query(params)}"

    async def takes_whole_attachments(self, mailbox: str) -> bool:
        """Graph takes at most 3 MB of attachment in one request; larger ones go through an upload
        session (graph.md §6). An on-premises mailbox's gateway answers True (shared.ews.writes)."""
        return False

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        mailbox: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        content_type: str = "application/json",
        prefer: Sequence[str] = (),
        immutable_ids: bool = True,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> GraphResponse:
        """Send one request; raise a typed error for any non-2xx answer."""
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        info = RequestInformation()
        info.http_method = Method[method.upper()]
        info.url = self.url(path_or_url, params)
        prefs = list(prefer) + ([IMMUTABLE_ID] if immutable_ids else [])
        if prefs:
            info.headers.try_add("Prefer", ", ".join(prefs))
        for k, v in (headers or {}).items():
            info.headers.try_add(k, v)
        if body is not None or raw_body is not None:
            info.headers.try_add("Content-Type", content_type)
            info.content = raw_body if raw_body is not None else json.dumps(body).encode()
        label = what or f"{method.upper()} {urlsplit(info.url).path}"
        span = self._adapter.start_tracing_span(info, "raw_request")
        try:
            async with self.limiter.slot(mailbox):
                try:
                    resp = await self._adapter.get_http_response_message(info, span)
                except httpx.TimeoutException as exc:
                    raise GraphUnavailableError(f"{label}: timed out", retry_after=5.0) from exc
                except httpx.TransportError as exc:
                    raise GraphUnavailableError(f"{label}: {type(exc).__name__}", retry_after=5.0) from exc
        finally:
            span.end()
        result = GraphResponse(resp.status_code, dict(resp.headers), resp.content)
        if resp.status_code >= 400:
            log.info("graph %s -> %s", label, resp.status_code)
            error = error_from_response(resp.status_code, result.headers, resp.content, what=label)
            if isinstance(error, GraphTokenRejectedError) and isinstance(self._credential, RenewableCredential):
                await self._credential.renew()  # the queue's retry must not present the refused token again
            raise error
        return result

    async def get_json(self, path_or_url: str, *, mailbox: str, params: Mapping[str, str | int] | None = None,
                       prefer: Sequence[str] = (), what: str = "") -> Any:
        return (await self.request("GET", path_or_url, mailbox=mailbox, params=params, prefer=prefer,
                                   what=what)).json()

    async def get_many(self, paths: Mapping[str, str], *, mailbox: str, what: str = "") -> dict[str, Any]:
        """GET several items of one mailbox through JSON batching ($batch, 20 per request: one
        round trip instead of 20). `paths` maps a caller's key to a path relative to the base URL
        (query included). Returns key → the parsed body, or the typed error of that one request
        (GraphNotFoundError for a 404, ...): one failed item never fails the others. A failure of
        the batch request itself raises."""
        out: dict[str, Any] = {}
        keys = list(paths)
        for i in range(0, len(keys), BATCH_MAX):
            chunk = keys[i:i + BATCH_MAX]
            requests = [{"id": str(n), "method": "GET", "url": "/" + paths[k].lstrip("/"),
                         "headers": {"Prefer": IMMUTABLE_ID}} for n, k in enumerate(chunk)]
            resp = await self.request("POST", "$batch", mailbox=mailbox, body={"requests": requests},
                                      what=what or "batch get")
            answers = {str(r.get("id")): r for r in (resp.json() or {}).get("responses") or [] if isinstance(r, dict)}
            for n, k in enumerate(chunk):
                r = answers.get(str(n)) or {"status": 502, "body": {}}
                status = int(r.get("status") or 502)
                body = r.get("body")
                if status < 300:
                    out[k] = body if isinstance(body, dict) else {}
                    continue
                headers = {str(h): str(v) for h, v in (r.get("headers") or {}).items()}
                raw = json.dumps(body).encode() if isinstance(body, dict | list) else str(body or "").encode()
                out[k] = error_from_response(status, headers, raw, what=what or "batch get")
        return out

    async def close(self) -> None:
        if isinstance(self.limiter, SharedMailboxLimiter):
            await self.limiter.close()
        client = getattr(self._adapter, "_http_client", None)
        if client is not None:
            await client.aclose()
        if self._credential is not None:
            await self._credential.close()
