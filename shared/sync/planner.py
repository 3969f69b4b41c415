"""The pure planner: one Exchange item (or removal) + its link + Pega's current state → one action.

No I/O here. The round gathers the inputs (link, Pega state when a linked item's content
changed, association and photo when needed), then every decision is made by :func:`plan`:

- Create        — not linked yet (the applier still looks the external id up in Pega first);
- Update        — content of the mapped fields changed; only the fields Exchange wins are written;
- Cancel/Close  — appointment cancelled/deleted, contact deleted or un-categorized (never deleted),
                  or a linked item made private under a policy that keeps private items out of
                  Pega (a linked mail is masked instead: an email case cannot be cancelled);
- LinkOwn       — not linked, but stamped with our PegaId: our own write from Pega whose link is not
                  stored yet (the outbound worker links it right after the POST) — link, never create;
- Skip(reason)  — policy says this item does not sync (draft, private, no_association, ...), or the
                  item belongs to a record Pega already has: `series_from_pega` (an occurrence or
                  exception of a series created from Pega: Pega holds ONE appointment for the series,
                  kept by the Pega → Exchange side) and `synced_from_organizer` (an attendee's copy of a
                  meeting organized by another onboarded mailbox, which syncs the meeting itself);
- NoOp(reason)  — nothing to write: unchanged (touch or replay), echo of our own write, ...

"Change" is the content hash of the mapped fields, never changeKey/lastModified alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from shared.config import ConflictPolicy, PrivatePolicy
from shared.storage.links import Link
from shared.sync.mapping import (
    BODY_HTML,
    META_BY,
    META_ORIGINAL_START,
    META_PEGA_DECIDED,
    META_SERIES,
    Conflict,
    Mapped,
    content_hash,
    fields_of,
    map_contact,
    map_event,
    map_message,
    meta_of,
    snap_value,
    snapshot,
    three_way,
)
from shared.sync.records import ContactRecord, EventRecord, Item, MessageRecord, Removal
from shared.sync.timezones import iso_z

BY_EXCHANGE = "exchange"
BY_PEGA = "pega"


@dataclass(frozen=True)
class Policy:
    """Everything the planner needs to know about the mailbox and the round."""

    kind: str  # email | calendar | contacts
    private_policy: PrivatePolicy = PrivatePolicy.SKIP
    contact_category: str = "PegaSASync"
    conflict_policy: ConflictPolicy = ConflictPolicy.NEWER
    window_start: dt.datetime | None = None  # calendar window; email: received since (past days)
    window_end: dt.datetime | None = None
    direction: str = ""  # email: the mapping's inbound/outbound value for this folder


@dataclass(frozen=True)
class PegaState:
    """The linked Pega record as it is now, in mapped form."""

    id: str
    mapped: Mapped
    updated_at: dt.datetime | None = None
    status: str = ""
    etag: str = ""  # the version merged against: the write is refused if Pega changed since


@dataclass(frozen=True)
class Create:
    item_id: str
    mapped: Mapped
    hash: str
    snapshot: dict[str, Any]
    reason: str = "new"
    relink: Link | None = None  # a closed link being reopened (contact category re-added)


@dataclass(frozen=True)
class LinkOwn:
    """Link an unlinked item to the Pega record stamped on it (no Pega write)."""

    item_id: str
    pega_id: str
    mapped: Mapped
    hash: str
    snapshot: dict[str, Any]
    reason: str = "stamped_from_pega"


@dataclass(frozen=True)
class Origin:
    """Where an unlinked item came from, as far as the round could tell cheaply."""

    pega_stamp: str = ""  # our PegaId extended property on the item
    series_from_pega: bool = False  # an instance whose series master was written from Pega
    organizer_synced: bool = False  # an attendee copy; the organizer is another onboarded mailbox


@dataclass(frozen=True)
class Update:
    item_id: str
    link: Link
    fields: dict[str, Any]  # full values to write to Pega (possibly empty: only the link moves on)
    mapped: Mapped
    hash: str
    snapshot: dict[str, Any]
    conflicts: tuple[Conflict, ...] = ()
    reason: str = "changed"
    pega_etag: str = ""  # the Pega version the merge saw (PegaState.etag); "" = not read


@dataclass(frozen=True)
class Cancel:
    item_id: str
    link: Link
    reason: str = "deleted"


@dataclass(frozen=True)
class Close:
    item_id: str
    link: Link
    reason: str = "deleted"


@dataclass(frozen=True)
class Skip:
    item_id: str
    reason: str


@dataclass(frozen=True)
class NoOp:
    item_id: str
    reason: str
    refresh: Link | None = None  # the link with the new changeKey to store (no Pega write)


Action = Create | LinkOwn | Update | Cancel | Close | Skip | NoOp
DELETING = (Cancel, Close)


@dataclass(frozen=True)
class PlannedItem:
    """What the dry run reports for one item."""

    item_id: str
    action: str  # create | update | cancel | close | skip | noop
    reason: str
    fields: tuple[str, ...] = field(default=())


def describe(action: Action) -> PlannedItem:
    name = type(action).__name__.lower()
    fields_: tuple[str, ...] = ()
    if isinstance(action, Update):
        fields_ = tuple(f for f in action.fields if not f.startswith("_"))
    return PlannedItem(action.item_id, name, action.reason, fields_)


# ---------------------------------------------------------------- pre-filter (no Pega needed)


def _in_window(ev: EventRecord, policy: Policy) -> bool:
    if ev.start is None or ev.end is None:
        return True
    if policy.window_start and ev.end <= policy.window_start and ev.start < policy.window_start:
        return False
    return not (policy.window_end and ev.start >= policy.window_end)


def _active(link: Link | None) -> bool:
    return link is not None and link.state == "active"


def prefilter(item: Item, link: Link | None, policy: Policy) -> Action | None:
    """Decisions that need neither Pega state nor lookups; None = go on planning."""
    if isinstance(item, Removal):
        if link is None:
            return NoOp(item.id, "not_linked")
        if link.state != "active":
            return NoOp(item.id, "already_closed")
        if policy.kind == "email":
            return NoOp(item.id, "removed_kept_in_pega")
        if policy.kind == "calendar":
            return Cancel(item.id, link, "deleted")
        return Close(item.id, link, "deleted")
    if isinstance(item, MessageRecord):
        if item.is_draft:
            return Skip(item.id, "draft")
        if item.not_mail:  # meeting message, NDR, read receipt, auto-reply: not correspondence
            return Skip(item.id, item.not_mail)
        if item.is_private and policy.private_policy is PrivatePolicy.SKIP and not _active(link):
            return Skip(item.id, "private")  # (a linked mail made private later is masked in Pega: mapped_of)
        if (link is None and policy.window_start is not None and item.received_at is not None
                and item.received_at < policy.window_start):
            return Skip(item.id, "outside_window")  # older than "sync from number of days"
        return None
    if isinstance(item, EventRecord):
        if item.is_master:
            return NoOp(item.id, "series_master")
        if item.problem:  # e.g. an unknown time zone: never guessed (UTC would be the wrong hour)
            return Skip(item.id, item.problem)
        if item.is_cancelled:
            if link is not None and link.state == "active":
                return Cancel(item.id, link, "cancelled")
            return NoOp(item.id, "already_closed") if link else Skip(item.id, "cancelled")
        if link is not None and link.state != "active":
            return NoOp(item.id, "already_closed")
        if item.is_draft:
            return Skip(item.id, "draft")
        if item.is_private and policy.private_policy is PrivatePolicy.SKIP:
            if _active(link):
                # made private after it synced: under `skip` Pega must not keep its subject, body and
                # attendees — the appointment is cancelled there (the meeting itself goes on in Outlook)
                return Cancel(item.id, link, "became_private")  # type: ignore[arg-type]
            return Skip(item.id, "private")
        if link is None and not _in_window(item, policy):
            return Skip(item.id, "outside_window")
        return None
    if isinstance(item, ContactRecord):
        wanted = policy.contact_category.lower()
        if wanted not in (c.lower() for c in item.categories):
            if link is not None and link.state == "active":
                return Close(item.id, link, "category_removed")
            return Skip(item.id, "no_category")
        if item.is_private and policy.private_policy is not PrivatePolicy.FULL:
            if _active(link):
                return Close(item.id, link, "became_private")  # type: ignore[arg-type]
            return Skip(item.id, "private")
        return None
    raise TypeError(f"unknown item {type(item).__name__}")


def mapped_of(item: MessageRecord | EventRecord | ContactRecord, policy: Policy, *, photo_digest: str = "") -> Mapped:
    if isinstance(item, MessageRecord):
        # `skip` only reaches here for a mail that was linked before it was made private: mask it too
        return map_message(item, direction=policy.direction,
                           masked=item.is_private and policy.private_policy is not PrivatePolicy.FULL)
    if isinstance(item, EventRecord):
        return map_event(item, masked=item.is_private and policy.private_policy is PrivatePolicy.MASK)
    return map_contact(item, photo_digest=photo_digest)


META_FOLDER = "_folder"  # contacts: the folder the contact was in when last synced (reconciliation scope)


def _meta(item: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {META_BY: BY_EXCHANGE}
    if isinstance(item, ContactRecord) and item.parent_folder_id:
        meta[META_FOLDER] = item.parent_folder_id
    if isinstance(item, EventRecord) and item.series_master_id:
        meta[META_SERIES] = item.series_master_id
        if item.original_start is not None:
            meta[META_ORIGINAL_START] = iso_z(item.original_start)
    return meta


def origin_action(item: Item, link: Link | None, origin: Origin | None, policy: Policy) -> Action | None:
    """Decisions about an UNLINKED item that Pega already has (see the module docstring); None = plan on.
    A linked item is never re-decided here: its link says what it is."""
    if origin is None or link is not None or isinstance(item, Removal):
        return None
    if isinstance(item, EventRecord):
        if origin.series_from_pega and item.is_instance:
            return Skip(item.id, "series_from_pega")
        if origin.organizer_synced:
            return Skip(item.id, "synced_from_organizer")
    if origin.pega_stamp:
        mapped = mapped_of(item, policy)
        meta = {**_meta(item), META_BY: BY_PEGA}
        return LinkOwn(item.id, origin.pega_stamp, mapped, content_hash(mapped), snapshot(mapped, meta=meta))
    return None


def needs_pega_state(item: Item, link: Link | None, policy: Policy, *, photo_digest: str = "") -> bool:
    """True when planning needs the linked Pega record (a linked item whose content changed)."""
    if isinstance(item, Removal) or link is None or link.state != "active" or prefilter(item, link, policy):
        return False
    if item.change_key and item.change_key == link.graph_change_key:
        return False
    return content_hash(mapped_of(item, policy, photo_digest=photo_digest)) != link.graph_hash


def plan(item: Item, link: Link | None, policy: Policy, *, pega: PegaState | None = None,
         association_found: bool | None = None, photo_digest: str = "", origin: Origin | None = None) -> Action:
    """Decide what to do with one item. Pure: same inputs, same action."""
    early = prefilter(item, link, policy) or origin_action(item, link, origin, policy)
    if early is not None:
        return early
    if isinstance(item, Removal):  # prefilter always decides removals
        raise TypeError("a removal reached the content planner")
    mapped = mapped_of(item, policy, photo_digest=photo_digest)
    digest = content_hash(mapped)
    meta = _meta(item)
    if link is None or link.state != "active":
        if isinstance(item, MessageRecord) and association_found is False:
            return Skip(item.id, "no_association")
        return Create(item.id, mapped, digest, snapshot(mapped, meta=meta),
                      reason="reopen" if link is not None else "new", relink=link)
    written_by_pega = link.snapshot.get(META_BY) == BY_PEGA
    if item.change_key and item.change_key == link.graph_change_key:
        return NoOp(item.id, "echo" if written_by_pega else "unchanged")
    if digest == link.graph_hash:
        return NoOp(item.id, "echo" if written_by_pega else "unchanged",
                    refresh=replace(link, graph_change_key=item.change_key))
    base = fields_of(link.snapshot)
    if pega is None:
        # the linked record could not be read (gone from Pega): write everything, upsert recreates it
        return Update(item.id, link, dict(mapped), mapped, digest, snapshot(mapped, meta=meta), reason="changed")
    merged = three_way(base, mapped, pega.mapped, policy=policy.conflict_policy,
                       exchange_time=getattr(item, "last_modified", None), pega_time=pega.updated_at,
                       fields=tuple(k for k in mapped if not k.startswith("_")))
    fields_ = {name: mapped[name] for name in merged.to_pega}
    if "body" in fields_ and BODY_HTML in mapped:
        fields_[BODY_HTML] = mapped[BODY_HTML]  # the sanitized HTML follows the body it renders
    new_meta = {**meta_of(link.snapshot), **meta}
    decided = _decided_against_pega(link, merged.conflicts, pega.updated_at)
    if decided:
        new_meta[META_PEGA_DECIDED] = decided
    synced = dict(merged.merged)
    if merged.to_exchange:
        # Pega holds newer values for some fields: the Pega → Exchange side owns pushing them. Until it
        # has, Outlook holds its own values, and those are the last synced state: had Pega's been kept,
        # an Outlook edit of the field before the push would look like the only change and overwrite
        # Pega's without a conflict, and the push then carry a title Pega no longer holds (seed 434).
        new_meta[META_BY] = BY_EXCHANGE
        for name in merged.to_exchange:
            synced[name] = snap_value(mapped[name]) if name in mapped else base.get(name)
    return Update(item.id, link, fields_, mapped, digest, {**synced, **new_meta}, merged.conflicts,
                  reason="changed" if fields_ else "merged_no_write", pega_etag=pega.etag)


def _decided_against_pega(link: Link, conflicts: tuple[Conflict, ...], pega_time: dt.datetime | None
                          ) -> dict[str, str]:
    """The fields whose Pega value lost a conflict here, with the Pega version that lost (kept from
    earlier merges too): the Pega → Exchange side skips that version's value of those fields."""
    decided = dict(link.snapshot.get(META_PEGA_DECIDED) or {})
    if pega_time is not None:
        for c in conflicts:
            if c.winner == "exchange":
                # to the microsecond: Pega's call carries its save time with milliseconds
                decided[c.field] = pega_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return decided


def hold_deletions(actions: list[Action], *, linked_active: int, share: float, min_items: int = 5,
                   already: int = 0) -> bool:
    """Delete safety: True when the closes/cancels of this round so far (`already`) plus this batch
    exceed `share` of the mailbox's linked active items — and number at least `min_items`, so a
    small mailbox can still lose its one appointment."""
    deleting = already + sum(1 for a in actions if isinstance(a, DELETING))
    if deleting < min_items:
        return False
    return deleting > share * max(linked_active, 0)
