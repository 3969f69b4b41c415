"""Request bodies of accepted operations: inline in the Operation row when small, else in a blob.

Why a blob: an operation's body is stored before the 202 (the durable record the worker reads),
but an Azure table entity holds at most 1 MiB and a string property at most 64 KiB (UTF-16, so
~32 K characters). Emails with attachments (the contract allows 10 MiB bodies) do not fit, and
splitting them across rows would need several non-atomic writes plus a reassembly protocol.
The claim-check pattern is simpler and the Functions storage account already has a blob service:
the body goes to `outbound-payloads/<operation id>.json` first (idempotent: same name, same
bytes), then the Operation row points at it with its size and SHA-256, which the worker checks.
The blob is deleted when the operation succeeds (no mail bodies kept longer than needed); a
failed operation keeps it for inspection and replay.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, TypeGuard

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.config import StorageSettings
from shared.errors import PermanentError
from shared.storage.connection import expand_connection_string, transport_options
from shared.storage.errors import mapped_errors

log = logging.getLogger(__name__)

CONTAINER = "outbound-payloads"
# Bytes of UTF-16 a table string property may hold is 64 KiB; keep a margin for the rest of the row.
INLINE_MAX_UTF16_BYTES = 60_000
BLOB_REF = "$blob"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fits_inline(body: Any) -> bool:
    """Whether `body` fits the Operation row's payload property, measured the way it is written
    there (json.dumps with ASCII escapes, stored as UTF-16)."""
    return len(json.dumps(body, default=str).encode("utf-16-le")) <= INLINE_MAX_UTF16_BYTES


def blob_service_url(storage: StorageSettings) -> str:
    """Identity-based connections name queue and table URIs; the blob URI of the same account follows."""
    q = str(storage.queue_service_uri or "")
    return q.replace(".queue.", ".blob.", 1)


class PayloadStore:
    """The blob side of the claim check (one container, created on first use)."""

    def __init__(self, storage: StorageSettings) -> None:
        from azure.storage.blob.aio import BlobServiceClient

        kwargs: dict[str, Any] = {"connection_timeout": storage.timeout_seconds,
                                  "read_timeout": max(30.0, storage.timeout_seconds), "retry_total": 2,
                                  **transport_options(storage)}
        if storage.connection_string:
            self._service = BlobServiceClient.from_connection_string(
                expand_connection_string(storage.connection_string), **kwargs)
        else:
            from azure.identity.aio import DefaultAzureCredential

            cred = DefaultAzureCredential(managed_identity_client_id=storage.managed_identity_client_id)
            self._service = BlobServiceClient(account_url=blob_service_url(storage), credential=cred, **kwargs)
        self._container = self._service.get_container_client(CONTAINER)
        self._ready = False

    async def _ensure(self) -> None:
        if self._ready:
            return
        with mapped_errors(f"create container {CONTAINER}"):
            try:
                await self._container.create_container()
            except ResourceExistsError:
                pass
        self._ready = True

    async def put(self, operation_id: str, body: Any) -> dict[str, Any]:
        """Store `body`; return the reference kept in the Operation row."""
        await self._ensure()
        data = canonical_json(body)
        name = f"{operation_id}.json"
        with mapped_errors(f"write payload {name}"):
            await self._container.upload_blob(name, data, overwrite=True)
        return {BLOB_REF: name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    async def get(self, ref: dict[str, Any]) -> Any:
        name = str(ref[BLOB_REF])
        with mapped_errors(f"read payload {name}"):
            try:
                stream = await self._container.download_blob(name)
                data = await stream.readall()
            except ResourceNotFoundError:
                raise PermanentError(f"the stored request body {name} is missing") from None
        if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise PermanentError(f"the stored request body {name} does not match its checksum")
        return json.loads(data)

    async def delete(self, ref: dict[str, Any]) -> None:
        name = str(ref[BLOB_REF])
        try:
            await self._container.delete_blob(name)
        except ResourceNotFoundError:
            pass
        except Exception as exc:  # cleanup only: never fail a finished operation over it
            log.warning("could not delete payload %s: %s", name, type(exc).__name__)

    async def close(self) -> None:
        await self._container.close()
        await self._service.close()


def is_blob_ref(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and BLOB_REF in value
