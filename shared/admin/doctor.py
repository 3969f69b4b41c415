"""`pes-admin doctor` / `GET /api/admin/doctor`: is this deployment ready? A PASS/FAIL checklist.

Run before go-live and any time after, against the real services in the settings. Every FAIL carries
the exact fix (which permission, which rule, which field), because the reader is a Pega or Azure
administrator who cannot read our code. Checks never raise: an unexpected error is a FAIL with its
type. Nothing secret goes into a check's text (no token, key or password), and no message content.

Areas: Graph (token, app roles, access to each onboarded mailbox), the notification URL (reachable,
answers Graph's validation handshake), Storage (tables, queues), Pega (shared.admin.doctor_pega:
token, each operation reachable, each mapped field round-trips through a probe record, data views).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from shared.config import Settings
from shared.queues import names as queue_names
from shared.runtime import Services

log = logging.getLogger(__name__)

GRAPH_ROLES = ("Mail.ReadWrite", "Mail.Send", "Calendars.ReadWrite", "Contacts.ReadWrite")
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    area: str  # graph | notifications | storage | pega
    name: str
    status: str  # PASS | FAIL | SKIP
    detail: str = ""
    fix: str = ""  # for a FAIL: exactly what to change, and where


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": len(self.failed()), "checks": [asdict(c) for c in self.checks]}


def ok(area: str, name: str, detail: str = "") -> Check:
    return Check(area, name, PASS, detail)


def fail(area: str, name: str, detail: str, fix: str) -> Check:
    return Check(area, name, FAIL, detail, fix)


def skip(area: str, name: str, detail: str) -> Check:
    return Check(area, name, SKIP, detail)


async def guarded(area: str, name: str, fn: Callable[[], Awaitable[list[Check]]], fix: str) -> list[Check]:
    """Run one group of checks; an unexpected error is a FAIL (type only: messages may carry data)."""
    try:
        return await fn()
    except Exception as exc:
        log.warning("doctor check %s/%s failed unexpectedly: %s", area, name, type(exc).__name__)
        return [fail(area, name, f"{type(exc).__name__}: {str(exc)[:300]}", fix)]


def token_roles(token: str) -> list[str]:
    """The `roles` claim of a JWT access token (read only to report missing app roles)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return []
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else []


# ------------------------------------------------------------------ Graph


async def graph_checks(svc: Services) -> list[Check]:
    from shared.graph.credentials import GRAPH_SCOPE, graph_credential

    s = svc.settings.graph
    if not (s.tenant_id and s.client_id):
        return [fail("graph", "Graph token", "GRAPH_TENANT_ID / GRAPH_CLIENT_ID are not set",
                     "set GRAPH_TENANT_ID and GRAPH_CLIENT_ID (the sync app registration, docs/deploy.md)")]
    credential = graph_credential(s)
    try:
        token = (await credential.get_token(GRAPH_SCOPE)).token
    except Exception as exc:
        return [fail("graph", "Graph token", f"no token for app {s.client_id}: {type(exc).__name__}",
                     f"check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and the {s.credential_kind.value} credential of app "
                     f"registration {s.client_id} (Entra admin center > App registrations > Certificates & secrets)")]
    finally:
        await credential.close()
    out = [ok("graph", "Graph token", f"app {s.client_id}")]
    roles = set(token_roles(token))
    missing = [r for r in GRAPH_ROLES if r not in roles]
    if missing:
        out.append(fail("graph", "Graph app roles", f"the token lacks {', '.join(missing)}",
                        f"Entra admin center > App registrations > {s.client_id} > API permissions > Add a permission "
                        f"> Microsoft Graph > Application permissions: {', '.join(missing)}; then Grant admin consent"))
    else:
        out.append(ok("graph", "Graph app roles", ", ".join(GRAPH_ROLES)))
    out += await mailbox_checks(svc)
    return out


async def mailbox_checks(svc: Services) -> list[Check]:
    """Each onboarded Exchange Online mailbox answers for mail, calendar and contacts (a 403 here is
    RBAC for Applications scoping or a missing role; a 404 a mailbox that does not exist)."""
    from shared.graph.errors import GraphAccessDeniedError, GraphNotFoundError
    from shared.graph.gateway import GraphGateway

    mailboxes = [m for m in await svc.state.mailboxes.list(active_only=True) if getattr(m, "backend", "graph") == "graph"]
    if not mailboxes:
        return [skip("graph", "mailbox access", "no Exchange Online mailbox is onboarded yet")]
    gateway = GraphGateway.from_settings(svc.settings.graph)
    out: list[Check] = []
    try:
        for mb in mailboxes:
            upn = mb.upn
            failures: list[str] = []
            fix = ""
            for what, path in (("mail", f"users/{upn}/mailFolders/inbox"), ("calendar", f"users/{upn}/calendar"),
                               ("contacts", f"users/{upn}/contactFolders")):
                try:
                    await gateway.request("GET", path, mailbox=upn, params={"$select": "id"} if what != "contacts"
                                          else {"$top": 1, "$select": "id"}, what=f"doctor {what}")
                except GraphAccessDeniedError:
                    failures.append(f"{what}: access denied (403)")
                    fix = (f"grant the app access to {upn}: the app role (Graph API permissions) and, with RBAC for "
                           "Applications, a management scope that includes the mailbox (Exchange Online PowerShell: "
                           "New-ManagementRoleAssignment -App <service principal> -Role 'Application Mail.ReadWrite' "
                           "-CustomResourceScope <scope>, likewise Calendars and Contacts; or add the user to the "
                           "scope's group). Test-ServicePrincipalAuthorization shows what the app can reach.")
                except GraphNotFoundError:
                    failures.append(f"{what}: not found (404)")
                    fix = fix or (f"{upn} has no Exchange Online mailbox (no licence, or a typo at onboarding): "
                                  "license the user or offboard and onboard the right address")
            out.append(fail("graph", f"mailbox {upn}", "; ".join(failures), fix) if failures
                       else ok("graph", f"mailbox {upn}", "mail, calendar and contacts readable"))
    finally:
        await gateway.close()
    return out


# ------------------------------------------------------------------ notification URL


async def notification_checks(settings: Settings) -> list[Check]:
    """Graph posts `?validationToken=` to the URL when subscribing and needs the token echoed as text
    within 10 s; without that every subscription fails and only the safety-net poll syncs."""
    from shared.sync.subscriptions import notification_urls

    area, name = "notifications", "notification URL"
    if not settings.sync.push_enabled:
        return [skip(area, name, "SYNC_PUSH_ENABLED is off: the delta poll is the only path")]
    base = settings.sync.notification_url_base
    if not base:
        return [fail(area, name, "SYNC_NOTIFICATION_URL_BASE is not set",
                     "set SYNC_NOTIFICATION_URL_BASE to the public https base of the app, e.g. "
                     "https://<app>.azurewebsites.net/api")]
    if not base.startswith("https://") and not base.startswith(("http://127.0.0.1", "http://localhost")):
        return [fail(area, name, "Graph only posts to https URLs",
                     "set SYNC_NOTIFICATION_URL_BASE to an https URL (https://<app>.azurewebsites.net/api)")]
    notify, _ = notification_urls(settings)
    token = "pes-doctor-" + secrets.token_hex(8)
    url = notify + ("&" if "?" in notify else "?") + "validationToken=" + token
    shown = notify.split("?", 1)[0]  # never the function key
    try:
        async with aiohttp.ClientSession() as session, session.post(
            url, timeout=aiohttp.ClientTimeout(total=10)
        ) as resp:
            status, body = resp.status, (await resp.text())[:500]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [fail(area, name, f"{shown} is not reachable: {type(exc).__name__}",
                     "check SYNC_NOTIFICATION_URL_BASE (host name, /api suffix), DNS and the app's network access "
                     "restrictions: Graph must reach it from the internet")]
    if status in (401, 403):
        return [fail(area, name, f"{shown} refused the call ({status})",
                     "set SYNC_NOTIFICATION_URL_KEY to a valid function key of the app (Azure portal > Function "
                     "App > App keys)")]
    if status != 200 or body != token:
        return [fail(area, name, f"{shown} answered {status} without echoing the validation token",
                     "SYNC_NOTIFICATION_URL_BASE must point at this app's /api root (Graph posts to "
                     "<base>/graph/notifications)")]
    return [ok(area, name, f"{shown} answers the validation handshake")]


# ------------------------------------------------------------------ storage


async def storage_checks(svc: Services) -> list[Check]:
    out: list[Check] = []
    existing = await svc.state.tables.existing()
    missing = [t for t in svc.state.tables.names.all() if t not in existing]
    out.append(fail("storage", "state tables", f"missing: {', '.join(missing)}",
                    "the app creates its tables at start: give its identity 'Storage Table Data Contributor' on the "
                    "storage account (or create the tables listed)") if missing
               else ok("storage", "state tables", f"{len(existing & set(svc.state.tables.names.all()))} tables"))
    absent = [q for q in queue_names.ALL if not await svc.queues.exists(q)]
    out.append(fail("storage", "work queues", f"missing: {', '.join(absent)}",
                    "create the queues (az storage queue create -n <name>) or give the app's identity 'Storage Queue "
                    "Data Contributor' so it creates them") if absent
               else ok("storage", "work queues", ", ".join(queue_names.ALL)))
    return out


# ------------------------------------------------------------------ the whole checklist


async def run_doctor(svc: Services, *, probe: bool = True) -> DoctorReport:
    """Every check, in the order an administrator fixes things. `probe`: write Pega probe records."""
    from shared.admin.doctor_pega import pega_checks

    report = DoctorReport()
    report.checks += await guarded("graph", "Graph", lambda: graph_checks(svc),
                                   "check the GRAPH_* settings (docs/deploy.md)")
    report.checks += await guarded("notifications", "notification URL", lambda: notification_checks(svc.settings),
                                   "check SYNC_NOTIFICATION_URL_BASE / SYNC_NOTIFICATION_URL_KEY")
    report.checks += await guarded("storage", "storage", lambda: storage_checks(svc),
                                   "check AzureWebJobsStorage and the app identity's data roles on the account")
    report.checks += await guarded("pega", "Pega", lambda: pega_checks(svc.settings, probe=probe),
                                   "check the PEGA_* settings (docs/pega-setup.md)")
    return report
