"""Push for on-premises mailboxes: EWS pull subscriptions, polled by a timer.

Exchange on-premises cannot reach the function app (push subscriptions would need an inbound path
through the organization's firewall), and a streaming connection outlives a Functions invocation.
So the app keeps one pull subscription per on-premises mailbox (Inbox, Sent Items, Calendar,
Contacts) and asks GetEvents every few seconds; any event enqueues a coalesced delta round for its
kind, exactly like a Graph notification does. The delta round (SyncFolderItems) stays the truth:
an expired subscription or a watermark Exchange no longer knows only means "subscribe again and
read everything once" — nothing is lost, and the safety-net poll runs regardless.

The subscription id and watermark are kept as a cursor row (kind "ews_events"), beside the
mailbox's delta cursors; no table of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any

from shared.ews.errors import EwsError, EwsNotFoundError
from shared.runtime import Services
from shared.storage.cursors import Cursor
from shared.storage.mailboxes import Mailbox
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)

EVENTS_KIND, EVENTS_FOLDER = "ews_events", "pull"
TIMEOUT_MINUTES = 30  # Exchange drops a pull subscription not polled within this
EVENT_TYPES = ("NewMailEvent", "CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent")
FOLDER_KINDS = (("inbox", "email"), ("sent", "email"), ("calendar", "calendar"), ("contacts", "contacts"))
GONE = ("ErrorSubscriptionNotFound", "ErrorInvalidWatermark", "ErrorInvalidSubscription")


def _subscribe(account: Any) -> tuple[str, str]:
    from exchangelib import FolderCollection

    folders = [getattr(account, name) for name, _ in FOLDER_KINDS]
    sub_id, watermark = FolderCollection(account=account, folders=folders).subscribe_to_pull(
        event_types=EVENT_TYPES, timeout=TIMEOUT_MINUTES)
    return str(sub_id), str(watermark)


def _events(account: Any, sub_id: str, watermark: str) -> tuple[str, set[str]]:
    """(new watermark, kinds with events), draining MoreEvents."""
    from exchangelib.services import GetEvents

    by_folder = {str(getattr(account, name).id): kind for name, kind in FOLDER_KINDS}
    svc = GetEvents(account=account)
    kinds: set[str] = set()
    while True:
        note = svc.get(subscription_id=sub_id, watermark=watermark)
        for ev in note.events:
            watermark = str(getattr(ev, "watermark", None) or watermark)
            parent = getattr(ev, "parent_folder_id", None)
            kind = by_folder.get(str(getattr(parent, "id", "") or ""))
            if kind is not None and type(ev).__name__ != "StatusEvent":
                kinds.add(kind)
        if not note.more_events:
            return watermark, kinds


async def poll_mailbox(services: Services, mb: Mailbox, *, now: dt.datetime | None = None) -> list[str]:
    """One poll of one on-premises mailbox; returns the kinds a round was asked for."""
    from shared.ews.gateway import ews_gateway

    now = now or dt.datetime.now(dt.UTC)
    gw = ews_gateway(services.settings.ews)
    cursors = services.state.cursors
    row = await cursors.get(mb.key, EVENTS_KIND, EVENTS_FOLDER)
    kinds: set[str] = set()
    fresh = (row is None or not row.next_link or row.last_round_at is None
             or now - row.last_round_at > dt.timedelta(minutes=TIMEOUT_MINUTES - 1))
    if row is not None and not fresh:
        sub_id, mark = row.next_link, row.delta_link
        try:
            watermark, kinds = await gw.call(mb.upn, lambda a: _events(a, sub_id, mark), what="get events")
        except (EwsNotFoundError, EwsError) as exc:
            if not any(code in str(exc) for code in GONE):
                raise
            log.info("EWS pull subscription of %s is gone (%s); subscribing again", mb.upn, type(exc).__name__)
            fresh = True
        else:
            await cursors.save(replace(row, delta_link=watermark, last_round_at=now))
    if fresh:
        sub_id, watermark = await gw.call(mb.upn, _subscribe, what="subscribe")
        await cursors.save(replace(row or Cursor(mb.key, EVENTS_KIND, EVENTS_FOLDER), next_link=sub_id,
                                   delta_link=watermark, last_round_at=now))
        kinds = {"email", "calendar", "contacts"}  # events may have been missed while unsubscribed
    asked = []
    for kind in sorted(kinds):
        if mb.enabled(kind) and await enqueue_round(services, mb.key, kind, reason="ews_event"):
            asked.append(kind)
    return asked


async def poll_ews_events(services: Services) -> dict[str, list[str]]:
    """Every active on-premises mailbox once (push on); a failing mailbox does not stop the others."""
    if not services.settings.ews.configured or not services.settings.sync.push_enabled:
        return {}
    out: dict[str, list[str]] = {}
    for mb in await services.state.mailboxes.on_backend("ews"):  # through its index: never every mailbox
        if not mb.active:
            continue
        try:
            out[mb.upn] = await poll_mailbox(services, mb)
        except Exception as exc:  # the next tick tries again; the delta poll is the safety net
            log.warning("EWS events of %s failed: %s", mb.upn, type(exc).__name__)
    return out
