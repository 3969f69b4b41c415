"""Onboarding and offboarding of mailboxes (PUT/GET/DELETE /api/admin/mailboxes/{upn}).

Onboarding stores the rep's settings, then asks for subscriptions and a first (backfill) round
per enabled kind — all through queues, so the HTTP answer is immediate. Offboarding removes the
subscriptions and stops the sync; nothing is ever deleted in Pega.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.config import PrivatePolicy
from shared.errors import InvalidMessageError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.runtime import Services
from shared.storage.mailboxes import KINDS, Mailbox
from shared.sync.rounds import enqueue_round

UPN = re.compile(r"^[^@\s/\\#?\x00-\x1f\x7f]+@[^@\s/\\#?\x00-\x1f\x7f]+\.[^@\s/\\#?\x00-\x1f\x7f]+$")  # no control characters


class MailboxRequest(BaseModel):
    """Body of PUT /api/admin/mailboxes/{upn}; omitted fields take the service defaults."""

    model_config = ConfigDict(extra="forbid")
    pega_operator: str = Field(min_length=1, max_length=128)
    email_enabled: bool | None = None
    calendar_enabled: bool | None = None
    contacts_enabled: bool | None = None
    private_policy: PrivatePolicy | None = None
    past_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=512)] | None = None
    # graph: Exchange Online; ews: Exchange Server on-premises (needs EWS_URL and the service account)
    backend: Literal["graph", "ews"] | None = None


def parse_request(body: bytes) -> MailboxRequest:
    try:
        return MailboxRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidMessageError(f"{where}: {first.get('msg')}") from None


def validate_upn(upn: str) -> str:
    if not UPN.fullmatch(upn or ""):  # fullmatch: "$" would let a trailing newline through
        raise InvalidMessageError("upn: not a user principal name (user@domain)")
    return upn.lower()


OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def validate_key(value: str) -> str:
    """A mailbox named by its UPN or by its Entra object id (both find it)."""
    if OBJECT_ID.fullmatch(value or ""):
        return value.lower()
    return validate_upn(value)


def backfill_plan(mailbox: Mailbox) -> dict[str, str]:
    """Backfill progress keys, as the delta rounds report them (email per folder)."""
    from shared.sync.source import EMAIL_FOLDERS

    plan: dict[str, str] = {}
    for kind in KINDS:
        if not mailbox.enabled(kind):
            continue
        for key in ([f"email:{f}" for f in EMAIL_FOLDERS] if kind == "email" else [kind]):
            plan[key] = "pending"
    return plan


async def resolve_user_id(services: Services, upn: str) -> str:
    """The mailbox's Entra object id (what its state is keyed by), or "" when Graph is not configured.
    An unknown user is a 400 naming the field; Graph trouble propagates (the caller answers 503)."""
    if not services.settings.graph.configured:
        return ""
    from shared.graph.errors import GraphNotFoundError
    from shared.graph.factory import graph_gateway

    try:
        raw = await graph_gateway(services.settings.graph, slots=services.state.graphslots).get_json(
            f"users/{upn}", mailbox=upn, params={"$select": "id,userPrincipalName"}, what="resolve user")
    except GraphNotFoundError:
        raise InvalidMessageError("upn: no such user in the tenant") from None
    return str((raw or {}).get("id") or "").lower()


class OperatorTakenError(InvalidMessageError):
    """The Pega operator id is already another active mailbox's: Pega's writes for that operator
    would have two possible mailboxes."""


async def _operator_free(services: Services, operator: str, own_key: str | None) -> None:
    for other in await services.state.mailboxes.all_by_operator(operator):
        if other.active and other.key != own_key:
            raise OperatorTakenError("pega_operator: already assigned to another onboarded mailbox "
                                     "(offboard it or give this rep their own operator id)")


async def onboard(services: Services, upn: str, req: MailboxRequest) -> tuple[Mailbox, bool]:
    """Create or update; returns (mailbox, created). The mailbox is found by its object id first, so
    onboarding a renamed user (a new UPN) updates the same mailbox and keeps its links and cursors."""
    upn = validate_upn(upn)
    if req.backend == "ews" and not services.settings.ews.configured:
        raise InvalidMessageError("backend: ews needs EWS_URL (and the EWS service account) to be configured")
    # an on-premises mailbox is addressed by its SMTP address over EWS (and may not be in Entra)
    user_id = "" if req.backend == "ews" else await resolve_user_id(services, upn)
    existing = (await services.state.mailboxes.get(user_id) if user_id else None) or \
        await services.state.mailboxes.get(upn)
    if existing is not None and existing.upn != upn:
        await services.state.mailboxes.forget_upn(existing.upn)  # renamed in Entra
        existing = dataclasses.replace(existing, upn=upn)
    if existing is not None and user_id and not existing.user_id:
        existing = dataclasses.replace(existing, user_id=user_id)  # a legacy row keeps its key (its state)
    await _operator_free(services, req.pega_operator, existing.key if existing is not None else None)
    base = existing or Mailbox.with_defaults(upn, req.pega_operator, services.settings.sync, user_id=user_id)
    changes: dict[str, Any] = {k: v for k, v in req.model_dump().items() if v is not None}
    mailbox = dataclasses.replace(base, **changes, status="active",
                                  onboarded_at=base.onboarded_at or dt.datetime.now(dt.UTC))
    if existing is None or not existing.active:
        mailbox = dataclasses.replace(mailbox, backfill=backfill_plan(mailbox))
    saved = await services.state.mailboxes.put(mailbox)
    await services.queues.send(names.SUBSCRIPTION_WORK, Envelope(type="subscriptions.ensure",
                                                                 body={"mailbox": saved.key}))
    newly = existing is None or not existing.active
    for kind in KINDS:
        turned_on = saved.enabled(kind) and (newly or not existing.enabled(kind))  # type: ignore[union-attr]
        if turned_on:
            await enqueue_round(services, saved.key, kind, reason="onboard", coalesce=False)
    return saved, existing is None


async def describe(services: Services, upn: str) -> dict[str, Any] | None:
    mailbox = await services.state.mailboxes.get(validate_key(upn))
    if mailbox is None:
        return None
    health = await services.state.health.for_mailbox(mailbox.key)
    subs = await services.state.subscriptions.for_mailbox(mailbox.key)
    return {
        "upn": mailbox.upn,
        "id": mailbox.key,
        "pega_operator": mailbox.pega_operator,
        "backend": mailbox.backend,
        "status": mailbox.status,
        "settings": {"email_enabled": mailbox.email_enabled, "calendar_enabled": mailbox.calendar_enabled,
                     "contacts_enabled": mailbox.contacts_enabled, "private_policy": mailbox.private_policy.value,
                     "past_days": mailbox.past_days, "batch_size": mailbox.batch_size},
        "backfill": mailbox.backfill,
        "health": [{"kind": h.kind, "last_success_at": _iso(h.last_success_at), "synced": h.synced,
                    "skipped": h.skipped, "skip_reasons": h.skip_reasons, "failed": h.failed,
                    "consecutive_failures": h.consecutive_failures, "failing_since": _iso(h.failing_since),
                    "last_error": h.last_error, "throttled": h.throttled, "incident_open": h.incident_open}
                   for h in health],
        "subscriptions": [{"kind": s.kind, "resource": s.resource, "status": s.status,
                           "expires_at": _iso(s.expires_at), "last_error": s.last_error} for s in subs],
    }


async def offboard(services: Services, upn: str) -> bool:
    mailbox = await services.state.mailboxes.get(validate_key(upn))
    if mailbox is None:
        return False
    await services.state.mailboxes.put(dataclasses.replace(mailbox, status="offboarded"))
    await services.queues.send(names.SUBSCRIPTION_WORK, Envelope(type="subscriptions.remove",
                                                                 body={"mailbox": mailbox.key}))
    return True


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None
