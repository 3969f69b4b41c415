"""Connection-string helpers shared by the table and queue clients."""

from __future__ import annotations

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
