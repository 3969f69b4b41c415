"""Connection-string and transport helpers shared by the table and queue clients."""

from __future__ import annotations

from typing import Any

from shared.config import StorageSettings

# The well-known, public development key of the Storage emulator (documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def expand_connection_string(value: str) -> str:
    """Resolve the `UseDevelopmentStorage=true` shorthand, which the Python SDKs do not understand."""
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:10001/{DEV_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:10002/{DEV_ACCOUNT};"
        )
    return value


def transport_options(storage: StorageSettings) -> dict[str, Any]:
    """SDK client options: proxy environment variables off (with them on, aiohttp reads ~/.netrc and
    the proxy variables in a worker thread on every request), the proxy from STORAGE_HTTP_PROXY if any."""
    out: dict[str, Any] = {"use_env_settings": False}
    if storage.http_proxy:
        out["proxies"] = {"http": storage.http_proxy, "https": storage.http_proxy}
    return out
