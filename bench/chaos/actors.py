"""The people and operators the harness plays: a user in Outlook, a rep in Pega, the simulators'
control APIs and the admin API. Plain HTTP (httpx), the same requests a person's tools make."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

from sandbox.settings import DEMO_TENANT

USER_AGENT_ID = "sandbox-user-agent"  # Outlook, acting for the user (docs/graph-simulator.md)
USER_AGENT_SECRET = "sandbox-user-agent-secret"


class HarnessError(RuntimeError):
    """A harness request failed: the harness cannot vouch for its ground truth (the seed is void)."""


class Actors:
    def __init__(self, urls: dict[str, str], *, master_key: str) -> None:
        self.graph = urls["graph"]
        self.pega = urls["pega"]
        self.api = urls["api"]
        self.master_key = master_key
        self._token: str | None = None
        self._token_at = 0.0
        self._api_token: str | None = None
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(20.0))

    async def close(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, url: str, *, ok: tuple[int, ...] = (), tries: int = 5,
                       **kw: Any) -> httpx.Response:
        """The harness's own calls retry connection errors (a simulator is never faulted for the
        harness, but the host may be down when the harness reads health)."""
        last: Exception | None = None
        for attempt in range(tries):
            try:
                r = await self.http.request(method, url, **kw)
            except httpx.HTTPError as exc:
                last = exc
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if r.status_code < 400 or r.status_code in ok:
                return r
            raise HarnessError(f"{method} {url} -> {r.status_code}: {r.text[:300]}")
        raise HarnessError(f"{method} {url}: {type(last).__name__}: {last}")

    # ------------------------------------------------------------ Outlook (the user)

    async def _agent_token(self) -> str:
        if self._token is None or time.monotonic() - self._token_at > 1800:
            r = await self._request("POST", f"{self.graph}/{DEMO_TENANT}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": USER_AGENT_ID, "client_secret": USER_AGENT_SECRET,
                "scope": "https://graph.microsoft.com/.default"})
            self._token = r.json()["access_token"]
            self._token_at = time.monotonic()
        return self._token

    async def outlook(self, upn: str, method: str, path: str, *, ok: tuple[int, ...] = (), _retried: bool = False,
                      **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {await self._agent_token()}", "Prefer": 'IdType="ImmutableId"'}
        r = await self._request(method, f"{self.graph}/v1.0/users/{upn}/{path}", headers=headers, ok=(*ok, 401),
                                **kw)
        if r.status_code == 401 and not _retried:  # the token aged (a clock jump): a new one, once more
            self._token = None
            return await self.outlook(upn, method, path, ok=ok, _retried=True, **kw)
        if r.status_code == 401:
            raise HarnessError(f"{method} {path}: 401 twice: {r.text[:200]}")
        return r.json() if r.content and r.status_code < 400 else None

    # ------------------------------------------------------------ simulators' control APIs

    async def gsim(self, method: str, path: str, **kw: Any) -> Any:
        r = await self._request(method, f"{self.graph}/_sim/{path}", **kw)
        return r.json() if r.content else None

    async def psim(self, method: str, path: str, **kw: Any) -> Any:
        r = await self._request(method, f"{self.pega}/_sim/{path}", **kw)
        return r.json() if r.content else None

    async def rep(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """A rep acts in Pega (the simulator's UI stand-in, which calls our contract like Connect-REST)."""
        return await self.psim(method, f"rep/{path}", json=body)

    async def pega_records(self, kind: str | None = None) -> list[dict[str, Any]]:
        data = await self.psim("GET", "state", params={"kind": kind} if kind else None)
        return list(data["records"])

    async def pega_record(self, record_id: str) -> dict[str, Any]:
        return dict(await self.psim("GET", f"records/{quote(record_id, safe='')}"))

    # ------------------------------------------------------------ our service's admin API

    async def admin(self, method: str, path: str, **kw: Any) -> Any:
        r = await self._request(method, f"{self.api}/admin/{path}", headers={"x-functions-key": self.master_key},
                                tries=20, **kw)
        return r.json() if r.content else None

    async def operation(self, status_url: str) -> dict[str, Any] | None:
        """An operation's status through the Pega-facing API (function key), as Pega would poll it."""
        url = status_url if status_url.startswith("http") else f"{self.api}/{status_url.lstrip('/')}"
        if url.startswith(f"{self.api}/api/"):
            url = self.api + url[len(self.api) + 4:]
        if self._api_token is None:
            t = await self._request("POST", f"{self.graph}/{DEMO_TENANT}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": "pega-connect-rest",
                "client_secret": "sandbox-pega-secret", "scope": "api://pega-exchange-sync/.default"})
            self._api_token = str(t.json()["access_token"])
        try:
            r = await self._request("GET", url, headers={"x-functions-key": "sandbox-function-key",
                                                         "Authorization": f"Bearer {self._api_token}"},
                                    ok=(401, 404), tries=10)
        except HarnessError:
            return None
        if r.status_code == 401:
            self._api_token = None
            return None
        return r.json() if r.status_code == 200 else None
