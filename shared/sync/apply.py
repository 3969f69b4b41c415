"""Applying planned actions to Pega and to the link table — idempotently.

Order per item: Pega write first, link second. A crash between the two is harmless: the replay
finds no link, and the Pega upsert looks the record up by its external id (the Exchange
immutable id) before it would create one, so it updates instead of duplicating. A link that
already exists on a replay is updated in place.

Across mailboxes, a create first takes a claim (shared.sync.claims) on what identifies the thing
everywhere — the internetMessageId, a meeting occurrence's iCalUId, a contact's address — so that
two reps' rounds running at once make ONE Pega record: the second adopts the first's. A contact
already in Pega (by address) is adopted whatever external id it carries; its first external id
is never overwritten. A record several mailboxes hold is cancelled/closed only when the last one
lets go of it (or when the organizer cancels the meeting).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, replace
from typing import Any

from shared.pega import Association, RecordKind, UpsertAction, UpsertResult
from shared.pega.adapter import PegaAdapter
from shared.pega.errors import PegaPermanentError, PegaTransientError
from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.links import Link, LinkRepository
from shared.sync.claims import Claim, ClaimStore
from shared.sync.linkbatch import create_many
from shared.sync.mapping import LINK_KIND, to_pega_data
from shared.sync.planner import Action, Cancel, Close, Create, LinkOwn, NoOp, Skip, Update

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemExtras:
    """Per-item inputs the planner does not need but the writer does."""

    change_key: str = ""
    association: Association | None = None
    photo: bytes | None = None  # contacts: current photo bytes (b"" = no photo)
    insight_fields: dict[str, Any] | None = None  # received emails: sentiment + suggested actions
    existing_pega_id: str | None = None  # found by the batched external-id lookup
    # A Pega record that is the same thing but not linked yet (contact with the same e-mail address,
    # email case of the same internetMessageId synced from another mailbox): link to it, never duplicate.
    adopt_pega_id: str | None = None
    claim_key: str = ""  # what identifies the item across mailboxes (shared.sync.claims); "" = none


META_CLAIM = "_claim"  # link snapshot: the claim digest of a record other mailboxes may hold too
CLAIM_NAMESPACE = {"email": "email", "calendar": "event", "contacts": "contact"}


def _answered(exc: Exception) -> bool:
    """Did Pega itself answer (so the request is over and nothing of it can land later)? A timeout, a
    refused connection, or a gateway's 408/502/504 (it stopped waiting, or lost Pega mid-request)
    leave the request possibly still running in Pega; Pega's own 500/503/429 end it."""
    if isinstance(exc, PegaPermanentError):
        return True  # a verdict (or a create that came back without its external id): nothing in flight
    status = getattr(exc, "status", None)
    return status is not None and status not in (408, 502, 504)


@dataclass(frozen=True)
class Applied:
    item_id: str
    outcome: str  # created | updated | unchanged | cancelled | closed | skipped | noop
    pega_id: str = ""


def _with_links(data: Any, kind: str, association: Association | None, operator: str | None) -> Any:
    """Association and owner fields, only set on creates (Pega users may re-associate later)."""
    names = {f.name for f in dataclasses.fields(data)}
    if operator and "operator" in names:
        data.operator = operator
    if association is not None:
        for attr in ("contact_id", "organization_id", "lead_id", "opportunity_id"):
            value = getattr(association, attr)
            if value and attr in names:
                setattr(data, attr, value)
    return data


class Applier:
    def __init__(self, records: PegaAdapter, links: LinkRepository, *, mailbox: str, kind: str,
                 operator: str | None, claims: ClaimStore | None = None,
                 landing_window: dt.timedelta = dt.timedelta(0)) -> None:
        self.records = records
        self.links = links
        self.claims = claims
        self.landing_window = landing_window  # how long an unanswered Pega create may still land
        self.namespace = CLAIM_NAMESPACE[kind]
        self.mailbox = mailbox.lower()
        self.kind = kind
        self.link_kind = LINK_KIND[kind]
        self.operator = operator
        self.pending_links: list[Link] = []  # new links of the page, written together by flush_links()

    async def flush_links(self) -> None:
        """Write the page's new links (batched; rows that already exist take the per-link path)."""
        pending, self.pending_links = self.pending_links, []
        for link in await create_many(self.links, pending):
            await self._save_link(link, existing=None)

    def _record_kind(self) -> RecordKind:
        return {"calendar": RecordKind.APPOINTMENT, "email": RecordKind.EMAIL}.get(self.kind, RecordKind.CONTACT)

    async def existing_ids(self, external_ids: list[str]) -> dict[str, str]:
        """The external-id lookup before any create, batched (100 per call) instead of one per item.
        Returns {exchange id: Pega id} for the ones Pega already holds."""
        if not external_ids:
            return {}
        return await self.records.existing_ids(self._record_kind(), external_ids)

    async def existing_emails(self, external_ids: list[str],
                              internet_message_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """For a page of email creates, in one Pega call: the ones Pega already holds by Exchange id
        ({exchange id: Pega id}), and email records with these internetMessageIds (the same mail seen
        from another mailbox, or a sent and a received copy: {internetMessageId: Pega id})."""
        if not external_ids:
            return {}, {}
        return await self.records.existing_emails(external_ids, internet_message_ids)

    async def _adopt(self, item_id: str, pega_id: str, data: Any) -> UpsertResult:
        """Link to an existing Pega record that is the same thing. Contacts: fill only the fields Pega
        has empty, and stamp the Exchange id only where there is none yet (the first mailbox's id stays;
        links are per mailbox). Emails and appointments: the record stays as it is (it belongs to the
        mailbox that synced it first)."""
        if self.kind != "contacts":
            return UpsertResult(pega_id, UpsertAction.UNCHANGED, None)
        return await self.records.adopt_contact(pega_id, item_id, data)

    def _claim_store(self, extras: ItemExtras) -> ClaimStore | None:
        return self.claims if extras.claim_key else None

    def _create_key(self, extras: ItemExtras, item_id: str) -> str:
        """The claim a create takes: what identifies the item across mailboxes, or else the item itself
        (so that a replay of an unanswered create still waits for it, shared.sync.claims)."""
        return extras.claim_key or f"item|{self.mailbox}|{item_id}"

    async def _claim_held(self, extras: ItemExtras, pega_id: str) -> Claim | None:
        """An item adopted by address/internetMessageId: hold the record's claim too (so that the
        record is cancelled/closed only when the last holder lets go)."""
        store = self._claim_store(extras)
        if store is None or self.namespace == "email":
            return None
        claim = await store.get(self.namespace, extras.claim_key)
        if claim is None:
            return None
        await store.add_holder(claim, self.mailbox)
        return claim

    async def _create_claimed(self, action: Create, data: Any, extras: ItemExtras, *, absent_in_pega: bool
                              ) -> tuple[UpsertResult, bool, Claim | None]:
        """Create under a claim (shared.sync.claims): returns (result, adopted, claim); the claim is
        None for an item-only claim (nothing another mailbox could hold)."""
        store = self.claims
        if store is None:
            return await self._create(action.item_id, data, extras, absent=absent_in_pega), False, None
        shared = bool(extras.claim_key)
        claim = await store.claim(self.namespace, self._create_key(extras, action.item_id), mailbox=self.mailbox,
                                  item_id=action.item_id, landing_window=self.landing_window)
        held = claim if shared else None  # what the link remembers (an item-only claim is no one else's)
        if not claim.mine and claim.pega_id:
            if self.namespace != "email" and shared:
                await store.add_holder(claim, self.mailbox)
            return await self._adopt(action.item_id, claim.pega_id, data), True, held
        for previous in reversed(claim.previous_owners):
            # an owner before us died mid-create: its record may exist under ITS item's id
            ref = await self.records.find_by_external_id(self._record_kind(), previous.split("|", 1)[-1])
            if ref is not None and ref.id:
                await store.complete(claim, ref.id)
                return await self._adopt(action.item_id, ref.id, data), True, held
        try:
            # a replayed create may have happened: look up by our own id first, whatever the page's lookup said
            result = await self._create(action.item_id, data, extras, absent=absent_in_pega and not claim.replayed)
        except (PegaTransientError, PegaPermanentError) as exc:
            if _answered(exc):
                await store.settle(claim)
            raise
        if shared:
            await store.complete(claim, result.id)
        else:
            await store.drop(claim)  # the record carries our external id now: a replay finds it by that
        return result, False, held

    async def _create(self, item_id: str, data: Any, extras: ItemExtras, *, absent: bool) -> UpsertResult:
        """Create the record; `absent`: the batched lookup proved there is none (no second per-item
        lookup), else look up by external id first and update what is found."""
        return await self._upsert(item_id, data, known_id=None, extra=extras.insight_fields, absent=absent)

    async def _others_hold(self, link: Link) -> bool:
        """Does another mailbox still hold this shared record? (This mailbox lets go of it.)"""
        digest = link.snapshot.get(META_CLAIM)
        if self.claims is None or not isinstance(digest, str) or not digest:
            return False
        return await self.claims.release(self.namespace, digest, self.mailbox) > 0

    async def _upsert(self, item_id: str, data: Any, *, known_id: str | None,
                      extra: dict[str, Any] | None = None, expected_etag: str | None = None,
                      absent: bool = False) -> UpsertResult:
        r = self.records
        # insights fields ride in the same create as the record, never a second write
        if self.kind == "calendar":
            return await r.upsert_appointment(item_id, data, known_id=known_id, extra=extra,
                                              expected_etag=expected_etag, absent=absent)
        if self.kind == "contacts":
            return await r.upsert_contact(item_id, data, known_id=known_id, expected_etag=expected_etag,
                                          absent=absent)
        return await r.upsert_email(item_id, data, known_id=known_id, extra=extra, expected_etag=expected_etag,
                                    absent=absent)

    async def _save_link(self, link: Link, *, existing: Link | None) -> None:
        if existing is not None and existing.etag:
            try:
                await self.links.update(replace(link, etag=existing.etag))
                return
            except ConcurrencyError:
                pass  # changed since read: re-read below and apply over it
        try:
            await self.links.create(link)
        except AlreadyExistsError:
            current = await self.links.by_graph_id(self.mailbox, link.graph_id)
            if current is None:
                # the Pega record is already linked to another item of this mailbox (the same mail in
                # Inbox and Sent Items, two Outlook contacts with one address): keep the first link
                log.info("%s %s is the same Pega record as another linked item; not linked twice",
                         self.kind, link.graph_id[-12:])
                return
            if current.pega_id != link.pega_id:
                # the link row is keyed on both ids; a different Pega id means a stale link
                await self.links.delete(current)
                await self.links.create(link)
                return
            await self.links.update(replace(link, etag=current.etag))

    async def apply(self, action: Action, extras: ItemExtras, *, absent_in_pega: bool = False) -> Applied:
        """Apply one action. `absent_in_pega`: the batched external-id lookup of this page found no
        record for the item, so a Create goes straight to a create."""
        if isinstance(action, Skip):
            return Applied(action.item_id, "skipped")
        if isinstance(action, NoOp):
            if action.refresh is not None:
                try:
                    await self.links.update(action.refresh)
                except ConcurrencyError:
                    pass  # someone else moved the link on; nothing of ours to keep
            return Applied(action.item_id, "noop")
        if isinstance(action, LinkOwn):
            # our own write from Pega seen before its link: link it (the outbound worker's save_link
            # finds this link by the Pega id and updates it), nothing goes to Pega
            self.pending_links.append(Link(
                mailbox=self.mailbox, kind=self.link_kind, graph_id=action.item_id, pega_id=action.pega_id,
                graph_change_key=extras.change_key, graph_hash=action.hash, pega_hash=action.hash,
                snapshot=action.snapshot, state="active"))
            return Applied(action.item_id, "linked_own", action.pega_id)
        if isinstance(action, Create):
            data = to_pega_data(self.kind, action.mapped, photo=extras.photo)
            data = _with_links(data, self.kind, extras.association, self.operator)
            known = action.relink.pega_id if action.relink is not None else extras.existing_pega_id
            snap = dict(action.snapshot)
            adopted = False
            if known is None and extras.adopt_pega_id:
                result = await self._adopt(action.item_id, extras.adopt_pega_id, data)
                adopted = True
                claim = await self._claim_held(extras, result.id)
            elif known is None:
                result, adopted, claim = await self._create_claimed(action, data, extras, absent_in_pega=absent_in_pega)
            else:
                result = await self._upsert(action.item_id, data, known_id=known, extra=extras.insight_fields)
                claim = None
            if claim is not None and self.namespace != "email":
                snap[META_CLAIM] = claim.digest
            link = Link(mailbox=self.mailbox, kind=self.link_kind, graph_id=action.item_id, pega_id=result.id,
                        graph_change_key=extras.change_key, graph_hash=action.hash, pega_etag=result.etag or "",
                        pega_hash=action.hash, snapshot=snap, state="active")
            if action.relink is None:
                self.pending_links.append(link)
            else:
                await self._save_link(link, existing=action.relink)
            outcome = {UpsertAction.CREATED: "created", UpsertAction.UPDATED: "updated"}.get(result.action, "unchanged")
            if adopted:
                outcome = "linked_existing"
            return Applied(action.item_id, outcome, result.id)
        if isinstance(action, Update):
            outcome = "unchanged"
            pega_id, etag = action.link.pega_id, action.link.pega_etag
            if action.fields:
                data = to_pega_data(self.kind, action.fields, photo=extras.photo)
                # merged against Pega at action.pega_etag: a rep's edit since then is not overwritten
                # (PegaConflictError, transient: the item is retried and merged again with fresh state)
                result = await self._upsert(action.item_id, data, known_id=action.link.pega_id,
                                            expected_etag=action.pega_etag or None)
                pega_id, etag = result.id, result.etag or etag
                outcome = "updated" if result.action in (UpsertAction.UPDATED, UpsertAction.CREATED) else "unchanged"
            from shared.sync.mapping import content_hash, fields_of

            link = replace(action.link, pega_id=pega_id, graph_change_key=extras.change_key, graph_hash=action.hash,
                           pega_etag=etag, pega_hash=content_hash(fields_of(action.snapshot)),
                           snapshot=action.snapshot, state="active")
            await self._save_link(link, existing=action.link)
            for c in action.conflicts:
                log.info("conflict on %s field %s resolved for %s", self.kind, c.field, c.winner)
            return Applied(action.item_id, outcome, pega_id)
        if isinstance(action, Cancel):
            # the organizer cancelled the meeting: cancelled for everyone; otherwise only if nobody else holds it
            outcome = "released"
            if action.reason == "cancelled" or not await self._others_hold(action.link):
                await self.records.cancel_appointment(action.link.pega_id)
                outcome = "cancelled"
            await self._save_link(replace(action.link, state="closed"), existing=action.link)
            return Applied(action.item_id, outcome, action.link.pega_id)
        if isinstance(action, Close):
            outcome = "released"
            if not await self._others_hold(action.link):
                await self.records.close_contact(action.link.pega_id)
                outcome = "closed"
            await self._save_link(replace(action.link, state="closed"), existing=action.link)
            return Applied(action.item_id, outcome, action.link.pega_id)
        raise TypeError(f"unknown action {type(action).__name__}")
