"""Subscribe (pull and streaming), GetEvents, Unsubscribe, and the Notification element that
GetEvents and GetStreamingEvents both carry.

A pull subscription that is not polled within its Timeout (minutes) expires: the next GetEvents is
ErrorSubscriptionNotFound, as on Exchange; a watermark the subscription never issued is
ErrorInvalidWatermark. Streaming subscriptions live 30 minutes without a connection.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

from lxml import etree

from sandbox.ews.context import Ctx
from sandbox.ews.soap import ItemError, m, response_message, sub, t
from sandbox.ews.store import Subscription, iso

EVENT_TYPES = {"NewMailEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "CopiedEvent",
               "FreeBusyChangedEvent"}


def watermark(s: Subscription, n: int) -> str:
    return base64.b64encode(f"{s.id}:{n}".encode()).decode()


def parse_watermark(s: Subscription, value: str) -> int:
    try:
        sid, n = base64.b64decode(value).decode().rsplit(":", 1)
        if sid != s.id:
            raise ValueError
        return int(n)
    except ValueError:
        raise ItemError("ErrorInvalidWatermark", "The watermark used for creating this subscription was not "
                        "recognized.") from None


def subscribe(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("SubscribeResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    for kind, tag in (("pull", "PullSubscriptionRequest"), ("streaming", "StreamingSubscriptionRequest"),
                      ("push", "PushSubscriptionRequest")):
        el = req.find(m(tag))
        if el is None:
            continue
        try:
            if kind == "push":
                raise ItemError("ErrorInvalidPushSubscriptionUrl",
                                "Push subscriptions call back into the network; this simulator (like an "
                                "on-premises Exchange behind a firewall) offers pull and streaming only.")
            folders = frozenset(ctx.folder_of(f).id for f in (el.find(t("FolderIds")) or []))
            types = frozenset((e.text or "").strip() for e in (el.find(t("EventTypes")) or []))
            if not types or not types <= EVENT_TYPES:
                raise ItemError("ErrorInvalidSubscriptionRequest", "The subscription request is invalid.")
            timeout = int(el.findtext(t("Timeout")) or 30)
            if kind == "pull" and not 1 <= timeout <= 1440:
                raise ItemError("ErrorInvalidPullSubscriptionTimeout" if False else "ErrorInvalidSubscriptionRequest",
                                "Timeout must be between 1 and 1440 minutes.")
            s = Subscription(id=base64.b64encode(uuid.uuid4().bytes + b"sub").decode(), smtp=ctx.mb.smtp,
                             folder_ids=folders, event_types=types, kind=kind, timeout_minutes=timeout,
                             last_polled=ctx.now)
            ctx.store.subscriptions[s.id] = s
        except ItemError as err:
            response_message(msgs, "Subscribe", err)
            continue
        rm = response_message(msgs, "Subscribe")
        sub(rm, m("SubscriptionId"), s.id)
        if kind == "pull":
            sub(rm, m("Watermark"), watermark(s, 0))
    return resp


def notification(parent: etree._Element, s: Subscription, previous: int, events: list[dict[str, str]],
                 *, more: bool, now: dt.datetime, tag: str = "Notification",
                 ns: str = "m") -> etree._Element:
    n = sub(parent, m(tag) if ns == "m" else t(tag))
    sub(n, t("SubscriptionId"), s.id)
    if s.kind == "pull":
        sub(n, t("PreviousWatermark"), watermark(s, previous))
        sub(n, t("MoreEvents"), "true" if more else "false")
    if not events and s.kind == "pull":
        sub(sub(n, t("StatusEvent")), t("Watermark"), watermark(s, previous))
    for ev in events:
        e = sub(n, t(str(ev["type"])))
        sub(e, t("Watermark"), watermark(s, int(ev["n"])))
        sub(e, t("TimeStamp"), str(ev["at"]))
        sub(e, t("ItemId"), Id=str(ev["item_id"]), ChangeKey="AAAAAA==")
        sub(e, t("ParentFolderId"), Id=str(ev["folder_id"]), ChangeKey="AQAAAA==")
    return n


def _subscription(ctx: Ctx, sid: str) -> Subscription:
    s = ctx.store.subscriptions.get(sid)
    if s is None or s.smtp != ctx.mb.smtp:
        raise ItemError("ErrorSubscriptionNotFound", "The specified subscription was not found.")
    if s.kind == "pull" and s.last_polled is not None and \
            ctx.now - s.last_polled > dt.timedelta(minutes=s.timeout_minutes):
        ctx.store.subscriptions.pop(sid, None)
        raise ItemError("ErrorSubscriptionNotFound", "The specified subscription was not found.")
    return s


def get_events(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("GetEventsResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    try:
        s = _subscription(ctx, (req.findtext(m("SubscriptionId")) or "").strip())
        if s.kind != "pull":
            raise ItemError("ErrorInvalidSubscription", "The subscription is not a pull subscription.")
        mark = parse_watermark(s, (req.findtext(m("Watermark")) or "").strip())
        if mark > s.watermark_n:
            raise ItemError("ErrorInvalidWatermark", "The watermark used for creating this subscription was not "
                            "recognized.")
        s.events = [e for e in s.events if int(e["n"]) > mark]
        batch = s.events[:50]
        s.last_polled = ctx.now
    except ItemError as err:
        response_message(msgs, "GetEvents", err)
        return resp
    rm = response_message(msgs, "GetEvents")
    notification(rm, s, int(batch[-1]["n"]) if batch else mark, batch, more=len(s.events) > len(batch),
                 now=ctx.now)
    # the previous watermark of the notification is the one asked with
    rm.find(f"{m('Notification')}/{t('PreviousWatermark')}").text = watermark(s, mark)
    return resp


def unsubscribe(ctx: Ctx, req: etree._Element) -> etree._Element:
    resp = etree.Element(m("UnsubscribeResponse"))
    msgs = sub(resp, m("ResponseMessages"))
    sid = (req.findtext(m("SubscriptionId")) or "").strip()
    try:
        _subscription(ctx, sid)
        ctx.store.subscriptions.pop(sid, None)
    except ItemError as err:
        response_message(msgs, "Unsubscribe", err)
        return resp
    response_message(msgs, "Unsubscribe")
    return resp


def stamp(now: dt.datetime) -> str:
    return iso(now)
