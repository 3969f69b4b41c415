"""Async client for one Pega instance: DX API v2 cases and data views, SA API v1 entities.

Transport rules live here and nowhere else: every call has a timeout; a 401 on a bearer call
forces one token refresh and one retry; a stale eTag (409/412) on a write re-reads the record and
retries once with the fresh eTag, re-applying only the caller's fields (never a blind overwrite
of the whole record); every other failure becomes a typed error from :mod:`shared.pega.errors`.
Transient failures are not retried here: the queue that called us retries with backoff.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from shared.config import PegaSettings
from shared.errors import ConfigurationError
from shared.pega.errors import (
    PegaAuthError,
    PegaBadRequestError,
    PegaConflictError,
    PegaFieldDroppedError,
    connection_error,
    error_for_status,
    timeout_error,
)
from shared.pega.mapping import PegaMapping, load_mapping
from shared.pega.models import PegaCase, SaRecord
from shared.pega.query import Query
from shared.pega.token import OAuthClientCredentials, TokenSource

log = logging.getLogger(__name__)

# Re-computes the fields to write against the record as re-read after a stale eTag; None = give up.
ConflictResolver = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None]


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: Any


def _seg(value: str) -> str:
    """One path segment, fully encoded (case ids contain spaces)."""
    return quote(value, safe="")


class PegaClient:
    """One client per Pega instance; use as an async context manager or call `close()`."""

    def __init__(
        self,
        settings: PegaSettings,
        *,
        mapping: PegaMapping | None = None,
        session: aiohttp.ClientSession | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        if not settings.base_url:
            raise ConfigurationError("PEGA_BASE_URL is not set", settings=["PEGA_BASE_URL"])
        self.settings = settings
        self.mapping = mapping or load_mapping(settings.mapping_file)
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession()
        if token_source is None and settings.client_id:
            token_source = OAuthClientCredentials(
                self._session,
                token_url=settings.effective_token_url,
                client_id=settings.client_id,
                client_secret=settings.client_secret or "",
                timeout=settings.timeout_seconds,
                skew=settings.token_refresh_skew_seconds,
            )
        self.tokens = token_source
        self._dx = settings.base_url + settings.dx_api_path
        self._sa = settings.base_url + settings.sa_api_path
        self._service = settings.base_url + settings.service_path

    async def __aenter__(self) -> PegaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session:
            await self._session.close()

    # ------------------------------------------------------------------ transport

    async def _bearer_headers(self, *, force: bool = False) -> dict[str, str]:
        if self.tokens is None:
            raise ConfigurationError("PEGA_CLIENT_ID is not set (needed for DX API v2)", settings=["PEGA_CLIENT_ID"])
        return {"Authorization": f"Bearer {await self.tokens.get_token(force=force)}"}

    def _basic_headers(self) -> dict[str, str] | None:
        if not self.settings.username:
            return None
        raw = f"{self.settings.username}:{self.settings.password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        basic: bool = False,
        ok: Sequence[int] = (),
    ) -> _Response:
        """One HTTP call with auth, timeout and typed errors; statuses in `ok` are returned, not raised."""
        target = URL(url, encoded=True)
        for attempt in (1, 2):
            auth = self._basic_headers() if basic else None
            if auth is None:
                auth = await self._bearer_headers(force=attempt == 2)
            hdrs = {"Accept": "application/json", **auth, **(headers or {})}
            try:
                async with self._session.request(
                    method,
                    target,
                    json=json_body,
                    headers=hdrs,
                    timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    resp_headers = {k.lower(): v for k, v in resp.headers.items()}
            except TimeoutError as exc:
                raise timeout_error(what, self.settings.timeout_seconds) from exc
            except aiohttp.ClientError as exc:
                raise connection_error(what, exc) from exc
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
            if status == 401 and not basic and attempt == 1 and self.tokens is not None:
                log.info("Pega %s answered 401; refreshing the token once", what)
                self.tokens.invalidate()
                continue
            if status < 300 or status in ok:
                return _Response(status, resp_headers, body)
            if status == 401:
                raise PegaAuthError(f"Pega {what} refused the credentials (HTTP 401)", status=401)
            raise error_for_status(status, what=what, body=body, retry_after=resp_headers.get("retry-after"))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ sync-service contract

    async def service_call(self, method: str, path: str, *, what: str, json_body: Any = None,
                           ok: Sequence[int] = ()) -> tuple[int, Any]:
        """One call of the Pega-side sync-service contract (pega-service.openapi.yaml) under
        PEGA_SERVICE_PATH, with the same OAuth token, timeout and typed errors as DX API v2."""
        resp = await self._send(method, f"{self._service}/{path.lstrip('/')}", what=what, json_body=json_body, ok=ok)
        return resp.status, resp.body

    # ------------------------------------------------------------------ SA API v1

    async def authenticate(self) -> None:
        """`GET /authenticate`: checks the SA API Basic credentials (PegaAuthError if refused)."""
        await self._send("GET", f"{self._sa}/authenticate", what="authenticate", basic=True)

    async def sa_create(self, entity_path: str, content: Mapping[str, Any]) -> SaRecord:
        resp = await self._send(
            "POST", f"{self._sa}/{_seg(entity_path)}", what=f"create {entity_path}",
            json_body={"content": dict(content)}, basic=True,
        )
        body = resp.body if isinstance(resp.body, dict) else {}
        record_id = str(body.get("ID") or "")
        if not record_id:
            raise PegaBadRequestError(f"Pega create {entity_path} returned no ID")
        return SaRecord(id=record_id, content=dict(content), etag=resp.headers.get("etag"),
                        obj_class=body.get("pxObjClass"))

    async def sa_get(self, entity_path: str, record_id: str) -> SaRecord:
        resp = await self._send("GET", f"{self._sa}/{_seg(entity_path)}/{_seg(record_id)}",
                                what=f"get {entity_path}", basic=True)
        body = resp.body if isinstance(resp.body, dict) else {}
        return SaRecord(
            id=str(body.get("ID") or record_id),
            content=dict(body.get("content") or {}),
            etag=resp.headers.get("etag"),
            obj_class=body.get("pxObjClass"),
        )

    async def sa_update(
        self,
        entity_path: str,
        record_id: str,
        content: Mapping[str, Any],
        *,
        etag: str | None = None,
        on_conflict: ConflictResolver | None = None,
    ) -> SaRecord:
        """PUT with If-Match. Without `etag` the record is read first. A stale eTag (412) re-reads and
        retries once, writing `on_conflict(fresh_content)` (default: the same fields again)."""
        url = f"{self._sa}/{_seg(entity_path)}/{_seg(record_id)}"
        if etag is None:
            etag = (await self.sa_get(entity_path, record_id)).etag
        fields: Mapping[str, Any] | None = content
        for attempt in (1, 2):
            resp = await self._send(
                "PUT", url, what=f"update {entity_path}", json_body={"content": dict(fields or {})},
                headers={"If-Match": etag or ""}, basic=True, ok=(409, 412) if attempt == 1 else (),
            )
            if resp.status < 300:
                return SaRecord(id=record_id, content=dict(fields or {}), etag=resp.headers.get("etag"))
            log.info("Pega %s %s: stale eTag, re-reading once", entity_path, "update")
            fresh = await self.sa_get(entity_path, record_id)
            etag = fresh.etag
            fields = await _resolve(on_conflict, fresh.content, content)
            if fields is None:
                raise PegaConflictError(f"Pega update {entity_path}: record changed and the write was withdrawn",
                                        status=resp.status)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ DX API v2

    async def create_case(
        self, case_type_id: str, content: Mapping[str, Any], *, must_keep: Sequence[str] = ()
    ) -> PegaCase:
        """POST /cases. DX API v2 keeps only the case type's AllowedStartingFields and drops the rest
        without an error, so the fields in `must_keep` (the external id) are read back — from the
        create answer, else by a GET — and a case that lost one raises PegaFieldDroppedError."""
        resp = await self._send(
            "POST", f"{self._dx}/cases", what=f"create case {case_type_id}",
            json_body={"caseTypeID": case_type_id, "content": dict(content)},
        )
        body = resp.body if isinstance(resp.body, dict) else {}
        case = _case_from(body, resp.headers.get("etag"))
        if not case.id:
            raise PegaBadRequestError(f"Pega create case {case_type_id} returned no ID")
        dropped = [k for k in content if case.content and k not in case.content]
        if dropped:
            # names only (values may be personal data): a hint to fix the case type's starting fields
            log.warning("Pega create case %s did not keep %s", case_type_id, ", ".join(sorted(dropped)))
        lost = [k for k in must_keep if case.content.get(k) != content.get(k)]
        if lost and not case.content:  # an answer without content (viewType=none on some servers): read it
            case = await self.get_case(case.id)
            lost = [k for k in must_keep if case.content.get(k) != content.get(k)]
        if lost:
            raise PegaFieldDroppedError(
                f"Pega case type {case_type_id} did not store {', '.join(lost)} on create (case {case.id}): add "
                f"{', '.join(lost)} to the case type's AllowedStartingFields data transform (docs/pega-setup.md); "
                "withdraw the case, then replay the item",
                record_id=case.id, fields=lost, case_type=case_type_id)
        return case

    async def get_case(self, case_id: str) -> PegaCase:
        resp = await self._send("GET", f"{self._dx}/cases/{_seg(case_id)}?viewType=none", what="get case")
        return _case_from(resp.body if isinstance(resp.body, dict) else {}, resp.headers.get("etag"), case_id)

    async def case_action(
        self,
        case_id: str,
        action_id: str,
        content: Mapping[str, Any] | None = None,
        *,
        etag: str | None = None,
        on_conflict: ConflictResolver | None = None,
        must_keep: Sequence[str] = (),
    ) -> PegaCase:
        """PATCH /cases/{ID}/actions/{actionID} with If-Match (read first when `etag` is None).

        A stale eTag (409, or 412 from older servers) re-reads the case and retries once with the
        fresh eTag, writing `on_conflict(fresh_content)` (default: the same fields again). DX API v2
        applies only the fields of the action's view: a field of `must_keep` the case does not hold
        afterwards raises PegaFieldDroppedError.
        """
        url = f"{self._dx}/cases/{_seg(case_id)}/actions/{_seg(action_id)}?viewType=none"
        if etag is None:
            etag = (await self.get_case(case_id)).etag
        fields: Mapping[str, Any] | None = content or {}
        for attempt in (1, 2):
            resp = await self._send(
                "PATCH", url, what=f"case action {action_id}",
                json_body={"content": dict(fields or {}), "pageInstructions": [], "attachments": []},
                headers={"If-Match": etag or ""}, ok=(409, 412) if attempt == 1 else (),
            )
            if resp.status < 300:
                case = _case_from(resp.body if isinstance(resp.body, dict) else {}, resp.headers.get("etag"), case_id)
                await self._check_kept(case, fields or {}, must_keep, what=f"action {action_id}")
                return case
            log.info("Pega case action %s: stale eTag, re-reading once", action_id)
            fresh = await self.get_case(case_id)
            etag = fresh.etag
            fields = await _resolve(on_conflict, fresh.content, content or {})
            if fields is None:
                raise PegaConflictError(f"Pega case action {action_id}: case changed and the write was withdrawn",
                                        status=resp.status)
        raise AssertionError("unreachable")

    async def _check_kept(self, case: PegaCase, sent: Mapping[str, Any], must_keep: Sequence[str], *, what: str) -> None:
        lost = [k for k in must_keep if k in sent and case.content.get(k) != sent[k]]
        if lost and not case.content:
            fresh = await self.get_case(case.id)
            lost = [k for k in lost if fresh.content.get(k) != sent[k]]
        if lost:
            raise PegaFieldDroppedError(
                f"Pega {what} on case {case.id} did not store {', '.join(lost)}: add {', '.join(lost)} to the "
                "view of that action (docs/pega-setup.md)", record_id=case.id, fields=lost,
                case_type=case.case_type_id)

    async def query_data_view(
        self,
        data_view_id: str,
        query: Query | None = None,
        *,
        max_rows: int | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """All rows (or the first `max_rows`) of a data view, paging with pageNumber/pageSize."""
        page_size = self.settings.data_view_page_size
        if max_rows is not None:
            page_size = max(1, min(page_size, max_rows))
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            body: dict[str, Any] = {"paging": {"pageNumber": page, "pageSize": page_size}}
            if query is not None:
                body["query"] = query.to_json()
            if parameters:
                body["dataViewParameters"] = dict(parameters)
            resp = await self._send("POST", f"{self._dx}/data_views/{_seg(data_view_id)}",
                                    what=f"data view {data_view_id}", json_body=body)
            data = resp.body.get("data") if isinstance(resp.body, dict) else None
            batch = [r for r in (data or []) if isinstance(r, dict)]
            rows.extend(batch)
            if max_rows is not None and len(rows) >= max_rows:
                return rows[:max_rows]
            more = resp.body.get("hasMoreResults") if isinstance(resp.body, dict) else None
            if len(batch) < page_size or more is False:
                return rows
            page += 1


async def _resolve(
    resolver: ConflictResolver | None, fresh: dict[str, Any], original: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    if resolver is None:
        return original
    result = resolver(fresh)
    if hasattr(result, "__await__"):
        result = await result  # type: ignore[misc]
    return result  # type: ignore[return-value]


def _case_from(body: dict[str, Any], etag: str | None, fallback_id: str = "") -> PegaCase:
    info = (body.get("data") or {}).get("caseInfo") or {}
    content = dict(info.get("content") or {})
    return PegaCase(
        id=str(body.get("ID") or info.get("ID") or fallback_id),
        case_type_id=str(info.get("caseTypeID") or content.get("classID") or ""),
        status=str(info.get("status") or content.get("pyStatusWork") or ""),
        content=content,
        etag=etag,
        last_update_time=info.get("lastUpdateTime"),
    )
