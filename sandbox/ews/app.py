"""The aiohttp app: POST /EWS/Exchange.asmx (SOAP), and the /_sim/ control API.

One request: authenticate (Basic / NTLM) → parse the envelope → pick the mailbox (the
ExchangeImpersonation header's, which needs the ApplicationImpersonation role and, if scoped, the
mailbox inside the scope; else the caller's own) → injected faults → the operation, under the
store lock (operations are synchronous and quick) → the SOAP response with ServerVersionInfo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from lxml import etree

from sandbox.ews import folders, items, notify, sync
from sandbox.ews.auth import NtlmAcceptor, authenticate
from sandbox.ews.context import Ctx
from sandbox.ews.faults import Faults
from sandbox.ews.soap import SOAP, EwsFault, M, envelope, fault_xml, local, m, parse, sub, t, to_bytes
from sandbox.ews.store import Account, Mailbox, Store
from sandbox.graph.clock import SimClock

log = logging.getLogger(__name__)
EWS_PATH = "/EWS/Exchange.asmx"
XML = "text/xml; charset=utf-8"

OPERATIONS: dict[str, Callable[[Ctx, etree._Element], etree._Element]] = {
    "GetFolder": folders.get_folder, "FindFolder": folders.find_folder, "CreateFolder": folders.create_folder,
    "GetItem": items.get_item, "FindItem": items.find_item, "CreateItem": items.create_item,
    "UpdateItem": items.update_item, "DeleteItem": items.delete_item, "SendItem": items.send_item,
    "MoveItem": items.move_item, "CreateAttachment": items.create_attachment,
    "GetAttachment": items.get_attachment, "DeleteAttachment": items.delete_attachment,
    "SyncFolderItems": sync.sync_folder_items, "Subscribe": notify.subscribe, "GetEvents": notify.get_events,
    "Unsubscribe": notify.unsubscribe,
}
STREAM_HEARTBEAT_SECONDS = 5.0


class Sim:
    def __init__(self) -> None:
        self.store = Store()
        self.clock = SimClock()
        self.faults = Faults()
        self.ntlm = NtlmAcceptor(self.store)
        self.sent: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []  # operation, mailbox, caller, impersonated (no content)


def _target(sim: Sim, acct: Account, header: etree._Element | None) -> tuple[Mailbox, str]:
    imp = header.find(t("ExchangeImpersonation")) if header is not None else None
    if imp is None:
        if not acct.smtp or acct.smtp not in sim.store.mailboxes:
            raise EwsFault("ErrorMissingEmailAddress", "When making a request as an account that does not have a "
                           "mailbox, you must specify the mailbox primary SMTP address for any distinguished "
                           "folder Ids.")
        return sim.store.mailboxes[acct.smtp], ""
    sid = imp.find(t("ConnectingSID"))
    address = ""
    for tag in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
        found = sid.findtext(t(tag)) if sid is not None else None
        if found:
            address = found.strip().lower()
            break
    if not acct.impersonation:
        raise EwsFault("ErrorImpersonateUserDenied",
                       "The account does not have permission to impersonate the requested user.")
    mb = sim.store.mailboxes.get(address)
    if mb is None:
        raise EwsFault("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
    if acct.scope and address not in acct.scope:
        raise EwsFault("ErrorImpersonateUserDenied",
                       "The account does not have permission to impersonate the requested user.")
    return mb, address


def _respond(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


async def ews(request: web.Request) -> web.StreamResponse:
    sim: Sim = request.app["sim"]
    who = authenticate(request, sim.store, sim.ntlm)
    if isinstance(who, web.Response):
        return who
    acct = who
    raw = await request.read()
    try:
        root = parse(raw)
        if root.tag != f"{{{SOAP}}}Envelope":
            raise EwsFault("ErrorSchemaValidation", "The request failed schema validation: not a SOAP envelope.")
        header = root.find(f"{{{SOAP}}}Header")
        body = root.find(f"{{{SOAP}}}Body")
        if body is None or not len(body) or etree.QName(body[0]).namespace != M:
            raise EwsFault("ErrorSchemaValidation", "The request failed schema validation: no operation.")
        op_el = body[0]
        op = local(op_el)
        with sim.store.lock:
            mb, impersonated = _target(sim, acct, header)
        sim.requests.append({"operation": op, "mailbox": mb.smtp, "caller": acct.username,
                             "impersonated": impersonated, "auth": request.headers.get("Authorization", " ")
                             .split(" ")[0] or "ntlm-connection"})
        fault = sim.faults.take(op, mb.smtp, acct.username)
        if fault is not None:
            raise fault
        version = header.find(t("RequestServerVersion")) if header is not None else None
        ctx = Ctx(sim.store, mb, acct, sim.clock.now(), sim.sent,
                  request_server_version=version.get("Version", "") if version is not None else "")
        if op == "GetStreamingEvents":
            return await _streaming(request, sim, ctx, op_el)
        handler = OPERATIONS.get(op)
        if handler is None:
            raise EwsFault("ErrorInvalidRequest", f"The request is invalid: {op} is not supported by this "
                           "simulator.")
        with sim.store.lock:
            result = handler(ctx, op_el)
    except EwsFault as fault:
        return _respond(fault_xml(fault), fault.status)
    env, _ = envelope(result)
    return _respond(to_bytes(env))


async def _streaming(request: web.Request, sim: Sim, ctx: Ctx, op_el: etree._Element) -> web.StreamResponse:
    """GetStreamingEvents: one chunked HTTP response carrying a SOAP document per batch of events,
    heartbeats (ConnectionStatus OK) in between, and a last one with ConnectionStatus Closed when
    ConnectionTimeout (minutes, 1–30) has passed on the simulator clock or the client goes."""
    ids = [(e.text or "").strip() for e in (op_el.find(m("SubscriptionIds")) or [])]
    timeout = int(op_el.findtext(m("ConnectionTimeout")) or 1)
    if not 1 <= timeout <= 30:
        raise EwsFault("ErrorInvalidArgument" if False else "ErrorSchemaValidation",
                       "The request failed schema validation: ConnectionTimeout must be 1 to 30.")
    with sim.store.lock:
        subs = [sim.store.subscriptions.get(i) for i in ids]
    bad = [i for i, s in zip(ids, subs, strict=True) if s is None or s.smtp != ctx.mb.smtp or s.kind != "streaming"]
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/xml; charset=utf-8"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    def doc(events_by_sub: list[tuple[Any, list[dict[str, Any]]]], status: str) -> bytes:
        msg = etree.Element(m("GetStreamingEventsResponse"))
        rms = sub(msg, m("ResponseMessages"))
        rm = sub(rms, m("GetStreamingEventsResponseMessage"), ResponseClass="Error" if bad else "Success")
        if bad:
            sub(rm, m("MessageText"), "The specified subscription was not found.")
            sub(rm, m("ResponseCode"), "ErrorSubscriptionNotFound")
            sub(rm, m("DescriptiveLinkKey"), "0")
            errs = sub(rm, m("ErrorSubscriptionIds"))
            for i in bad:
                sub(errs, m("SubscriptionId"), i)
        else:
            sub(rm, m("ResponseCode"), "NoError")
        if events_by_sub:
            notes = sub(rm, m("Notifications"))
            for s, evs in events_by_sub:
                notify.notification(notes, s, 0, evs, more=False, now=ctx.now)
        sub(rm, m("ConnectionStatus"), status)
        env, _ = envelope(msg)
        return to_bytes(env)

    if bad:
        await resp.write(doc([], "Closed"))
        await resp.write_eof()
        return resp
    live = [s for s in subs if s is not None]
    waiter = asyncio.Event()
    for s in live:
        s.waiter = waiter
    deadline = sim.clock.monotonic() + timeout * 60
    try:
        while sim.clock.monotonic() < deadline:
            with sim.store.lock:
                batch = [(s, list(s.events)) for s in live if s.events]
                for s in live:
                    s.events.clear()
            await resp.write(doc(batch, "OK"))
            waiter.clear()
            try:
                await asyncio.wait_for(waiter.wait(), STREAM_HEARTBEAT_SECONDS)
            except TimeoutError:
                pass
        await resp.write(doc([], "Closed"))
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        for s in live:
            s.waiter = None
    return resp


async def _info(request: web.Request) -> web.Response:
    return web.json_response({"service": "EWS simulator", "endpoint": EWS_PATH})


def build_app(sim: Sim) -> web.Application:
    from sandbox.ews.control import routes

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["sim"] = sim
    app.router.add_post(EWS_PATH, ews)
    app.router.add_post(EWS_PATH.lower(), ews)
    app.router.add_get("/", _info)
    app.add_routes(routes)
    return app
