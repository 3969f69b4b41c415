"""How every queue-triggered function runs its work, so that no item is ever silently lost.

- A malformed message (not an envelope, unknown type) or a PermanentError is dead-lettered at
  once with its cause: retrying cannot help, and the host's poison queue would lose the cause.
- A TransientError that knows its Retry-After (throttling) is re-enqueued with that delay and the
  original acknowledged, so a throttled mailbox neither burns its dequeue count nor blocks other
  work. Re-enqueues are bounded by `max_deferrals`.
- Any other failure is noted (cause kept by envelope id) and re-raised: the host retries up to
  maxDequeueCount and then moves the message to `<queue>-poison`, where :func:`record_poison`
  turns it into a dead letter carrying the last noted cause.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from shared.errors import InvalidMessageError, PermanentError, TransientError
from shared.queues.envelope import Envelope
from shared.queues.sender import QueueSender
from shared.storage.deadletters import DeadLetter, DeadLetterRepository

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What happened to one message (returned for tests and telemetry)."""

    status: str  # done | dead_lettered | deferred
    envelope_id: str
    cause: str = ""


def describe(exc: BaseException) -> str:
    """A cause for operators: the error type and its message, never the message body."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def fallback_id(text: str) -> str:
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


async def run_message(
    *,
    queue: str,
    text: str,
    dequeue_count: int,
    handlers: Mapping[str, Handler],
    deadletters: DeadLetterRepository,
    sender: QueueSender,
    max_deferrals: int = 50,
    redact: Callable[[str], str] | None = None,
) -> Outcome:
    """`redact`: what a dead letter keeps of the message text (default: all of it), for queues whose
    messages carry content that must not outlive them (insight-work carries mail text)."""
    def kept() -> str:
        return redact(text) if redact is not None else text

    try:
        envelope = Envelope.loads(text)
    except InvalidMessageError as exc:
        mid = fallback_id(text)
        await deadletters.add(DeadLetter(queue=queue, message_id=mid, message=kept(), cause=str(exc),
                                         attempts=dequeue_count))
        log.warning("dead-lettered malformed message %s on %s: %s", mid, queue, exc)
        return Outcome("dead_lettered", mid, str(exc))

    handler = handlers.get(envelope.type)
    if handler is None:
        cause = f"no handler for message type '{envelope.type}' on queue '{queue}'"
        await deadletters.add(DeadLetter(queue=queue, message_id=envelope.id, message=kept(), cause=cause,
                                         attempts=dequeue_count))
        log.warning("dead-lettered %s: %s", envelope.id, cause)
        return Outcome("dead_lettered", envelope.id, cause)

    try:
        await handler(envelope)
    except PermanentError as exc:
        cause = describe(exc)
        await deadletters.add(DeadLetter(queue=queue, message_id=envelope.id, message=kept(), cause=cause,
                                         attempts=dequeue_count))
        log.warning("dead-lettered %s (%s) after a permanent failure: %s", envelope.id, envelope.type, cause)
        return Outcome("dead_lettered", envelope.id, cause)
    except TransientError as exc:
        if exc.retry_after is not None and envelope.attempt < max_deferrals:
            delay = max(1, int(exc.retry_after + 0.999))
            again = envelope.model_copy(update={"attempt": envelope.attempt + 1})
            await sender.send(queue, again, delay_seconds=delay)
            log.info("deferred %s (%s) by %ss: %s", envelope.id, envelope.type, delay, type(exc).__name__)
            return Outcome("deferred", envelope.id, describe(exc))
        await deadletters.note_failure(queue, envelope.id, describe(exc), dequeue_count)
        raise
    except Exception as exc:
        await deadletters.note_failure(queue, envelope.id, describe(exc), dequeue_count)
        log.warning("message %s (%s) failed on try %s: %s", envelope.id, envelope.type, dequeue_count,
                    type(exc).__name__)
        raise
    if dequeue_count > 1:
        await deadletters.clear_failure(queue, envelope.id)
    return Outcome("done", envelope.id)


async def record_poison(*, poison_queue: str, text: str, dequeue_count: int,
                        deadletters: DeadLetterRepository, redact: Callable[[str], str] | None = None) -> DeadLetter:
    """Turn a message the host moved to `<queue>-poison` into a dead letter with its last cause."""
    queue = poison_queue.removesuffix("-poison")
    try:
        mid = Envelope.loads(text).id
    except InvalidMessageError:
        mid = fallback_id(text)
    noted = await deadletters.last_failure(queue, mid)
    cause, attempts = noted if noted else ("retries exhausted (no failure cause was recorded)", dequeue_count)
    letter = DeadLetter(queue=queue, message_id=mid, message=redact(text) if redact is not None else text,
                        cause=cause, attempts=attempts)
    await deadletters.add(letter)
    log.error("message %s on %s dead-lettered after %s tries: %s", mid, queue, attempts, cause)
    return letter
