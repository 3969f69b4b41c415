"""Fixtures for the Pega simulator: one simulator process per test session on a free port.

- `pega_sim` (session): a :class:`PegaSim` with `base_url`, the sync service's integration
  credentials (`client_id`/`client_secret` for DX API v2, `username`/`password` for SA API v1),
  `settings(**overrides)` -> PegaSettings, `client(**overrides)` -> a new `shared.pega.PegaClient`
  (use `async with`), and `control()` -> a new `PegaSimControl` (use `async with`).
- `pega_control` (function): a control client; the simulator is reset to its seed data first.
- `pega_client` (function): a ready `PegaClient` with the integration credentials (after the reset).
- `pega_records` (function): `shared.pega.PegaRecords` over `pega_client`.

Outbound calls are off by default in tests (no service URL): a test that wants them sets
`await pega_control.configure(service_base_url=..., token_url=..., ...)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.pega.config import (
    INTEGRATION_CLIENT_ID,
    INTEGRATION_CLIENT_SECRET,
    INTEGRATION_OPERATOR,
    INTEGRATION_PASSWORD,
)
from sandbox.pega.control import PegaSimControl
from sandbox.proc import free_port, python_module, start
from shared.config import PegaSettings
from shared.pega import PegaClient, PegaRecords


@dataclass(frozen=True)
class PegaSim:
    base_url: str
    client_id: str = INTEGRATION_CLIENT_ID
    client_secret: str = INTEGRATION_CLIENT_SECRET
    username: str = INTEGRATION_OPERATOR
    password: str = INTEGRATION_PASSWORD
    # A second API consumer that is NOT the sync service (its changes call out) and rep logins.
    other_client_id: str = "pega-app"
    other_client_secret: str = "sandbox-pega-app-secret"
    rep_passwords: tuple[tuple[str, str], ...] = (("alex", "sandbox-alex-password"), ("blair", "sandbox-blair-password"))

    def settings(self, **overrides: Any) -> PegaSettings:
        values: dict[str, Any] = {
            "base_url": self.base_url, "client_id": self.client_id, "client_secret": self.client_secret,
            "username": self.username, "password": self.password, "timeout_seconds": 5.0,
        }
        values.update(overrides)
        return PegaSettings(**values)

    def client(self, **overrides: Any) -> PegaClient:
        return PegaClient(self.settings(**overrides))

    def control(self) -> PegaSimControl:
        return PegaSimControl(self.base_url)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pega-adapter", default="dx-v2", choices=("dx-v2", "sync-service"),
                     help="PEGA_ADAPTER of the session-wide app hosts (tests/sync_outbound); run the suite once "
                          "per adapter. Suites with a per-test stack parametrize `pega_adapter` instead.")


@pytest.fixture(scope="session")
def host_pega_adapter(request: pytest.FixtureRequest) -> str:
    """The PEGA_ADAPTER of session-wide app hosts (`--pega-adapter`)."""
    return str(request.config.getoption("--pega-adapter"))


@pytest.fixture(scope="session")
def pega_sim() -> Iterator[PegaSim]:
    port = free_port()
    svc = start("pega-sim", python_module("sandbox.pega", "--port", str(port), "--service-url", "",
                                          "--token-url", "http://127.0.0.1:9/unset"),
                wait_ports=[port], env={"PEGA_MAPPING_FILE": "", "PEGA_CLIENT_ID": "", "PEGA_USERNAME": ""})
    try:
        yield PegaSim(base_url=f"http://127.0.0.1:{port}")
    finally:
        svc.stop()


@pytest.fixture
async def pega_control(pega_sim: PegaSim) -> AsyncIterator[PegaSimControl]:
    async with pega_sim.control() as control:
        await control.reset()
        await control.configure(service_base_url="", token_ttl_seconds=3600)
        yield control


@pytest.fixture
async def pega_client(pega_sim: PegaSim, pega_control: PegaSimControl) -> AsyncIterator[PegaClient]:
    async with pega_sim.client() as client:
        yield client


@pytest.fixture
def pega_records(pega_client: PegaClient) -> PegaRecords:
    return PegaRecords(pega_client)
