"""Pega client: DX API v2 + SA API v1 transport, mapping configuration, typed errors, sync operations."""

from shared.pega.client import PegaClient
from shared.pega.mapping import PegaMapping, load_mapping
from shared.pega.models import (
    AppointmentData,
    Association,
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
from shared.pega.records import PegaRecords

__all__ = [
    "AppointmentData", "Association", "Attendee", "ContactData", "EmailData", "PegaCase", "PegaClient",
    "PegaMapping", "PegaRecords", "PegaRef", "RecordKind", "SaRecord", "UpsertAction", "UpsertResult", "load_mapping",
]
