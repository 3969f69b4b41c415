"""What the pure planner needs for one delta page, gathered item by item — failures isolated.

For a page the round needs: the links, and only where needed the series master of sparse
occurrences, the item as it is now behind a removal, the contact's sensitivity and our PegaId
stamp, the linked Pega record of a changed item, associations, photos and insights. Any of these
can fail for ONE item (a photo GET, a Pega 403 on one linked case, an association lookup); that
must never block the mailbox: the item is reported as failed with its cause (the round parks it
and retries it on its own, shared.sync.item_retry) and the rest of the page goes on. Optional
enrichments (photos, attachments, insights) never fail the core item at all.

Removals are verified before anything is closed or cancelled: an immutable id survives moves, so a
GET tells a real deletion (404, or the item now in Deleted Items) from a move (between watched
contact folders, an event moved out of the window). And an UNLINKED item that leaves scope (a
contact un-categorized, an event cancelled or deleted) is looked up by its external id in Pega:
a create whose answer was lost (or whose link was never written) left a record there that must be
closed or cancelled, never left Active.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.pega import Association
from shared.pega.convert import parse_datetime
from shared.pega.errors import PegaNotFoundError
from shared.runtime import Services
from shared.storage.links import Link
from shared.storage.mailboxes import Mailbox
from shared.sync.apply import Applier, ItemExtras
from shared.sync.associate import AssociationCache
from shared.sync.backends import MailboxBackend
from shared.sync.context import SyncContext, insights_busy
from shared.sync.insight_jobs import insight_kind
from shared.sync.linkbatch import by_graph_ids
from shared.sync.mapping import (
    LINK_KIND,
    META_BY,
    META_ORIGINAL_START,
    META_SERIES,
    mapped_from_pega,
    photo_digest,
)
from shared.sync.planner import (
    BY_PEGA,
    Action,
    Cancel,
    Close,
    Create,
    NoOp,
    Origin,
    PegaState,
    Policy,
    Skip,
    needs_pega_state,
    origin_action,
    plan,
    prefilter,
)
from shared.sync.records import ContactRecord, EventRecord, Item, MessageRecord, Removal, fill_from_master
from shared.sync.source import Window
from shared.sync.timezones import UnknownTimeZoneError, parse_iso_utc, zone

log = logging.getLogger(__name__)

# Unlinked items leaving scope: if Pega holds a record for them (a lost create), it is closed/cancelled.
ORPHAN_REASONS = frozenset({"no_category", "cancelled", "not_linked", "private"})


@dataclass(frozen=True)
class FailedItem:
    """One item of a page that could not be gathered or applied; the rest of the page goes on."""

    item_id: str
    stage: str  # gather | apply
    error: BaseException


@dataclass
class PagePlan:
    planned: list[tuple[Action, ItemExtras, Item]] = field(default_factory=list)
    failed: list[FailedItem] = field(default_factory=list)
    enrichment_failures: int = 0  # photos / attachments / insights left out (the item synced without them)


async def bounded(n: int, calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    sem = asyncio.Semaphore(n)

    async def one(c: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await c()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def dedupe(items: list[Item]) -> list[Item]:
    """Delta may repeat an id within a page; the last representation wins."""
    last: dict[str, int] = {it.id: i for i, it in enumerate(items)}
    return [it for i, it in enumerate(items) if last[it.id] == i]


def _occurrence_date(original_start: str, master: EventRecord) -> str:
    tz_name = ((master.recurrence or {}).get("range") or {}).get("recurrenceTimeZone") or master.original_tz
    when = parse_iso_utc(original_start)
    try:
        return when.astimezone(zone(tz_name)).date().isoformat() if when else ""
    except UnknownTimeZoneError:
        return ""  # the series' zone is unknown: its occurrences are skipped with that reason


# how far Exchange's clock (createdDateTime) and the host's (the listing's start) may disagree
CLOCK_MARGIN = dt.timedelta(minutes=5)


def overlaps(ev: EventRecord, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """Does the event overlap the round's calendar window (what calendarView returns)?"""
    if ev.start is None or ev.end is None or start is None or end is None:
        return False
    return ev.start < end and ev.end > start


class PageGatherer:
    """Per round: the caches (series masters, folder ids, associations, organizers) and the page logic."""

    def __init__(self, services: Services, ctx: SyncContext, mb: Mailbox, kind: str, reader: MailboxBackend,
                 applier: Applier, *, now: dt.datetime, dry: bool = False) -> None:
        self.s = services
        self.ctx = ctx
        self.mb = mb
        self.kind = kind
        self.reader = reader
        self.applier = applier
        self.now = now
        self.dry = dry
        own_domain = mb.upn.rsplit("@", 1)[-1]
        self.assoc = AssociationCache(ctx.records, own_domains=[own_domain])
        self.masters: dict[str, EventRecord | None] = {}
        self._event_links: list[Link] | None = None
        self._organizers: dict[str, bool] = {}
        self._watched_contact_folders: set[str] | None = None

    # ------------------------------------------------------------ policy

    def policy(self, folder: str, window: Window | None) -> Policy:
        sync = self.s.settings.sync
        status = self.ctx.mapping.status
        direction = ""
        if self.kind == "email":
            direction = status.email_outbound if folder == "sentitems" else status.email_inbound
            window = Window(self.now - dt.timedelta(days=self.mb.past_days), self.now + dt.timedelta(days=3650))
        return Policy(kind=self.kind, private_policy=self.mb.private_policy, contact_category=sync.contact_category,
                      conflict_policy=sync.conflict_policy, window_start=window.start if window else None,
                      window_end=window.end if window else None, direction=direction)

    # ------------------------------------------------------------ calendar completion

    async def master(self, master_id: str) -> EventRecord | None:
        if master_id not in self.masters:
            self.masters[master_id] = await self.reader.event(master_id)
        return self.masters[master_id]

    async def _linked_events(self) -> list[Link]:
        if self._event_links is None:
            self._event_links = await self.s.state.links.list(self.mb.key, kind=LINK_KIND["calendar"])
        return self._event_links

    async def _complete_events(self, items: list[Item], failed: dict[str, FailedItem]) -> list[Item]:
        """Fill sparse occurrences from their master; turn masters' cancelledOccurrences into removals."""
        out: list[Item] = []
        extra: list[Item] = []
        seen = {it.id for it in items}
        for it in items:
            try:
                if isinstance(it, EventRecord) and it.is_master:
                    self.masters.pop(it.id, None)  # the master changed: read it afresh (with cancelledOccurrences)
                    full = await self.master(it.id)
                    if full is not None and full.cancelled_occurrences:
                        dates = {c.rsplit(".", 1)[-1] for c in full.cancelled_occurrences}
                        for link in await self._linked_events():
                            series = link.snapshot.get(META_SERIES)
                            original = link.snapshot.get(META_ORIGINAL_START)
                            if (link.state == "active" and series == it.id and isinstance(original, str)
                                    and link.graph_id not in seen and _occurrence_date(original, full) in dates):
                                extra.append(Removal(link.graph_id, "cancelled_occurrence"))
                                seen.add(link.graph_id)
                    out.append(full or it)
                    continue
                if isinstance(it, EventRecord) and it.sparse and it.series_master_id:
                    master = await self.master(it.series_master_id)
                    # no master any more: the series is gone, so is this occurrence (never an empty appointment)
                    out.append(fill_from_master(it, master) if master is not None else Removal(it.id, "deleted"))
                    continue
            except Exception as exc:
                failed[it.id] = FailedItem(it.id, "gather", exc)
                continue
            out.append(it)
        return out + extra

    # ------------------------------------------------------------ removals: deleted, or moved?

    async def _watched_contacts(self) -> set[str]:
        if self._watched_contact_folders is None:
            watched = {await self.reader.default_contact_folder_id()}
            if self.s.settings.sync.contact_folder:
                watched.add(await self.reader.contact_folder_id(self.s.settings.sync.contact_folder))
            self._watched_contact_folders = {f for f in watched if f}
        return self._watched_contact_folders

    async def settle_found(self, found: Item, policy: Policy, *, listed_since: dt.datetime | None = None) -> Item:
        """An item a removal (or a fresh round) did not show, as it is now: still synced, or gone?
        Contacts: in Deleted Items or a folder we do not watch → gone. Events: inside the window
        (so calendarView should have shown it) → deleted (cancel moves events to Deleted Items) —
        unless it was created after the fresh round began listing (`listed_since`, less a margin for
        the two clocks): calendarView could not show what did not exist yet (chaos seed 370)."""
        if isinstance(found, ContactRecord):
            parent = found.parent_folder_id or ""
            if parent and parent == await self.reader.deleted_items_folder_id():
                return Removal(found.id, "deleted")
            if parent not in await self._watched_contacts():
                return Removal(found.id, "moved_out")
            return found
        if isinstance(found, EventRecord):
            if found.is_master:
                return Removal(found.id, "deleted")
            if not found.is_cancelled and overlaps(found, policy.window_start, policy.window_end):
                if (listed_since is not None and found.created is not None
                        and found.created >= listed_since - CLOCK_MARGIN):
                    return found  # newer than the listing: planned like any changed item
                return Removal(found.id, "deleted")
            return found
        return found

    async def _verify_removals(self, items: list[Item], links: dict[str, Link | None], policy: Policy,
                               failed: dict[str, FailedItem]) -> list[Item]:
        if self.kind not in ("calendar", "contacts"):
            return items
        ids = [it.id for it in items if isinstance(it, Removal) and it.reason != "cancelled_occurrence"
               and (lk := links.get(it.id)) is not None and lk.state == "active"]
        if not ids:
            return items
        now = await self.reader.items(self.kind, ids, purpose="verify_removal")
        out: list[Item] = []
        for it in items:
            got = now.get(it.id) if it.id in ids else None
            if got is None:
                out.append(it)
            elif isinstance(got, Exception):
                failed[it.id] = FailedItem(it.id, "gather", got)
            elif isinstance(got, Removal):
                out.append(it)
            else:
                try:
                    out.append(await self.settle_found(got, policy))
                except Exception as exc:
                    failed[it.id] = FailedItem(it.id, "gather", exc)
        return out

    # ------------------------------------------------------------ contacts: sensitivity and stamp

    async def _contact_details(self, items: list[Item], links: dict[str, Link | None], policy: Policy,
                               failed: dict[str, FailedItem]) -> list[Item]:
        """contact: delta documents no $expand, so the sensitivity (private policy) and our PegaId
        stamp (own writes) are read per contact with a documented GET, batched — only for the
        contacts that matter: in scope (category) or linked, and new or changed since the link."""
        wanted = policy.contact_category.lower()

        def matters(it: Item) -> bool:
            if not isinstance(it, ContactRecord):
                return False
            lk = links.get(it.id)
            active = lk is not None and lk.state == "active"
            if not active and wanted not in (c.lower() for c in it.categories):
                return False
            return not active or it.change_key != lk.graph_change_key  # type: ignore[union-attr]

        ids = [it.id for it in items if matters(it)]
        if not ids:
            return items
        now = await self.reader.items("contacts", ids, purpose="contact_details")
        out: list[Item] = []
        for it in items:
            got = now.get(it.id) if it.id in ids else None
            if got is None:
                out.append(it)
            elif isinstance(got, Exception):
                failed[it.id] = FailedItem(it.id, "gather", got)
            else:
                out.append(got)
        return out

    # ------------------------------------------------------------ one page

    async def pega_state(self, link: Link) -> PegaState | None:
        r = self.ctx.records
        try:
            if self.kind == "calendar":
                case, appt = await r.get_appointment(link.pega_id)
                return PegaState(case.id, mapped_from_pega("calendar", appt),
                                 parse_datetime(case.last_update_time), case.status, case.etag or "")
            if self.kind == "email":
                case, email = await r.get_email(link.pega_id)
                return PegaState(case.id, mapped_from_pega("email", email),
                                 parse_datetime(case.last_update_time), case.status, case.etag or "")
            rec, contact = await r.get_contact(link.pega_id)
            return PegaState(rec.id, mapped_from_pega("contacts", contact),
                             parse_datetime(rec.updated_at), rec.status, rec.etag or "")
        except PegaNotFoundError:
            return None

    @staticmethod
    def addresses(it: MessageRecord | EventRecord, folder: str) -> list[str]:
        if isinstance(it, MessageRecord):
            people = ([it.sender] if it.sender and folder != "sentitems" else []) + list(it.to) + list(it.cc)
            if folder == "sentitems":
                people += list(it.bcc)
            return [a.address for a in people if a]
        return ([it.organizer.address] if it.organizer else []) + [a.address for a in it.attendees]

    async def _photos(self, items: list[Item], links: dict[str, Link | None], policy: Policy,
                      plan_: PagePlan) -> dict[str, bytes | None]:
        """Contact photos of new or changed contacts. Optional: a failed GET leaves the photo as the
        link knows it (unchanged) — the contact itself still syncs."""
        photos: dict[str, bytes | None] = {}
        if self.kind != "contacts":
            return photos

        async def photo(it: ContactRecord) -> None:
            try:
                photos[it.id] = await self.reader.contact_photo(it.id)
            except Exception as exc:
                plan_.enrichment_failures += 1
                log.info("contact photo left out: %s", type(exc).__name__)

        def wanted(it: Item) -> bool:
            if not isinstance(it, ContactRecord) or prefilter(it, links.get(it.id), policy) is not None:
                return False
            lk = links.get(it.id)
            return lk is None or lk.state != "active" or it.change_key != lk.graph_change_key

        await bounded(4, [functools.partial(photo, it) for it in items if wanted(it)])  # type: ignore[arg-type]
        return photos

    async def plan_page(self, items: list[Item], policy: Policy, folder: str, *, verified: bool = False) -> PagePlan:
        """Plan every item of a page. `verified`: the items are already as they are now (reconcile,
        item retry), so removals need no second GET."""
        result = PagePlan()
        failed: dict[str, FailedItem] = {}
        items = dedupe(items)
        if self.kind == "calendar":
            items = await self._complete_events(items, failed)
        series_ids = [it.series_master_id for it in items
                      if isinstance(it, EventRecord) and it.is_instance and it.series_master_id]
        links: dict[str, Link | None] = await by_graph_ids(self.s.state.links, self.mb.key,
                                                           [it.id for it in items] + series_ids)
        if not verified:
            items = await self._verify_removals(items, links, policy, failed)
        if self.kind == "contacts":
            items = await self._contact_details(items, links, policy, failed)
        origins = await self._origins(items, links, policy, failed)
        photos = await self._photos(items, links, policy, result)

        def digest_of(it: Item) -> str:
            if it.id in photos:
                return photo_digest(photos[it.id])
            lk = links.get(it.id)
            return str(lk.snapshot.get("photo", "")) if lk else ""

        async def inputs(it: Item) -> tuple[Action, ItemExtras, Item] | FailedItem:
            try:
                return await self._inputs(it, links.get(it.id), origins.get(it.id), policy, folder,
                                          digest_of(it), photos, result)
            except Exception as exc:
                return FailedItem(it.id, "gather", exc)

        outcomes = await bounded(self.s.settings.sync.pega_concurrency,
                                 [functools.partial(inputs, it) for it in items if it.id not in failed])
        for o in outcomes:
            if isinstance(o, FailedItem):
                failed[o.item_id] = o
            else:
                result.planned.append(o)
        result.planned = await self._orphans(result.planned, links, failed)
        result.failed = list(failed.values())
        return result

    async def _inputs(self, it: Item, lk: Link | None, origin: Origin | None, policy: Policy, folder: str,
                      pd: str, photos: dict[str, bytes | None], result: PagePlan
                      ) -> tuple[Action, ItemExtras, Item]:
        pega: PegaState | None = None
        assoc: Association | None = None
        found: bool | None = None
        pre = prefilter(it, lk, policy)
        early = origin_action(it, lk, origin, policy) if pre is None else None
        if early is not None:
            return early, ItemExtras(change_key=getattr(it, "change_key", "")), it
        if lk is not None and needs_pega_state(it, lk, policy, photo_digest=pd):
            pega = await self.pega_state(lk)
        if isinstance(it, (MessageRecord, EventRecord)) and (lk is None or lk.state != "active") and pre is None:
            assoc = await self.assoc.associate(self.addresses(it, folder))
            found = assoc.found
        elif isinstance(it, ContactRecord) and (lk is None or lk.state != "active") and it.emails:
            org = await self.assoc.organization(it.emails[0].address.rsplit("@", 1)[-1])
            assoc = Association(organization_id=org.id) if org else None
        action = plan(it, lk, policy, pega=pega, association_found=found, photo_digest=pd)
        # a photo not read (unchanged contact, or its GET failed) is None: Pega's photo is left as it is
        extras = ItemExtras(change_key=getattr(it, "change_key", ""), association=assoc,
                            photo=(photos[it.id] or b"") if it.id in photos else None,
                            claim_key=await self._claim_key(it) if isinstance(action, Create) else "")
        if isinstance(action, Create) and not self.dry and self._insights_now():
            try:
                extras = replace(extras, insight_fields=await self._insights(it, assoc or Association(), folder))
            except Exception as exc:  # insights are an enrichment: the email/appointment syncs without them
                result.enrichment_failures += 1
                log.info("insights left out of one item: %s", type(exc).__name__)
        return action, extras, it

    def _insights_now(self) -> bool:
        """Compute a new item's insights in the round (they ride in its create), or leave them to the
        insight worker (INSIGHTS_DEFERRED): deferred only while the local model is busy, so a quiet
        host writes complete records at once and a busy one does not make records wait for the model."""
        ins = self.s.settings.insights
        return ins.deferred == "never" or (ins.deferred == "auto" and not insights_busy(ins))

    async def _insights(self, it: Item, assoc: Association, folder: str) -> dict[str, Any] | None:
        """Insights fields for a new received email (with its attachments when it has any) or a new
        appointment; never for private items (nothing of their content goes beyond what policy allows)."""
        if not self.s.settings.insights.enabled:
            return None
        fields = self.ctx.mapping.insights.model_dump()
        kind = insight_kind(it, folder)
        if kind == "email" and isinstance(it, MessageRecord) and self.ctx.email_insights is not None:
            attachments = await self.reader.attachments(it.id, self.s.settings.insights) if it.has_attachments else ()
            return await self.ctx.email_insights(it, assoc, fields=fields, attachments=attachments)
        if kind == "appointment" and isinstance(it, EventRecord) and self.ctx.appointment_insights is not None:
            return await self.ctx.appointment_insights(it, assoc, fields=fields,
                                                       own_domains=(self.mb.upn.rsplit("@", 1)[-1],))
        return None

    async def _organizer_synced(self, address: str) -> bool:
        """Is `address` another onboarded mailbox that syncs its own calendar (its meetings reach Pega
        from it)? Point reads through the UPN index, once per organizer and round — never a listing
        of every mailbox."""
        if address not in self._organizers:
            try:
                m = await self.s.state.mailboxes.get(address) if "@" in address else None
            except ValueError:  # longer than a key may be: not an onboarded mailbox
                m = None
            self._organizers[address] = bool(m is not None and m.active and m.enabled("calendar")
                                              and m.upn.lower() == address and address != self.mb.upn.lower())
        return self._organizers[address]

    async def _origins(self, items: list[Item], links: dict[str, Link | None], policy: Policy,
                       failed: dict[str, FailedItem]) -> dict[str, Origin]:
        """For unlinked items that would be planned on: is it ours (PegaId stamp), part of a series
        written from Pega, or an attendee copy of another onboarded mailbox's meeting?
        Messages carry the stamp on the delta page ($expand), contacts from their detail GET. Events
        cannot (no $expand on calendarView/delta): an instance asks its series master (read once per
        series, usually already read to fill sparse occurrences); a single event we organize costs
        one small GET."""
        out: dict[str, Origin] = {}
        candidates = [it for it in items if not isinstance(it, Removal) and links.get(it.id) is None
                      and prefilter(it, None, policy) is None]
        if self.kind != "calendar":
            for it in candidates:
                if isinstance(it, (MessageRecord, ContactRecord)) and it.pega_stamp:
                    out[it.id] = Origin(pega_stamp=it.pega_stamp)
            return out
        me = self.mb.upn.lower()

        async def one(it: EventRecord) -> None:
            try:
                organizer = it.organizer.address.lower() if it.organizer else ""
                if it.is_organizer is not True and organizer and organizer != me \
                        and await self._organizer_synced(organizer):
                    out[it.id] = Origin(organizer_synced=True)
                    return
                if it.is_instance and it.series_master_id:
                    master_link = links.get(it.series_master_id)
                    if master_link is not None:
                        from_pega = master_link.state == "active" and master_link.snapshot.get(META_BY) == BY_PEGA
                    else:
                        master = await self.master(it.series_master_id)
                        from_pega = bool(master is not None and master.pega_stamp)
                    if from_pega:
                        out[it.id] = Origin(series_from_pega=True)
                    return
                if it.is_organizer is not False:  # only we (or the user) can have stamped it
                    stamp = it.pega_stamp or await self.reader.event_stamp(it.id)
                    if stamp:
                        out[it.id] = Origin(pega_stamp=stamp)
            except Exception as exc:
                failed[it.id] = FailedItem(it.id, "gather", exc)

        await bounded(4, [functools.partial(one, it) for it in candidates if isinstance(it, EventRecord)])
        return out

    async def _orphans(self, planned: list[tuple[Action, ItemExtras, Item]], links: dict[str, Link | None],
                       failed: dict[str, FailedItem]) -> list[tuple[Action, ItemExtras, Item]]:
        """An unlinked contact or event leaving scope may still have a Pega record: its create went
        through but the answer (or the link) was lost. Look those up by external id (one query per
        100) and close/cancel what Pega has — never leave an orphan Active record."""
        if self.kind not in ("calendar", "contacts"):
            return planned
        ids = [a.item_id for a, _, _ in planned
               if isinstance(a, (Skip, NoOp)) and a.reason in ORPHAN_REASONS and a.item_id not in failed
               and links.get(a.item_id) is None]  # never linked: a lost create is the only way Pega has it
        if not ids:
            return planned
        try:
            found = await self.applier.existing_ids(ids)
        except Exception as exc:
            for i in ids:
                failed[i] = FailedItem(i, "gather", exc)
            return [p for p in planned if p[0].item_id not in failed]
        if not found:
            return planned
        out: list[tuple[Action, ItemExtras, Item]] = []
        link_kind = LINK_KIND[self.kind]
        for action, extras, it in planned:
            pega_id = found.get(action.item_id)
            if pega_id is None or action.item_id not in ids:
                out.append((action, extras, it))
                continue
            orphan = Link(mailbox=self.mb.key, kind=link_kind, graph_id=action.item_id, pega_id=pega_id,
                          state="active")
            reason = f"orphan_{action.reason}"
            closing: Action = (Cancel(action.item_id, orphan, reason) if self.kind == "calendar"
                               else Close(action.item_id, orphan, reason))
            out.append((closing, extras, it))
        return out


    async def _claim_key(self, it: Item) -> str:
        """What identifies the item across mailboxes (shared.sync.claims): the internetMessageId, a
        meeting's iCalUId (an occurrence: its series' iCalUId and original start, the same in every
        attendee's copy however the occurrence was read), a contact's e-mail address; "" = none."""
        if isinstance(it, MessageRecord):
            return it.internet_message_id or ""
        if isinstance(it, ContactRecord):
            return it.emails[0].address.lower() if it.emails else ""
        if isinstance(it, EventRecord) and it.attendees:
            if it.is_instance and it.series_master_id and it.original_start is not None:
                master = await self.master(it.series_master_id)
                series = master.ical_uid if master is not None else None
                return f"{series}|{it.original_start.astimezone(dt.UTC).isoformat()}" if series else ""
            return it.ical_uid or ""
        return ""
