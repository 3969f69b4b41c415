"""Onboarded mailboxes: the rep's mailbox ↔ Pega operator, and per-object settings.

Every state row of a mailbox (links, cursors, health, failures, leases, queue messages) is keyed by
`Mailbox.key`: the mailbox's Entra object id, which never changes. The user principal name is data —
it can be renamed in Entra without breaking anything, and re-onboarding under the new name finds the
same mailbox (and its links) by id. Rows onboarded before object ids were recorded keep their UPN as
their key (`state_key`), so their state stays where it is. An index row per UPN finds the key.

Issue 16 added two more kinds of small rows, so no per-call or per-tick path lists every mailbox:
- an index partition per Pega operator with a row per mailbox naming it (`by_operator`, asked on every
  Pega API call: one small partition query and a point read per mailbox of that operator);
- a schedule row per mailbox in one of :data:`SLOTS` partitions chosen by a hash of its key: the
  minute timers (safety-net poll, subscription upkeep) read only the slots due at that minute, so
  their work per tick is proportional to the mailboxes due, spread evenly over time.
- an index partition of the on-premises (EWS) mailboxes, which the EWS event timer visits every 15 s
  (it listed every mailbox to find them).
All are written by `put` and built once for stores onboarded before them (a marker row each).
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from shared.config import PrivatePolicy, SyncDefaults
from shared.storage.errors import ConcurrencyError
from shared.storage.keys import decode_key, encode_key
from shared.storage.tables import Entity, Table

_OBJECT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

PK = "mailbox"
UPN_INDEX_PK = "mailbox-upn"  # upn -> key
OPERATOR_INDEX_PREFIX = "mailbox-op|"  # one partition per Pega operator: a row per mailbox naming it
BACKEND_INDEX_PREFIX = "mailbox-backend|"  # mailbox-backend|ews: a row per on-premises mailbox
META_PK = "mailbox-meta"  # markers: indexes built for mailboxes onboarded before them; schedule ticks
TICK_PREFIX = "tick|"  # mailbox-meta / tick|<schedule>: the minute the schedule's last tick ran
SLOT_PREFIX = "mailbox-slot|"  # schedule rows: mailbox-slot|NN / key
SLOTS = 60
KINDS = ("email", "calendar", "contacts")
BACKENDS = ("graph", "ews")  # Exchange Online (Microsoft Graph) | Exchange Server on-premises (EWS)


@dataclass(frozen=True)
class Mailbox:
    upn: str
    pega_operator: str
    email_enabled: bool = True
    calendar_enabled: bool = True
    contacts_enabled: bool = True
    private_policy: PrivatePolicy = PrivatePolicy.SKIP
    past_days: int = 30
    batch_size: int = 50
    status: str = "active"
    onboarded_at: dt.datetime | None = None
    backfill: dict[str, str] = field(default_factory=dict)
    backend: str = "graph"  # chosen at onboarding: graph | ews (a hybrid organization has both)
    user_id: str = ""  # Entra object id (immutable), resolved at onboarding
    state_key: str = ""  # the key of every state row: the object id ("" on legacy rows: the UPN)
    etag: str | None = None

    @property
    def key(self) -> str:
        """What state rows, queue messages and Graph paths name this mailbox by (stable across renames)."""
        return self.state_key or self.upn.lower()

    @classmethod
    def with_defaults(cls, upn: str, pega_operator: str, defaults: SyncDefaults, *, user_id: str = "") -> Mailbox:
        return cls(
            user_id=user_id.lower(),
            state_key=user_id.lower(),
            upn=upn.lower(),
            pega_operator=pega_operator,
            email_enabled=defaults.email_enabled,
            calendar_enabled=defaults.calendar_enabled,
            contacts_enabled=defaults.contacts_enabled,
            private_policy=defaults.private_policy,
            past_days=defaults.past_days,
            batch_size=defaults.batch_size,
        )

    def enabled(self, kind: str) -> bool:
        return bool({"email": self.email_enabled, "calendar": self.calendar_enabled,
                     "contacts": self.contacts_enabled}[kind])

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_entity(self) -> Entity:
        return {
            "PartitionKey": PK,
            "RowKey": encode_key(self.key),
            "upn": self.upn.lower(),
            "user_id": self.user_id,
            "state_key": self.state_key,
            "pega_operator": self.pega_operator,
            "email_enabled": self.email_enabled,
            "calendar_enabled": self.calendar_enabled,
            "contacts_enabled": self.contacts_enabled,
            "private_policy": self.private_policy.value,
            "past_days": self.past_days,
            "batch_size": self.batch_size,
            "status": self.status,
            "onboarded_at": self.onboarded_at or dt.datetime.now(dt.UTC),
            "backfill": json.dumps(self.backfill),
            "backend": self.backend,
        }

    @classmethod
    def from_entity(cls, e: Entity) -> Mailbox:
        return cls(
            upn=str(e.get("upn") or decode_key(e["RowKey"])),
            pega_operator=str(e["pega_operator"]),
            email_enabled=bool(e.get("email_enabled", True)),
            calendar_enabled=bool(e.get("calendar_enabled", True)),
            contacts_enabled=bool(e.get("contacts_enabled", True)),
            private_policy=PrivatePolicy(e.get("private_policy", "skip")),
            past_days=int(e.get("past_days", 30)),
            batch_size=int(e.get("batch_size", 50)),
            status=str(e.get("status", "active")),
            onboarded_at=e.get("onboarded_at"),
            backfill=json.loads(e.get("backfill") or "{}"),
            backend=str(e.get("backend") or "graph"),
            user_id=str(e.get("user_id") or ""),
            state_key=str(e.get("state_key") or ""),
            etag=e.get("_etag"),
        )


def is_mailbox_key(value: str) -> bool:
    """A mailbox key: an Entra object id, or an address (legacy rows, on-premises mailboxes)."""
    v = value.lower()
    return bool(_OBJECT_ID.fullmatch(v)) or ("@" in v and "/" not in v and len(v) <= 320)


def slot_of(key: str) -> int:
    """The schedule slot of a mailbox: stable, evenly spread (a hash of its key)."""
    return int.from_bytes(hashlib.blake2b(key.lower().encode("utf-8"), digest_size=4).digest(), "big") % SLOTS


def _operator_pk(operator: str) -> str:
    return OPERATOR_INDEX_PREFIX + encode_key(operator)


def _slot_pk(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot:02d}"


class MailboxRepository:
    def __init__(self, table: Table) -> None:
        self._t = table
        self._built: set[str] = set()

    async def _build_once(self, marker: str) -> None:
        """Index and schedule rows for every mailbox, once per store (mailboxes onboarded before
        issue 16 have neither); each process checks the marker once."""
        if marker in self._built:
            return
        if await self._t.get(META_PK, marker) is None:
            mailboxes = [Mailbox.from_entity(e) async for e in self._t.partition(PK)]
            for mb in mailboxes:
                await self._write_indexes(mb)
            await self._t.upsert({"PartitionKey": META_PK, "RowKey": marker, "mailboxes": len(mailboxes)})
        self._built.add(marker)

    async def _write_indexes(self, mailbox: Mailbox) -> None:
        await self._t.upsert({"PartitionKey": _slot_pk(slot_of(mailbox.key)), "RowKey": encode_key(mailbox.key)})
        if mailbox.pega_operator:
            await self._t.upsert({"PartitionKey": _operator_pk(mailbox.pega_operator),
                                  "RowKey": encode_key(mailbox.key)})
        if mailbox.backend != "graph":
            await self._t.upsert({"PartitionKey": BACKEND_INDEX_PREFIX + mailbox.backend,
                                  "RowKey": encode_key(mailbox.key)})

    async def _indexed(self, pk: str, matches: Callable[[Mailbox], bool]) -> builtins.list[Mailbox]:
        """The mailboxes an index partition names (one query, a point read each) that still `match`;
        the other rows are stale and dropped."""
        out: builtins.list[Mailbox] = []
        async for row in self._t.partition(pk):
            e = await self._t.get(PK, str(row["RowKey"]))
            mb = Mailbox.from_entity(e) if e else None
            if mb is not None and matches(mb):
                out.append(mb)
            else:
                await self._drop_stale(pk, row)
        return out

    async def _drop_stale(self, pk: str, row: Entity) -> None:
        """An index row whose mailbox is gone or no longer matches, only if unchanged since listed: a
        `put` that just made the mailbox match again rewrote it."""
        try:
            await self._t.delete(pk, str(row["RowKey"]), etag=str(row["_etag"]) if row.get("_etag") else None)
        except ConcurrencyError:
            pass

    async def get(self, key_or_upn: str) -> Mailbox | None:
        """By key (object id) or by UPN (through the UPN index)."""
        ident = key_or_upn.lower()
        e = await self._t.get(PK, encode_key(ident))
        if e is None and "@" in ident:
            idx = await self._t.get(UPN_INDEX_PK, encode_key(ident))
            if idx is not None and idx.get("key") and str(idx["key"]) != ident:
                e = await self._t.get(PK, encode_key(str(idx["key"])))
        return Mailbox.from_entity(e) if e else None

    async def put(self, mailbox: Mailbox) -> Mailbox:
        """Create or replace. With an etag on `mailbox`, only if unchanged since read. Keeps the UPN
        index pointing at the mailbox's key."""
        if mailbox.etag:
            etag = await self._t.replace(mailbox.to_entity(), etag=mailbox.etag)
        else:
            etag = await self._t.upsert(mailbox.to_entity())
        if mailbox.state_key:
            await self._t.upsert({"PartitionKey": UPN_INDEX_PK, "RowKey": encode_key(mailbox.upn.lower()),
                                  "key": mailbox.key})
        await self._write_indexes(mailbox)
        return replace(mailbox, etag=etag)

    async def forget_upn(self, upn: str) -> None:
        """A renamed mailbox's old UPN no longer finds it."""
        await self._t.delete(UPN_INDEX_PK, encode_key(upn.lower()))

    async def delete(self, key: str) -> None:
        await self._t.delete(PK, encode_key(key.lower()))
        await self._t.delete(_slot_pk(slot_of(key)), encode_key(key.lower()))

    async def in_slot(self, slot: int) -> list[str]:
        """The keys of the mailboxes scheduled in `slot` (one partition query; about N/SLOTS rows)."""
        await self._build_once("schedule-v1")
        return [decode_key(str(e["RowKey"])) async for e in self._t.partition(_slot_pk(slot))]

    async def last_tick(self, schedule: str) -> int | None:
        """The minute (since the epoch) `schedule`'s last completed tick ran, if any tick has."""
        e = await self._t.get(META_PK, TICK_PREFIX + schedule)
        return int(e["minute"]) if e and e.get("minute") is not None else None

    async def save_tick(self, schedule: str, minute: int) -> None:
        """Timers run one instance at a time (the host's singleton lock), so a plain upsert suffices."""
        await self._t.upsert({"PartitionKey": META_PK, "RowKey": TICK_PREFIX + schedule, "minute": minute})

    async def drop_from_schedule(self, key: str) -> None:
        """A schedule row whose mailbox is gone."""
        await self._t.delete(_slot_pk(slot_of(key)), encode_key(key.lower()))

    async def list(self, *, active_only: bool = True) -> list[Mailbox]:
        out = [Mailbox.from_entity(e) async for e in self._t.partition(PK)]
        return [m for m in out if m.active] if active_only else out

    async def all_by_operator(self, operator: str) -> builtins.list[Mailbox]:
        """Every mailbox row naming this Pega operator, offboarded ones included (the caller decides).
        Asked on every Pega API call, so through the operator's index partition (one query of its few
        rows, then a point read per mailbox), never a filter over every mailbox. An index row whose
        mailbox no longer names the operator is stale: skipped and removed."""
        await self._build_once("operator-index-v2")
        try:
            pk = _operator_pk(operator)
        except ValueError:  # longer than a key may be: no mailbox can name it
            return []
        return await self._indexed(pk, lambda mb: mb.pega_operator == operator)

    async def on_backend(self, backend: str) -> builtins.list[Mailbox]:
        """Every mailbox row on a backend other than Graph (``ews``), offboarded ones included: one query
        of that backend's index partition and a point read per mailbox. Stale index rows (the mailbox
        is gone or moved to another backend) are skipped and removed."""
        if backend not in BACKENDS or backend == "graph":
            raise ValueError(f"no index of the {backend!r} backend")
        await self._build_once("backend-index-v1")
        pk = BACKEND_INDEX_PREFIX + backend
        return await self._indexed(pk, lambda mb: mb.backend == backend)

    async def by_operator(self, operator: str) -> Mailbox | None:
        """The operator's mailbox: the active one if exactly one is, else None (ambiguous or unknown)."""
        found = await self.all_by_operator(operator)
        active = [m for m in found if m.active]
        if len(active) == 1:
            return active[0]
        return found[0] if not active and len(found) == 1 else None
