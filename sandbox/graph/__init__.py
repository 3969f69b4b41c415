"""A local Microsoft Graph (Exchange Online) simulator that doubles as the sandbox's Entra ID.

Start it with ``python -m sandbox.graph --port 7200``. Graph lives under ``/v1.0``, the token
endpoint under ``/{tenant}/oauth2/v2.0/token`` and the test control API under ``/_sim/``.
See docs/graph-simulator.md for what it covers and what it deliberately does not.
"""

from sandbox.graph.seed import (
    AGENT_CLIENT_ID,
    AGENT_CLIENT_SECRET,
    API_AUDIENCE,
    GRAPH_AUDIENCE,
    NO_ROLE_CLIENT_ID,
    NO_ROLE_CLIENT_SECRET,
    PEGA_CLIENT_ID,
    PEGA_CLIENT_SECRET,
    SYNC_CLIENT_ID,
    SYNC_CLIENT_SECRET,
    TENANT_ID,
)

__all__ = [
    "AGENT_CLIENT_ID",
    "AGENT_CLIENT_SECRET",
    "API_AUDIENCE",
    "GRAPH_AUDIENCE",
    "NO_ROLE_CLIENT_ID",
    "NO_ROLE_CLIENT_SECRET",
    "PEGA_CLIENT_ID",
    "PEGA_CLIENT_SECRET",
    "SYNC_CLIENT_ID",
    "SYNC_CLIENT_SECRET",
    "TENANT_ID",
]
