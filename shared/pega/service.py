"""The `sync-service` adapter (shared.pega.adapter): the Pega-side contract in pega-service.openapi.yaml.

The Pega side exposes a few Service REST rules (docs/pega-service.md): atomic upserts by external id
(Pega finds the record by its Exchange id and creates or updates it under one lock, so two writers
never make two records), batched lookups (up to 100 ids per call), reads, cancel, close, and the
party/opportunity lookups the association needs. Records travel as neutral JSON (camelCase names of
the fields of :mod:`shared.pega.models`); Pega's data transforms map them to Sales Automation classes
and properties, so no Pega property name is needed on this side except the insights `extra` fields.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from shared.pega.adapter import BATCH_LIMIT
from shared.pega.client import PegaClient
from shared.pega.convert import format_datetime, parse_datetime
from shared.pega.errors import PegaBadRequestError, PegaConflictError, error_for_status
from shared.pega.mapping import PegaMapping
from shared.pega.models import (
    AppointmentData,
    Attendee,
    ContactData,
    EmailData,
    PegaCase,
    PegaRef,
    RecordKind,
    SaRecord,
    UpsertAction,
    UpsertResult,
)

log = logging.getLogger(__name__)

CONTRACT_VERSION = "1.0"
T = TypeVar("T")

_COLLECTION = {RecordKind.APPOINTMENT: "appointments", RecordKind.EMAIL: "emails", RecordKind.CONTACT: "contacts"}
_RECORD_KEY = {RecordKind.APPOINTMENT: "appointment", RecordKind.EMAIL: "email", RecordKind.CONTACT: "contact"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def to_json(data: Any) -> dict[str, Any]:
    """A neutral record as the contract's JSON: camelCase names, non-None fields only (an update
    touches only those), datetimes ISO-8601 UTC, attendees as objects, address lists as arrays."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = format_datetime(value)
        elif f.name == "attendees":
            value = [{k: v for k, v in dataclasses.asdict(a).items() if v is not None} for a in value]
        out[camel(f.name)] = value
    return out


def from_json(cls: type[T], body: Mapping[str, Any]) -> T:
    """A neutral record from the contract's JSON (unknown names are ignored)."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = camel(f.name)
        if key not in body or body[key] is None:
            continue
        value = body[key]
        if "datetime" in str(f.type):
            value = parse_datetime(value)
        elif f.name == "attendees":
            value = [Attendee(email=str(a.get("email")), name=a.get("name"), type=str(a.get("type") or "required"),
                              response=a.get("response")) for a in value if isinstance(a, dict) and a.get("email")]
        kwargs[f.name] = value
    return cls(**kwargs)


def _seg(value: str) -> str:
    return quote(value, safe="")


class SyncServiceRecords:
    """The engine's Pega interface over the sync-service contract (one PegaClient for transport)."""

    name = "sync-service"

    def __init__(self, client: PegaClient) -> None:
        self.client = client
        self.m: PegaMapping = client.mapping

    async def close(self) -> None:
        """The client is shared (shared.pega.factory) and closed by its owner."""

    async def _call(self, method: str, path: str, what: str, body: Any = None) -> Any:
        _, answer = await self.client.service_call(method, path, what=f"sync-service {what}", json_body=body)
        return answer if isinstance(answer, dict) else {}

    async def about(self) -> dict[str, Any]:
        """`GET /about`: the contract version and operations the Pega side implements (for doctor)."""
        return await self._call("GET", "about", "about")

    # ------------------------------------------------------------------ lookups

    async def _party(self, query: dict[str, str], role: str) -> PegaRef | None:
        body = await self._call("GET", "parties?" + urlencode(query), f"find party ({role})")
        found = body.get(role)
        if not isinstance(found, dict) or not found.get("id"):
            return None
        return PegaRef(id=str(found["id"]), row=self._row(found))

    def _row(self, found: Mapping[str, Any]) -> dict[str, Any]:
        """The found party as the engine reads rows (mapping property names for the ids it follows)."""
        row = dict(found)
        if found.get("organizationId"):
            row[self.m.contact.organization_id] = found["organizationId"]
        if found.get("operatorId"):
            row[self.m.operator.operator_id] = found["operatorId"]
        return row

    async def find_operator_by_email(self, email: str) -> PegaRef | None:
        return await self._party({"email": email}, "operator")

    async def find_contact_by_email(self, email: str) -> PegaRef | None:
        return await self._party({"email": email}, "contact")

    async def find_lead_by_email(self, email: str) -> PegaRef | None:
        return await self._party({"email": email}, "lead")

    async def find_organization_by_domain(self, domain: str) -> PegaRef | None:
        return await self._party({"domain": domain.lstrip("@")}, "organization")

    async def find_open_opportunity(self, *, organization_id: str | None = None,
                                    contact_id: str | None = None) -> PegaRef | None:
        query = {k: v for k, v in (("organizationId", organization_id), ("contactId", contact_id)) if v}
        if not query:
            return None
        body = await self._call("GET", "opportunities/open?" + urlencode(query), "find open opportunity")
        found = body.get("opportunity")
        return PegaRef(id=str(found["id"]), row=dict(found)) if isinstance(found, dict) and found.get("id") else None

    async def existing_ids(self, kind: RecordKind, external_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids = list(external_ids)
        for i in range(0, len(ids), BATCH_LIMIT):
            body = await self._call("POST", "lookups/external-ids", "external-id lookup",
                                    {"kind": kind.value, "externalIds": ids[i:i + BATCH_LIMIT]})
            found.update({str(k): str(v) for k, v in (body.get("found") or {}).items() if v})
        return found

    async def find_by_external_id(self, kind: RecordKind, external_id: str) -> PegaRef | None:
        found = await self.existing_ids(kind, [external_id])
        return PegaRef(id=found[external_id]) if external_id in found else None

    async def emails_by_internet_message_id(self, internet_message_ids: Sequence[str]) -> dict[str, str]:
        ids = sorted({i for i in internet_message_ids if i})
        found: dict[str, str] = {}
        for i in range(0, len(ids), BATCH_LIMIT):
            body = await self._call("POST", "lookups/internet-message-ids", "internetMessageId lookup",
                                    {"internetMessageIds": ids[i:i + BATCH_LIMIT]})
            for k, v in (body.get("found") or {}).items():
                if v:
                    found.setdefault(str(k), str(v))
        return found

    async def existing_emails(self, external_ids: Sequence[str],
                              internet_message_ids: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The contract has one lookup per key: both at once."""
        by_ext, by_imid = await asyncio.gather(self.existing_ids(RecordKind.EMAIL, external_ids),
                                               self.emails_by_internet_message_id(internet_message_ids))
        return by_ext, by_imid

    # ------------------------------------------------------------------ reads

    async def _get(self, kind: RecordKind, record_id: str) -> dict[str, Any]:
        return await self._call("GET", f"{_COLLECTION[kind]}/{_seg(record_id)}", f"get {kind.value}")

    def _case(self, body: Mapping[str, Any], record_id: str) -> PegaCase:
        return PegaCase(id=str(body.get("id") or record_id), case_type_id=str(body.get("class") or ""),
                        status=str(body.get("status") or ""), content={}, etag=body.get("version"),
                        last_update_time=body.get("updatedAt"))

    async def get_appointment(self, record_id: str) -> tuple[PegaCase, AppointmentData]:
        body = await self._get(RecordKind.APPOINTMENT, record_id)
        return self._case(body, record_id), from_json(AppointmentData, body.get("appointment") or {})

    async def get_email(self, record_id: str) -> tuple[PegaCase, EmailData]:
        body = await self._get(RecordKind.EMAIL, record_id)
        return self._case(body, record_id), from_json(EmailData, body.get("email") or {})

    async def get_contact(self, record_id: str) -> tuple[SaRecord, ContactData]:
        body = await self._get(RecordKind.CONTACT, record_id)
        rec = SaRecord(id=str(body.get("id") or record_id), content={}, etag=body.get("version"),
                       obj_class=body.get("class"), status_value=str(body.get("status") or ""),
                       last_update_time=body.get("updatedAt"))
        return rec, from_json(ContactData, body.get("contact") or {})

    async def case_status(self, record_id: str) -> str:
        body = await self._call("GET", f"records/{_seg(record_id)}/status", "record status")
        return str(body.get("status") or "")

    # ------------------------------------------------------------------ writes

    async def upsert_many(self, kind: RecordKind, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """`POST /{kind}s/upsert` with up to 100 items; per-item results in the same order."""
        if not 1 <= len(items) <= BATCH_LIMIT:
            raise ValueError(f"a batch holds 1 to {BATCH_LIMIT} items")
        body = await self._call("POST", f"{_COLLECTION[kind]}/upsert", f"upsert {kind.value}", {"items": list(items)})
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(items):
            raise PegaBadRequestError(f"Pega sync-service upsert {kind.value} answered without one result per item")
        return [r if isinstance(r, dict) else {} for r in results]

    async def _upsert(self, kind: RecordKind, external_id: str, data: Any, *, known_id: str | None,
                      extra: Mapping[str, Any] | None, expected_etag: str | None, absent: bool) -> UpsertResult:
        item: dict[str, Any] = {"externalId": external_id, _RECORD_KEY[kind]: to_json(data)}
        if known_id:
            item["knownId"] = known_id
        if expected_etag:
            item["ifMatch"] = expected_etag
        if extra:
            item["extra"] = dict(extra)
        if absent:
            item["expectAbsent"] = True
        [result] = await self.upsert_many(kind, [item])
        return _result(kind, external_id, result)

    async def upsert_appointment(self, external_id: str, data: AppointmentData, *, known_id: str | None = None,
                                 extra: Mapping[str, Any] | None = None, expected_etag: str | None = None,
                                 absent: bool = False) -> UpsertResult:
        return await self._upsert(RecordKind.APPOINTMENT, external_id, data, known_id=known_id, extra=extra,
                                  expected_etag=expected_etag, absent=absent)

    async def upsert_email(self, external_id: str, data: EmailData, *, known_id: str | None = None,
                           extra: Mapping[str, Any] | None = None, expected_etag: str | None = None,
                           absent: bool = False) -> UpsertResult:
        return await self._upsert(RecordKind.EMAIL, external_id, data, known_id=known_id, extra=extra,
                                  expected_etag=expected_etag, absent=absent)

    async def upsert_contact(self, external_id: str, data: ContactData, *, known_id: str | None = None,
                             expected_etag: str | None = None, absent: bool = False) -> UpsertResult:
        return await self._upsert(RecordKind.CONTACT, external_id, data, known_id=known_id, extra=None,
                                  expected_etag=expected_etag, absent=absent)

    async def adopt_contact(self, record_id: str, external_id: str, data: ContactData) -> UpsertResult:
        body = await self._call("POST", f"contacts/{_seg(record_id)}/adopt", "adopt contact",
                                {"externalId": external_id, "contact": to_json(data)})
        return _result(RecordKind.CONTACT, external_id, body)

    async def cancel_appointment(self, record_id: str, *, reason: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"appointments/{_seg(record_id)}/cancel", "cancel appointment",
                                {"reason": reason} if reason else {})

    async def close_contact(self, record_id: str, *, comments: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"contacts/{_seg(record_id)}/close", "close contact",
                                {"closeComments": comments or "Closed from Exchange"})

    async def set_external_id(self, kind: RecordKind, record_id: str, external_id: str) -> None:
        await self._call("PUT", f"{_COLLECTION[kind]}/{_seg(record_id)}/external-id", f"report {kind.value} id",
                         {"externalId": external_id})

    async def write_fields(self, kind: RecordKind, writes: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[str]:
        """Properties onto existing records in batched upserts (`mustExist`: a record that is gone is
        not re-created); up to 100 per call."""
        out: list[str] = []
        items = [{"externalId": ext, "knownId": record_id, _RECORD_KEY[kind]: {}, "extra": dict(fields),
                  "mustExist": True} for record_id, ext, fields in writes]
        for start in range(0, len(items), BATCH_LIMIT):
            for result in await self.upsert_many(kind, items[start:start + BATCH_LIMIT]):
                out.append(_write_outcome(kind, result))
        return out


def _write_outcome(kind: RecordKind, result: Mapping[str, Any]) -> str:
    err = result.get("error")
    if not isinstance(err, dict):
        return "gone" if result.get("action") == "skipped_resolved" else "written"
    status = int(err.get("status") or 400)
    if status == 404:
        return "gone"
    if status in (400, 422):
        log.warning("Pega refused further properties of a %s (%s)", kind.value, err.get("code"))
        return "rejected"
    raise error_for_status(status, what=f"sync-service write {kind.value} properties", body={"error": err})


def _result(kind: RecordKind, external_id: str, result: Mapping[str, Any]) -> UpsertResult:
    err = result.get("error")
    if isinstance(err, dict):
        status = int(err.get("status") or 400)
        if status in (409, 412):
            raise PegaConflictError(f"Pega sync-service upsert {kind.value}: {err.get('message', 'version changed')}",
                                    status=status)
        raise error_for_status(status, what=f"sync-service upsert {kind.value}", body={"error": err})
    if not result.get("id"):
        raise PegaBadRequestError(f"Pega sync-service upsert {kind.value} returned no id")
    try:
        action = UpsertAction(str(result.get("action")))
    except ValueError as exc:
        raise PegaBadRequestError(f"Pega sync-service upsert {kind.value}: unknown action "
                                  f"{result.get('action')!r}") from exc
    return UpsertResult(str(result["id"]), action, result.get("version"))
