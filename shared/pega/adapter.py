"""The one interface the sync engine speaks to Pega, and the setting that picks its implementation.

Two adapters implement it (PEGA_ADAPTER):
- `sync-service` (recommended for Pega Sales Automation 8.x, :mod:`shared.pega.service`): a small
  versioned REST contract (`pega-service.openapi.yaml`) that the Pega side exposes as Service REST
  rules; upserts are atomic by external id inside Pega, lookups are batched (up to 100 per call).
- `dx-v2` (for Constellation applications, :mod:`shared.pega.records`): DX API v2 cases and data
  views, and the SA API v1 for contacts; upserts are look-up-then-write from this side.

The engine never reaches past this interface (no client calls, no data view ids), so either adapter
runs the same inbound and outbound logic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared.pega.mapping import PegaMapping
from shared.pega.models import (
    AppointmentData,
    ContactData,
    EmailData,
    PegaCase,
    PegaRef,
    RecordKind,
    SaRecord,
    UpsertResult,
)

ADAPTERS = ("sync-service", "dx-v2")

# (record id, its external id, properties): further properties written onto an existing record only,
# never creating one (the deferred insights: shared.sync.insight_jobs). Per write the adapter answers
# "written", "gone" (no such record, or a resolved case) or "rejected" (Pega refused the properties).
FieldWrite = tuple[str, str, Mapping[str, Any]]
BATCH_LIMIT = 100  # items per lookup or batch call (the contract's maxItems)


@runtime_checkable
class PegaAdapter(Protocol):
    """What the sync does in Pega, by Exchange id; `m` names the Pega side's classes and properties."""

    m: PegaMapping

    # lookups (party, opportunity, links)
    async def find_operator_by_email(self, email: str) -> PegaRef | None: ...
    async def find_contact_by_email(self, email: str) -> PegaRef | None: ...
    async def find_lead_by_email(self, email: str) -> PegaRef | None: ...
    async def find_organization_by_domain(self, domain: str) -> PegaRef | None: ...
    async def find_open_opportunity(self, *, organization_id: str | None = None,
                                    contact_id: str | None = None) -> PegaRef | None: ...
    async def find_by_external_id(self, kind: RecordKind, external_id: str) -> PegaRef | None: ...
    async def existing_ids(self, kind: RecordKind, external_ids: Sequence[str]) -> dict[str, str]: ...
    async def emails_by_internet_message_id(self, internet_message_ids: Sequence[str]) -> dict[str, str]: ...
    async def existing_emails(self, external_ids: Sequence[str],
                              internet_message_ids: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]: ...

    # reads
    async def get_appointment(self, record_id: str) -> tuple[PegaCase, AppointmentData]: ...
    async def get_email(self, record_id: str) -> tuple[PegaCase, EmailData]: ...
    async def get_contact(self, record_id: str) -> tuple[SaRecord, ContactData]: ...
    async def case_status(self, record_id: str) -> str: ...

    # writes
    async def upsert_appointment(self, external_id: str, data: AppointmentData, *, known_id: str | None = None,
                                 extra: Mapping[str, Any] | None = None, expected_etag: str | None = None,
                                 absent: bool = False) -> UpsertResult: ...
    async def upsert_email(self, external_id: str, data: EmailData, *, known_id: str | None = None,
                           extra: Mapping[str, Any] | None = None, expected_etag: str | None = None,
                           absent: bool = False) -> UpsertResult: ...
    async def upsert_contact(self, external_id: str, data: ContactData, *, known_id: str | None = None,
                             expected_etag: str | None = None, absent: bool = False) -> UpsertResult: ...
    async def adopt_contact(self, record_id: str, external_id: str, data: ContactData) -> UpsertResult: ...
    async def cancel_appointment(self, record_id: str, *, reason: str | None = None) -> Any: ...
    async def close_contact(self, record_id: str, *, comments: str | None = None) -> Any: ...
    async def set_external_id(self, kind: RecordKind, record_id: str, external_id: str) -> None: ...
    async def write_fields(self, kind: RecordKind, writes: Sequence[FieldWrite]) -> list[str]: ...

    async def close(self) -> None: ...
