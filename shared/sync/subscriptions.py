"""Subscription management: the push half of Exchange → Pega.

For each active mailbox and enabled kind the service keeps Graph subscriptions alive:
created with immutable ids and a fresh random clientState, renewed well before expiry,
recreated when Graph removed them or renewal finds them gone, deleted when a kind is disabled
or the mailbox is offboarded. Lifecycle events are handled here too (reauthorize, recreate and
resync, resync after `missed`). Push can be switched off entirely; the delta poll then carries
the sync alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass

from shared.config import Settings
from shared.graph.errors import GraphError, GraphNotFoundError
from shared.graph.gateway import GraphGateway
from shared.runtime import Services
from shared.storage.mailboxes import Mailbox
from shared.storage.subscriptions import SubscriptionRecord
from shared.sync.rounds import enqueue_round

log = logging.getLogger(__name__)

MAX_LIFETIME = dt.timedelta(minutes=10080)
LIFETIME_MARGIN = dt.timedelta(minutes=60)


@dataclass(frozen=True)
class DesiredSubscription:
    kind: str
    resource: str


def desired_for(mailbox: Mailbox, settings: Settings, *, contact_folder_id: str = "") -> list[DesiredSubscription]:
    """Which resources to watch: every folder and collection the sync reads. Mail: the whole mailbox's
    messages unless only Inbox and Sent Items sync (SYNC_MAIL_FOLDERS) — mail that server rules file
    into other folders must notify too. Contacts: the default folder and the dedicated one."""
    if not settings.sync.push_enabled or not mailbox.active or mailbox.backend != "graph":
        return []  # on-premises (EWS) mailboxes: pull subscriptions instead (shared/ews/events.py)
    upn = mailbox.key  # Graph accepts the object id wherever it accepts the UPN
    out: list[DesiredSubscription] = []
    if mailbox.email_enabled:
        if settings.sync.mail_folders == "inbox":
            out += [DesiredSubscription("email", f"/users/{upn}/mailFolders('inbox')/messages"),
                    DesiredSubscription("email", f"/users/{upn}/mailFolders('sentitems')/messages")]
        else:
            out.append(DesiredSubscription("email", f"/users/{upn}/messages"))
    if mailbox.calendar_enabled:
        out.append(DesiredSubscription("calendar", f"/users/{upn}/events"))
    if mailbox.contacts_enabled:
        out.append(DesiredSubscription("contacts", f"/users/{upn}/contacts"))
        if contact_folder_id:
            out.append(DesiredSubscription("contacts", f"/users/{upn}/contactFolders('{contact_folder_id}')/contacts"))
    return out


def _graph_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _parse_time(value: str) -> dt.datetime:
    v = value.rstrip("Z")
    if "." in v:
        head, frac = v.split(".", 1)
        v = f"{head}.{frac[:6]}"
    return dt.datetime.fromisoformat(v).replace(tzinfo=dt.UTC)


def url_hash(settings: Settings) -> str:
    """A digest of the notification URLs Graph is given (they carry the function key: never stored)."""
    notify, lifecycle = notification_urls(settings)
    return hashlib.sha256(f"{notify}\n{lifecycle}".encode()).hexdigest()[:16]


def notification_urls(settings: Settings) -> tuple[str, str]:
    base = settings.sync.notification_url_base.rstrip("/")
    if not base:
        raise GraphError("SYNC_NOTIFICATION_URL_BASE is not set: Graph cannot reach the service", status=0)
    key = settings.sync.notification_url_key
    suffix = f"?code={key}" if key else ""
    return f"{base}/graph/notifications{suffix}", f"{base}/graph/lifecycle{suffix}"


@dataclass
class EnsureReport:
    created: int = 0
    renewed: int = 0
    deleted: int = 0
    failed: int = 0
    recreated: int = 0  # stale notification URL


class SubscriptionManager:
    def __init__(self, services: Services, gateway: GraphGateway, *, now: dt.datetime | None = None) -> None:
        self.services = services
        self.gateway = gateway
        self.settings = services.settings
        self._now = now

    def now(self) -> dt.datetime:
        return self._now or dt.datetime.now(dt.UTC)

    def _expiry(self) -> dt.datetime:
        return self.now() + MAX_LIFETIME - LIFETIME_MARGIN

    async def create(self, mailbox: Mailbox, want: DesiredSubscription) -> SubscriptionRecord:
        notify, lifecycle = notification_urls(self.settings)
        client_state = secrets.token_urlsafe(32)[:128]
        resp = await self.gateway.request("POST", "subscriptions", mailbox=mailbox.key, what="create subscription",
                                          body={"changeType": "created,updated,deleted", "notificationUrl": notify,
                                                "lifecycleNotificationUrl": lifecycle, "resource": want.resource,
                                                "expirationDateTime": _graph_time(self._expiry()),
                                                "clientState": client_state, "latestSupportedTlsVersion": "v1_2"})
        doc = resp.json()
        record = SubscriptionRecord(subscription_id=str(doc["id"]), mailbox=mailbox.key, kind=want.kind,
                                    resource=want.resource, client_state=client_state,
                                    expires_at=_parse_time(str(doc["expirationDateTime"])),
                                    url_hash=url_hash(self.settings))
        log.info("subscription %s created for a %s", record.subscription_id, want.kind)
        return await self.services.state.subscriptions.put(record)

    async def renew(self, record: SubscriptionRecord) -> SubscriptionRecord:
        resp = await self.gateway.request("PATCH", f"subscriptions/{record.subscription_id}", mailbox=record.mailbox,
                                          body={"expirationDateTime": _graph_time(self._expiry())},
                                          what="renew subscription")
        doc = resp.json() or {}
        expires = _parse_time(str(doc.get("expirationDateTime"))) if doc.get("expirationDateTime") else self._expiry()
        return await self.services.state.subscriptions.put(
            dataclasses.replace(record, expires_at=expires, status="active", last_error=""))

    async def delete(self, record: SubscriptionRecord) -> None:
        if record.subscription_id.startswith("failed:"):  # a placeholder for a create that failed
            await self.services.state.subscriptions.delete(record.subscription_id, mailbox=record.mailbox)
            return
        try:
            await self.gateway.request("DELETE", f"subscriptions/{record.subscription_id}", mailbox=record.mailbox,
                                       what="delete subscription")
        except GraphNotFoundError:
            pass
        await self.services.state.subscriptions.delete(record.subscription_id, mailbox=record.mailbox)

    async def ensure(self, mailbox: Mailbox) -> EnsureReport:
        """Converge the mailbox's subscriptions to what it should have. Safe to run any time."""
        report = EnsureReport()
        wanted = desired_for(mailbox, self.settings, contact_folder_id=await self._contact_folder_id(mailbox))
        existing = await self.services.state.subscriptions.for_mailbox(mailbox.key)
        try:
            current_url = url_hash(self.settings) if wanted else ""
        except GraphError:
            current_url = ""  # no notification URL configured: creates fail below, visibly
        by_resource: dict[str, SubscriptionRecord] = {}
        stale_kinds: set[str] = set()
        for old in existing:
            keep = any(w.resource == old.resource for w in wanted) and old.resource not in by_resource
            if keep and old.status == "active" and current_url and old.url_hash != current_url:
                # the base URL or the function key changed: Graph posts to a URL that no longer answers,
                # so notifications were lost — recreate it and catch up with a round
                log.warning("a %s subscription points at an old notification URL; recreating it", old.kind)
                keep = False
                stale_kinds.add(old.kind)
                report.recreated += 1
            if keep and old.status == "active":
                by_resource[old.resource] = old
            else:
                await self.delete(old)
                report.deleted += 1
        renew_before = dt.timedelta(minutes=self.settings.sync.subscription_renew_before_minutes)
        for want in wanted:
            current: SubscriptionRecord | None = by_resource.get(want.resource)
            rec = current
            try:
                if rec is None:
                    await self.create(mailbox, want)
                    report.created += 1
                    if want.kind in stale_kinds:
                        await enqueue_round(self.services, mailbox.key, want.kind, reason="resync")
                elif rec.expires_at - self.now() < renew_before:
                    try:
                        await self.renew(rec)
                        report.renewed += 1
                    except GraphNotFoundError:  # removed on Graph's side: recreate and catch up
                        await self.services.state.subscriptions.delete(rec.subscription_id, mailbox=rec.mailbox)
                        await self.create(mailbox, want)
                        await enqueue_round(self.services, mailbox.key, want.kind, reason="resync")
                        report.created += 1
            except GraphError as exc:
                report.failed += 1
                log.warning("a %s subscription failed: %s", want.kind, type(exc).__name__)
                # Keep the failure visible in the mailbox's health; the next ensure retries it.
                failed = rec or SubscriptionRecord(
                    subscription_id=f"failed:{mailbox.key}:{want.resource}", mailbox=mailbox.key, kind=want.kind,
                    resource=want.resource, client_state="", expires_at=self.now())
                await self.services.state.subscriptions.put(
                    dataclasses.replace(failed, status="failed", last_error=str(exc)[:500], etag=None))
        return report

    async def _contact_folder_id(self, mailbox: Mailbox) -> str:
        """The dedicated contact folder's id, if one is configured and exists yet (the Pega → Exchange
        side creates it on its first write; the next ensure then subscribes to it)."""
        name = self.settings.sync.contact_folder
        if (not name or not mailbox.active or not mailbox.contacts_enabled or not self.settings.sync.push_enabled
                or mailbox.backend != "graph"):
            return ""
        from shared.sync.source import ExchangeReader

        try:
            return await ExchangeReader(self.gateway, mailbox.key, page_size=1).contact_folder_id(name)
        except GraphError:
            return ""

    async def remove_all(self, mailbox_upn: str) -> int:
        records = await self.services.state.subscriptions.for_mailbox(mailbox_upn)
        for rec in records:
            await self.delete(rec)
        return len(records)

    async def on_lifecycle(self, *, subscription_id: str, event: str) -> str:
        """React to a lifecycle event; returns what was done (for logs and tests)."""
        rec = await self.services.state.subscriptions.get(subscription_id)
        if rec is None:
            return "ignored: unknown subscription"
        if event == "reauthorizationRequired":
            try:
                await self.gateway.request("POST", f"subscriptions/{subscription_id}/reauthorize",
                                           mailbox=rec.mailbox, what="reauthorize subscription")
                await self.renew(rec)
                return "reauthorized"
            except GraphNotFoundError:
                event = "subscriptionRemoved"
        if event == "subscriptionRemoved":
            await self.services.state.subscriptions.delete(subscription_id, mailbox=rec.mailbox)
            mailbox = await self.services.state.mailboxes.get(rec.mailbox)
            if mailbox is not None and mailbox.active:
                await self.create(mailbox, DesiredSubscription(rec.kind, rec.resource))
            await enqueue_round(self.services, rec.mailbox, rec.kind, reason="resync")
            return "recreated"
        if event == "missed":
            await enqueue_round(self.services, rec.mailbox, rec.kind, reason="missed")
            return "resync enqueued"
        return "ignored: unknown event"

