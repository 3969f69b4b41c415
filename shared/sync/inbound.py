"""One Exchange → Pega delta round for one mailbox and kind: read, plan, apply, advance.

The round follows the stored delta link page by page. For each page it gathers what the pure
planner needs (links, and only when needed: the series master of sparse occurrences, the
current event behind a removal, Pega's state of a changed linked item, associations, photos),
plans every item, checks delete safety, applies the actions, and only then saves the cursor.

Crash safety does not depend on Graph replaying a nextLink: before a page is fetched the cursor
is marked in flight ("!" + url); a worker that finds such a mark knows the previous one died
with a page half applied, and restarts the round from the last completed deltaLink (everything
already applied plans as NoOp). A round that has read `max_pages` pages stops and enqueues its
own continuation, so a Functions timeout never loses progress. Throttling propagates
(GraphThrottledError → run_message defers by Retry-After); nothing sleeps here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.graph.errors import GraphThrottledError, SyncStateNotFoundError
from shared.pega import Association
from shared.pega.convert import parse_datetime
from shared.pega.errors import PegaNotFoundError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import describe as describe_error
from shared.runtime import Services
from shared.storage.cursors import Cursor
from shared.storage.errors import ConcurrencyError
from shared.storage.health import record_failure, record_success
from shared.storage.links import Link
from shared.storage.mailboxes import Mailbox
from shared.sync.apply import Applied, Applier, ItemExtras
from shared.sync.associate import AssociationCache
from shared.sync.backends import reader_for
from shared.sync.context import SyncContext, sync_context
from shared.sync.lease import RoundLease
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
    DELETING,
    Action,
    Create,
    NoOp,
    Origin,
    PegaState,
    PlannedItem,
    Policy,
    Skip,
    Update,
    describe,
    hold_deletions,
    needs_pega_state,
    origin_action,
    plan,
    prefilter,
)
from shared.sync.records import ContactRecord, EventRecord, Item, MessageRecord, Removal, fill_from_master
from shared.sync.source import (
    DEDICATED_CONTACTS,
    FILTERED_DELTA_CAP,
    Window,
    calendar_window,
    folders_for,
    initial_request,
)
from shared.sync.timezones import parse_iso_utc, zone

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 40
DELETE_SAFETY_MIN_ITEMS = 5
ITEM_CONCURRENCY = 16
INFLIGHT = "!"


@dataclass
class RoundReport:
    mailbox: str
    kind: str
    reason: str
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    seconds: float = 0.0
    skipped_round: str = ""  # why the round did nothing (not onboarded, disabled, ...)
    pages: int = 0
    items: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # created, updated, cancelled, closed, ...
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> n (Skip and NoOp reasons)
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # (item id, field, winner)
    failed: dict[str, str] = field(default_factory=dict)  # item id -> cause (permanent, per item)
    held: bool = False
    held_detail: str = ""
    full_resync: bool = False
    restarted_after_crash: bool = False
    window_advanced: bool = False
    continued: bool = False  # stopped after max_pages and enqueued a continuation
    completed: bool = False  # every folder reached its deltaLink
    graph_requests: int = 0
    graph_requests_by_purpose: dict[str, int] = field(default_factory=dict)
    # folders whose filtered first round hit FILTERED_DELTA_CAP and were started over without the
    # filter, and how many items of those abandoned rounds the unfiltered read sees a second time
    unfiltered_restarts: list[str] = field(default_factory=list)
    reread_items: int = 0

    @property
    def synced(self) -> int:
        return sum(self.outcomes[k] for k in ("created", "updated", "cancelled", "closed"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox, "kind": self.kind, "reason": self.reason, "seconds": round(self.seconds, 3),
            "skipped_round": self.skipped_round, "pages": self.pages, "items": self.items,
            "outcomes": dict(self.outcomes), "skipped": dict(self.skipped), "conflicts": self.conflicts,
            "failed": self.failed, "held": self.held, "held_detail": self.held_detail,
            "full_resync": self.full_resync, "restarted_after_crash": self.restarted_after_crash,
            "window_advanced": self.window_advanced, "continued": self.continued, "completed": self.completed,
            "graph_requests": self.graph_requests, "graph_requests_by_purpose": self.graph_requests_by_purpose,
            "unfiltered_restarts": self.unfiltered_restarts, "reread_items": self.reread_items,
        }


class DeleteSafetyHold(Exception):
    """Internal: the page would close/cancel too much; nothing of it was applied."""


async def _bounded(n: int, calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    sem = asyncio.Semaphore(n)

    async def one(c: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await c()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _dedupe(items: list[Item]) -> list[Item]:
    """Delta may repeat an id within a page; the last representation wins."""
    last: dict[str, int] = {it.id: i for i, it in enumerate(items)}
    return [it for i, it in enumerate(items) if last[it.id] == i]


def _occurrence_date(original_start: str, master: EventRecord) -> str:
    tz_name = ((master.recurrence or {}).get("range") or {}).get("recurrenceTimeZone") or master.original_tz
    when = parse_iso_utc(original_start)
    return when.astimezone(zone(tz_name)).date().isoformat() if when else ""


class _Round:
    def __init__(self, services: Services, ctx: SyncContext, mb: Mailbox, kind: str, report: RoundReport, *,
                 now: dt.datetime, dry: bool = False, allow_mass_delete: bool = False) -> None:
        self.s = services
        self.ctx = ctx
        self.mb = mb
        self.kind = kind
        self.report = report
        self.now = now
        self.dry = dry
        self.allow_mass_delete = allow_mass_delete
        self.reader = reader_for(services, ctx, mb)  # Graph or EWS, per mailbox (shared/sync/backends.py)
        own_domain = mb.upn.rsplit("@", 1)[-1]
        self.assoc = AssociationCache(ctx.records, own_domains=[own_domain])
        self.applier = Applier(ctx.records, services.state.links, mailbox=mb.upn, kind=kind,
                               operator=mb.pega_operator or None)
        self.masters: dict[str, EventRecord | None] = {}
        self._event_links: list[Link] | None = None
        self._linked_active: int | None = None
        self._organizers: set[str] | None = None
        self.deleting_so_far = 0
        self.window = calendar_window(now, past_days=mb.past_days, future_days=services.settings.sync.future_days)
        self.planned: list[PlannedItem] = []

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

    async def _master(self, master_id: str) -> EventRecord | None:
        if master_id not in self.masters:
            self.masters[master_id] = await self.reader.event(master_id)
        return self.masters[master_id]

    async def _linked_events(self) -> list[Link]:
        if self._event_links is None:
            self._event_links = await self.s.state.links.list(self.mb.upn, kind=LINK_KIND["calendar"])
        return self._event_links

    async def _complete_events(self, items: list[Item]) -> list[Item]:
        """Fill sparse occurrences from their master; turn masters' cancelledOccurrences into removals."""
        out: list[Item] = []
        extra: list[Item] = []
        seen = {it.id for it in items}
        for it in items:
            if isinstance(it, EventRecord) and it.is_master:
                self.masters.pop(it.id, None)  # the master changed: read it afresh (with cancelledOccurrences)
                full = await self._master(it.id)
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
                master = await self._master(it.series_master_id)
                # no master any more: the series is gone, so is this occurrence (never an empty appointment)
                out.append(fill_from_master(it, master) if master is not None else Removal(it.id, "deleted"))
                continue
            out.append(it)
        return out + extra

    # ------------------------------------------------------------ one page

    async def _pega_state(self, link: Link) -> PegaState | None:
        r = self.ctx.records
        try:
            if self.kind == "calendar":
                case, appt = await r.get_appointment(link.pega_id)
                return PegaState(case.id, mapped_from_pega("calendar", appt),
                                 parse_datetime(case.last_update_time), case.status)
            if self.kind == "email":
                case, email = await r.get_email(link.pega_id)
                return PegaState(case.id, mapped_from_pega("email", email),
                                 parse_datetime(case.last_update_time), case.status)
            rec, contact = await r.get_contact(link.pega_id)
            return PegaState(rec.id, mapped_from_pega("contacts", contact),
                             parse_datetime(rec.content.get("pxUpdateDateTime")), rec.status)
        except PegaNotFoundError:
            return None

    def _addresses(self, it: MessageRecord | EventRecord, folder: str) -> list[str]:
        if isinstance(it, MessageRecord):
            people = ([it.sender] if it.sender and folder != "sentitems" else []) + list(it.to) + list(it.cc)
            if folder == "sentitems":
                people += list(it.bcc)
            return [a.address for a in people if a]
        return ([it.organizer.address] if it.organizer else []) + [a.address for a in it.attendees]

    async def plan_page(self, items: list[Item], policy: Policy, folder: str
                        ) -> list[tuple[Action, ItemExtras, Item]]:
        items = _dedupe(items)
        if self.kind == "calendar":
            items = await self._complete_events(items)
        series_ids = [it.series_master_id for it in items
                      if isinstance(it, EventRecord) and it.is_instance and it.series_master_id]
        links: dict[str, Link | None] = await by_graph_ids(self.s.state.links, self.mb.upn,
                                                           [it.id for it in items] + series_ids)

        # a linked event "removed" from the window may only have moved out of it: ask Exchange
        if self.kind == "calendar":
            async def verify(i: int, it: Item) -> None:
                lk = links[it.id]
                if isinstance(it, Removal) and it.reason != "cancelled_occurrence" and lk and lk.state == "active":
                    now_rec = await self.reader.event(it.id)
                    if now_rec is not None and not now_rec.is_master:
                        items[i] = now_rec
            await _bounded(4, [functools.partial(verify, i, it) for i, it in enumerate(items)])

        # Sensitivity (and our PegaId) come with every page: the $expand of the first call is part of
        # the delta token (graph.md), and a message without the property simply lacks it in the list.
        origins = await self._origins(items, links, policy)

        photos: dict[str, bytes | None] = {}
        if self.kind == "contacts":
            async def photo(it: ContactRecord) -> None:
                photos[it.id] = await self.reader.contact_photo(it.id)
            wanted = [it for it in items if isinstance(it, ContactRecord) and prefilter(it, links[it.id], policy) is None
                      and (links[it.id] is None or links[it.id].state != "active"  # type: ignore[union-attr]
                           or it.change_key != links[it.id].graph_change_key)]  # type: ignore[union-attr]
            await _bounded(4, [functools.partial(photo, it) for it in wanted])

        def digest_of(it: Item) -> str:
            if it.id in photos:
                return photo_digest(photos[it.id])
            lk = links.get(it.id)
            return str(lk.snapshot.get("photo", "")) if lk else ""

        async def inputs(it: Item) -> tuple[Action, ItemExtras, Item]:
            lk = links[it.id]
            pega: PegaState | None = None
            assoc: Association | None = None
            found: bool | None = None
            pd = digest_of(it)
            origin = origins.get(it.id)
            early = origin_action(it, lk, origin, policy) if prefilter(it, lk, policy) is None else None
            if early is not None:
                return early, ItemExtras(change_key=getattr(it, "change_key", "")), it
            if lk is not None and needs_pega_state(it, lk, policy, photo_digest=pd):
                pega = await self._pega_state(lk)
            if (isinstance(it, (MessageRecord, EventRecord)) and (lk is None or lk.state != "active")
                    and prefilter(it, lk, policy) is None):
                assoc = await self.assoc.associate(self._addresses(it, folder))
                found = assoc.found
            elif isinstance(it, ContactRecord) and (lk is None or lk.state != "active") and it.emails:
                org = await self.assoc.organization(it.emails[0].address.rsplit("@", 1)[-1])
                assoc = Association(organization_id=org.id) if org else None
            action = plan(it, lk, policy, pega=pega, association_found=found, photo_digest=pd)
            extras = ItemExtras(change_key=getattr(it, "change_key", ""), association=assoc,
                                photo=(photos.get(it.id) or b"") if self.kind == "contacts" else None)
            if isinstance(action, Create) and not self.dry:
                extras = replace(extras, insight_fields=await self._insights(it, assoc or Association(), folder))
            return action, extras, it

        return await _bounded(ITEM_CONCURRENCY, [functools.partial(inputs, it) for it in items])

    async def _insights(self, it: Item, assoc: Association, folder: str) -> dict[str, Any] | None:
        """Insights fields for a new received email (with its attachments when it has any) or a new
        appointment; never for private items (nothing of their content goes beyond what policy allows)."""
        if not self.s.settings.insights.enabled:
            return None
        fields = self.ctx.mapping.insights.model_dump()
        if (isinstance(it, MessageRecord) and folder != "sentitems" and not it.is_private
                and self.ctx.email_insights is not None):
            attachments = await self.reader.attachments(it.id, self.s.settings.insights) if it.has_attachments else ()
            return await self.ctx.email_insights(it, assoc, fields=fields, attachments=attachments)
        if isinstance(it, EventRecord) and not it.is_private and self.ctx.appointment_insights is not None:
            return await self.ctx.appointment_insights(it, assoc, fields=fields,
                                                       own_domains=(self.mb.upn.rsplit("@", 1)[-1],))
        return None

    async def _synced_organizers(self) -> set[str]:
        """Other onboarded mailboxes that sync their own calendar: their meetings reach Pega from them."""
        if self._organizers is None:
            me = self.mb.upn.lower()
            self._organizers = {m.upn.lower() for m in await self.s.state.mailboxes.list(active_only=True)
                                if m.enabled("calendar") and m.upn.lower() != me}
        return self._organizers

    async def _origins(self, items: list[Item], links: dict[str, Link | None], policy: Policy) -> dict[str, Origin]:
        """For unlinked items that would be planned on: is it ours (PegaId stamp), part of a series
        written from Pega, or an attendee copy of another onboarded mailbox's meeting?
        Messages and contacts carry the stamp on the delta page ($expand). Events cannot (no $expand
        on calendarView/delta): an instance asks its series master (read once per series, usually
        already read to fill sparse occurrences); a single event we organize costs one small GET."""
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
            organizer = it.organizer.address.lower() if it.organizer else ""
            if it.is_organizer is not True and organizer and organizer != me \
                    and organizer in await self._synced_organizers():
                out[it.id] = Origin(organizer_synced=True)
                return
            if it.is_instance and it.series_master_id:
                master_link = links.get(it.series_master_id)
                if master_link is not None:
                    from_pega = master_link.state == "active" and master_link.snapshot.get(META_BY) == BY_PEGA
                else:
                    master = await self._master(it.series_master_id)
                    from_pega = bool(master is not None and master.pega_stamp)
                if from_pega:
                    out[it.id] = Origin(series_from_pega=True)
                return
            if it.is_organizer is not False:  # only we (or the user) can have stamped it
                stamp = it.pega_stamp or await self.reader.event_stamp(it.id)
                if stamp:
                    out[it.id] = Origin(pega_stamp=stamp)

        await _bounded(4, [functools.partial(one, it) for it in candidates if isinstance(it, EventRecord)])
        return out

    async def _linked_active_count(self) -> int:
        if self._linked_active is None:
            links = await self.s.state.links.list(self.mb.upn, kind=LINK_KIND[self.kind])
            self._linked_active = sum(1 for lk in links if lk.state == "active")
        return self._linked_active

    async def apply_page(self, planned: list[tuple[Action, ItemExtras, Item]]) -> None:
        actions = [a for a, _, _ in planned]
        deleting = sum(1 for a in actions if isinstance(a, DELETING))
        if deleting and not self.allow_mass_delete:
            linked = await self._linked_active_count()
            share = self.s.settings.sync.delete_safety_share
            if hold_deletions(actions, linked_active=linked, share=share, min_items=DELETE_SAFETY_MIN_ITEMS,
                              already=self.deleting_so_far):
                raise DeleteSafetyHold(f"round would close/cancel {self.deleting_so_far + deleting} of {linked} "
                                       f"linked {self.kind} items (limit {share:.0%}); held, nothing applied")
        self.deleting_so_far += deleting

        creates = [a for a in actions if isinstance(a, Create) and a.relink is None]
        existing = await self.applier.existing_ids([a.item_id for a in creates])
        adopt: dict[str, str] = {}
        fresh = [a for a in creates if a.item_id not in existing]
        if self.kind == "email" and fresh:
            same = await self.applier.same_messages([str(a.mapped.get("internet_message_id") or "") for a in fresh])
            adopt = {a.item_id: same[a.mapped["internet_message_id"]] for a in fresh
                     if a.mapped.get("internet_message_id") in same}
        elif self.kind == "contacts":
            ext_prop = self.ctx.mapping.contact.external_id
            for a in fresh:
                email = str(a.mapped.get("email") or "")
                ref = await self.assoc.contact(email) if email else None
                if ref is not None and not ref.row.get(ext_prop):
                    adopt[a.item_id] = ref.id

        async def one(action: Action, extras: ItemExtras) -> Applied | None:
            try:
                if isinstance(action, Create) and action.relink is None:
                    pid = existing.get(action.item_id)
                    return await self.applier.apply(
                        action, replace(extras, existing_pega_id=pid, adopt_pega_id=adopt.get(action.item_id)),
                        absent_in_pega=pid is None)
                return await self.applier.apply(action, extras)
            except TransientError:
                raise
            except PermanentError as exc:
                self.report.failed[action.item_id] = describe_error(exc)
                log.warning("item %s of %s/%s failed permanently: %s", action.item_id[-12:], self.mb.upn,
                            self.kind, type(exc).__name__)
                return None

        results = await _bounded(ITEM_CONCURRENCY, [functools.partial(one, a, e) for a, e, _ in planned])
        await self.applier.flush_links()
        for (action, _, _), res in zip(planned, results, strict=True):
            self.report.items += 1
            if isinstance(action, (Skip, NoOp)):
                self.report.skipped[action.reason] += 1
            if res is not None:
                self.report.outcomes[res.outcome] += 1
            if isinstance(action, Update):
                self.report.conflicts.extend((action.item_id, c.field, c.winner) for c in action.conflicts)

    # ------------------------------------------------------------ one folder

    async def _save(self, cursor: Cursor) -> Cursor:
        return await self.s.state.cursors.save(cursor)

    async def _start_url(self, folder: str, window: Window | None, *, unfiltered: bool = False) -> str:
        """The first call of a folder without a token; "" when the folder does not exist (yet).
        `unfiltered`: an email folder known to hold more than FILTERED_DELTA_CAP mails in the window."""
        folder_id = ""
        if self.kind == "contacts" and folder == DEDICATED_CONTACTS:
            folder_id = await self.reader.contact_folder_id(self.s.settings.sync.contact_folder)
            if not folder_id:
                return ""
        path, params = initial_request(self.kind, folder, self.mb.upn, now=self.now, past_days=self.mb.past_days,
                                       window=window, folder_id=folder_id, unfiltered=unfiltered)
        return self.reader.url_of(path, params)

    async def run_folder(self, folder: str, *, full_resync: bool, budget: int) -> tuple[int, bool]:
        """Pages until the deltaLink (True) or the budget is used up (False)."""
        cursors = self.s.state.cursors
        cursor = await cursors.get(self.mb.upn, self.kind, folder) or Cursor(self.mb.upn.lower(), self.kind, folder)
        window: Window | None = None
        if self.kind == "calendar":
            window = self.window
            ws, we = cursor.window_start, cursor.window_end
            if ws is not None and we is not None and not full_resync:
                if ws.astimezone(dt.UTC) < window.start:
                    self.report.window_advanced = True  # a new day: a new window, reconciled by a fresh round
                    cursor = replace(cursor, next_link="", delta_link="")
                elif cursor.next_link or cursor.delta_link:
                    window = Window(ws.astimezone(dt.UTC), we.astimezone(dt.UTC))
        if full_resync:
            cursor = replace(cursor, next_link="", delta_link="")
        if cursor.next_link.startswith(INFLIGHT):
            self.report.restarted_after_crash = True
            log.warning("%s/%s/%s: previous round died mid-page; restarting from the last delta link",
                        self.mb.upn, self.kind, folder)
            cursor = replace(cursor, next_link="")
        url = cursor.next_link or cursor.delta_link
        if not url:
            url = await self._start_url(folder, window, unfiltered=cursor.unfiltered)
            cursor = replace(cursor, initial_items=0)  # a first round starts (again): count it afresh
        if not url:
            log.info("%s/%s/%s: the folder does not exist yet; nothing to read", self.mb.upn, self.kind, folder)
            return 0, True
        backfill = not cursor.delta_link and cursor.rounds_completed == 0
        pages = 0
        resynced = False
        policy = self.policy(folder, window)
        while True:
            cursor = await self._save(replace(cursor, next_link=INFLIGHT + url))
            try:
                page = await self.reader.page(url, self.kind)
            except SyncStateNotFoundError:
                if resynced:
                    raise
                resynced = True
                self.report.full_resync = True
                log.info("%s/%s/%s: delta token expired; full resync of the window", self.mb.upn, self.kind, folder)
                url = await self._start_url(folder, window, unfiltered=cursor.unfiltered)
                cursor = await self._save(replace(cursor, next_link="", delta_link="", initial_items=0))
                if not url:
                    return pages, True
                continue
            except TransientError:
                # the page was not delivered: keep the position (no crash replay needed)
                await self._save(replace(cursor, next_link=url if url != cursor.delta_link else ""))
                raise
            planned = await self.plan_page(page.items, policy, folder)
            await self.apply_page(planned)
            pages += 1
            self.report.pages += 1
            if self.kind == "email" and not cursor.unfiltered and not cursor.delta_link:
                # a filtered first round (backfill or full resync): Graph stops it at FILTERED_DELTA_CAP
                cursor = replace(cursor, initial_items=cursor.initial_items + len(page.items))
                if cursor.initial_items >= FILTERED_DELTA_CAP:
                    url, cursor = await self._restart_unfiltered(folder, cursor)
                    if pages >= budget:
                        return pages, False
                    continue
            if page.next_link:
                url = page.next_link
                cursor = await self._save(replace(cursor, next_link=url))
                if backfill:
                    await self._backfill_progress(folder, f"in_progress:{pages}")
                if pages >= budget:
                    return pages, False
                continue
            cursor = await self._save(replace(
                cursor, next_link="", delta_link=page.delta_link, rounds_completed=cursor.rounds_completed + 1,
                initial_items=0,
                last_round_at=dt.datetime.now(dt.UTC),
                window_start=window.start if window else None, window_end=window.end if window else None))
            if backfill:
                await self._backfill_progress(folder, "done")
            return pages, True

    async def _restart_unfiltered(self, folder: str, cursor: Cursor) -> tuple[str, Cursor]:
        """The filtered first round of this folder saw FILTERED_DELTA_CAP messages, so Graph left out
        the older ones in the window: read the whole folder instead, from now on (the cursor remembers
        it, for later full resyncs too). Items already applied come again and plan as NoOp (links, and
        the external-id lookup before creates); mail older than the window is skipped (outside_window).
        Cost: the folder's whole history is read once."""
        log.warning("%s/%s/%s: the filtered first round reached Graph's cap of %s messages; reading the "
                    "whole folder without the receivedDateTime filter", self.mb.upn, self.kind, folder,
                    FILTERED_DELTA_CAP)
        self.report.unfiltered_restarts.append(folder)
        self.report.reread_items += cursor.initial_items
        url = await self._start_url(folder, None, unfiltered=True)
        cursor = await self._save(replace(cursor, unfiltered=True, initial_items=0, next_link=url, delta_link=""))
        return url, cursor

    async def _backfill_progress(self, folder: str, state: str) -> None:
        key = self.kind if self.kind != "email" else f"email:{folder}"
        for _ in range(3):
            mb = await self.s.state.mailboxes.get(self.mb.upn)
            if mb is None or mb.backfill.get(key) == state:
                return
            try:
                await self.s.state.mailboxes.put(replace(mb, backfill={**mb.backfill, key: state}))
                return
            except ConcurrencyError:
                continue

    # ------------------------------------------------------------ dry run

    async def dry_folder(self, folder: str, *, max_pages: int) -> None:
        cursor = await self.s.state.cursors.get(self.mb.upn, self.kind, folder)
        window: Window | None = self.window if self.kind == "calendar" else None
        url = ""
        if cursor is not None and cursor.delta_link:
            if self.kind != "calendar":
                url = cursor.delta_link
            elif (cursor.window_start is not None and cursor.window_end is not None
                  and cursor.window_start.astimezone(dt.UTC) >= self.window.start):
                window, url = Window(cursor.window_start, cursor.window_end), cursor.delta_link
        url = url or await self._start_url(folder, window, unfiltered=cursor is not None and cursor.unfiltered)
        if not url:
            return
        policy = self.policy(folder, window)
        for _ in range(max_pages):
            page = await self.reader.page(url, self.kind)
            for action, _, _ in await self.plan_page(page.items, policy, folder):
                self.planned.append(describe(action))
            if not page.next_link:
                return
            url = page.next_link



async def _mailbox_or_reason(services: Services, mailbox: str, kind: str) -> tuple[Mailbox | None, str]:
    if kind not in ("email", "calendar", "contacts"):
        return None, f"unknown kind {kind!r}"
    mb = await services.state.mailboxes.get(mailbox)
    if mb is None:
        return None, "not_onboarded"
    if not mb.active:
        return None, f"mailbox_{mb.status}"
    if not mb.enabled(kind):
        return None, "kind_disabled"
    return mb, ""


async def run_delta_round(services: Services, *, mailbox: str, kind: str, reason: str, full_resync: bool = False,
                          max_pages: int | None = None, enqueue_continuation: bool = True,
                          allow_mass_delete: bool = False, now: dt.datetime | None = None,
                          context: SyncContext | None = None) -> RoundReport:
    """Run one delta round (or the next `max_pages` pages of it) for `mailbox` and `kind`.

    Returns what happened. Raises TransientError subclasses for throttling / unavailability /
    a concurrent round (the queue defers the message), PermanentError for what retrying cannot fix.
    """
    started = time.perf_counter()
    report = RoundReport(mailbox=mailbox.lower(), kind=kind, reason=reason)
    mb, why = await _mailbox_or_reason(services, mailbox, kind)
    if mb is None:
        report.skipped_round = why
        log.info("delta round for %s/%s skipped: %s", mailbox, kind, why)
        return report
    await services.state.coalescer.begin_round(mb.upn, kind)
    ctx = context or await sync_context(services)
    rnd = _Round(services, ctx, mb, kind, report, now=now or dt.datetime.now(dt.UTC),
                 allow_mass_delete=allow_mass_delete)
    lease = await RoundLease.open(services.state.tables, mb.upn, kind)
    await lease.acquire()
    budget = max_pages or DEFAULT_MAX_PAGES
    try:
        done_all = True
        for folder in folders_for(kind, contact_folder=services.settings.sync.contact_folder):
            used, done = await rnd.run_folder(folder, full_resync=full_resync, budget=budget)
            budget -= used
            await lease.renew()
            if not done:
                done_all = False
                break
        report.completed = done_all
        if not done_all:
            report.continued = True
            if enqueue_continuation:
                await services.queues.send(names.DELTA_WORK, Envelope(type="delta.sync", body={
                    "mailbox": mb.upn, "kind": kind, "reason": reason, "full_resync": False, "continuation": True}))
    except DeleteSafetyHold as hold:
        report.held, report.held_detail = True, str(hold)
        log.warning("%s/%s: %s", mb.upn, kind, hold)
        await _reset_inflight(services, mb.upn, kind)
        await services.state.health.update(mb.upn, kind, record_failure(f"delete safety hold: {hold}"))
        report.graph_requests = rnd.reader.requests
        report.seconds = time.perf_counter() - started
        return report
    except Exception as exc:
        report.graph_requests = rnd.reader.requests
        try:
            await services.state.health.update(mb.upn, kind, record_failure(
                describe_error(exc), throttled=isinstance(exc, GraphThrottledError)))
        except Exception:
            log.warning("could not record the failure of %s/%s in health", mb.upn, kind)
        raise
    finally:
        await lease.release()
    report.graph_requests = rnd.reader.requests
    report.graph_requests_by_purpose = dict(rnd.reader.by_purpose)
    skipped = dict(report.skipped)
    if report.failed:
        skipped["failed"] = len(report.failed)
    if report.conflicts:
        skipped["conflict"] = len(report.conflicts)
    await services.state.health.update(mb.upn, kind, record_success(synced=report.synced, skipped=skipped))
    report.seconds = time.perf_counter() - started
    log.info("delta round %s/%s (%s): %s pages, %s items, %s", mb.upn, kind, reason, report.pages, report.items,
             dict(report.outcomes))
    return report


async def _reset_inflight(services: Services, mailbox: str, kind: str) -> None:
    """After a hold, the next round re-reads from the last completed delta link (a held page was read)."""
    for folder in folders_for(kind, contact_folder=services.settings.sync.contact_folder):
        cursor = await services.state.cursors.get(mailbox, kind, folder)
        if cursor is not None and cursor.next_link:
            await services.state.cursors.save(replace(cursor, next_link=""))


async def dry_run(services: Services, *, mailbox: str, kind: str, max_pages: int = 200,
                  context: SyncContext | None = None) -> list[PlannedItem]:
    """What the next round would do, item by item (id, action, reason). Reads Graph and Pega,
    writes nothing (no cursor, link, health or Pega change; no insights computed)."""
    mb, why = await _mailbox_or_reason(services, mailbox, kind)
    if mb is None:
        return [PlannedItem("", "skip", why)]
    ctx = context or await sync_context(services)
    rnd = _Round(services, ctx, mb, kind, RoundReport(mailbox=mb.upn, kind=kind, reason="dry_run"),
                 now=dt.datetime.now(dt.UTC), dry=True)
    for folder in folders_for(kind, contact_folder=services.settings.sync.contact_folder):
        await rnd.dry_folder(folder, max_pages=max_pages)
    return rnd.planned
