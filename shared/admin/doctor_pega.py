"""The Pega half of `pes-admin doctor` (shared.admin.doctor): token, operations, field round-trips,
data views — for the configured adapter (PEGA_ADAPTER).

A probe record is written with every mapped field set, read back and compared field by field: a
field Pega did not store is a FAIL naming the rule to change (the case type's AllowedStartingFields,
the action's view, or the sync-service data transform). Probes are marked (`pes-doctor probe` in
the subject or name, external id `pes-doctor-<random>`) and cleaned up the way the sync cleans up:
an appointment is cancelled, a contact closed; an email record stays, marked, because the sync never
deletes from Pega.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime
from typing import Any

from shared.admin.doctor import Check, fail, ok, skip
from shared.config import Settings
from shared.pega.client import PegaClient
from shared.pega.convert import from_content, get_path, leaves, to_content
from shared.pega.errors import PegaFieldDroppedError, PegaPermanentError, PegaTransientError
from shared.pega.models import AppointmentData, Attendee, ContactData, EmailData, RecordKind
from shared.pega.query import Condition, Query, eq

PegaError = (PegaPermanentError, PegaTransientError)  # every answer of the Pega client
PROBE_MARK = "pes-doctor probe"
AREA = "pega"
# link fields hold other records' keys: a probe leaves them empty (a bogus key may be validated)
_SKIP_FIELDS = {"contact_id", "organization_id", "lead_id", "opportunity_id", "operator", "recurrence", "photo",
                "body_html"}


def probe_data(cls: type[Any], tag: str) -> Any:
    """A neutral record with every field a probe can set, marked with `tag`."""
    when = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in _SKIP_FIELDS:
            continue
        t = str(f.type)
        if f.name == "attendees":
            values[f.name] = [Attendee("pes-doctor-probe@invalid.example", "Probe")]
        elif "datetime" in t:
            values[f.name] = when if f.name != "end" else when.replace(hour=10)
        elif t.startswith("bool"):
            values[f.name] = True
        elif t.startswith("int"):
            values[f.name] = 15
        elif t.startswith("list[str]"):
            values[f.name] = ["pes-doctor-probe@invalid.example"]
        elif f.name in ("email", "sender"):
            values[f.name] = "pes-doctor-probe@invalid.example"
        elif f.name == "body_type":
            values[f.name] = "text"
        elif f.name == "direction":
            values[f.name] = "Inbound"
        elif f.name == "time_zone":
            values[f.name] = "UTC"
        else:
            values[f.name] = f"{PROBE_MARK} {tag}"
    return cls(**values)


def differences(sent: Any, got: Any) -> list[str]:
    """Neutral field names whose value did not come back."""
    out = []
    for f in dataclasses.fields(sent):
        want = getattr(sent, f.name)
        if want is not None and getattr(got, f.name) != want:
            out.append(f.name)
    return out


async def pega_checks(settings: Settings, *, probe: bool = True) -> list[Check]:
    if not settings.pega.configured:
        return [fail(AREA, "Pega settings", "PEGA_BASE_URL is not set", "set PEGA_BASE_URL and the PEGA_* credentials "
                     "(docs/pega-setup.md)")]
    async with PegaClient(settings.pega) as client:
        if client.tokens is None:
            return [fail(AREA, "Pega token", "PEGA_CLIENT_ID is not set",
                         "create an OAuth 2.0 client registration (client credentials) in Pega for the integration "
                         "operator; set PEGA_CLIENT_ID / PEGA_CLIENT_SECRET")]
        try:
            await client.tokens.get_token(force=True)
        except PegaError as exc:
            return [fail(AREA, "Pega token", f"{type(exc).__name__}: {str(exc)[:200]}",
                         "check PEGA_CLIENT_ID / PEGA_CLIENT_SECRET against Pega's OAuth 2.0 client registration "
                         "(Records > Security > OAuth 2.0 Client Registration, grant type client credentials) and "
                         "PEGA_TOKEN_URL")]
        out = [ok(AREA, "Pega token", f"client {settings.pega.client_id}, adapter {settings.pega.adapter}")]
        tag = secrets.token_hex(4)
        if settings.pega.adapter == "sync-service":
            out += await _service_checks(client, tag, probe=probe)
        else:
            out += await _dx_checks(client, tag, probe=probe)
        return out


# ------------------------------------------------------------------ sync-service


async def _service_checks(client: PegaClient, tag: str, *, probe: bool) -> list[Check]:
    from shared.pega.service import SyncServiceRecords

    svc = SyncServiceRecords(client)
    out: list[Check] = []
    root = client.settings.service_path
    try:
        about = await svc.about()
    except PegaError as exc:
        return [fail(AREA, "sync-service contract", f"GET {root}/about: {str(exc)[:200]}",
                     f"import/enable the ExchangeSync service package and its Service REST rules under {root} "
                     "(docs/pega-service.md), or set PEGA_SERVICE_PATH; the operator of PEGA_CLIENT_ID needs access")]
    version = str(about.get("contractVersion") or "")
    if not version.startswith("1."):
        return [fail(AREA, "sync-service contract", f"contract version {version or 'missing'}",
                     "the Pega side implements another contract version: deploy version 1.x (pega-service.openapi.yaml)")]
    out.append(ok(AREA, "sync-service contract", f"version {version}"))
    lookups: list[tuple[str, Any]] = [
        ("find party by address", lambda: svc.find_contact_by_email("pes-doctor-probe@invalid.example")),
        ("find organization by domain", lambda: svc.find_organization_by_domain("invalid.example")),
        ("find open opportunity", lambda: svc.find_open_opportunity(organization_id="pes-doctor-probe")),
        ("external-id lookup", lambda: svc.existing_ids(RecordKind.APPOINTMENT, [f"pes-doctor-{tag}"])),
        ("internetMessageId lookup", lambda: svc.emails_by_internet_message_id([f"<pes-doctor-{tag}@invalid>"])),
    ]
    for name, call in lookups:
        try:
            await call()
            out.append(ok(AREA, f"operation: {name}"))
        except PegaError as exc:
            out.append(fail(AREA, f"operation: {name}", str(exc)[:300],
                            f"implement this operation's Service REST rule under {root} (docs/pega-service.md §2)"))
    if not probe:
        return [*out, skip(AREA, "field round-trips", "probe records not written (--no-probe)")]
    for kind, cls, getter in ((RecordKind.APPOINTMENT, AppointmentData, svc.get_appointment),
                              (RecordKind.EMAIL, EmailData, svc.get_email),
                              (RecordKind.CONTACT, ContactData, svc.get_contact)):
        ext = f"pes-doctor-{tag}-{kind.value}"
        sent = probe_data(cls, tag)
        name = f"{kind.value} fields round-trip"
        try:
            result = await getattr(svc, f"upsert_{kind.value}")(ext, sent)
            _, got = await getter(result.id)
            lost = differences(sent, got)
            out.append(fail(AREA, name, f"not stored: {', '.join(lost)} (probe {result.id})",
                            f"map {', '.join(lost)} in the data transform of POST {root}/{kind.value}s/upsert to the "
                            "Sales Automation properties (docs/pega-service.md §2)") if lost
                       else ok(AREA, name, f"{len([f for f in dataclasses.fields(sent) if getattr(sent, f.name) is not None])} fields"))
            if kind is RecordKind.APPOINTMENT:
                await svc.cancel_appointment(result.id, reason=PROBE_MARK)
            elif kind is RecordKind.CONTACT:
                await svc.close_contact(result.id, comments=PROBE_MARK)
        except PegaError as exc:
            out.append(fail(AREA, name, str(exc)[:300],
                            f"implement POST {root}/{kind.value}s/upsert and GET {root}/{kind.value}s/{{id}} "
                            "(docs/pega-service.md §2)"))
    return out


# ------------------------------------------------------------------ dx-v2


async def _dx_checks(client: PegaClient, tag: str, *, probe: bool) -> list[Check]:
    m = client.mapping
    out: list[Check] = []
    # data views answer the queries the engine makes (same shapes: filter, IN, select, sort)
    queries = [
        (m.data_views.operators, Query([eq(m.operator.email, "pes-doctor-probe@invalid.example", ignore_case=True)]),
         m.operator.email),
        (m.data_views.contacts, Query([eq(m.contact.email, "pes-doctor-probe@invalid.example", ignore_case=True),
                                       Condition(m.contact.status, "NEQ", m.status.contact_closed)]), m.contact.email),
        (m.data_views.leads, Query([eq(m.lead.email, "pes-doctor-probe@invalid.example", ignore_case=True)]), m.lead.email),
        (m.data_views.organizations, Query([eq(m.organization.domain, "invalid.example", ignore_case=True)]),
         m.organization.domain),
        (m.data_views.opportunities, Query([eq(m.opportunity.organization_id, "pes-doctor-probe"),
                                            Condition(m.opportunity.status, "IN", list(m.status.opportunity_open_values))],
                                           sort=[("pxUpdateDateTime", "DESC")]), m.opportunity.organization_id),
        (m.data_views.appointments, Query([Condition(m.appointment.external_id, "IN", [f"pes-doctor-{tag}"])],
                                          select=[m.data_views.id_field, m.appointment.external_id]),
         m.appointment.external_id),
        (m.data_views.emails, Query([Condition(m.email.internet_message_id, "IN", [f"<pes-doctor-{tag}@invalid>"])],
                                    select=[m.data_views.id_field, m.email.internet_message_id]),
         m.email.internet_message_id),
        (m.data_views.contacts, Query([Condition(m.contact.external_id, "IN", [f"pes-doctor-{tag}"])],
                                      select=[m.data_views.id_field, m.contact.external_id]), m.contact.external_id),
    ]
    for view, query, prop in queries:
        try:
            await client.query_data_view(view, query, max_rows=1)
            out.append(ok(AREA, f"data view {view} by {prop}"))
        except PegaError as exc:
            out.append(fail(AREA, f"data view {view} by {prop}", str(exc)[:300],
                            f"data view {view} must exist, be readable by the integration operator and allow filtering "
                            f"on {prop} and selecting {m.data_views.id_field} (or set its id in PEGA_MAPPING_FILE)"))
    if not probe:
        return [*out, skip(AREA, "field round-trips", "probe records not written (--no-probe)")]
    out += await _dx_case_probe(client, tag, "appointment")
    out += await _dx_case_probe(client, tag, "email")
    out += await _dx_contact_probe(client, tag)
    return out


async def _dx_case_probe(client: PegaClient, tag: str, kind: str) -> list[Check]:
    m = client.mapping
    cls, fields, case_type = ((AppointmentData, m.appointment, m.case_types.appointment) if kind == "appointment"
                              else (EmailData, m.email, m.case_types.email))
    sent = probe_data(cls, tag)
    content = to_content(sent, fields, attendee_fields=m.attendee)
    ext = f"pes-doctor-{tag}-{kind}"
    content[fields.external_id] = ext
    out: list[Check] = []
    try:
        case = await client.create_case(case_type, content, must_keep=[fields.external_id])
    except PegaFieldDroppedError as exc:
        return [fail(AREA, f"case type {case_type}: create", f"{fields.external_id} was dropped (probe {exc.record_id})",
                     f"add .{fields.external_id} to the AllowedStartingFields data transform (pyAllowedStartingFields) "
                     f"of case type {case_type}; without it every replay creates another case")]
    except PegaError as exc:
        return [fail(AREA, f"case type {case_type}: create", str(exc)[:300],
                     f"case type {case_type} must exist and be creatable through DX API v2 by the integration operator "
                     "(or set case_types in PEGA_MAPPING_FILE)")]
    got = from_content(cls, case.content, fields, attendee_fields=m.attendee)
    lost = [getattr(fields, n) for n in differences(sent, got)]
    out.append(fail(AREA, f"case type {case_type}: create fields", f"dropped: {', '.join(lost)} (probe {case.id})",
                    f"add {', '.join('.' + p for p in lost)} to the AllowedStartingFields data transform "
                    f"(pyAllowedStartingFields) of case type {case_type}") if lost
               else ok(AREA, f"case type {case_type}: create fields", f"{len(content)} fields stored"))
    action = m.actions.update
    try:
        updated = await client.case_action(case.id, action, content, etag=case.etag)
        got = from_content(cls, updated.content, fields, attendee_fields=m.attendee)
        lost = [getattr(fields, n) for n in differences(sent, got)]
        if updated.content.get(fields.external_id) != ext:
            lost.append(fields.external_id)
        out.append(fail(AREA, f"case type {case_type}: action {action}", f"dropped: {', '.join(lost)}",
                        f"add {', '.join('.' + p for p in lost)} to the view of flow action {action} on {case_type}")
                   if lost else ok(AREA, f"case type {case_type}: action {action}"))
        if kind == "appointment":
            fresh = await client.get_case(case.id)
            await client.case_action(case.id, m.actions.cancel_appointment, {m.appointment.body: PROBE_MARK},
                                     etag=fresh.etag)
            out.append(ok(AREA, f"case type {case_type}: action {m.actions.cancel_appointment}"))
    except PegaError as exc:
        out.append(fail(AREA, f"case type {case_type}: actions", str(exc)[:300],
                        f"flow actions {action} (and {m.actions.cancel_appointment} for appointments) must be available "
                        f"on {case_type} to the integration operator (or set actions in PEGA_MAPPING_FILE)"))
    return out


async def _dx_contact_probe(client: PegaClient, tag: str) -> list[Check]:
    m = client.mapping
    sent = probe_data(ContactData, tag)
    content = {**to_content(sent, m.contact), m.contact.external_id: f"pes-doctor-{tag}-contact",
               m.contact.status: m.status.contact_active}
    name = f"contact entity {m.sa.contact_path}: fields"
    try:
        rec = await client.sa_create(m.sa.contact_path, content)
        got = await client.sa_get(m.sa.contact_path, rec.id)
        lost = [name for name, value in leaves(content) if get_path(got.content, name) != value]
        await client.sa_update(m.sa.contact_path, rec.id, {m.contact.status: m.status.contact_closed}, etag=got.etag)
    except PegaError as exc:
        return [fail(AREA, name, str(exc)[:300],
                     f"the SA API v1 contact resource {client.settings.sa_api_path}/{m.sa.contact_path} must accept "
                     "create/get/update by the integration operator (Basic, role PegaRULES:PegaAPI: PEGA_USERNAME / "
                     "PEGA_PASSWORD)")]
    return [fail(AREA, name, f"not stored: {', '.join(lost)} (probe {rec.id})",
                 f"add {', '.join(lost)} to the contact class or correct the contact names in PEGA_MAPPING_FILE")
            if lost else ok(AREA, name, f"{len(content)} fields stored")]
