"""`pes-admin doctor` and GET /api/admin/doctor against the simulators and the real local host.

A good sandbox configuration gives a clean checklist for both Pega adapters; each broken
configuration gives a precise FAIL with its fix: a field missing from a case type's
AllowedStartingFields, a Graph app without its roles, a wrong notification URL or key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from sandbox.graph.seed import GRAPH_AUDIENCE
from shared.admin.cli import run as cli_run
from shared.admin.doctor import DoctorReport, run_doctor
from shared.config import load_settings
from shared.queues.sender import QueueSender
from shared.runtime import Services
from shared.storage.mailboxes import Mailbox
from shared.storage.state import StateStore
from shared.storage.tables import TableNames
from tests.ops.conftest import graph_env
from tests.plugins.app_host import AppHost, start_app_host


def pega_env(pega_sim: Any, adapter: str) -> dict[str, str]:
    return {"PEGA_BASE_URL": pega_sim.base_url, "PEGA_CLIENT_ID": pega_sim.client_id,
            "PEGA_CLIENT_SECRET": pega_sim.client_secret, "PEGA_USERNAME": pega_sim.username,
            "PEGA_PASSWORD": pega_sim.password, "PEGA_TIMEOUT_SECONDS": "10", "PEGA_ADAPTER": adapter}


@pytest.fixture(scope="module")
def host(azurite_conn: str, graph_sim: Any, pega_sim: Any) -> Iterator[AppHost]:
    """The real function app (its notification route answers the handshake; its admin route runs doctor)."""
    h = start_app_host(azurite_conn, settings={**graph_env(graph_sim), **pega_env(pega_sim, "sync-service")})
    try:
        yield h
    finally:
        h.stop()


def env_for(azurite_conn: str, graph_sim: Any, pega_sim: Any, host: AppHost, adapter: str,
            **extra: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite_conn, **graph_env(graph_sim), **pega_env(pega_sim, adapter),
            "SYNC_NOTIFICATION_URL_BASE": host.url, "SYNC_NOTIFICATION_URL_KEY": host.function_key, **extra}


async def doctor(env: dict[str, str], *, onboard: str | None = None) -> DoctorReport:
    settings = load_settings(env)
    state = await StateStore.open(settings.storage, names=TableNames(prefix="dr" + uuid.uuid4().hex[:10]))
    svc = Services(settings=settings, state=state, queues=QueueSender.from_settings(settings.storage))
    try:
        if onboard:
            await state.mailboxes.put(Mailbox.with_defaults(onboard, "alex", settings.sync))
        return await run_doctor(svc)
    finally:
        for name in state.tables.names.all():
            try:
                await state.tables._service.delete_table(name)
            except Exception:
                pass
        await svc.close()


def by_name(report: DoctorReport) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


@pytest.fixture
async def rep(graph_sim: Any) -> str:
    return str((await graph_sim.control.new_user("Doctor rep"))["userPrincipalName"])


@pytest.mark.parametrize("adapter", ["sync-service", "dx-v2"])
async def test_the_sandbox_is_ready(adapter: str, azurite_conn: str, graph_sim: Any, pega_sim: Any, pega_control: Any,
                                    host: AppHost, rep: str) -> None:
    report = await doctor(env_for(azurite_conn, graph_sim, pega_sim, host, adapter), onboard=rep)
    assert report.ok, [c for c in report.failed()]
    names = by_name(report)
    for expected in ("Graph token", "Graph app roles", f"mailbox {rep}", "notification URL", "state tables",
                     "work queues", "Pega token"):
        assert names[expected].status == "PASS", names[expected]
    if adapter == "dx-v2":
        assert names["case type PegaSA-Work-Appointment: create fields"].status == "PASS"
        assert names["data view D_ContactList by WorkEmail"].status == "PASS"
    else:
        assert names["sync-service contract"].status == "PASS"
        assert names["appointment fields round-trip"].status == "PASS"
        assert names["operation: find party by address"].status == "PASS"
    probes = [r for r in await pega_control.records("appointment")
              if "pes-doctor probe" in str(r["content"].get("Subject"))]
    assert probes and all(r["content"]["pyStatusWork"] == "Resolved-Cancelled" for r in probes), "probes cleaned up"


async def test_a_field_missing_from_allowed_starting_fields_fails_with_its_rule(
        azurite_conn: str, graph_sim: Any, pega_sim: Any, pega_control: Any, host: AppHost) -> None:
    await pega_control.drop_field("appointment", "Location")
    report = await doctor(env_for(azurite_conn, graph_sim, pega_sim, host, "dx-v2"))
    [create] = [c for c in report.failed() if c.name == "case type PegaSA-Work-Appointment: create fields"]
    assert "Location" in create.detail
    assert ".Location" in create.fix and "AllowedStartingFields" in create.fix and "PegaSA-Work-Appointment" in create.fix
    [action] = [c for c in report.failed() if c.name == "case type PegaSA-Work-Appointment: action pyUpdateCaseDetails"]
    assert ".Location" in action.fix and "view of flow action pyUpdateCaseDetails" in action.fix
    assert not [c for c in report.failed() if c.area != "pega"], "only the Pega side is broken"

    await pega_control.drop_field("email", "ExchangeID")
    report = await doctor(env_for(azurite_conn, graph_sim, pega_sim, host, "dx-v2"))
    [create] = [c for c in report.failed() if c.name == "case type PegaSA-Work-Email: create"]
    assert ".ExchangeID" in create.fix and "every replay creates another case" in create.fix


async def test_a_graph_app_without_its_roles_fails_naming_them(
        azurite_conn: str, graph_sim: Any, pega_sim: Any, pega_control: Any, host: AppHost, rep: str) -> None:
    client_id = str(uuid.uuid4())
    await graph_sim.control.call("POST", "clients", {"clientId": client_id, "secret": "doctor-secret",
                                                     "roles": {GRAPH_AUDIENCE: ["Mail.ReadWrite"]}})
    env = env_for(azurite_conn, graph_sim, pega_sim, host, "sync-service",
                  GRAPH_CLIENT_ID=client_id, GRAPH_CLIENT_SECRET="doctor-secret")
    names = by_name(await doctor(env, onboard=rep))
    roles = names["Graph app roles"]
    assert roles.status == "FAIL"
    for missing in ("Mail.Send", "Calendars.ReadWrite", "Contacts.ReadWrite"):
        assert missing in roles.detail and missing in roles.fix
    assert "Grant admin consent" in roles.fix and client_id in roles.fix
    mailbox = names[f"mailbox {rep}"]
    assert mailbox.status == "FAIL" and "calendar: access denied" in mailbox.detail
    assert "New-ManagementRoleAssignment" in mailbox.fix


async def test_a_wrong_notification_url_or_key_fails_with_the_setting_to_fix(
        azurite_conn: str, graph_sim: Any, pega_sim: Any, pega_control: Any, host: AppHost) -> None:
    wrong_path = env_for(azurite_conn, graph_sim, pega_sim, host, "sync-service",
                         SYNC_NOTIFICATION_URL_BASE=host.url.removesuffix("/api"))
    check = by_name(await doctor(wrong_path))["notification URL"]
    assert check.status == "FAIL" and "/api root" in check.fix
    wrong_key = env_for(azurite_conn, graph_sim, pega_sim, host, "sync-service", SYNC_NOTIFICATION_URL_KEY="nope")
    check = by_name(await doctor(wrong_key))["notification URL"]
    assert check.status == "FAIL" and "SYNC_NOTIFICATION_URL_KEY" in check.fix and "nope" not in check.detail
    unreachable = env_for(azurite_conn, graph_sim, pega_sim, host, "sync-service",
                          SYNC_NOTIFICATION_URL_BASE="http://127.0.0.1:9/api")
    check = by_name(await doctor(unreachable))["notification URL"]
    assert check.status == "FAIL" and "not reachable" in check.detail


async def test_the_admin_route_and_the_cli_give_the_checklist(host: AppHost, pega_control: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{host.url}/admin/doctor", params={"probe": "0"},
                         headers={"x-functions-key": host.master_key}) as r:
            assert r.status == 200
            doc = await r.json()
        async with s.get(f"{host.url}/admin/doctor", headers={"x-functions-key": host.function_key}) as r:
            assert r.status == 401, "admin level only"
    assert doc["ok"] is True, [c for c in doc["checks"] if c["status"] == "FAIL"]
    assert {c["name"] for c in doc["checks"]} >= {"Graph token", "notification URL", "sync-service contract"}
    console = Console(record=True, width=250)
    code = await cli_run(["--url", host.url, "--key", host.master_key, "doctor", "--no-probe"], environ={},
                         console=console)
    text = console.export_text()
    assert code == 0 and "PASS" in text and "ready" in text

