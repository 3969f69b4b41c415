"""Sending envelopes to Storage queues, encoded the way queue triggers expect (base64)."""

from __future__ import annotations

from typing import Any

from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from shared.config import StorageSettings
from shared.queues.envelope import Envelope
from shared.storage.connection import expand_connection_string, transport_options
from shared.storage.errors import mapped_errors


def _client_kwargs(storage: StorageSettings) -> dict[str, Any]:
    return {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
        "connection_timeout": storage.timeout_seconds,
        "read_timeout": storage.timeout_seconds,
        "retry_total": 2,
        **transport_options(storage),
    }


def queue_service(storage: StorageSettings) -> QueueServiceClient:
    kwargs = _client_kwargs(storage)
    if storage.connection_string:
        return QueueServiceClient.from_connection_string(expand_connection_string(storage.connection_string), **kwargs)
    from azure.identity.aio import DefaultAzureCredential

    cred = DefaultAzureCredential(managed_identity_client_id=storage.managed_identity_client_id)
    return QueueServiceClient(account_url=str(storage.queue_service_uri), credential=cred, **kwargs)


class QueueSender:
    """Send envelopes to named queues of one account; queues are created on first use."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self._created: set[str] = set()

    @classmethod
    def from_settings(cls, storage: StorageSettings) -> QueueSender:
        return cls(queue_service(storage))

    def client(self, queue: str) -> QueueClient:
        c = self._clients.get(queue)
        if c is None:
            c = self._service.get_queue_client(queue, **_policies())
            self._clients[queue] = c
        return c

    async def ensure(self, queue: str) -> None:
        if queue in self._created:
            return
        from azure.core.exceptions import ResourceExistsError

        with mapped_errors(f"create queue {queue}"):
            try:
                await self.client(queue).create_queue()
            except ResourceExistsError:
                pass
        self._created.add(queue)

    async def exists(self, queue: str) -> bool:
        """Whether the queue exists and can be read (readiness checks); never creates it."""
        from azure.core.exceptions import ResourceNotFoundError

        with mapped_errors(f"read queue {queue}"):
            try:
                await self.client(queue).get_queue_properties()
            except ResourceNotFoundError:
                return False
        return True

    async def send(self, queue: str, envelope: Envelope, *, delay_seconds: int = 0) -> str:
        """Enqueue; `delay_seconds` keeps it invisible that long (used to back off throttled work)."""
        await self.ensure(queue)
        with mapped_errors(f"send to {queue}"):
            msg = await self.client(queue).send_message(
                envelope.dumps(), visibility_timeout=max(0, min(int(delay_seconds), 7 * 24 * 3600)) or None
            )
        return str(msg.id)

    async def send_raw(self, queue: str, text: str) -> None:
        """Re-enqueue an exact message text (dead-letter replay)."""
        await self.ensure(queue)
        with mapped_errors(f"send to {queue}"):
            await self.client(queue).send_message(text)

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()
        await self._service.close()


def _policies() -> dict[str, Any]:
    return {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}

