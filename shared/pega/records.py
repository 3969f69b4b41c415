"""The `dx-v2` adapter (shared.pega.adapter): lookups, idempotent upserts, cancel and close over
DX API v2 cases and data views and the SA API v1 contact entity.

Every upsert is keyed by the Exchange immutable id and safe to repeat: it tries the link the
caller knows, then the external-id data view, and only then creates. A retried request whose
first attempt wrote the record but lost the answer therefore finds it and updates instead of
creating a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shared.pega.client import ConflictResolver, PegaClient
from shared.pega.convert import changed_fields, from_content, get_path, leaves, set_path, to_content
from shared.pega.errors import (
    PegaBadRequestError,
    PegaConflictError,
    PegaFieldDroppedError,
    PegaNotFoundError,
    PegaValidationError,
)
from shared.pega.mapping import PegaMapping
from shared.pega.models import (
    AppointmentData,
    Association,
    ContactData,
    EmailData,
    PegaCase,
    PegaRef,
    RecordKind,
    SaRecord,
    UpsertAction,
    UpsertResult,
)
from shared.pega.query import Condition, Query, eq

log = logging.getLogger(__name__)


class PegaRecords:
    """Sync operations over one :class:`PegaClient`; names and ids come from its mapping."""

    name = "dx-v2"

    def __init__(self, client: PegaClient) -> None:
        self.client = client
        self.m: PegaMapping = client.mapping

    async def close(self) -> None:
        """The client is shared (shared.pega.factory) and closed by its owner."""

    def _view_and_prop(self, kind: RecordKind) -> tuple[str, str]:
        return {
            RecordKind.APPOINTMENT: (self.m.data_views.appointments, self.m.appointment.external_id),
            RecordKind.EMAIL: (self.m.data_views.emails, self.m.email.external_id),
            RecordKind.CONTACT: (self.m.data_views.contacts, self.m.contact.external_id),
        }[kind]

    async def existing_ids(self, kind: RecordKind, external_ids: Sequence[str]) -> dict[str, str]:
        """{exchange id: Pega id} for the ones Pega already holds: one data-view query (IN) per 100."""
        view, prop = self._view_and_prop(kind)
        id_field = self.m.data_views.id_field
        found: dict[str, str] = {}
        ids = list(external_ids)
        for i in range(0, len(ids), 100):
            rows = await self.client.query_data_view(
                view, Query([Condition(prop, "IN", ids[i:i + 100])], select=[id_field, prop]))
            for row in rows:
                ext, pid = row.get(prop), row.get(id_field)
                if ext and pid:
                    found[str(ext)] = str(pid)
        return found

    async def emails_by_internet_message_id(self, internet_message_ids: Sequence[str]) -> dict[str, str]:
        """{internetMessageId: email case id} for mail Pega already holds (another mailbox's copy)."""
        ids = sorted({i for i in internet_message_ids if i})
        prop, id_field = self.m.email.internet_message_id, self.m.data_views.id_field
        found: dict[str, str] = {}
        for i in range(0, len(ids), 100):
            rows = await self.client.query_data_view(
                self.m.data_views.emails, Query([Condition(prop, "IN", ids[i:i + 100])], select=[id_field, prop]))
            for row in rows:
                imid, pid = row.get(prop), row.get(id_field)
                if imid and pid:
                    found.setdefault(str(imid), str(pid))
        return found

    async def existing_emails(self, external_ids: Sequence[str],
                              internet_message_ids: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
        """Both lookups before email creates in one data-view query per 100 mails (F1 OR F2):
        ({exchange id: Pega id}, {internetMessageId: Pega id}), as existing_ids and
        emails_by_internet_message_id would answer them — one Pega call instead of two."""
        ext_prop, imid_prop = self.m.email.external_id, self.m.email.internet_message_id
        id_field = self.m.data_views.id_field
        by_ext: dict[str, str] = {}
        by_imid: dict[str, str] = {}
        ids, imids = list(external_ids), sorted({i for i in internet_message_ids if i})
        for i in range(0, max(len(ids), len(imids)), 100):
            conditions = [Condition(prop, "IN", chunk) for prop, chunk in
                          ((ext_prop, ids[i:i + 100]), (imid_prop, imids[i:i + 100])) if chunk]
            logic = " OR ".join(f"F{n}" for n in range(1, len(conditions) + 1))
            rows = await self.client.query_data_view(
                self.m.data_views.emails, Query(conditions, logic=logic, select=[id_field, ext_prop, imid_prop]))
            wanted_ext, wanted_imid = set(ids[i:i + 100]), set(imids[i:i + 100])
            for row in rows:
                pid = row.get(id_field)
                if not pid:
                    continue
                ext, imid = row.get(ext_prop), row.get(imid_prop)
                if ext and str(ext) in wanted_ext:
                    by_ext[str(ext)] = str(pid)
                if imid and str(imid) in wanted_imid:
                    by_imid.setdefault(str(imid), str(pid))
        return by_ext, by_imid

    async def adopt_contact(self, record_id: str, external_id: str, data: ContactData) -> UpsertResult:
        """Link to a contact Pega already has (same address): fill only the fields Pega has empty, and
        stamp the Exchange id only where there is none yet (the first mailbox's id stays)."""
        path = self.m.sa.contact_path
        current = await self.client.sa_get(path, record_id)
        ext = self.m.contact.external_id
        fill: dict[str, Any] = {}
        for name, value in leaves(to_content(data, self.m.contact)):
            if value not in (None, "") and get_path(current.content, name) in (None, "") and name != ext:
                set_path(fill, name, value)
        if current.content.get(ext) in (None, ""):
            fill[ext] = external_id
        if not fill:
            return UpsertResult(record_id, UpsertAction.UNCHANGED, current.etag)
        updated = await self.client.sa_update(path, record_id, fill, etag=current.etag)
        return UpsertResult(record_id, UpsertAction.UPDATED, updated.etag)

    async def case_status(self, record_id: str) -> str:
        return (await self.client.get_case(record_id)).status

    # ------------------------------------------------------------------ lookups

    async def _first(self, data_view: str, query: Query) -> PegaRef | None:
        rows = await self.client.query_data_view(data_view, query, max_rows=1)
        if not rows:
            return None
        row = rows[0]
        return PegaRef(id=str(row.get(self.m.data_views.id_field) or ""), row=row)

    async def find_operator_by_email(self, email: str) -> PegaRef | None:
        """The operator whose e-mail is `email`; `row[mapping.operator.operator_id]` is its id."""
        return await self._first(self.m.data_views.operators, Query([eq(self.m.operator.email, email, ignore_case=True)]))

    async def find_contact_by_email(self, email: str) -> PegaRef | None:
        """An active contact with this address (closed contacts do not count)."""
        f = self.m.contact
        return await self._first(
            self.m.data_views.contacts,
            Query([eq(f.email, email, ignore_case=True), Condition(f.status, "NEQ", self.m.status.contact_closed)]),
        )

    async def find_lead_by_email(self, email: str) -> PegaRef | None:
        return await self._first(self.m.data_views.leads, Query([eq(self.m.lead.email, email, ignore_case=True)]))

    async def find_organization_by_domain(self, domain: str) -> PegaRef | None:
        return await self._first(
            self.m.data_views.organizations, Query([eq(self.m.organization.domain, domain.lstrip("@"), ignore_case=True)])
        )

    async def find_open_opportunity(
        self, *, organization_id: str | None = None, contact_id: str | None = None
    ) -> PegaRef | None:
        """An open opportunity of the organization (or, failing that, of the contact)."""
        f = self.m.opportunity
        open_values = list(self.m.status.opportunity_open_values)
        for prop, value in ((f.organization_id, organization_id), (f.contact_id, contact_id)):
            if value:
                ref = await self._first(
                    self.m.data_views.opportunities,
                    Query([eq(prop, value), Condition(f.status, "IN", open_values)], sort=[("pxUpdateDateTime", "DESC")]),
                )
                if ref:
                    return ref
        return None

    async def find_by_external_id(self, kind: RecordKind, external_id: str) -> PegaRef | None:
        """The record linked to an Exchange immutable id, through its external-id data view."""
        view, prop = self._view_and_prop(kind)
        return await self._first(view, Query([eq(prop, external_id)]))

    async def associate(self, addresses: Sequence[str], *, own_domains: Sequence[str] = ()) -> Association:
        """Pega's association order for an e-mail: contact, then lead, then organization by domain,
        plus the open opportunity of what was found. Addresses in `own_domains` are skipped."""
        own = {d.lower().lstrip("@") for d in own_domains}
        candidates = [a.strip() for a in addresses if a and "@" in a and a.rsplit("@", 1)[1].lower() not in own]
        for address in candidates:
            contact = await self.find_contact_by_email(address)
            if contact:
                org = str(contact.row.get(self.m.contact.organization_id) or "") or None
                opp = await self.find_open_opportunity(organization_id=org, contact_id=contact.id)
                return Association(contact_id=contact.id, organization_id=org,
                                   opportunity_id=opp.id if opp else None, matched_address=address)
        for address in candidates:
            lead = await self.find_lead_by_email(address)
            if lead:
                return Association(lead_id=lead.id, matched_address=address)
        for address in candidates:
            org_ref = await self.find_organization_by_domain(address.rsplit("@", 1)[1])
            if org_ref:
                opp = await self.find_open_opportunity(organization_id=org_ref.id)
                return Association(organization_id=org_ref.id, opportunity_id=opp.id if opp else None,
                                   matched_address=address)
        return Association()

    # ------------------------------------------------------------------ cases (appointment, email)

    async def _existing_case(self, kind: RecordKind, external_id: str, known_id: str | None) -> PegaCase | None:
        if known_id:
            try:
                return await self.client.get_case(known_id)
            except PegaNotFoundError:
                log.info("linked Pega %s is gone; looking it up by external id", kind.value)
        ref = await self.find_by_external_id(kind, external_id)
        if ref and ref.id:
            return await self.client.get_case(ref.id)
        return None

    async def _upsert_case(
        self, kind: RecordKind, case_type: str, external_id: str, content: dict[str, Any],
        known_id: str | None, ext_prop: str, on_conflict: ConflictResolver | None,
        expected_etag: str | None = None, absent: bool = False,
    ) -> UpsertResult:
        existing = None if absent else await self._existing_case(kind, external_id, known_id)
        _check_unchanged(existing, expected_etag)
        if existing is None:
            created = await self.client.create_case(case_type, {**content, ext_prop: external_id},
                                                    must_keep=[ext_prop])
            return UpsertResult(created.id, UpsertAction.CREATED, created.etag)
        if existing.status.startswith("Resolved"):
            return UpsertResult(existing.id, UpsertAction.SKIPPED_RESOLVED, existing.etag)
        changes = changed_fields(existing.content, content)
        if not changes:
            return UpsertResult(existing.id, UpsertAction.UNCHANGED, existing.etag)
        updated = await self.client.case_action(existing.id, self.m.actions.update, changes, etag=existing.etag,
                                                on_conflict=_guarded(on_conflict, expected_etag, existing.content,
                                                                     changes))
        return UpsertResult(existing.id, UpsertAction.UPDATED, updated.etag)

    async def upsert_appointment(
        self, external_id: str, data: AppointmentData, *, known_id: str | None = None,
        on_conflict: ConflictResolver | None = None, extra: Mapping[str, Any] | None = None,
        expected_etag: str | None = None, absent: bool = False,
    ) -> UpsertResult:
        """Create or update the appointment case linked to `external_id` (never a second one).
        `extra`: more Pega properties written in the same create/update (e.g. insights fields).
        `expected_etag`: the eTag of the record the caller merged against; a record that changed since
        raises PegaConflictError (transient) instead of overwriting the newer change. `absent`: a batched
        lookup just proved there is no such record, so it is created without a second lookup."""
        content = {**to_content(data, self.m.appointment, attendee_fields=self.m.attendee), **(extra or {})}
        return await self._upsert_case(RecordKind.APPOINTMENT, self.m.case_types.appointment, external_id, content,
                                       known_id, self.m.appointment.external_id, on_conflict, expected_etag, absent)

    async def cancel_appointment(self, case_id: str, *, reason: str | None = None) -> PegaCase:
        """Cancel (never delete) an appointment case; a case already resolved is left as it is."""
        case = await self.client.get_case(case_id)
        if case.status.startswith("Resolved"):
            return case
        content: dict[str, Any] = {}
        if reason:
            content[self.m.appointment.body] = reason
        return await self.client.case_action(case_id, self.m.actions.cancel_appointment, content, etag=case.etag)

    async def get_appointment(self, case_id: str) -> tuple[PegaCase, AppointmentData]:
        case = await self.client.get_case(case_id)
        return case, from_content(AppointmentData, case.content, self.m.appointment, attendee_fields=self.m.attendee)

    async def upsert_email(
        self, external_id: str, data: EmailData, *, known_id: str | None = None,
        on_conflict: ConflictResolver | None = None, extra: Mapping[str, Any] | None = None,
        expected_etag: str | None = None, absent: bool = False,
    ) -> UpsertResult:
        """Create or update the email interaction case linked to `external_id`.
        `extra`: more Pega properties written in the same create/update (e.g. insights fields)."""
        content = {**to_content(data, self.m.email), **(extra or {})}
        return await self._upsert_case(RecordKind.EMAIL, self.m.case_types.email, external_id, content,
                                       known_id, self.m.email.external_id, on_conflict, expected_etag, absent)

    async def get_email(self, case_id: str) -> tuple[PegaCase, EmailData]:
        case = await self.client.get_case(case_id)
        return case, from_content(EmailData, case.content, self.m.email)

    async def set_external_id(self, kind: RecordKind, record_id: str, external_id: str) -> None:
        """Report the Exchange id back to a record Pega created (the Pega -> Exchange path)."""
        if kind is RecordKind.CONTACT:
            await self.client.sa_update(self.m.sa.contact_path, record_id, {self.m.contact.external_id: external_id})
            return
        prop = self.m.appointment.external_id if kind is RecordKind.APPOINTMENT else self.m.email.external_id
        await self.client.case_action(record_id, self.m.actions.update, {prop: external_id}, must_keep=[prop])

    async def write_fields(self, kind: RecordKind, writes: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[str]:
        """Properties onto existing cases, one Update action each (DX API v2 has no batch); a case
        that is gone is left alone, properties the action's view drops are reported as rejected."""
        if kind is RecordKind.CONTACT:
            raise ValueError("write_fields is for cases (emails, appointments)")
        out: list[str] = []
        for record_id, _, fields in writes:
            try:
                await self.client.case_action(record_id, self.m.actions.update, dict(fields), must_keep=list(fields))
                out.append("written")
            except PegaNotFoundError:
                out.append("gone")
            except (PegaBadRequestError, PegaValidationError, PegaFieldDroppedError) as exc:
                log.warning("Pega refused further properties of a %s: %s", kind.value, type(exc).__name__)
                out.append("rejected")
        return out

    # ------------------------------------------------------------------ contacts (SA API v1)

    async def upsert_contact(
        self, external_id: str, data: ContactData, *, known_id: str | None = None,
        on_conflict: ConflictResolver | None = None, expected_etag: str | None = None, absent: bool = False,
    ) -> UpsertResult:
        """Create or update the SA contact linked to `external_id`; a closed contact is reopened."""
        content = to_content(data, self.m.contact)
        path = self.m.sa.contact_path
        existing: SaRecord | None = None
        if absent:
            pass
        elif known_id:
            try:
                existing = await self.client.sa_get(path, known_id)
            except PegaNotFoundError:
                log.info("linked Pega contact is gone; looking it up by external id")
        if existing is None and not absent:
            ref = await self.find_by_external_id(RecordKind.CONTACT, external_id)  # any status, closed too
            if ref and ref.id:
                existing = await self.client.sa_get(path, ref.id)
        _check_unchanged(existing, expected_etag)
        if existing is None:
            created = await self.client.sa_create(
                path, {**content, self.m.contact.external_id: external_id,
                       self.m.contact.status: self.m.status.contact_active})
            return UpsertResult(created.id, UpsertAction.CREATED, created.etag)
        changes = changed_fields(existing.content, content)
        if existing.content.get(self.m.contact.status) == self.m.status.contact_closed:
            changes[self.m.contact.status] = self.m.status.contact_active
        if not changes:
            return UpsertResult(existing.id, UpsertAction.UNCHANGED, existing.etag)
        updated = await self.client.sa_update(path, existing.id, changes, etag=existing.etag,
                                              on_conflict=_guarded(on_conflict, expected_etag, existing.content,
                                                                   changes))
        return UpsertResult(existing.id, UpsertAction.UPDATED, updated.etag)

    async def close_contact(self, contact_id: str, *, comments: str | None = None) -> SaRecord:
        """Close (never delete) a contact; closing a closed contact changes nothing. (The SA API v1 has
        no Close action: the status is set; `comments` is for the sync-service Close action.)"""
        path = self.m.sa.contact_path
        current = await self.client.sa_get(path, contact_id)
        if current.content.get(self.m.contact.status) == self.m.status.contact_closed:
            return current
        return await self.client.sa_update(
            path, contact_id, {self.m.contact.status: self.m.status.contact_closed}, etag=current.etag)

    async def get_contact(self, contact_id: str) -> tuple[SaRecord, ContactData]:
        rec = await self.client.sa_get(self.m.sa.contact_path, contact_id)
        return rec, from_content(ContactData, rec.content, self.m.contact)


def _guarded(on_conflict: ConflictResolver | None, expected_etag: str | None, read: Mapping[str, Any],
             changes: Mapping[str, Any]) -> ConflictResolver | None:
    """A write merged against a known version (`expected_etag`) met a stale eTag: the record changed
    between the write's own read (`read`) and its PATCH. If a field it writes changed (a rep's save,
    chaos seed 415), writing the same fields again would overwrite that newer edit, so the write is
    withdrawn (PegaConflictError, transient) and the item merged again with fresh state; if none did,
    the same fields go again. Writes without a merge base keep the client's default."""
    if on_conflict is not None or not expected_etag:
        return on_conflict

    def unless_overtaken(fresh: dict[str, Any]) -> Mapping[str, Any] | None:
        if any(fresh.get(name) != read.get(name) for name in changes):
            return None
        return changes

    return unless_overtaken


def _check_unchanged(existing: PegaCase | SaRecord | None, expected_etag: str | None) -> None:
    """The caller merged against the record as it was at `expected_etag`: if it changed since (a rep's
    edit in between), writing now would overwrite that newer change — retry with fresh state instead."""
    if expected_etag and existing is not None and existing.etag and existing.etag != expected_etag:
        raise PegaConflictError("the Pega record changed after it was read for the merge", status=412)
