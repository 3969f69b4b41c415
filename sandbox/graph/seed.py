"""The seeded demo tenant: its id, users and confidential clients (the identity contract in docs/HELPERS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

TENANT_ID = "aaaaaaaa-0000-4000-8000-00000000c0de"
TENANT_DOMAINS = ("contoso.example", "contoso.onmicrosoft.com")
GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID_URI_ALIASES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
API_AUDIENCE = "api://pega-exchange-sync"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"

SYNC_CLIENT_ID = "cccccccc-0000-4000-8000-000000000001"
SYNC_CLIENT_SECRET = "sandbox-sync-secret"
AGENT_CLIENT_ID = "sandbox-user-agent"
AGENT_CLIENT_SECRET = "sandbox-user-agent-secret"
PEGA_CLIENT_ID = "pega-connect-rest"
PEGA_CLIENT_SECRET = "sandbox-pega-secret"
NO_ROLE_CLIENT_ID = "sandbox-no-role"
NO_ROLE_CLIENT_SECRET = "sandbox-no-role-secret"

GRAPH_ROLES = ("Mail.ReadWrite", "Mail.Send", "Calendars.ReadWrite", "Contacts.ReadWrite")


@dataclass
class ClientApp:
    """A confidential client registered in the simulated tenant."""

    client_id: str
    display_name: str
    secrets: list[str]
    # audience (resource app id URI) -> app roles granted on it
    roles: dict[str, list[str]] = field(default_factory=dict)
    # PEM certificates whose keys may sign client assertions
    certificates: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SeedUser:
    id: str
    upn: str
    display_name: str


SEED_USERS = (
    SeedUser("dddddddd-0000-4000-8000-000000000001", "alex@contoso.example", "Alex Wilber"),
    SeedUser("dddddddd-0000-4000-8000-000000000002", "blair@contoso.example", "Blair Stone"),
)


def seed_clients() -> list[ClientApp]:
    graph = {GRAPH_AUDIENCE: list(GRAPH_ROLES)}
    return [
        ClientApp(SYNC_CLIENT_ID, "Pega Exchange Sync (sandbox)", [SYNC_CLIENT_SECRET], dict(graph)),
        ClientApp(AGENT_CLIENT_ID, "Sandbox user agent (stands in for Outlook)", [AGENT_CLIENT_SECRET],
                  {GRAPH_AUDIENCE: [*GRAPH_ROLES, "MailboxSettings.ReadWrite"]}),
        ClientApp(PEGA_CLIENT_ID, "Pega Connect-REST", [PEGA_CLIENT_SECRET], {API_AUDIENCE: ["Sync.ReadWrite"]}),
        ClientApp(NO_ROLE_CLIENT_ID, "Client without roles", [NO_ROLE_CLIENT_SECRET], {}),
    ]
