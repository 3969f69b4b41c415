"""The aiohttp application: wiring, request pipeline (auth, faults, throttling) and the Sim state.

Pipeline for every Graph request: request-id headers -> bearer token -> route -> permission ->
injected faults -> per (app, mailbox) throttling -> handler. Errors become Graph error bodies.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from aiohttp import ClientSession, ClientTimeout, web
from yarl import URL

from sandbox.graph import batch, calendar, contacts, control, mail, subscriptions, users
from sandbox.graph.attachments import upload_routes
from sandbox.graph.clock import SimClock
from sandbox.graph.delta import DeltaEngine
from sandbox.graph.errors import GraphError, error_response, throttled_response
from sandbox.graph.faults import FaultRule, Faults
from sandbox.graph.identity import Identity, Principal
from sandbox.graph.notifier import Notifier
from sandbox.graph.odata import parse_prefer
from sandbox.graph.router import Router, normalize_segments
from sandbox.graph.store import Store
from sandbox.graph.throttle import Throttle

log = logging.getLogger(__name__)

REQUEST_LOG_MAX = 200_000

# Application permissions a route family needs (any one of them).
SCOPE_ROLES: dict[str, tuple[str, ...]] = {
    "mail": ("Mail.ReadWrite", "Mail.Read", "Mail.ReadBasic.All"),
    "mail.write": ("Mail.ReadWrite",),
    "mail.send": ("Mail.Send",),
    "calendar": ("Calendars.ReadWrite", "Calendars.Read"),
    "calendar.write": ("Calendars.ReadWrite",),
    "contacts": ("Contacts.ReadWrite", "Contacts.Read"),
    "contacts.write": ("Contacts.ReadWrite",),
    "mailboxsettings": ("MailboxSettings.ReadWrite", "MailboxSettings.Read"),
    "mailboxsettings.write": ("MailboxSettings.ReadWrite",),
}


@dataclass
class Sim:
    """Everything the simulator knows; one per process."""

    public_base: str
    authority: str = ""  # https base of the token endpoint (azure-identity requires https)
    ca_path: Path | None = None  # the CA that signed the TLS certificate
    clock: SimClock = field(default_factory=SimClock)
    router: Router = field(default_factory=Router)
    http: ClientSession | None = None
    self_base: str = ""

    def __post_init__(self) -> None:
        # Application access policies: (app id, user id) pairs denied, as RestrictAccess would
        self.denied: set[tuple[str, str]] = set()
        self.identity = Identity(self.public_base)
        self.store = Store(self.clock)
        self.throttle = Throttle(self.clock)
        self.faults = Faults()
        # every Graph request as (time, app, method, path, status): the chaos harness counts writes from it
        self.request_log: deque[dict[str, object]] = deque(maxlen=REQUEST_LOG_MAX)
        self.delta = DeltaEngine(self)
        self.notifier = Notifier(self)
        self.store.listeners.append(self.notifier.on_change)

    def reset(self) -> None:
        self.store.reset()
        self.identity.reset()
        self.throttle.reset()
        self.faults.reset()
        self.request_log.clear()
        self.delta.reset()
        self.notifier.reset()
        self.denied.clear()
        self.clock.offset = self.clock.offset * 0

    @property
    def tenant_id(self) -> str:
        return self.identity.tenant_id


def _with_ids(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    rid = request.get("request_id") or str(uuid.uuid4())
    resp.headers.setdefault("request-id", rid)
    resp.headers.setdefault("client-request-id", request.headers.get("client-request-id", rid))
    resp.headers.setdefault("x-ms-ags-diagnostic",
                            '{"ServerInfo":{"DataCenter":"Sandbox","Slice":"E","Ring":"0","ScaleUnit":"000"}}')
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    request["request_id"] = str(uuid.uuid4())
    try:
        resp = await handler(request)
    except GraphError as exc:
        resp = error_response(exc.status, exc.code, exc.message, request, headers=exc.headers)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        resp = error_response(500, "InternalServerError", "An internal server error occurred.", request)
    if "log_app" in request:
        request.app["sim"].request_log.append({
            "at": time.time(), "app": request["log_app"], "method": request.method,
            "path": request["log_path"], "mailbox": request.get("log_mailbox", ""), "status": resp.status})
    return _with_ids(request, resp)


def _principal(sim: Sim, request: web.Request) -> Principal:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        return sim.identity.validate(auth[7:].strip())
    except jwt.ExpiredSignatureError as exc:
        raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.") from exc
    except jwt.InvalidTokenError as exc:
        raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed or its signature "
                                                            "is invalid.") from exc


async def graph_entry(request: web.Request) -> web.StreamResponse:
    sim: Sim = request.app["sim"]
    segments = normalize_segments(request.raw_path)[1:]  # drop "v1.0"
    request["prefer"] = parse_prefer(request)
    request["graph_base"] = f"{request.scheme}://{request.host}/v1.0"
    request["public_url"] = URL(f"{request.scheme}://{request.host}").join(URL(request.raw_path.split("?")[0],
                                                                                  encoded=True))
    principal = _principal(sim, request)
    request["principal"] = principal
    request["log_app"] = principal.app_id
    request["log_path"] = "/".join(segments)
    if segments and segments[0].lower() == "me":
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    matched = sim.router.match(request.method, segments)
    if matched is None:
        # Logged so that a client hitting something the simulator lacks finds out from the log.
        log.warning("no Graph route for %s /v1.0/%s", request.method, "/".join(segments))
        seg = segments[-1] if segments else ""
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{seg}'.")
    if matched == "405":
        log.warning("method not allowed: %s /v1.0/%s", request.method, "/".join(segments))
        raise GraphError(405, "Request_BadRequest", "The HTTP method is not allowed for the resource.")
    assert not isinstance(matched, str)
    route, params = matched
    mailbox = ""
    if "user" in params:
        user = sim.store.user(params["user"])
        params["user"] = user.id
        mailbox = user.id
        request["log_mailbox"] = user.upn
    if mailbox and (principal.app_id, mailbox) in sim.denied:
        raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant "
                                                   "configured AppOnly AccessPolicy settings.")
    needed = SCOPE_ROLES.get(route.scope)
    if needed is not None and not set(needed) & set(principal.roles):
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    verdict = sim.throttle.acquire(principal.app_id, mailbox) if mailbox else None
    if verdict is not None and not verdict.allowed:
        return throttled_response(verdict.retry_after, request, f"Application is over its {verdict.reason} limit.")
    try:
        rule = await _inject_fault(sim, request, "/".join(segments), principal.app_id)
        if rule is not None and rule.kind == "drop":
            return web.Response(status=202)  # "accepted", never done: a vanished write (harness self-test)
        resp = await route.handler(request, params)
        if rule is not None and rule.kind == "lost":
            raise GraphError(504, "UnknownError", "The request timed out.")  # done, but the answer is lost
        return resp
    finally:
        if verdict is not None:
            sim.throttle.release(principal.app_id, mailbox)


async def _inject_fault(sim: Sim, request: web.Request, path: str, app_id: str) -> FaultRule | None:
    """Apply a matching /_sim/faults rule. Runs inside the throttled region, so injected latency
    holds a concurrency slot as a slow Exchange request would. Returns the rule (the caller acts on
    `lost` and `drop`, which concern the answer rather than the request)."""
    rule = sim.faults.pick(request.method, path, app_id)
    if rule is None:
        return None
    if rule.delay_ms:
        await asyncio.sleep(rule.delay_ms / 1000)
    if rule.kind == "timeout":
        await asyncio.sleep(rule.timeout_seconds)
        raise GraphError(504, "UnknownError", "The request timed out.")
    if rule.kind == "error":
        if rule.status == 429:
            retry = rule.retry_after if rule.retry_after is not None else 1
            raise GraphError(429, "TooManyRequests", "Please retry again later.",
                             headers={"Retry-After": f"{retry:g}"})
        headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        code = rule.code or {500: "InternalServerError", 502: "BadGateway", 503: "ServiceNotAvailable",
                             504: "UnknownError"}.get(rule.status, "ErrorInternalServerTransientError")
        raise GraphError(rule.status, code, "Injected fault.", headers=headers)
    return rule


async def _startup(app: web.Application) -> None:
    sim: Sim = app["sim"]
    sim.http = ClientSession(timeout=ClientTimeout(total=30))
    sim.notifier.start()


async def _cleanup(app: web.Application) -> None:
    sim: Sim = app["sim"]
    await sim.notifier.stop()
    if sim.http is not None:
        await sim.http.close()


def build_app(sim: Sim) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=200 * 1024 * 1024)
    app["sim"] = sim
    for module in (users, mail, calendar, contacts, subscriptions):
        module.register(sim.router)
    app.router.add_routes(sim.identity.routes())
    app.router.add_routes(control.routes())
    app.router.add_routes(upload_routes())
    app.router.add_post("/v1.0/$batch", batch.handle)
    app.router.add_route("*", "/v1.0/{tail:.*}", graph_entry)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app

