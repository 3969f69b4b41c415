"""The simulator's in-memory Pega database: cases, SA entities, operators, and change events.

Every write goes through :meth:`Store.create`, :meth:`Store.update` or :meth:`Store.touch`, which
stamp Pega's audit fields, issue a fresh eTag (a quoted save timestamp, like `pxSaveDateTime`)
and tell the listeners (the outbound dispatcher) who changed what.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.pega.mapping import PegaMapping

CASE_KINDS = ("appointment", "email", "task")
SA_KINDS = ("contact", "organization", "lead", "account", "opportunity")

_PREFIX = {
    "appointment": "A", "email": "E", "task": "T",
    "contact": "CON", "organization": "ORG", "lead": "LEAD", "account": "ACC", "opportunity": "OPP",
}


def work_pool(case_type: str) -> str:
    """The work pool class of a case type: its class without the last segment."""
    head, sep, _ = case_type.rpartition("-")
    return head if sep else case_type


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Actor:
    """Who made a change: the operator, and the OAuth client when the change came through DX API v2."""

    operator: str
    client_id: str | None = None
    channel: str = "api"  # api | ui


@dataclass
class Record:
    id: str
    kind: str
    obj_class: str
    business_id: str
    content: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    etag: str

    @property
    def status(self) -> str:
        return str(self.content.get("pyStatusWork", ""))

    def row_view(self) -> dict[str, Any]:
        """The data view row without copying the content (to read fields from, never to hand out)."""
        return {
            "pxObjClass": self.obj_class, "pzInsKey": self.id, "pyID": self.business_id,
            "pxCreateDateTime": iso(self.created_at), "pxUpdateDateTime": iso(self.updated_at),
            "pxCreateOperator": self.created_by, "pxUpdateOperator": self.updated_by, **self.content,
        }

    def row(self) -> dict[str, Any]:
        """The record as a data view row."""
        return {
            "pxObjClass": self.obj_class, "pzInsKey": self.id, "pyID": self.business_id,
            "pxCreateDateTime": iso(self.created_at), "pxUpdateDateTime": iso(self.updated_at),
            "pxCreateOperator": self.created_by, "pxUpdateOperator": self.updated_by,
            **copy.deepcopy(self.content),
        }

    def dump(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "class": self.obj_class, "businessID": self.business_id,
            "etag": self.etag, "createdAt": iso(self.created_at), "updatedAt": iso(self.updated_at),
            "createdBy": self.created_by, "updatedBy": self.updated_by, "content": copy.deepcopy(self.content),
        }


@dataclass(frozen=True)
class Change:
    """One committed write, given to listeners. `before` is None for a create."""

    kind: str
    verb: str  # create | update | action:<actionID>
    record: Record
    before: dict[str, Any] | None
    after: dict[str, Any]
    actor: Actor


@dataclass
class Operator:
    operator_id: str
    email: str
    name: str


def index_key(value: Any, ignore_case: bool) -> str | None:
    """How a field value is found by an equality index: as the data view's EQ compares it (its text;
    lower-cased text with ignoreCase). None: not indexed (EQ never matches a missing value)."""
    if value is None:
        return None
    return value.lower() if ignore_case and isinstance(value, str) else str(value)


def field_value(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass
class FieldIndex:
    """Record ids of one kind by the value of one field: built on first use, kept current by every
    write (create and update), so a data view lookup by email, domain or external id costs what it
    finds, not the number of records."""

    kind: str
    path: str
    ignore_case: bool
    ids: dict[str, dict[str, None]] = field(default_factory=dict)  # value key -> ordered ids
    of: dict[str, str] = field(default_factory=dict)  # record id -> its value key

    def put(self, rec: Record) -> None:
        old = self.of.pop(rec.id, None)
        if old is not None:
            bucket = self.ids.get(old)
            if bucket is not None:
                bucket.pop(rec.id, None)
                if not bucket:
                    del self.ids[old]
        key = index_key(field_value(rec.row_view(), self.path), self.ignore_case)
        if key is not None:
            self.ids.setdefault(key, {})[rec.id] = None
            self.of[rec.id] = key


@dataclass
class Store:
    mapping: PegaMapping
    records: dict[str, Record] = field(default_factory=dict)
    operators: dict[str, Operator] = field(default_factory=dict)
    listeners: list[Callable[[Change], None]] = field(default_factory=list)
    # indexes of the simulator itself (issue 16: the simulator must not be the bottleneck)
    _by_kind: dict[str, dict[str, Record]] = field(default_factory=dict)
    _by_upper_id: dict[str, str] = field(default_factory=dict)
    _seq: dict[str, int] = field(default_factory=dict)
    _field_indexes: dict[tuple[str, str, bool], FieldIndex] = field(default_factory=dict)
    _counters: dict[str, itertools.count] = field(default_factory=dict)
    _last_stamp: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))

    def reset(self) -> None:
        # The id counters survive a reset: real Pega never hands out a case or record id twice, and a
        # reused id would make a test's fresh record look like the one an earlier test linked in our state.
        self.records.clear()
        self.operators.clear()
        self._by_kind.clear()
        self._by_upper_id.clear()
        self._seq.clear()
        self._field_indexes.clear()

    def purge(self, record_id: str) -> bool:
        """An administrator purged the record (Pega's archival and purge): every API answers 404 for
        it from now on. True if it existed."""
        rec = self.get(record_id)
        if rec is None:
            return False
        del self.records[rec.id]
        self._by_kind.get(rec.kind, {}).pop(rec.id, None)
        self._by_upper_id.pop(rec.id.upper(), None)
        for (kind, _, _), idx in self._field_indexes.items():
            key = idx.of.pop(rec.id, None) if kind == rec.kind else None
            bucket = idx.ids.get(key) if key is not None else None
            if bucket is not None:
                bucket.pop(rec.id, None)
                if not bucket:
                    del idx.ids[key]
        return True

    def _indexed(self, rec: Record) -> None:
        for (kind, _, _), idx in self._field_indexes.items():
            if kind == rec.kind:
                idx.put(rec)

    def position(self, record_id: str) -> int:
        """The record's place in creation order."""
        return self._seq[record_id]

    def find_eq(self, kind: str, path: str, keys: list[str], *, ignore_case: bool) -> list[Record]:
        """Records of `kind` whose field `path` has one of `keys` (see :func:`index_key`), in creation order."""
        idx = self._field_indexes.get((kind, path, ignore_case))
        if idx is None:
            idx = self._field_indexes[(kind, path, ignore_case)] = FieldIndex(kind, path, ignore_case)
            for rec in self.of_kind(kind):
                idx.put(rec)
        found = {rid for key in keys for rid in idx.ids.get(key, {})}
        return [self.records[rid] for rid in sorted(found, key=self._seq.__getitem__)]

    # -------------------------------------------------------------- classes and ids

    def class_of(self, kind: str) -> str:
        m = self.mapping
        return {
            "appointment": m.case_types.appointment, "email": m.case_types.email, "task": m.case_types.task,
            "contact": m.sa.contact_class, "organization": m.sa.organization_class, "lead": m.sa.lead_class,
            "account": m.sa.account_class, "opportunity": m.sa.opportunity_class,
        }[kind]

    def kind_of_case_type(self, case_type_id: str) -> str | None:
        for kind in CASE_KINDS:
            if self.class_of(kind).lower() == case_type_id.lower():
                return kind
        return None

    def kind_of_sa_path(self, path: str) -> str | None:
        sa = self.mapping.sa
        return {
            sa.contact_path: "contact", sa.organization_path: "organization", sa.lead_path: "lead",
            sa.account_path: "account", sa.opportunity_path: "opportunity",
        }.get(path)

    def _next_id(self, kind: str) -> tuple[str, str]:
        """(pzInsKey, business id). A case's key is its work pool and business id, as Pega's recorded
        DX API v2 responses show (`DIXL-MEDIACO-WORK N-4006` for case type DIXL-MediaCo-Work-NewService)."""
        start = 1001 if kind in CASE_KINDS else 1
        counter = self._counters.setdefault(kind, itertools.count(start))
        business = f"{_PREFIX[kind]}-{next(counter)}"
        prefix = work_pool(self.class_of(kind)) if kind in CASE_KINDS else self.class_of(kind)
        return f"{prefix.upper()} {business}", business

    def _stamp(self) -> tuple[datetime, str]:
        """A save time and its eTag. The eTag prints milliseconds (like `pxSaveDateTime`), so the order
        is kept at millisecond precision too: a second save within the same millisecond moves one on
        (comparing microseconds let two saves of one millisecond print the same eTag)."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now, '"' + now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d} GMT" + '"'

    # -------------------------------------------------------------- reads

    def get(self, record_id: str) -> Record | None:
        rec = self.records.get(record_id)
        if rec is None:  # Pega keys are case-insensitive
            rid = self._by_upper_id.get(record_id.upper())
            rec = self.records.get(rid) if rid is not None else None
        return rec

    def of_kind(self, kind: str) -> list[Record]:
        return list(self._by_kind.get(kind, {}).values())

    # -------------------------------------------------------------- writes

    def create(self, kind: str, content: dict[str, Any], actor: Actor, *, verb: str = "create") -> Record:
        record_id, business = self._next_id(kind)
        now, etag = self._stamp()
        body = copy.deepcopy(content)
        # a new case is `New` (recorded DX API v2 create responses); SA entities start Active
        body.setdefault("pyStatusWork", "New" if kind in CASE_KINDS else "Active")
        if kind in CASE_KINDS:
            body.update({"pyID": business, "classID": self.class_of(kind)})
        rec = Record(record_id, kind, self.class_of(kind), business, body, now, now, actor.operator, actor.operator, etag)
        self.records[record_id] = rec
        self._by_kind.setdefault(kind, {})[record_id] = rec
        self._by_upper_id[record_id.upper()] = record_id
        self._seq[record_id] = len(self._seq)
        self._indexed(rec)
        self._emit(Change(kind, verb, rec, None, copy.deepcopy(body), actor))
        return rec

    def update(
        self, rec: Record, changes: dict[str, Any], actor: Actor, *, verb: str = "update", append_lists: bool = False
    ) -> Record:
        before = copy.deepcopy(rec.content)
        apply_content(rec.content, changes, append_lists=append_lists)
        rec.updated_at, rec.etag = self._stamp()
        rec.updated_by = actor.operator
        self._indexed(rec)
        self._emit(Change(rec.kind, verb, rec, before, copy.deepcopy(rec.content), actor))
        return rec

    def touch(self, rec: Record, operator: str = "another-user") -> Record:
        """Someone else saved the record (no field change): its eTag moves on, so held eTags go stale."""
        rec.updated_at, rec.etag = self._stamp()
        rec.updated_by = operator
        self._indexed(rec)
        return rec

    def _emit(self, change: Change) -> None:
        for listener in list(self.listeners):
            listener(change)


def apply_content(target: dict[str, Any], changes: dict[str, Any], *, append_lists: bool = False) -> None:
    """Merge `changes` like Pega: scalars replace; an embedded page merges; page-list rows that carry
    `pzIndexes` update that row. Rows without it are appended in SA API v1 (`append_lists`, see
    wire-shapes §15); in DX API v2 content a list without `pzIndexes` replaces the list."""
    for key, value in changes.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            clean = {k: v for k, v in value.items() if k not in ("pzIndexes", "pzIndexOwnerKey")}
            apply_content(current, clean)
        elif isinstance(value, list) and isinstance(current, list) and (append_lists or any(
            isinstance(v, dict) and "pzIndexes" in v for v in value
        )):
            for row in value:
                if not isinstance(row, dict):
                    continue
                idx = _row_index(row)
                clean = {k: v for k, v in row.items() if k not in ("pzIndexes", "pzIndexOwnerKey")}
                if idx is not None and 0 <= idx < len(current) and isinstance(current[idx], dict):
                    current[idx].update(clean)
                else:
                    current.append(clean)
        else:
            target[key] = copy.deepcopy(value)


def _row_index(row: dict[str, Any]) -> int | None:
    indexes = row.get("pzIndexes")
    if isinstance(indexes, dict) and indexes:
        try:
            return int(next(iter(indexes.values())))
        except (TypeError, ValueError):
            return None
    return None
