"""Field-by-field three-way merge against the last synced snapshot.

For each mapped field: changed on one side only → that side's value wins; changed on both to the
same value → nothing to do; changed on both to different values → a true conflict, resolved by
the configured policy (default: the newer edit by each side's own timestamp; a tie goes to Pega,
the system of record) and recorded. Values are compared in snapshot form, so long bodies compare
by digest. Used by both directions: "local" and "remote" are just the two sides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import ConflictPolicy
from shared.sync.mapping.fields import snap_value

EXCHANGE = "exchange"
PEGA = "pega"


@dataclass(frozen=True)
class Conflict:
    field: str
    winner: str  # exchange | pega
    exchange_value: Any
    pega_value: Any


@dataclass(frozen=True)
class MergeResult:
    to_pega: tuple[str, ...] = ()  # fields whose Exchange value must be written to Pega
    to_exchange: tuple[str, ...] = ()  # fields whose Pega value must be written to Exchange
    conflicts: tuple[Conflict, ...] = ()
    merged: dict[str, Any] = field(default_factory=dict)  # snapshot form of the agreed state


def winner_by_policy(policy: ConflictPolicy, *, exchange_time: dt.datetime | None,
                     pega_time: dt.datetime | None) -> str:
    if policy is ConflictPolicy.EXCHANGE:
        return EXCHANGE
    if policy is ConflictPolicy.PEGA:
        return PEGA
    if exchange_time is not None and (pega_time is None or exchange_time > pega_time):
        return EXCHANGE
    return PEGA


def three_way(snapshot: Mapping[str, Any], exchange: Mapping[str, Any], pega: Mapping[str, Any], *,
              policy: ConflictPolicy = ConflictPolicy.NEWER, exchange_time: dt.datetime | None = None,
              pega_time: dt.datetime | None = None, fields: tuple[str, ...] | None = None) -> MergeResult:
    """Merge `exchange` and `pega` (mapped dicts) against `snapshot`. A field missing from `pega`
    (Pega does not carry it) counts as unchanged on the Pega side."""
    names = fields or tuple(k for k in exchange if not k.startswith("_"))
    to_pega: list[str] = []
    to_exchange: list[str] = []
    conflicts: list[Conflict] = []
    merged: dict[str, Any] = {}
    winner_cache: str | None = None
    for name in names:
        base = snapshot.get(name)
        ex = snap_value(exchange.get(name)) if name in exchange else base
        pg = snap_value(pega.get(name)) if name in pega else base
        ex_changed, pg_changed = ex != base, pg != base
        if ex == pg:
            merged[name] = ex
            continue
        if ex_changed and not pg_changed:
            to_pega.append(name)
            merged[name] = ex
        elif pg_changed and not ex_changed:
            to_exchange.append(name)
            merged[name] = pg
        else:
            # both changed differently, or neither changed but the sides disagree (no usable snapshot)
            if winner_cache is None:
                winner_cache = winner_by_policy(policy, exchange_time=exchange_time, pega_time=pega_time)
            if winner_cache == EXCHANGE:
                to_pega.append(name)
                merged[name] = ex
            else:
                to_exchange.append(name)
                merged[name] = pg
            if ex_changed and pg_changed:
                conflicts.append(Conflict(name, winner_cache, ex, pg))
    return MergeResult(tuple(to_pega), tuple(to_exchange), tuple(conflicts), merged)
