"""Trace context across the queue, as drop-in pieces for the queue layer (shared/queues is not ours).

- :class:`TracingQueueSender` is a QueueSender whose `send` injects the current W3C traceparent
  into the envelope (shared.ops.telemetry.inject). Either construct it instead of QueueSender in
  shared.runtime.services(), or make the same one-line change in QueueSender.send:
  `envelope = inject(envelope)` before `envelope.dumps()`.
- :func:`traced` wraps a `run_message` handler so it runs inside a CONSUMER span continuing the
  producer's trace (shared.ops.telemetry.extract).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from shared.ops.telemetry import extract, inject
from shared.queues.envelope import Envelope
from shared.queues.sender import QueueSender

Handler = Callable[[Envelope], Awaitable[None]]


class TracingQueueSender(QueueSender):
    async def send(self, queue: str, envelope: Envelope, *, delay_seconds: int = 0) -> str:
        return await super().send(queue, inject(envelope), delay_seconds=delay_seconds)


def traced(handler: Handler, *, queue: str) -> Handler:
    async def run(envelope: Envelope) -> None:
        with extract(envelope, queue=queue):
            await handler(envelope)

    return run


def traced_all(handlers: Mapping[str, Handler], *, queue: str) -> dict[str, Handler]:
    return {t: traced(h, queue=queue) for t, h in handlers.items()}
