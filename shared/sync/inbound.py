"""One Exchange → Pega delta round for one mailbox and kind: read, plan, apply, advance.

The round follows the stored delta link page by page. For each page it gathers what the pure
planner needs (shared.sync.gather: item by item, failures isolated), checks delete safety, applies
the actions, parks the items that failed (shared.sync.item_retry: retried on their own, listed in
health) and only then saves the cursor — so a crash replays a page and never skips one, and one bad
item never blocks the mailbox.

Crash safety does not depend on Graph replaying a nextLink: before a page's items are applied the
cursor is marked in flight ("!" + url; a page with no items needs no mark); a worker that finds
such a mark knows the previous one died with a page half applied, and restarts the round from the
last completed deltaLink (everything already applied plans as NoOp). A page that was read but could not be applied because of a
transient condition (a service-wide outage, a lost lease) is NOT a crash: the cursor keeps that
page's link and the next try reads it again, so a backfill converges under sustained throttling.
A round that has read `max_pages` pages stops and enqueues its own continuation, so a Functions
timeout never loses progress. Throttling propagates (GraphThrottledError → run_message defers by
Retry-After); nothing sleeps here.

One round at a time per mailbox and kind: a short lease renewed by a heartbeat
(shared.sync.lease), checked before each page is applied. A fresh round (no token) reconciles the
deletions it cannot see (shared.sync.reconcile).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from shared.errors import TransientError
from shared.graph.errors import GraphNotFoundError, GraphThrottledError, SyncStateNotFoundError
from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import describe as describe_error
from shared.runtime import Services
from shared.storage.cursors import Cursor
from shared.storage.errors import ConcurrencyError
from shared.storage.health import record_failure, record_success
from shared.storage.leases import Lease, LeaseLostError
from shared.storage.mailboxes import Mailbox
from shared.sync import insight_jobs, item_retry
from shared.sync.apply import Applied, Applier, ItemExtras
from shared.sync.backends import reader_for
from shared.sync.claims import landing_window
from shared.sync.context import SyncContext, sync_context
from shared.sync.folders import INBOX, SENT, mail_folders
from shared.sync.folders import forget as forget_folders
from shared.sync.gather import FailedItem, PageGatherer, PagePlan, bounded
from shared.sync.lease import round_lease
from shared.sync.mapping import LINK_KIND
from shared.sync.planner import (
    DELETING,
    Action,
    Create,
    NoOp,
    PlannedItem,
    Skip,
    Update,
    describe,
    hold_deletions,
)
from shared.sync.reconcile import RECONCILE_MAX, SeenSet, in_scope
from shared.sync.records import ContactRecord, Item, Removal
from shared.sync.source import (
    DEDICATED_CONTACTS,
    FILTERED_DELTA_CAP,
    Window,
    calendar_window,
    folders_for,
    initial_request,
    stagger,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 40
DELETE_SAFETY_MIN_ITEMS = 5
INFLIGHT = "!"
# A page where at least this many items (and at least half of them) failed transiently is a
# service-wide condition (Pega or Graph down or throttling): the page is retried as a whole later
# instead of parking every item of it.
SERVICE_WIDE_MIN = 3


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
    failed: dict[str, str] = field(default_factory=dict)  # item id -> cause (parked: retried on its own)
    enrichment_failures: int = 0  # photos / attachments / insights left out of synced items
    held: bool = False
    held_detail: str = ""
    full_resync: bool = False
    restarted_after_crash: bool = False
    window_advanced: bool = False
    continued: bool = False  # stopped after max_pages and enqueued a continuation
    completed: bool = False  # every folder reached its deltaLink
    reconciled: int = 0  # links verified after a fresh round
    reconcile_capped: bool = False
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
            "failed": self.failed, "enrichment_failures": self.enrichment_failures,
            "held": self.held, "held_detail": self.held_detail,
            "full_resync": self.full_resync, "restarted_after_crash": self.restarted_after_crash,
            "window_advanced": self.window_advanced, "continued": self.continued, "completed": self.completed,
            "reconciled": self.reconciled, "reconcile_capped": self.reconcile_capped,
            "graph_requests": self.graph_requests, "graph_requests_by_purpose": self.graph_requests_by_purpose,
            "unfiltered_restarts": self.unfiltered_restarts, "reread_items": self.reread_items,
        }


class DeleteSafetyHold(Exception):
    """Internal: the page would close/cancel too much; nothing of it was applied."""


class _Round:
    def __init__(self, services: Services, ctx: SyncContext, mb: Mailbox, kind: str, report: RoundReport, *,
                 now: dt.datetime, dry: bool = False, allow_mass_delete: bool = False,
                 lease: Lease | None = None) -> None:
        self.s = services
        self.ctx = ctx
        self.mb = mb
        self.kind = kind
        self.report = report
        self.now = now
        self.dry = dry
        self.allow_mass_delete = allow_mass_delete
        self.lease = lease
        self.reader = reader_for(services, ctx, mb)  # Graph or EWS, per mailbox (shared/sync/backends.py)
        self.applier = Applier(ctx.records, services.state.links, mailbox=mb.key, kind=kind,
                               operator=mb.pega_operator or None, claims=services.state.claims,
                               landing_window=landing_window(services.settings.pega.timeout_seconds))
        self.gather = PageGatherer(services, ctx, mb, kind, self.reader, self.applier, now=now, dry=dry)
        self._linked_active: int | None = None
        self.deleting_so_far = 0
        self.window = calendar_window(now, past_days=mb.past_days, future_days=services.settings.sync.future_days,
                                      offset=stagger(mb.key))
        self.planned: list[PlannedItem] = []

    def policy(self, folder: str, window: Window | None) -> Any:
        return self.gather.policy(folder, window)

    async def folders(self) -> tuple[str, ...]:
        """The folders (cursor keys) this round reads (shared.sync.folders for mail)."""
        if self.kind != "email":
            return folders_for(self.kind, contact_folder=self.s.settings.sync.contact_folder)
        return await mail_folders(self.mb.key, self.s.settings.sync.mail_folders, children=self.reader.child_folders,
                                  top_level=self.reader.top_level_folders, resolve=self.reader.well_known_folder_id)

    # ------------------------------------------------------------ applying a page

    async def _linked_active_count(self) -> int:
        if self._linked_active is None:
            links = await self.s.state.links.list(self.mb.key, kind=LINK_KIND[self.kind])
            self._linked_active = sum(1 for lk in links if lk.state == "active")
        return self._linked_active

    async def apply_page(self, page: PagePlan, folder: str, *, park: bool = True) -> list[FailedItem]:
        """Apply a planned page; returns the items that failed (parked unless `park` is False)."""
        if self.lease is not None:
            self.lease.check()  # a lost lease: another round owns this mailbox now — write nothing
        planned = page.planned
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
        adopt: dict[str, str] = {}
        if self.kind == "email":
            # by Exchange id (a replay), and by internetMessageId (another mailbox's copy): one call
            existing, same = await self.applier.existing_emails(
                [a.item_id for a in creates], [str(a.mapped.get("internet_message_id") or "") for a in creates])
            adopt = {a.item_id: same[a.mapped["internet_message_id"]] for a in creates
                     if a.item_id not in existing and a.mapped.get("internet_message_id") in same}
        else:
            existing = await self.applier.existing_ids([a.item_id for a in creates])

        async def one(action: Action, extras: ItemExtras) -> Applied | FailedItem:
            if self.lease is not None and not isinstance(action, (Skip, NoOp)):
                # before every write, not only every page: a page of slow Pega writes on a loaded host
                # can outlast the lease, and a round that took over may have seen this item removed
                self.lease.check()
            try:
                if isinstance(action, Create) and action.relink is None:
                    pid = existing.get(action.item_id)
                    adopt_id = adopt.get(action.item_id)
                    if pid is None and self.kind == "contacts" and action.mapped.get("email"):
                        # a contact Pega already has (another rep's, whatever external id it carries)
                        ref = await self.gather.assoc.contact(str(action.mapped["email"]))
                        adopt_id = ref.id if ref is not None else None
                    return await self.applier.apply(
                        action, replace(extras, existing_pega_id=pid, adopt_pega_id=adopt_id),
                        absent_in_pega=pid is None)
                return await self.applier.apply(action, extras)
            except Exception as exc:
                return FailedItem(action.item_id, "apply", exc)

        results = await bounded(self.s.settings.sync.pega_concurrency,
                                [functools.partial(one, a, e) for a, e, _ in planned])
        # queued before the links: a failure here replays the page, whose creates find their records
        # by external id and queue the jobs again (shared.sync.insight_jobs)
        jobs = self._insight_jobs(planned, results, folder)
        if jobs:
            await insight_jobs.enqueue(self.s, self.mb.key, jobs)
        await self.applier.flush_links()
        failed = list(page.failed)
        self.report.enrichment_failures += page.enrichment_failures
        for (action, _, _), res in zip(planned, results, strict=True):
            self.report.items += 1
            if isinstance(res, FailedItem):
                failed.append(res)
                continue
            if isinstance(action, (Skip, NoOp)):
                self.report.skipped[action.reason] += 1
            self.report.outcomes[res.outcome] += 1
            if isinstance(action, Update):
                self.report.conflicts.extend((action.item_id, c.field, c.winner) for c in action.conflicts)
        self.report.items += len(page.failed)
        if park and failed:
            await self._park(failed, folder, total=len(planned) + len(page.failed))
        return failed

    def _insight_jobs(self, planned: list[tuple[Action, ItemExtras, Item]], results: list[Applied | FailedItem],
                      folder: str) -> list[insight_jobs.InsightJob]:
        """The deferred insights of the page's new records: those the round did not compute (the
        model was busy, shared.sync.gather) — a record adopted from another mailbox got its insights
        from the mailbox that created it."""
        ins = self.s.settings.insights
        if self.dry or not ins.enabled or ins.deferred == "never":
            return []
        own_domain = self.mb.upn.rsplit("@", 1)[-1]
        out: list[insight_jobs.InsightJob] = []
        for (action, extras, it), res in zip(planned, results, strict=True):
            if (isinstance(action, Create) and isinstance(res, Applied) and res.pega_id
                    and extras.insight_fields is None and res.outcome in ("created", "updated", "unchanged")):
                job = insight_jobs.job_for(it, folder, res.pega_id, extras.association, own_domain=own_domain)
                if job is not None:
                    out.append(job)
        return out

    async def _park(self, failed: list[FailedItem], folder: str, *, total: int) -> None:
        transient = [f for f in failed if isinstance(f.error, TransientError)]
        if len(transient) >= max(SERVICE_WIDE_MIN, math.ceil(total / 2)):
            # not this item's problem: the service is down or throttling — retry the page as a whole
            raise transient[0].error
        for f in failed:
            self.report.failed[f.item_id] = describe_error(f.error)
            log.warning("item %s of a %s round failed (%s); parked for its own retry", f.item_id[-12:],
                        self.kind, type(f.error).__name__)
            if not self.dry:
                await item_retry.park(self.s, mailbox=self.mb.key, kind=self.kind, folder=folder,
                                      item_id=f.item_id, stage=f.stage, error=f.error)

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
        path, params = initial_request(self.kind, folder, self.mb.key, now=self.now, past_days=self.mb.past_days,
                                       window=window, folder_id=folder_id, unfiltered=unfiltered)
        return self.reader.url_of(path, params)

    def _seen(self, folder: str) -> SeenSet | None:
        if self.kind == "email":
            return None  # removed mail keeps its Pega case: nothing to reconcile
        ts = self.s.state.tables
        return SeenSet(ts.table(ts.names.cursors), self.mb.key, self.kind, folder)

    async def run_folder(self, folder: str, *, full_resync: bool, budget: int) -> tuple[int, bool]:
        """Pages until the deltaLink (True) or the budget is used up (False)."""
        cursors = self.s.state.cursors
        cursor = await cursors.get(self.mb.key, self.kind, folder) or Cursor(self.mb.key, self.kind, folder)
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
            log.warning("a %s round died mid-page; restarting from the last delta link", self.kind)
            cursor = replace(cursor, next_link="")
        seen = self._seen(folder)
        url = cursor.next_link or cursor.delta_link
        fresh = False
        if not url:
            url = await self._start_url(folder, window, unfiltered=cursor.unfiltered)
            cursor = replace(cursor, initial_items=0)  # a first round starts (again): count it afresh
            fresh = True
            if seen is not None:
                await seen.save()  # a fresh round of this folder is under way (even across invocations)
        elif seen is not None and cursor.next_link:
            fresh = await seen.load()  # continuing a round: fresh if a fresh one was started
        if not url:
            log.info("the %s folder does not exist yet; nothing to read", self.kind)
            if seen is not None and fresh:
                await seen.clear()
            return 0, True
        backfill = not cursor.delta_link and cursor.rounds_completed == 0
        pages = 0
        resynced = False
        policy = self.policy(folder, window)
        while True:
            try:
                page = await self.reader.page(url, self.kind)
            except GraphNotFoundError:
                if self.kind != "email" or folder in (INBOX, SENT):
                    raise
                # a mail folder under the Inbox was deleted (or moved out of the synced tree): stop reading it
                log.info("a synced mail folder no longer exists; its cursor is dropped")
                await self.s.state.cursors.delete(cursor)
                forget_folders(self.mb.key)
                if seen is not None and fresh:
                    await seen.clear()
                return pages, True
            except SyncStateNotFoundError:
                if resynced:
                    raise
                resynced = True
                self.report.full_resync = True
                log.info("a %s delta token expired; full resync of the window", self.kind)
                url = await self._start_url(folder, window, unfiltered=cursor.unfiltered)
                cursor = await self._save(replace(cursor, next_link="", delta_link="", initial_items=0))
                fresh = True
                if seen is not None:
                    seen.ids, seen.started_at = set(), None  # the listing starts again now
                    await seen.save()
                if not url:
                    return pages, True
                continue
            except TransientError:
                # the page was not delivered: keep the position (no crash replay needed)
                keep = url if url != cursor.delta_link else ""
                if cursor.next_link != keep:
                    await self._save(replace(cursor, next_link=keep))
                raise
            if page.items:
                # marked in flight only now that there is something to apply: a page with no items
                # (the usual answer to a notification for the other folder) costs no extra write
                cursor = await self._save(replace(cursor, next_link=INFLIGHT + url))
            try:
                planned = await self.gather.plan_page(page.items, policy, folder)
                await self.apply_page(planned, folder)
            except TransientError as exc:
                # read but not applied (service-wide trouble): next time read THIS page again — never a
                # restart from page 1. A lost lease means another round owns the cursor: leave it alone.
                if not isinstance(exc, LeaseLostError):
                    try:
                        await self._save(replace(cursor, next_link=url if url != cursor.delta_link else ""))
                    except ConcurrencyError:
                        pass
                raise
            pages += 1
            self.report.pages += 1
            if fresh and seen is not None:
                seen.add(it.id for it in page.items)
                await seen.save()
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
            if fresh and seen is not None:
                await self._reconcile(folder, seen, policy)
            cursor = await self._save(replace(
                cursor, next_link="", delta_link=page.delta_link, rounds_completed=cursor.rounds_completed + 1,
                initial_items=0,
                last_round_at=dt.datetime.now(dt.UTC),
                window_start=window.start if window else None, window_end=window.end if window else None))
            if fresh and seen is not None:
                await seen.clear()
            if backfill:
                await self._backfill_progress(folder, "done")
            return pages, True

    async def _reconcile(self, folder: str, seen: SeenSet, policy: Any) -> None:
        """Verify every active link in scope the fresh round did not see (module doc of reconcile)."""
        if seen.overflow:
            log.warning("a fresh %s round saw too many items to reconcile; skipped", self.kind)
            self.report.reconcile_capped = True
            return
        links = await self.s.state.links.list(self.mb.key, kind=LINK_KIND[self.kind])
        folder_id = ""
        if self.kind == "contacts" and self.s.settings.sync.contact_folder:
            folder_id = await self.reader.contact_folder_id(self.s.settings.sync.contact_folder)
        ids = [lk.graph_id for lk in links
               if in_scope(lk, kind=self.kind, window_start=policy.window_start, window_end=policy.window_end,
                           folder=folder, dedicated_id=folder_id)
               and not seen.saw(lk.graph_id)]
        if len(ids) > RECONCILE_MAX:
            self.report.reconcile_capped = True
            ids = ids[:RECONCILE_MAX]
        for i in range(0, len(ids), 100):
            chunk = ids[i:i + 100]
            got = await self.reader.items(self.kind, chunk, purpose="reconcile")
            items: list[Item] = []
            failed: list[FailedItem] = []
            for item_id in chunk:
                found = got.get(item_id)
                if isinstance(found, Exception) or found is None:
                    failed.append(FailedItem(item_id, "gather", found or TransientError("no answer")))
                elif isinstance(found, Removal):
                    items.append(found)
                else:
                    try:
                        items.append(await self.gather.settle_found(found, policy, listed_since=seen.started_at))
                    except Exception as exc:
                        failed.append(FailedItem(item_id, "gather", exc))
            page = await self.gather.plan_page(items, policy, folder, verified=True)
            page.failed.extend(failed)
            self.report.reconciled += len(chunk)
            await self.apply_page(page, folder)

    async def _restart_unfiltered(self, folder: str, cursor: Cursor) -> tuple[str, Cursor]:
        """The filtered first round of this folder saw FILTERED_DELTA_CAP messages, so Graph left out
        the older ones in the window: read the whole folder instead, from now on (the cursor remembers
        it, for later full resyncs too). Items already applied come again and plan as NoOp (links, and
        the external-id lookup before creates); mail older than the window is skipped (outside_window).
        Cost: the folder's whole history is read once."""
        log.warning("a filtered first %s round reached Graph's cap of %s messages; reading the whole folder "
                    "without the receivedDateTime filter", self.kind, FILTERED_DELTA_CAP)
        self.report.unfiltered_restarts.append(folder)
        self.report.reread_items += cursor.initial_items
        url = await self._start_url(folder, None, unfiltered=True)
        cursor = await self._save(replace(cursor, unfiltered=True, initial_items=0, next_link=url, delta_link=""))
        return url, cursor

    async def _backfill_progress(self, folder: str, state: str) -> None:
        key = self.kind if self.kind != "email" else f"email:{folder}"
        for _ in range(3):
            mb = await self.s.state.mailboxes.get(self.mb.key)
            if mb is None or mb.backfill.get(key) == state:
                return
            try:
                await self.s.state.mailboxes.put(replace(mb, backfill={**mb.backfill, key: state}))
                return
            except ConcurrencyError:
                continue

    # ------------------------------------------------------------ dry run

    async def dry_folder(self, folder: str, *, max_pages: int) -> None:
        cursor = await self.s.state.cursors.get(self.mb.key, self.kind, folder)
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
            plan_ = await self.gather.plan_page(page.items, policy, folder)
            for action, _, _ in plan_.planned:
                self.planned.append(describe(action))
            for f in plan_.failed:
                self.planned.append(PlannedItem(f.item_id, "failed", describe_error(f.error)[:200]))
            if not page.next_link:
                return
            url = page.next_link


async def mailbox_or_reason(services: Services, mailbox: str, kind: str) -> tuple[Mailbox | None, str]:
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
    mb, why = await mailbox_or_reason(services, mailbox, kind)
    if mb is None:
        report.skipped_round = why
        log.info("a %s delta round was skipped: %s", kind, why)
        return report
    await services.state.coalescer.begin_round(mb.key, kind)
    ctx = context or await sync_context(services)
    async def rerun(how: str) -> None:
        await services.queues.send(names.DELTA_WORK, Envelope(type="delta.sync", body={
            "mailbox": mb.key, "kind": kind, "reason": "rerun", "full_resync": how == "full"}))

    lease = await round_lease(services.state.tables, mb.key, kind, seconds=services.settings.sync.lease_seconds,
                              on_rerun=rerun)
    if not await lease.acquire_or_hand_over(full=full_resync):
        report.skipped_round = "handed_over"  # the running round reads again when it is done
        log.info("a %s round was running; it will run once more", kind)
        return report
    rnd = _Round(services, ctx, mb, kind, report, now=now or dt.datetime.now(dt.UTC),
                 allow_mass_delete=allow_mass_delete, lease=lease)
    budget = max_pages or DEFAULT_MAX_PAGES
    try:
        async with lease.beating():
            done_all = True
            for folder in await rnd.folders():
                used, done = await rnd.run_folder(folder, full_resync=full_resync, budget=budget)
                budget -= used
                if not done:
                    done_all = False
                    break
        report.completed = done_all
        if not done_all:
            report.continued = True
            if enqueue_continuation:
                await services.queues.send(names.DELTA_WORK, Envelope(type="delta.sync", body={
                    "mailbox": mb.key, "kind": kind, "reason": reason, "full_resync": False, "continuation": True}))
    except DeleteSafetyHold as hold:
        report.held, report.held_detail = True, str(hold)
        log.warning("a %s round was held: %s", kind, hold)
        await _reset_inflight(services, mb.key, kind)
        await services.state.health.update(mb.key, kind, record_failure(f"delete safety hold: {hold}"))
        report.graph_requests = rnd.reader.requests
        report.seconds = time.perf_counter() - started
        return report
    except Exception as exc:
        report.graph_requests = rnd.reader.requests
        if not isinstance(exc, LeaseLostError):
            try:
                await services.state.health.update(mb.key, kind, record_failure(
                    describe_error(exc), throttled=isinstance(exc, GraphThrottledError),
                    transient=isinstance(exc, TransientError)))
            except Exception:
                log.warning("could not record the failure of a %s round in health", kind)
        raise
    finally:
        await lease.release()
    report.graph_requests = rnd.reader.requests
    report.graph_requests_by_purpose = dict(rnd.reader.by_purpose)
    skipped = dict(report.skipped)
    if report.conflicts:
        skipped["conflict"] = len(report.conflicts)
    await services.state.health.update(mb.key, kind, record_success(synced=report.synced, skipped=skipped,
                                                                    failed=len(report.failed), round_completed=True))
    report.seconds = time.perf_counter() - started
    log.info("delta round %s (%s): %s pages, %s items, %s", kind, reason, report.pages, report.items,
             dict(report.outcomes))
    return report


async def run_item(services: Services, *, mailbox: str, kind: str, folder: str, item_id: str,
                   context: SyncContext | None = None) -> str:
    """Sync ONE item as it is now (a parked item's retry, shared.sync.item_retry): GET by immutable
    id, plan, apply — under the round lease. Raises the item's error if it fails again."""
    mb, why = await mailbox_or_reason(services, mailbox, kind)
    if mb is None:
        return why
    ctx = context or await sync_context(services)
    lease = await round_lease(services.state.tables, mb.key, kind, seconds=services.settings.sync.lease_seconds)
    report = RoundReport(mailbox=mb.key, kind=kind, reason="item_retry")
    async with lease.held():
        rnd = _Round(services, ctx, mb, kind, report, now=dt.datetime.now(dt.UTC), lease=lease)
        got = (await rnd.reader.items(kind, [item_id], purpose="item_retry")).get(item_id)
        if isinstance(got, Exception) or got is None:
            raise got or TransientError("no answer for the item")
        window: Window | None = None
        if kind == "calendar":
            cursor = await services.state.cursors.get(mb.key, kind, folder)
            window = (Window(cursor.window_start, cursor.window_end)
                      if cursor is not None and cursor.window_start and cursor.window_end else rnd.window)
        policy = rnd.policy(folder, window)
        item: Item = got
        if isinstance(got, ContactRecord):
            item = await rnd.gather.settle_found(got, policy)  # in Deleted Items / an unwatched folder: gone
        page = await rnd.gather.plan_page([item], policy, folder, verified=True)
        failed = await rnd.apply_page(page, folder, park=False)
        if failed:
            raise failed[0].error
    return next(iter(report.outcomes), "") or next(iter(report.skipped), "done")


async def _reset_inflight(services: Services, mailbox: str, kind: str) -> None:
    """After a hold, the next round re-reads from the last completed delta link (a held page was read)."""
    for cursor in await services.state.cursors.list(mailbox):
        if cursor.kind == kind and cursor.next_link:
            await services.state.cursors.save(replace(cursor, next_link=""))


async def dry_run(services: Services, *, mailbox: str, kind: str, max_pages: int = 200,
                  context: SyncContext | None = None) -> list[PlannedItem]:
    """What the next round would do, item by item (id, action, reason). Reads Graph and Pega,
    writes nothing (no cursor, link, health or Pega change; no insights computed)."""
    mb, why = await mailbox_or_reason(services, mailbox, kind)
    if mb is None:
        return [PlannedItem("", "skip", why)]
    ctx = context or await sync_context(services)
    rnd = _Round(services, ctx, mb, kind, RoundReport(mailbox=mb.key, kind=kind, reason="dry_run"),
                 now=dt.datetime.now(dt.UTC), dry=True)
    for folder in await rnd.folders():
        await rnd.dry_folder(folder, max_pages=max_pages)
    return rnd.planned
