"""Queue names. Every queue has a `<name>-poison` twin managed by the Functions host."""

from __future__ import annotations

# Exchange → Pega: one message per (mailbox, kind) delta round, coalesced from notifications.
DELTA_WORK = "delta-work"
# Pega → Exchange: one message per accepted outbound operation.
OUTBOUND_OPS = "outbound-ops"
# Lifecycle events and subscription maintenance for one mailbox.
SUBSCRIPTION_WORK = "subscription-work"

# Exchange → Pega, after the records: the insight fields of new records (shared.sync.insight_jobs).
INSIGHT_WORK = "insight-work"

ALL = (DELTA_WORK, OUTBOUND_OPS, SUBSCRIPTION_WORK, INSIGHT_WORK)


def poison(name: str) -> str:
    return f"{name}-poison"
