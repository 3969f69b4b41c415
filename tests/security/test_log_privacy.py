"""Issue 17 item 6: a full scenario run writes no address, subject, body, token or secret to any log.

The whole product runs as `make run` starts it (sandbox.run's stack on free ports: Azurite, the
Graph and Pega simulators, the local Functions host, the demo reps onboarded through the admin
API). A scenario drives both directions — mail from the internet, a meeting and a tagged contact
made in Outlook, an appointment, a reply and a contact made in Pega — plus hostile requests that
make the service log warnings. Then every log file the run wrote is read and searched for each
address, subject and body of the scenario, any e-mail-address-shaped text, bearer tokens/JWTs,
the sandbox's secrets and keys, and the subscriptions' clientState secrets.

The product's log is the Functions host's (it carries every record of the app, of httpx, aiohttp
and the Azure SDK). The simulators' logs stand for what Microsoft and Pega log on their side; they
are searched for the secrets and tokens of *our* service only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.proc import AZURITE_ACCOUNT_KEY, free_port
from sandbox.run import Stack, start_stack
from sandbox.settings import DEMO_TENANT, SandboxPorts, sandbox_settings
from shared.config import load_settings
from shared.ops.privacy import EMAIL
from shared.storage.state import StateStore

ALEX = "alex@contoso.example"
TAG = uuid.uuid4().hex[:8]
DANA = f"dana.{TAG}@fabrikam.example"
SUBJECTS = {
    "mail": f"Confidential merger terms {TAG}",
    "meeting": f"Board offsite planning {TAG}",
    "appointment": f"Pricing escalation {TAG}",
}
BODIES = {
    "mail": f"Our budget ceiling is 4.2 million, do not share {TAG}",
    "reply": f"Reply text that must stay private {TAG}",
}
CONTACT = f"kim.{TAG}@fabrikam.example"
PEGA_CONTACT = f"sam.{TAG}@fabrikam.example"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")
DEADLINE = 60.0


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.3)


class Run:
    def __init__(self, ports: SandboxPorts, settings: dict[str, str], stack: Stack) -> None:
        self.graph = f"http://127.0.0.1:{ports.graph}"
        self.pega = f"http://127.0.0.1:{ports.pega}"
        self.api = f"http://127.0.0.1:{ports.host}/api"
        self.settings = settings
        self.stack = stack
        self._token: str | None = None

    async def agent(self, method: str, path: str, **kw: Any) -> Any:
        async with httpx.AsyncClient(timeout=30) as http:
            if self._token is None:
                r = await http.post(f"{self.graph}/{DEMO_TENANT}/oauth2/v2.0/token", data={
                    "grant_type": "client_credentials", "client_id": "sandbox-user-agent",
                    "client_secret": "sandbox-user-agent-secret", "scope": "https://graph.microsoft.com/.default"})
                r.raise_for_status()
                self._token = r.json()["access_token"]
            r = await http.request(method, f"{self.graph}/v1.0/users/{ALEX}/{path}", headers={
                "Authorization": f"Bearer {self._token}", "Prefer": 'IdType="ImmutableId"'}, **kw)
            r.raise_for_status()
            return r.json() if r.content else None

    async def sim(self, base: str, method: str, path: str, **kw: Any) -> Any:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.request(method, f"{base}/_sim/{path}", **kw)
            r.raise_for_status()
            return r.json() if r.content else None

    async def host(self, method: str, path: str, *, master: bool = False, **kw: Any) -> httpx.Response:
        key = self.settings["LOCAL_HOST_MASTER_KEY" if master else "LOCAL_HOST_FUNCTION_KEY"]
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.request(method, f"{self.api}/{path}", headers={"x-functions-key": key}, **kw)

    async def pega_records(self, kind: str) -> list[dict[str, Any]]:
        return list((await self.sim(self.pega, "GET", "state", params={"kind": kind}))["records"])


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    ports = SandboxPorts(**{k: free_port() for k in ("host", "graph", "graph_tls", "pega", "ews", "blob", "queue", "table")})
    settings = sandbox_settings(ports)
    stack = Stack()
    try:
        start_stack(ports, settings, stack=stack)
        yield Run(ports, settings, stack)
    finally:
        stack.stop()


def by_exchange_id(records: list[dict[str, Any]], xid: str) -> list[dict[str, Any]]:
    return [r for r in records if r["content"].get("ExchangeID") == xid]


async def scenario(run: Run) -> None:
    async def onboarded() -> bool:
        r = await run.host("GET", f"admin/mailboxes/{ALEX}", master=True)
        d = r.json()
        kinds = {s["kind"] for s in d.get("subscriptions", []) if s["status"] == "active"}
        return kinds >= {"email", "calendar", "contacts"} and all(v == "done" for v in d.get("backfill", {}).values())

    await until(onboarded, "the demo mailbox onboarded")

    # Exchange → Pega: mail from the internet, a meeting and a tagged contact made in Outlook
    mail = await run.sim(run.graph, "POST", f"users/{ALEX}/inbound-mail", json={
        "from": {"address": DANA, "name": "Dana"}, "subject": SUBJECTS["mail"], "body": BODIES["mail"]})
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0, second=0, minute=0)
    meeting = await run.agent("POST", "events", json={
        "subject": SUBJECTS["meeting"], "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": DANA, "name": "Dana"}, "type": "required"}]})
    contact = await run.agent("POST", "contacts", json={
        "givenName": "Kim", "surname": "Example", "categories": ["PegaSASync"],
        "emailAddresses": [{"address": CONTACT, "name": "Kim Example"}]})
    for kind, item in (("email", mail["immutableId"]), ("appointment", meeting["id"]), ("contact", contact["id"])):
        async def arrived(kind: str = kind, item: str = item) -> list[dict[str, Any]]:
            return by_exchange_id(await run.pega_records(kind), item)

        await until(arrived, f"the {kind} in Pega")

    # Pega → Exchange: an appointment, a reply to Dana's mail, a contact
    case = by_exchange_id(await run.pega_records("email"), mail["immutableId"])[0]
    appt = await run.sim(run.pega, "POST", "rep/appointments", json={"operator": "alex", "content": {
        "Subject": SUBJECTS["appointment"], "StartTime": "2026-12-03T15:00:00Z", "EndTime": "2026-12-03T16:00:00Z",
        "TimeZone": "Europe/Berlin", "Attendees": [{"Email": DANA, "Name": "Dana", "AttendeeType": "required"}]}})
    await run.sim(run.pega, "POST", f"rep/emails/{case['id']}/reply", json={"operator": "alex", "content": {
        "Body": BODIES["reply"], "BodyType": "text"}})
    created = await run.sim(run.pega, "POST", "rep/contacts", json={"operator": "alex", "content": {
        "FirstName": "Sam", "LastName": "Example", "WorkEmail": PEGA_CONTACT}})
    for rec_id in (appt["id"], created["id"]):
        async def linked(rec_id: str = rec_id) -> Any:
            return (await run.sim(run.pega, "GET", f"records/{rec_id}"))["content"].get("ExchangeID")

        await until(linked, "the Exchange id reported back to Pega")

    async def replied() -> list[dict[str, Any]]:
        sent = (await run.agent("GET", "mailFolders/sentitems/messages"))["value"]
        return [m for m in sent if m.get("conversationId") == mail["conversationId"]]

    await until(replied, "the reply in Sent Items")

    # hostile and broken requests: warnings and refusals get logged too
    foreign = {"value": [{"subscriptionId": str(uuid.uuid4()), "clientState": "guess", "tenantId": str(uuid.uuid4()),
                          "resource": f"Users/{DANA}/Messages/x"}]}
    assert (await run.host("POST", "graph/notifications", json=foreign)).status_code == 202
    assert (await run.host("POST", f"admin/mailboxes/{DANA}/resync", master=True, json={"kind": "email"})
            ).status_code in (400, 404)
    assert (await run.host("GET", f"admin/mailboxes/{DANA}/health", master=True)).status_code == 404


async def client_states(settings: dict[str, str]) -> list[str]:
    state = await StateStore.open(load_settings({"AzureWebJobsStorage": settings["AzureWebJobsStorage"]}).storage)
    try:
        return [s.client_state for s in await state.subscriptions.all() if s.client_state]
    finally:
        await state.close()


def _hits(text: str, needles: list[str]) -> list[str]:
    low = text.lower()
    return [n for n in needles if n and n.lower() in low]


@pytest.mark.slow
async def test_a_full_run_logs_no_address_subject_body_token_or_secret(run: Run) -> None:
    await scenario(run)
    secrets = [run.settings[k] for k in ("GRAPH_CLIENT_SECRET", "PEGA_CLIENT_SECRET", "PEGA_PASSWORD",
                                         "LOCAL_HOST_FUNCTION_KEY", "LOCAL_HOST_MASTER_KEY")]
    secrets += [AZURITE_ACCOUNT_KEY, "sandbox-user-agent-secret", "sandbox-pega-secret",
                *await client_states(run.settings)]
    assert len(secrets) > 7, "the subscriptions' clientState secrets were read"
    addresses = [ALEX, "blair@contoso.example", DANA, CONTACT, PEGA_CONTACT,
                 run.settings["SYNC_FAILURE_NOTICE_SENDER"], run.settings["SYNC_FAILURE_NOTICE_ADMIN"]]
    content = [*SUBJECTS.values(), *BODIES.values(), TAG]
    logs = {svc.name: svc.log_path for svc in run.stack.services if svc.log_path is not None}
    run.stack.stop()  # flush and close every log
    assert {"host", "graph-sim", "pega-sim"} <= set(logs)

    host_log = Path(logs["host"]).read_text(errors="replace")
    assert "Executed 'Functions.delta_worker' (Succeeded" in host_log, "the run really happened"
    found = {
        "addresses": _hits(host_log, addresses) + [m.group(0) for m in EMAIL.finditer(host_log)][:5],
        "subjects and bodies": _hits(host_log, content),
        "tokens": [m.group(0)[:20] for m in JWT.finditer(host_log)][:5] + _hits(host_log, ["Bearer ey"]),
        "secrets": _hits(host_log, secrets),
    }
    assert not any(found.values()), f"the host log leaks: {json.dumps(found)}"
    assert "mbx-" in host_log, "addresses were logged as pseudonymous ids"
    for name in ("graph-sim", "pega-sim", "azurite"):
        if name in logs:
            text = Path(logs[name]).read_text(errors="replace")
            leaks = _hits(text, secrets) + [m.group(0)[:20] for m in JWT.finditer(text)][:5]
            assert not leaks, f"the {name} log holds our service's secrets or tokens: {leaks}"
