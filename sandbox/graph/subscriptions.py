"""POST/GET/PATCH/DELETE /subscriptions and /subscriptions/{id}/reauthorize.

Creation validates the notification and lifecycle URLs with the documented handshake (POST
``?validationToken=``; the endpoint has 10 s to echo the decoded token as text/plain) and enforces
the Outlook limits: at most 10,080 minutes ahead (raised to 45 minutes when shorter), 1,000 active
subscriptions per mailbox across apps (403 beyond).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import ClientError, ClientTimeout, web
from yarl import URL

from sandbox.graph.clock import iso7, parse_iso
from sandbox.graph.errors import GraphError
from sandbox.graph.odata import context_url, graph_json, list_page, read_json
from sandbox.graph.router import Router, normalize_segments

log = logging.getLogger(__name__)
MAX_MINUTES = 10_080
MIN_MINUTES = 45
VALIDATION_TIMEOUT = 10.0
KIND_ROLES = {"message": ("Mail.ReadWrite", "Mail.Read"), "event": ("Calendars.ReadWrite", "Calendars.Read"),
              "contact": ("Contacts.ReadWrite", "Contacts.Read")}


@dataclass
class Subscription:
    id: str
    resource: str
    user_id: str
    kind: str
    folder_id: str | None
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    app_id: str
    immutable_ids: bool
    include_resource_data: bool = False
    latest_tls: str = "v1_2"
    reauth_sent: bool = False
    created: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id, "resource": self.resource, "applicationId": self.app_id,
            "changeType": ",".join(self.change_types), "clientState": self.client_state,
            "notificationUrl": self.notification_url, "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": iso7(self.expiration), "creatorId": self.user_id,
            "includeResourceData": self.include_resource_data, "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": None, "encryptionCertificateId": None, "notificationQueryOptions": None,
            "notificationUrlAppId": None, "notificationContentType": "application/json",
        }


def parse_resource(sim: Any, resource: str) -> tuple[str, str, str | None]:
    """-> (user id, kind, folder id or None). Accepts upn or id, OData key syntax, any casing."""
    segs = normalize_segments(resource)
    low = [s.lower() for s in segs]
    bad = GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported for change notifications.")
    if not low:
        raise bad
    if low[0] == "me":
        raise GraphError(400, "InvalidRequest", "/me is only valid with delegated authentication flow.")
    if low[0] != "users" or len(segs) < 3:
        raise bad
    user = sim.store.find_user(segs[1])
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{segs[1]}' is invalid.")
    rest = low[2:]
    if rest == ["messages"]:
        return user.id, "message", None
    if len(rest) == 3 and rest[0] == "mailfolders" and rest[2] == "messages":
        return user.id, "message", sim.store.folder(user, "mail", segs[3]).id
    if rest in (["events"], ["calendar", "events"]):
        return user.id, "event", None
    if rest == ["contacts"]:
        return user.id, "contact", None
    if len(rest) == 3 and rest[0] == "contactfolders" and rest[2] == "contacts":
        return user.id, "contact", sim.store.folder(user, "contacts", segs[3]).id
    raise bad


def _check_url(url: Any, name: str) -> str:
    if not isinstance(url, str) or not url:
        raise GraphError(400, "InvalidRequest", f"{name} is required.")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise GraphError(400, "InvalidRequest", f"{name} must be an absolute https URL.")
    return url


def _expiry(sim: Any, value: Any) -> datetime:
    if not value:
        raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
    try:
        exp = parse_iso(str(value))
    except ValueError as exc:
        raise GraphError(400, "InvalidRequest", "expirationDateTime is not a valid timestamp.") from exc
    now = sim.clock.now()
    if exp <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration can't be in the past.")
    if exp > now + timedelta(minutes=MAX_MINUTES):
        raise GraphError(400, "InvalidRequest", f"Subscription expiration can only be {MAX_MINUTES} minutes in "
                                                "the future.")
    return max(exp, now + timedelta(minutes=MIN_MINUTES))


async def validate_endpoint(sim: Any, url: str) -> None:
    """The validation handshake; raises a 400 GraphError when the endpoint does not echo the token."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    try:
        sep = "&" if "?" in url else "?"
        target = URL(f"{url}{sep}validationToken={quote(token, safe='')}", encoded=True)
        async with sim.http.post(target, data=b"",
                                 headers={"Content-Type": "text/plain; charset=utf-8"},
                                 timeout=ClientTimeout(total=VALIDATION_TIMEOUT)) as resp:
            body = await resp.text()
            ctype = resp.headers.get("Content-Type", "")
            if resp.status != 200:
                raise GraphError(400, "ValidationError", "Subscription validation request failed. Notification "
                                                         f"endpoint must respond with 200 OK to validation "
                                                         f"request. Response status code: {resp.status}.")
            if not ctype.lower().startswith("text/plain"):
                raise GraphError(400, "ValidationError", "Subscription validation request failed. Must respond "
                                                         "with Content-Type text/plain.")
            if body != token:
                raise GraphError(400, "ValidationError", "Subscription validation request failed. Response must "
                                                         "exactly match validationToken query parameter.")
    except TimeoutError as exc:
        raise GraphError(400, "ValidationError", "Subscription validation request timeout.") from exc
    except (ClientError, OSError) as exc:
        raise GraphError(400, "ValidationError", f"Subscription validation request failed: {type(exc).__name__}."
                         ) from exc


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


def _get(request: web.Request, sub_id: str) -> Subscription:
    sub = _sim(request).notifier.subscriptions.get(sub_id)
    app = request["principal"].app_id
    if sub is None or sub.app_id != app:
        raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription id: {sub_id}")
    return sub


def _entity(request: web.Request, sub: Subscription, status: int = 200) -> web.Response:
    return graph_json(request, {"@odata.context": context_url(request, "subscriptions/$entity"), **sub.to_graph()},
                      status)


async def create(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    principal = request["principal"]
    body = await read_json(request)
    cts = tuple(x.strip() for x in str(body.get("changeType") or "").split(",") if x.strip())
    if not cts or any(c not in ("created", "updated", "deleted") for c in cts):
        raise GraphError(400, "InvalidRequest", "changeType must be a comma-separated list of created, updated, "
                                                "deleted.")
    url = _check_url(body.get("notificationUrl"), "notificationUrl")
    life = body.get("lifecycleNotificationUrl")
    if life is not None:
        _check_url(life, "lifecycleNotificationUrl")
    resource = str(body.get("resource") or "")
    user_id, kind, folder = parse_resource(sim, resource)
    if not set(KIND_ROLES[kind]) & set(principal.roles) or (principal.app_id, user_id) in sim.denied:
        raise GraphError(403, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
                                                "Access is denied. Check credentials and try again.]")
    client_state = body.get("clientState")
    if client_state is not None and len(str(client_state)) > 128:
        raise GraphError(400, "InvalidRequest", "clientState can be at most 128 characters.")
    if body.get("includeResourceData"):
        raise GraphError(400, "InvalidRequest", "Rich notifications (includeResourceData) are not supported by "
                                                "the simulator.")
    expiration = _expiry(sim, body.get("expirationDateTime"))
    active = sum(1 for s in sim.notifier.subscriptions.values() if s.user_id == user_id)
    if active >= sim.notifier.config.max_per_mailbox:
        raise GraphError(403, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
                                                "The maximum number of subscriptions for this mailbox has been "
                                                "reached.]")
    checks = [validate_endpoint(sim, url)]
    if life:
        checks.append(validate_endpoint(sim, str(life)))
    await asyncio.gather(*checks)
    sub = Subscription(
        id=str(uuid.uuid4()), resource=resource, user_id=user_id, kind=kind, folder_id=folder, change_types=cts,
        notification_url=url, lifecycle_url=str(life) if life else None,
        client_state=str(client_state) if client_state is not None else None, expiration=expiration,
        app_id=principal.app_id, immutable_ids=request["prefer"].immutable_ids,
        latest_tls=str(body.get("latestSupportedTlsVersion") or "v1_2"), created=sim.clock.now())
    sim.notifier.subscriptions[sub.id] = sub
    log.info("subscription %s created on %s", sub.id, resource)
    return _entity(request, sub, 201)


async def list_subs(request: web.Request, p: dict[str, str]) -> web.Response:
    app = request["principal"].app_id
    subs = [s.to_graph() for s in _sim(request).notifier.subscriptions.values() if s.app_id == app]
    return list_page(request, subs, "subscriptions", default_top=100)


async def get_sub(request: web.Request, p: dict[str, str]) -> web.Response:
    return _entity(request, _get(request, p["id"]))


async def update_sub(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    sub = _get(request, p["id"])
    body = await read_json(request)
    if "lifecycleNotificationUrl" in body and body["lifecycleNotificationUrl"] != sub.lifecycle_url:
        raise GraphError(400, "InvalidRequest", "lifecycleNotificationUrl can only be set when the subscription "
                                                "is created.")
    if "notificationUrl" in body and body["notificationUrl"] != sub.notification_url:
        url = _check_url(body["notificationUrl"], "notificationUrl")
        await validate_endpoint(sim, url)
        sub.notification_url = url
    if "expirationDateTime" in body:
        sub.expiration = _expiry(sim, body["expirationDateTime"])
        sub.reauth_sent = False
    return _entity(request, sub)


async def delete_sub(request: web.Request, p: dict[str, str]) -> web.Response:
    sub = _get(request, p["id"])
    _sim(request).notifier.subscriptions.pop(sub.id, None)
    return web.Response(status=204)


async def reauthorize(request: web.Request, p: dict[str, str]) -> web.Response:
    sub = _get(request, p["id"])
    sub.reauth_sent = False
    return web.Response(status=204)  # subscription-reauthorize.md: 204 No Content


def register(router: Router) -> None:
    router.add("POST", "subscriptions", create, "subscriptions")
    router.add("GET", "subscriptions", list_subs, "subscriptions")
    router.add("GET", "subscriptions/{id}", get_sub, "subscriptions")
    router.add("PATCH", "subscriptions/{id}", update_sub, "subscriptions")
    router.add("DELETE", "subscriptions/{id}", delete_sub, "subscriptions")
    router.add("POST", "subscriptions/{id}/reauthorize", reauthorize, "subscriptions")
