"""Notification frequency: when to stop retrying, and one failure / one recovery notice per incident.

Pega's "notification frequency" (SYNC_NOTIFICATION_FREQUENCY_MINUTES, default 30) is how long a
mailbox's sync of one kind may keep failing before the service gives up on the stuck items and
tells people. State lives on the mailbox's Health row for that kind:

- every failed attempt is recorded (`record_failure`: `failing_since` is set by the first one,
  `consecutive_failures` counts); a success clears both (`record_success`);
- while failures have lasted less than the frequency, a failing message is retried (queue
  semantics); once they have lasted at least that long, :func:`should_give_up` is True and the
  worker turns the message into a dead letter with its cause (:class:`GaveUpError` is a
  PermanentError, so `run_message` dead-letters it at once) — nothing is lost, it can be replayed;
- :func:`evaluate` opens the incident and sends ONE failure notice, and after the first success
  closes it and sends ONE recovery notice. Both transitions are compare-and-swap writes on the
  Health row's ETag: of any number of concurrent workers and timers, only the writer whose
  replace flips `incident_open` sends. `incident_notified_at` is the claim for the failure
  notice: it is set in the same write that opens the incident and cleared again only if sending
  fails, so a later evaluation (the minute timer) retries the notice without ever sending two.
  A notice is therefore sent at most once per incident (a crash between the claim and the send
  loses that one notice rather than risking a storm).

Workers use :func:`guard` around their handlers (see docs/operations.md for the exact hook); a
timer calls :func:`evaluate_all` every minute so incidents open, re-notify and close even when no
message is flowing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.errors import InvalidMessageError, PermanentError, TransientError
from shared.ops import telemetry
from shared.ops.notices import FAILURE, RECOVERY, GraphNotifier, Notice, Notifier
from shared.ops.privacy import sanitize_error
from shared.queues.envelope import Envelope
from shared.queues.worker import describe
from shared.runtime import Services
from shared.storage.health import STREAK_GAP, Health, record_failure, record_success, watched
from shared.storage.mailboxes import KINDS

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Handler = Callable[[Envelope], Awaitable[None]]

# Pega → Exchange operation kinds (shared/storage/operations.py) → the mailbox kind they touch.
OUTBOUND_KINDS = {"appointment": "calendar", "calendar": "calendar", "email": "email", "contact": "contacts",
                  "contacts": "contacts"}
TENANT_ROWS = ("_tenant",)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def health_kind(kind: str, direction: str = telemetry.INBOUND) -> str:
    """The Health row kind (`email|calendar|contacts`) a message of either direction counts against.

    Both directions share the mailbox's row per kind, as the workers record them (one incident,
    one notice per mailbox and kind).
    """
    if direction == telemetry.OUTBOUND:
        return OUTBOUND_KINDS.get(kind, kind)
    return kind


class GaveUpError(PermanentError):
    """The mailbox's sync of this kind has failed for longer than the notification frequency."""


def frequency(services: Services) -> dt.timedelta:
    return dt.timedelta(minutes=services.settings.sync.notification_frequency_minutes)


def is_failing(h: Health) -> bool:
    return h.failing_since is not None and h.consecutive_failures > 0


def past_frequency(h: Health, now: dt.datetime, freq: dt.timedelta) -> bool:
    """Failing for at least the frequency, and still failing now: a streak whose last failure is
    more than STREAK_GAP old (the wall clock jumped, the host was stopped) is no ongoing outage, so
    work that merely waits (for a create, for Retry-After) is not given up over it."""
    return (is_failing(h) and h.failing_since is not None and now - h.failing_since >= freq
            and (h.last_failure_at is None or now - h.last_failure_at <= STREAK_GAP))


async def should_give_up(services: Services, mailbox: str, kind: str, now: dt.datetime | None = None) -> bool:
    """True once this mailbox's sync of `kind` (a health kind) has kept failing for the frequency."""
    h = await services.state.health.get(mailbox, kind)
    return past_frequency(h, now or utcnow(), frequency(services))


async def _resume(services: Services, mailbox: str, kind: str) -> None:
    """The incident is over: the work given up during it is due again (best effort — a replay that
    fails here stays listed, and `pes-admin deadletters replay` still does it)."""
    from shared.ops.deadletters import resume_given_up

    try:
        report = await resume_given_up(services, mailbox, kind)
        if report.replayed:
            log.info("incident closed for %s/%s: %d given-up messages resumed", mailbox, kind, len(report.replayed),
                     extra=telemetry.log_extra(mailbox=mailbox, kind=kind, event="given_up_resumed"))
    except Exception as exc:
        log.warning("resuming given-up work of %s/%s failed: %s", mailbox, kind, type(exc).__name__)


def default_notifier(services: Services) -> Notifier:
    from shared.graph.factory import graph_gateway

    s = services.settings
    return GraphNotifier(graph_gateway(s.graph, slots=services.state.graphslots), sender=s.sync.failure_notice_sender, admin=s.sync.failure_notice_admin)


@dataclass(frozen=True)
class Evaluation:
    mailbox: str
    kind: str
    action: str  # none | opened | notified | notice_failed | closed | recovery_sent
    incident_open: bool


async def evaluate(services: Services, mailbox: str, kind: str, *, now: dt.datetime | None = None,
                   notifier: Notifier | None = None, health: Health | None = None) -> Evaluation:
    """Open/notify/close the incident of one mailbox and kind as its Health row says. Race-safe.

    `health` (a row just written by the caller) saves a read when nothing needs to change.
    """
    now = now or utcnow()
    freq = frequency(services)
    repo = services.state.health
    h = health or await repo.get(mailbox, kind)
    if past_frequency(h, now, freq) and (not h.incident_open or h.incident_notified_at is None):
        claim: dict[str, Health] = {}

        def open_incident(cur: Health) -> Health:
            claim.clear()
            if not past_frequency(cur, now, freq) or (cur.incident_open and cur.incident_notified_at is not None):
                return cur
            claim["before"] = cur
            return dataclasses.replace(cur, incident_open=True, incident_notified_at=now)

        await repo.update(mailbox, kind, open_incident)
        if not claim:
            return Evaluation(mailbox, kind, "none", True)
        before = claim["before"]
        telemetry.set_incident_open(mailbox, kind, True)
        if not before.incident_open:
            log.warning("incident opened for %s/%s: failing since %s", mailbox, kind, before.failing_since,
                        extra=telemetry.log_extra(mailbox=mailbox, kind=kind, event="incident_opened"))
        notice = Notice(FAILURE, await _address(services, mailbox), kind, before.failing_since,
                        sanitize_error(before.last_error),
                        services.settings.sync.notification_frequency_minutes, now,
                        last_failure_at=before.last_failure_at)
        try:
            await (notifier or default_notifier(services)).send(notice)
        except Exception as exc:
            log.warning("failure notice for %s/%s not sent (%s); the next evaluation retries", mailbox, kind,
                        type(exc).__name__, extra=telemetry.log_extra(mailbox=mailbox, kind=kind,
                                                                      event="notice_failed"))

            def release(cur: Health) -> Health:
                return dataclasses.replace(cur, incident_notified_at=None) if cur.incident_notified_at == now else cur

            await repo.update(mailbox, kind, release)
            return Evaluation(mailbox, kind, "notice_failed", True)
        return Evaluation(mailbox, kind, "opened" if not before.incident_open else "notified", True)

    if h.incident_open and not is_failing(h):
        closed: dict[str, Health] = {}

        def close_incident(cur: Health) -> Health:
            closed.clear()
            if not cur.incident_open or is_failing(cur):
                return cur
            closed["before"] = cur
            return dataclasses.replace(cur, incident_open=False)

        await repo.update(mailbox, kind, close_incident)
        if not closed:
            return Evaluation(mailbox, kind, "none", h.incident_open)
        before = closed["before"]
        telemetry.set_incident_open(mailbox, kind, False)
        await _resume(services, mailbox, kind)
        log.info("incident closed for %s/%s", mailbox, kind,
                 extra=telemetry.log_extra(mailbox=mailbox, kind=kind, event="incident_closed"))
        if before.incident_notified_at is None:  # the failure notice never went out: no recovery notice either
            return Evaluation(mailbox, kind, "closed", False)
        notice = Notice(RECOVERY, await _address(services, mailbox), kind, None, sanitize_error(before.last_error),
                        services.settings.sync.notification_frequency_minutes, now,
                        recovered_at=before.last_success_at or now, last_failure_at=before.last_failure_at)
        try:
            await (notifier or default_notifier(services)).send(notice)
        except Exception as exc:
            log.error("recovery notice for %s/%s not sent: %s", mailbox, kind, type(exc).__name__)
            return Evaluation(mailbox, kind, "closed", False)
        return Evaluation(mailbox, kind, "recovery_sent", False)
    return Evaluation(mailbox, kind, "none", h.incident_open)


async def evaluate_all(services: Services, *, now: dt.datetime | None = None,
                       notifier: Notifier | None = None) -> list[Evaluation]:
    """The minute timer: the rows that may need a transition — those failing or with an incident
    open, found through the health watch index (proportional to them, not to the tenant)."""
    now = now or utcnow()
    freq = frequency(services)
    out: list[Evaluation] = []
    repo = services.state.health
    for entry in await repo.watch_list():
        try:
            h = await repo.get(entry.mailbox, entry.kind)
            telemetry.set_incident_open(entry.mailbox, entry.kind, h.incident_open)
            if not watched(h) or await services.state.mailboxes.get(entry.mailbox) is None:
                await repo.unwatch(entry)  # healthy again, or the mailbox is gone
                continue
            needs = (past_frequency(h, now, freq) and (not h.incident_open or h.incident_notified_at is None)) or (
                h.incident_open and not is_failing(h))
            if not needs:
                continue
            ev = await evaluate(services, entry.mailbox, entry.kind, now=now, notifier=notifier, health=h)
        except Exception as exc:  # one mailbox must not stop the others
            log.warning("incident evaluation for a %s failed: %s", entry.kind, type(exc).__name__)
            continue
        if ev.action != "none":
            out.append(ev)
    return out


Target = Callable[[Envelope], "tuple[str, str] | Awaitable[tuple[str, str] | None] | None"]


def body_target(direction: str = telemetry.INBOUND) -> Target:
    """(mailbox, health kind) from `body.mailbox` and `body.kind` of the envelope."""

    def target(env: Envelope) -> tuple[str, str] | None:
        mailbox, kind = env.body.get("mailbox"), env.body.get("kind")
        if not isinstance(mailbox, str) or not mailbox or not isinstance(kind, str) or not kind:
            return None
        if direction == telemetry.INBOUND and kind not in KINDS:
            return None
        return mailbox.lower(), health_kind(kind, direction)

    return target


def outbound_target(services: Services | Callable[[], Awaitable[Services]]) -> Target:
    """(mailbox, kind) of an `outbound.operation` message, from its Operation row."""

    async def target(env: Envelope) -> tuple[str, str] | None:
        op_id = env.body.get("operation_id")
        if not isinstance(op_id, str) or not op_id:
            return None
        svc = services if isinstance(services, Services) else await services()
        op = await svc.state.operations.get(op_id)
        if op is None:
            return None
        return op.mailbox.lower(), health_kind(op.kind, telemetry.OUTBOUND)

    return target


async def _address(services: Services, mailbox: str) -> str:
    """The rep's address for a notice: state is keyed by the mailbox's object id, mail goes to its UPN."""
    try:
        found = await services.state.mailboxes.get(mailbox)
    except Exception:
        found = None
    return found.upn if found is not None else mailbox


def guard(handler: Handler, *, services: Services | Callable[[], Awaitable[Services]],
          target: Target | None = None, direction: str = telemetry.INBOUND, record_outcome: bool = True,
          clock: Clock | None = None, notifier: Notifier | None = None) -> Handler:
    """Wrap a queue handler with the notification-frequency policy.

    - success: record it on the Health row (unless `record_outcome=False`) and close an open
      incident (one recovery notice);
    - failure: record it (`last_error` sanitized, throttling counted), open the incident and send
      the one failure notice once failures have lasted the frequency, and from then on raise
      :class:`GaveUpError` instead of the original error so the message becomes a dead letter with
      its cause rather than being retried.
    `target(envelope)` names the (mailbox, health kind) the message belongs to; messages without
    one run unguarded. `services` may be the Services or an async factory (shared.runtime.services).
    """
    target = target or body_target(direction)
    now_fn = clock or utcnow

    async def get_services() -> Services:
        return services if isinstance(services, Services) else await services()

    async def guarded(env: Envelope) -> None:
        found = target(env)
        where = await found if inspect.isawaitable(found) else found
        if where is None:
            await handler(env)
            return
        mailbox, kind = where
        svc = await get_services()
        try:
            await handler(env)
        except InvalidMessageError:
            raise
        except Exception as exc:
            await _on_failure(svc, mailbox, kind, exc, now_fn(), notifier, record_outcome, direction)
            raise
        await _on_success(svc, mailbox, kind, now_fn(), notifier, record_outcome)

    return guarded


async def _on_success(svc: Services, mailbox: str, kind: str, now: dt.datetime, notifier: Notifier | None,
                      record: bool) -> None:
    try:
        h = await svc.state.health.update(mailbox, kind, record_success(now=now)) if record else None
        if h is None or h.incident_open:
            await evaluate(svc, mailbox, kind, now=now, notifier=notifier, health=h)
    except Exception as exc:  # the work is done; bookkeeping trouble must not make it retry
        log.warning("recording success for %s/%s failed: %s", mailbox, kind, type(exc).__name__)


async def _on_failure(svc: Services, mailbox: str, kind: str, exc: Exception, now: dt.datetime,
                      notifier: Notifier | None, record: bool, direction: str) -> None:
    """Record the failure; raise GaveUpError (from `exc`) once the frequency has passed."""
    cause = describe(exc)
    telemetry.record_items("failed", 1, mailbox=mailbox, kind=kind, direction=direction,
                           reason=type(exc).__name__)
    throttled = isinstance(exc, TransientError) and getattr(exc, "status", None) == 429
    try:
        if record:
            h = await svc.state.health.update(mailbox, kind, record_failure(sanitize_error(cause, limit=1000),
                                                                            throttled=throttled, now=now,
                                                                            transient=isinstance(exc, TransientError)))
        else:
            h = await svc.state.health.get(mailbox, kind)
        give_up = past_frequency(h, now, frequency(svc))
        if give_up:
            await evaluate(svc, mailbox, kind, now=now, notifier=notifier, health=h)
    except Exception as bookkeeping:
        log.warning("recording failure for %s/%s failed: %s", mailbox, kind, type(bookkeeping).__name__)
        return
    if give_up:
        telemetry.record_items("deadlettered", 1, mailbox=mailbox, kind=kind, direction=direction,
                               reason="notification_frequency")
    if give_up and not isinstance(exc, PermanentError):
        minutes = int((now - (h.failing_since or now)).total_seconds() // 60)
        raise GaveUpError(f"gave up after {minutes} min of failures (notification frequency "
                          f"{svc.settings.sync.notification_frequency_minutes} min); last error: {cause}") from exc
