"""Fixtures for the EWS simulator (sandbox/ews), shared by every suite.

Session fixture ``ews_sim`` starts one simulator on a free port and yields an :class:`EwsSim` with
its endpoint, the seeded service accounts, and ``account(upn)``: a REAL exchangelib Account that
impersonates `upn` through the service account. Isolate tests with ``ews_sim.new_mailbox()``.
Set EWS_SIM_URL to use a running simulator (e.g. `make run`'s) instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sandbox.ews.seed import NO_ROLE_PASSWORD, NO_ROLE_USER, SERVICE_PASSWORD, SERVICE_USER
from sandbox.proc import Service, free_port, python_module, start

if TYPE_CHECKING:
    from exchangelib import Account


@dataclass
class EwsSim:
    base_url: str
    service: Service | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    def control(self, method: str, path: str, body: dict[str, Any] | None = None, **params: str) -> Any:
        resp = httpx.request(method, f"{self.base_url}/_sim/{path.lstrip('/')}", json=body, params=params or None,
                             timeout=10)
        if resp.status_code >= 400:
            raise AssertionError(f"/_sim/{path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def new_mailbox(self, *, password: str = "", domain: str = "contoso.example") -> str:
        smtp = f"r{uuid.uuid4().hex[:10]}@{domain}"
        self.control("POST", "mailboxes", {"smtp": smtp, "password": password})
        return smtp

    def account(self, upn: str, *, username: str = SERVICE_USER, password: str = SERVICE_PASSWORD,
                auth: str = "basic", impersonate: bool = True) -> Account:
        """The real exchangelib Account (no autodiscover; fail-fast, so ErrorServerBusy reaches the caller),
        with our PegaId stamp registered as `pega_id` (shared.ews.gateway.register_stamp)."""
        from shared.ews.gateway import register_stamp

        register_stamp()
        from exchangelib import (
            BASIC,
            DELEGATE,
            IMPERSONATION,
            NTLM,
            UTC,
            Account,
            Build,
            Configuration,
            Credentials,
            FailFast,
            Version,
        )

        config = Configuration(service_endpoint=self.endpoint, credentials=Credentials(username, password),
                               auth_type={"basic": BASIC, "ntlm": NTLM}[auth], version=Version(Build(15, 2)),
                               retry_policy=FailFast(), max_connections=2)
        return Account(upn, config=config, autodiscover=False, default_timezone=UTC,
                       access_type=IMPERSONATION if impersonate else DELEGATE)


def start_ews_sim() -> EwsSim:
    port = free_port()
    svc = start("ews-sim", python_module("sandbox.ews", "--port", str(port), "--log-level", "WARNING"),
                wait_ports=[port], ports={"http": port})
    return EwsSim(base_url=f"http://127.0.0.1:{port}", service=svc)


@pytest.fixture(scope="session")
def ews_sim() -> Iterator[EwsSim]:
    existing = os.environ.get("EWS_SIM_URL")
    if existing:
        yield EwsSim(base_url=existing.rstrip("/"))
        return
    sim = start_ews_sim()
    try:
        yield sim
    finally:
        if sim.service is not None:
            sim.service.stop()


__all__ = ["NO_ROLE_PASSWORD", "NO_ROLE_USER", "SERVICE_PASSWORD", "SERVICE_USER", "EwsSim", "ews_sim",
           "start_ews_sim"]
