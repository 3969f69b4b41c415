"""Operator actions on one mailbox: dry run (what would sync, what is excluded and why) and resync.

The dry run is the Exchange → Pega engine's own planner (`shared.sync.inbound.dry_run`): it reads
Graph and Pega and writes nothing. Here its per-item plan becomes the summary an operator reads:
"these N items would sync; these M are excluded, each with its reason". Item ids are shown, never
subjects or bodies.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from shared.admin.mailboxes import validate_key as validate_upn
from shared.errors import InvalidMessageError
from shared.runtime import Services
from shared.storage.mailboxes import KINDS

SYNC_ACTIONS = ("create", "update", "cancel", "close")

# Plain-language labels for the planner's skip reasons (unknown reasons are shown as they are).
REASON_LABELS = {
    "private": "private item",
    "draft": "draft",
    "no_association": "no matching contact or account in Pega",
    "outside_window": "outside the sync window",
    "no_category": "not in the sync category",
    "not_linked": "deleted, was never synced",
    "already_closed": "already closed in Pega",
    "unchanged": "unchanged since the last sync",
    "echo": "our own write (echo)",
    "series_master": "recurring series master (occurrences sync instead)",
    "cancelled": "cancelled, never synced",
    "removed_kept_in_pega": "removed in Exchange, kept in Pega",
    "not_onboarded": "mailbox not onboarded",
    "kind_disabled": "this kind is disabled for the mailbox",
}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidMessageError(f"kind: must be one of {', '.join(KINDS)}")
    return kind


def summarize_plan(planned: list[Any], *, mailbox: str, kind: str) -> dict[str, Any]:
    """The planner's items → would_sync / excluded / unchanged, with counts per action and reason."""
    would: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    unchanged: list[dict[str, Any]] = []
    for p in planned:
        reason = str(getattr(p, "reason", ""))
        item: dict[str, Any] = {"id": str(getattr(p, "item_id", "")), "action": str(getattr(p, "action", "")),
                                "reason": reason, "fields": list(getattr(p, "fields", ()) or ()),
                                "reason_label": REASON_LABELS.get(reason, reason.replace("_", " "))}
        if item["action"] in SYNC_ACTIONS:
            would.append(item)
        elif item["action"] == "skip":
            excluded.append(item)
        else:
            unchanged.append(item)
    return {
        "mailbox": mailbox, "kind": kind, "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "counts": {"would_sync": len(would), "excluded": len(excluded), "unchanged": len(unchanged),
                   "by_action": dict(Counter(i["action"] for i in would)),
                   "excluded_by_reason": dict(Counter(i["reason"] for i in excluded).most_common())},
        "would_sync": would, "excluded": excluded, "unchanged": unchanged,
    }


def parse_max_pages(value: str | None, *, default: int = 50) -> int:
    """The dry run's page budget per folder (an HTTP request must answer within the host's limit)."""
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidMessageError("max_pages: not a number") from None
    if not 1 <= n <= 200:
        raise InvalidMessageError("max_pages: must be 1..200")
    return n


async def dry_run(services: Services, upn: str, kind: str, *, max_pages: int = 50) -> dict[str, Any]:
    from shared.sync.inbound import dry_run as plan

    upn, kind = validate_upn(upn), _check_kind(kind)
    planned = await plan(services, mailbox=upn, kind=kind, max_pages=max_pages)
    return summarize_plan(planned, mailbox=upn, kind=kind)


async def resync(services: Services, upn: str, kind: str) -> dict[str, Any]:
    """Ask for a full resync round of one kind (through the queue); progress shows in the health."""
    from shared.sync.rounds import enqueue_round

    upn, kind = validate_upn(upn), _check_kind(kind)
    mailbox = await services.state.mailboxes.get(upn)
    if mailbox is None or not mailbox.active:
        raise InvalidMessageError("upn: mailbox is not onboarded (or offboarded)")
    if not mailbox.enabled(kind):
        raise InvalidMessageError(f"kind: {kind} sync is disabled for this mailbox")
    requested = dt.datetime.now(dt.UTC)
    await enqueue_round(services, mailbox.key, kind, reason="resync", full_resync=True, coalesce=False)
    return {"mailbox": upn, "kind": kind, "requested_at": requested.isoformat(), "full_resync": True}
