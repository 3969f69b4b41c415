"""App settings of the sandbox: what `make run` gives the app when no real services are set.

These are fixed, public, sandbox-only values (the simulators' seeded demo credentials and the
Storage emulator's documented key) — not secrets. A local.settings.json overrides any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.ews.seed import SERVICE_PASSWORD as EWS_SERVICE_PASSWORD
from sandbox.ews.seed import SERVICE_USER as EWS_SERVICE_USER
from sandbox.proc import ROOT, azurite_connection_string

DEMO_TENANT = "aaaaaaaa-0000-4000-8000-00000000c0de"
SYNC_APP_ID = "cccccccc-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class SandboxPorts:
    host: int = 7071
    graph: int = 7200
    graph_tls: int = 7201  # the simulator's token endpoint over https (azure-identity insists on it)
    pega: int = 7300
    ews: int = 7400  # the EWS simulator (Exchange Server on-premises)
    blob: int = 10000
    queue: int = 10001
    table: int = 10002


def graph_cert_dir(ports: SandboxPorts) -> Path:
    return ROOT / ".sandbox" / f"graph-certs-{ports.graph}"


def sandbox_settings(ports: SandboxPorts) -> dict[str, str]:
    graph = f"http://127.0.0.1:{ports.graph}"
    api = f"http://127.0.0.1:{ports.host}/api"
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": azurite_connection_string(
            {"blob": ports.blob, "queue": ports.queue, "table": ports.table}),
        "APP_MODE": "sandbox",
        "LOCAL_HOST_MASTER_KEY": "sandbox-master-key",
        "LOCAL_HOST_FUNCTION_KEY": "sandbox-function-key",
        "GRAPH_TENANT_ID": DEMO_TENANT,
        "GRAPH_CLIENT_ID": SYNC_APP_ID,
        "GRAPH_CREDENTIAL_KIND": "secret",
        "GRAPH_CLIENT_SECRET": "sandbox-sync-secret",
        "GRAPH_AUTHORITY_HOST": f"https://127.0.0.1:{ports.graph_tls}",
        "GRAPH_CA_BUNDLE": str(graph_cert_dir(ports) / "ca.pem"),
        "GRAPH_BASE_URL": f"{graph}/v1.0",
        "PEGA_BASE_URL": f"http://127.0.0.1:{ports.pega}",
        "PEGA_CLIENT_ID": "pega-sync-service",
        "PEGA_CLIENT_SECRET": "sandbox-pega-sync-secret",
        "PEGA_USERNAME": "sync-service",
        "PEGA_PASSWORD": "sandbox-pega-sync-password",
        "PEGA_ADAPTER": "sync-service",  # the recommended adapter (the simulator implements the contract)
        "API_TENANT_ID": DEMO_TENANT,
        "API_AUDIENCE": "api://pega-exchange-sync",
        "API_REQUIRED_ROLE": "Sync.ReadWrite",
        "API_OPENID_CONFIG_URL": f"{graph}/{DEMO_TENANT}/v2.0/.well-known/openid-configuration",
        "EWS_URL": f"http://127.0.0.1:{ports.ews}/EWS/Exchange.asmx",
        "EWS_AUTH_TYPE": "ntlm",
        "EWS_USERNAME": EWS_SERVICE_USER,
        "EWS_PASSWORD": EWS_SERVICE_PASSWORD,
        "SYNC_NOTIFICATION_URL_BASE": api,
        "SYNC_NOTIFICATION_URL_KEY": "sandbox-function-key",
        "SYNC_FAILURE_NOTICE_SENDER": "sync-notices@contoso.example",
        "SYNC_FAILURE_NOTICE_ADMIN": "blair@contoso.example",
    }
