"""Where the Pega side of an implementation is described: classes, case types, properties, data views.

No public Pega document fixes the property names of Appointment and Email cases or which data
views exist (see reference pega.md): they differ per implementation. The contact defaults follow
the public Sales Automation names (WorkEmail, OfficePhone, Company, the Address page); the rest are
assumptions, named as such in docs/pega-setup.md. So everything the sync needs to know about them lives in this one typed model,
with defaults that match the sandbox simulator, overridable from a JSON file named by
``PEGA_MAPPING_FILE``. Sync logic uses the neutral names (``subject``, ``start``...) and this
mapping turns them into Pega property names, never a constant in the sync code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import ConfigurationError

_STRICT = ConfigDict(extra="forbid", frozen=True)


class AppointmentFields(BaseModel):
    """Neutral appointment field -> Pega property of the appointment case."""

    model_config = _STRICT
    external_id: str = "ExchangeID"
    subject: str = "Subject"
    start: str = "StartTime"
    end: str = "EndTime"
    time_zone: str = "TimeZone"
    is_all_day: str = "IsAllDay"
    location: str = "Location"
    body: str = "Description"
    body_type: str = "DescriptionType"
    body_html: str = ""  # a property for the sanitized HTML body (shared.sync.bodies); "" = not written
    attendees: str = "Attendees"
    recurrence: str = "Recurrence"
    sensitivity: str = "Sensitivity"
    show_as: str = "ShowAs"
    reminder_minutes: str = "ReminderMinutes"
    operator: str = "OwnerOperator"
    contact_id: str = "ContactID"
    organization_id: str = "OrganizationID"
    lead_id: str = "LeadID"
    opportunity_id: str = "OpportunityID"
    status: str = "pyStatusWork"


class AttendeeFields(BaseModel):
    """Properties of one row of the appointment's attendee page list."""

    model_config = _STRICT
    email: str = "Email"
    name: str = "Name"
    type: str = "AttendeeType"
    response: str = "Response"


class EmailFields(BaseModel):
    """Neutral email field -> Pega property of the email interaction case."""

    model_config = _STRICT
    external_id: str = "ExchangeID"
    internet_message_id: str = "InternetMessageID"
    conversation_id: str = "ConversationID"
    subject: str = "Subject"
    body: str = "Body"
    body_type: str = "BodyType"
    body_html: str = ""  # a property for the sanitized HTML body (shared.sync.bodies); "" = not written
    sender: str = "FromAddress"
    sender_name: str = "FromName"
    to: str = "ToAddresses"
    cc: str = "CcAddresses"
    bcc: str = "BccAddresses"
    sent_at: str = "SentDateTime"
    received_at: str = "ReceivedDateTime"
    direction: str = "Direction"
    importance: str = "Importance"
    has_attachments: str = "HasAttachments"
    attachments: str = "Attachments"
    reply_to_id: str = "ReplyToID"
    reply_type: str = "ReplyType"
    operator: str = "OwnerOperator"
    contact_id: str = "ContactID"
    organization_id: str = "OrganizationID"
    lead_id: str = "LeadID"
    opportunity_id: str = "OpportunityID"
    status: str = "pyStatusWork"


class ContactFields(BaseModel):
    """Neutral contact field -> property of the SA API v1 contact entity."""

    model_config = _STRICT
    external_id: str = "ExchangeID"  # assumption: a property the implementation adds
    first_name: str = "FirstName"
    last_name: str = "LastName"
    # SA names from public Pega material (PEGACRM-ENTITY-CONTACT): WorkEmail, OfficePhone, Company and the
    # embedded Address page (Data-Address-Postal: pyStreet, pyCity, pyState, pyPostalCode, pyCountry);
    # a dotted name is a property of an embedded page (shared.pega.convert)
    email: str = "WorkEmail"
    business_phone: str = "OfficePhone"
    mobile_phone: str = "MobilePhone"
    job_title: str = "Title"  # assumption
    company_name: str = "Company"
    department: str = "Department"  # assumption
    street: str = "Address.pyStreet"
    city: str = "Address.pyCity"
    state: str = "Address.pyState"
    postal_code: str = "Address.pyPostalCode"
    country: str = "Address.pyCountry"
    notes: str = "Notes"
    photo: str = "Photo"
    operator: str = "OwnerOperator"
    organization_id: str = "OrganizationID"
    status: str = "pyStatusWork"


class OrganizationFields(BaseModel):
    model_config = _STRICT
    name: str = "Name"
    domain: str = "EmailDomain"
    status: str = "pyStatusWork"


class LeadFields(BaseModel):
    model_config = _STRICT
    email: str = "Email"
    first_name: str = "FirstName"
    last_name: str = "LastName"
    company_name: str = "CompanyName"
    status: str = "pyStatusWork"


class OpportunityFields(BaseModel):
    model_config = _STRICT
    name: str = "Name"
    organization_id: str = "OrganizationID"
    contact_id: str = "ContactID"
    stage: str = "Stage"
    status: str = "pyStatusWork"


class OperatorFields(BaseModel):
    model_config = _STRICT
    operator_id: str = "pyUserIdentifier"
    email: str = "pyEmailAddress"
    name: str = "pyUserName"


class CaseTypes(BaseModel):
    """DX API v2 case type IDs (differ per implementation)."""

    model_config = _STRICT
    appointment: str = "PegaSA-Work-Appointment"
    email: str = "PegaSA-Work-Email"
    task: str = "PegaSA-Work-Task"


class SaEntities(BaseModel):
    """SA API v1 resource paths (under /prweb/api/v1/) and classes of its entities."""

    model_config = _STRICT
    contact_path: str = "contacts"
    organization_path: str = "organizations"
    lead_path: str = "leads"
    account_path: str = "accounts"
    opportunity_path: str = "opportunities"
    contact_class: str = "PegaCRM-Entity-Contact"
    organization_class: str = "PegaCRM-Entity-Org"
    lead_class: str = "PegaCRM-Entity-Lead"
    account_class: str = "PegaCRM-Entity-Account"
    opportunity_class: str = "PegaCRM-Entity-Opportunity"


class DataViews(BaseModel):
    """DX API v2 data view IDs used for lookups."""

    model_config = _STRICT
    contacts: str = "D_ContactList"
    organizations: str = "D_OrganizationList"
    leads: str = "D_LeadList"
    opportunities: str = "D_OpportunityList"
    appointments: str = "D_AppointmentList"
    emails: str = "D_EmailList"
    operators: str = "D_OperatorList"
    id_field: str = "pzInsKey"


class Actions(BaseModel):
    """DX API v2 case action IDs."""

    model_config = _STRICT
    update: str = "pyUpdateCaseDetails"
    cancel_appointment: str = "CancelAppointment"


class StatusValues(BaseModel):
    """Status values the sync writes or reads (pyStatusWork conventions)."""

    model_config = _STRICT
    open_values: tuple[str, ...] = ("New", "Open", "Pending")
    appointment_cancelled: str = "Resolved-Cancelled"
    contact_active: str = "Active"
    contact_closed: str = "Closed"
    opportunity_open_values: tuple[str, ...] = ("Open", "New", "Pending-Qualification", "Pending-Proposal")
    email_inbound: str = "Inbound"
    email_outbound: str = "Outbound"


class InsightFields(BaseModel):
    """Pega properties for the insights of a received email or an appointment (sentiment, suggested
    actions). The keys and defaults are those of shared.insights' PegaInsightFields (kept equal by a
    test; not imported here so the Pega package stays light); None = do not write that field."""

    model_config = _STRICT
    label: str | None = "SentimentLabel"
    score: str | None = "SentimentScore"
    confidence: str | None = "SentimentConfidence"
    drivers: str | None = "SentimentDrivers"
    analyzer: str | None = "SentimentAnalyzer"
    actions: str | None = "SuggestedActions"
    top_action: str | None = "SuggestedActionTop"
    attachments: str | None = "AttachmentInsights"
    max_text_length: int = 32_000


class PegaMapping(BaseModel):
    """The whole mapping. Every part has defaults; a JSON file overrides any subset."""

    model_config = _STRICT
    case_types: CaseTypes = Field(default_factory=CaseTypes)
    sa: SaEntities = Field(default_factory=SaEntities)
    data_views: DataViews = Field(default_factory=DataViews)
    actions: Actions = Field(default_factory=Actions)
    status: StatusValues = Field(default_factory=StatusValues)
    appointment: AppointmentFields = Field(default_factory=AppointmentFields)
    attendee: AttendeeFields = Field(default_factory=AttendeeFields)
    email: EmailFields = Field(default_factory=EmailFields)
    contact: ContactFields = Field(default_factory=ContactFields)
    organization: OrganizationFields = Field(default_factory=OrganizationFields)
    lead: LeadFields = Field(default_factory=LeadFields)
    opportunity: OpportunityFields = Field(default_factory=OpportunityFields)
    operator: OperatorFields = Field(default_factory=OperatorFields)
    insights: InsightFields = Field(default_factory=InsightFields)


DEFAULT_MAPPING = PegaMapping()


def load_mapping(path: str | Path | None = None) -> PegaMapping:
    """The defaults, overridden by the JSON file at `path` (PEGA_MAPPING_FILE) when given.

    A wrong file fails at start with a ConfigurationError naming the key, not later in a write.
    """
    if not path:
        return DEFAULT_MAPPING
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"PEGA_MAPPING_FILE: cannot read {path}: {exc}", settings=["PEGA_MAPPING_FILE"]) from exc
    try:
        return PegaMapping.model_validate(raw)
    except ValidationError as exc:
        problems = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        raise ConfigurationError(
            "PEGA_MAPPING_FILE: " + "; ".join(problems), settings=["PEGA_MAPPING_FILE"]
        ) from exc
