"""DX API v2 data view queries: filter conditions, logic, select and sort, as typed values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

COMPARATORS = frozenset(
    {
        "EQ", "NEQ", "IN", "NOT_IN", "GT", "GTE", "LT", "LTE", "CONTAINS", "NOT_CONTAINS",
        "STARTS_WITH", "ENDS_WITH", "IS_NULL", "IS_NOT_NULL", "IS_TRUE", "IS_FALSE",
    }
)


@dataclass(frozen=True)
class Condition:
    field: str
    comparator: str
    value: Any = None
    ignore_case: bool = False

    def __post_init__(self) -> None:
        if self.comparator not in COMPARATORS:
            raise ValueError(f"unknown data view comparator {self.comparator!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lhs": {"field": self.field}, "comparator": self.comparator}
        if self.comparator in ("IN", "NOT_IN"):
            out["rhs"] = {"values": list(self.value or [])}
        elif self.comparator not in ("IS_NULL", "IS_NOT_NULL", "IS_TRUE", "IS_FALSE"):
            out["rhs"] = {"value": self.value}
        if self.ignore_case:
            out["ignoreCase"] = True
        return out


@dataclass(frozen=True)
class Query:
    """Conditions are named F1..Fn in order; `logic` uses those names (default: all ANDed)."""

    conditions: Sequence[Condition] = ()
    logic: str | None = None
    select: Sequence[str] = ()
    sort: Sequence[tuple[str, str]] = field(default=())  # (field, ASC|DESC)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.select:
            out["select"] = [{"field": f} for f in self.select]
        if self.conditions:
            names = [f"F{i}" for i in range(1, len(self.conditions) + 1)]
            out["filter"] = {
                "filterConditions": {n: c.to_json() for n, c in zip(names, self.conditions, strict=True)},
                "logic": self.logic or " AND ".join(names),
            }
        if self.sort:
            out["sortBy"] = [{"field": f, "type": t} for f, t in self.sort]
        return out


def eq(field_name: str, value: Any, *, ignore_case: bool = False) -> Condition:
    return Condition(field_name, "EQ", value, ignore_case)
