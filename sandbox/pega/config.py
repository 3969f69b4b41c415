"""Settings of the Pega simulator: credentials it accepts and how it calls our service (outbound)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

DEMO_TENANT = "aaaaaaaa-0000-4000-8000-00000000c0de"
# The sync service's own Pega credentials (the sandbox app settings use these, see sandbox/settings.py).
INTEGRATION_CLIENT_ID = "pega-sync-service"
INTEGRATION_CLIENT_SECRET = "sandbox-pega-sync-secret"
INTEGRATION_OPERATOR = "sync-service"
INTEGRATION_PASSWORD = "sandbox-pega-sync-password"


@dataclass
class OAuthClient:
    secret: str
    operator: str


@dataclass
class BasicUser:
    password: str
    api_role: bool = True  # PegaRULES:PegaAPI


@dataclass
class OutboundConfig:
    """How the simulator calls the service's HTTP contract, like Connect-REST rules would."""

    enabled: bool = True
    service_base_url: str = "http://127.0.0.1:7071/api"  # empty = record calls as skipped
    function_key: str = ""
    token_url: str = f"http://127.0.0.1:7200/{DEMO_TENANT}/oauth2/v2.0/token"
    client_id: str = "pega-connect-rest"
    client_secret: str = "sandbox-pega-secret"
    scope: str = "api://pega-exchange-sync/.default"
    max_attempts: int = 5
    backoff_seconds: float = 1.0  # doubles per attempt
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0
    # Changes made by these OAuth clients / operators never call out (Pega excludes its integration user).
    integration_client_ids: list[str] = field(default_factory=lambda: [INTEGRATION_CLIENT_ID])
    integration_operators: list[str] = field(default_factory=lambda: [INTEGRATION_OPERATOR])


@dataclass
class SimConfig:
    token_ttl_seconds: int = 3600
    oauth_clients: dict[str, OAuthClient] = field(
        default_factory=lambda: {
            INTEGRATION_CLIENT_ID: OAuthClient(INTEGRATION_CLIENT_SECRET, INTEGRATION_OPERATOR),
            "pega-app": OAuthClient("sandbox-pega-app-secret", "blair"),
        }
    )
    basic_users: dict[str, BasicUser] = field(
        default_factory=lambda: {
            INTEGRATION_OPERATOR: BasicUser(INTEGRATION_PASSWORD),
            "alex": BasicUser("sandbox-alex-password"),
            "blair": BasicUser("sandbox-blair-password"),
            "no-api-role": BasicUser("sandbox-no-api-password", api_role=False),
        }
    )
    outbound: OutboundConfig = field(default_factory=OutboundConfig)

    def restore(self, initial: SimConfig) -> None:
        """Back to the start-up settings (the same objects stay in use by the dispatcher)."""
        self.token_ttl_seconds = initial.token_ttl_seconds
        self.oauth_clients = copy.deepcopy(initial.oauth_clients)
        self.basic_users = copy.deepcopy(initial.basic_users)
        for k, v in asdict(initial.outbound).items():
            setattr(self.outbound, k, copy.deepcopy(v))

    def outbound_dict(self) -> dict[str, Any]:
        d = asdict(self.outbound)
        d["client_secret"] = "***" if d["client_secret"] else ""
        d["function_key"] = "***" if d["function_key"] else ""
        return d

    def add_integration_client(self, *, client_id: str = "", client_secret: str = "", username: str = "",
                               password: str = "") -> None:
        """Accept the service's own credentials and exclude its changes from outbound calls."""
        operator = username or INTEGRATION_OPERATOR
        if client_id and client_secret:
            self.oauth_clients[client_id] = OAuthClient(client_secret, operator)
            if client_id not in self.outbound.integration_client_ids:
                self.outbound.integration_client_ids.append(client_id)
        if username and password:
            self.basic_users[username] = BasicUser(password)
            if username not in self.outbound.integration_operators:
                self.outbound.integration_operators.append(username)

    def update_outbound(self, values: dict[str, Any]) -> None:
        known = set(asdict(self.outbound))
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown outbound settings: {sorted(unknown)}")
        for k, v in values.items():
            setattr(self.outbound, k, v)
