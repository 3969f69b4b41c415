"""Ready-made queue handlers with everything ops needs, for the queue triggers to use as they are.

`delta_handlers(services)` and `outbound_handlers(services)` return the `handlers` mapping for
`run_message`: each handler runs inside a CONSUMER span continuing the producer's trace, records
the metrics, and is wrapped in the notification-frequency guard (the engines record their own
Health outcomes, so the guard only decides give-up and sends the notices). `services` is
`shared.runtime.services` (the async factory) or a Services instance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from shared.errors import PermanentError
from shared.ops import telemetry
from shared.ops.incidents import Clock, Handler, guard, health_kind, outbound_target
from shared.ops.notices import Notifier
from shared.ops.queue_tracing import traced_all
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.mailboxes import KINDS, is_mailbox_key

ServicesRef = Services | Callable[[], Awaitable[Services]]


async def _get(services: ServicesRef) -> Services:
    return services if isinstance(services, Services) else await services()


def delta_handlers(services: ServicesRef, *, context: Any = None, clock: Clock | None = None,
                   notifier: Notifier | None = None) -> dict[str, Handler]:
    """`context`: a shared.sync.context.SyncContext to use (default: the engine's per-loop one);
    `clock`/`notifier` for tests (default: real time, Graph sendMail from the configured sender)."""

    async def delta(env: Envelope) -> None:
        from shared.sync.inbound import run_delta_round

        mailbox, kind = env.body.get("mailbox"), env.body.get("kind")
        if not isinstance(mailbox, str) or not is_mailbox_key(mailbox) or kind not in KINDS:
            raise PermanentError("delta.sync needs body.mailbox (its key: an Entra object id or an address) and "
                                 "body.kind (email|calendar|contacts)")
        svc = await _get(services)
        report = await run_delta_round(svc, mailbox=mailbox, kind=str(kind),
                                       reason=str(env.body.get("reason", "poll")),
                                       full_resync=bool(env.body.get("full_resync", False)), context=context)
        telemetry.record_round(report, created=env.created if env.body.get("reason") != "poll" else None)

    async def item(env: Envelope) -> None:
        # a parked item's own retry: its failures are the item's (failures table, its own attempt
        # budget, then a dead letter), not the mailbox's — so no notification-frequency guard here
        from shared.sync.item_retry import retry_item

        await retry_item(await _get(services), env, context=context)

    return traced_all({"delta.sync": guard(delta, services=services, record_outcome=False, clock=clock,
                                           notifier=notifier),
                       "delta.item": item}, queue=names.DELTA_WORK)


def outbound_handlers(services: ServicesRef, run: Callable[[Envelope], Awaitable[str]], *,
                      clock: Clock | None = None, notifier: Notifier | None = None) -> dict[str, Handler]:
    """`run(envelope)` runs the operation and returns its status (shared.outbound.worker.run_operation)."""

    async def outbound(env: Envelope) -> None:
        status = await run(env)
        svc = await _get(services)
        op = await svc.state.operations.get(str(env.body.get("operation_id", "")))
        if op is not None:
            telemetry.record_operation(status, mailbox=op.mailbox, kind=health_kind(op.kind, telemetry.OUTBOUND),
                                       created=env.created)

    return traced_all({"outbound.operation": guard(outbound, services=services, record_outcome=False,
                                                   target=outbound_target(services), clock=clock,
                                                   notifier=notifier, direction=telemetry.OUTBOUND)},
                      queue=names.OUTBOUND_OPS)
