"""Property paths (FieldURI / IndexedFieldURI / ExtendedFieldURI) and response shapes.

A shape is BaseShape (IdOnly / Default / AllProperties) plus AdditionalProperties. Extended
properties are returned only when asked for by ExtendedFieldURI, as in Exchange. FindItem and
SyncFolderItems refuse the properties Exchange computes only per item (body, recipients, attendees,
occurrence lists, attachments): ErrorInvalidPropertyRequest, so a client must GetItem for them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from lxml import etree

from sandbox.ews.soap import ItemError, local, sub, t

SPECIAL_TAGS = {
    "contacts:EmailAddress": "EmailAddresses", "contacts:PhoneNumber": "PhoneNumbers",
    "contacts:ImAddress": "ImAddresses", "contacts:PhysicalAddress": "PhysicalAddresses",
    "item:TextBody": "TextBody", "calendar:UID": "UID", "contacts:Photo": "HasPicture",
}
# Exchange computes these per item: not available through FindItem / SyncFolderItems.
NOT_IN_FIND = {"item:Body", "item:UniqueBody", "item:TextBody", "item:MimeContent", "item:Attachments",
               "message:ToRecipients", "message:CcRecipients", "message:BccRecipients", "message:ReplyTo",
               "calendar:RequiredAttendees", "calendar:OptionalAttendees", "calendar:Resources",
               "calendar:ModifiedOccurrences", "calendar:DeletedOccurrences", "calendar:Recurrence",
               "item:InternetMessageHeaders", "contacts:Notes"}

ORDER = [
    "MimeContent", "ItemId", "ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body", "Attachments",
    "DateTimeReceived", "Size", "Categories", "Importance", "InReplyTo", "IsSubmitted", "IsDraft", "IsFromMe",
    "IsResend", "IsUnmodified", "InternetMessageHeaders", "DateTimeSent", "DateTimeCreated", "ResponseObjects",
    "ReminderDueBy", "ReminderIsSet", "ReminderMinutesBeforeStart", "DisplayCc", "DisplayTo", "HasAttachments",
    "ExtendedProperty", "Culture", "EffectiveRights", "LastModifiedName", "LastModifiedTime", "IsAssociated",
    "ConversationId", "UniqueBody", "Flag", "StoreEntryId", "InstanceKey", "NormalizedBody", "EntityExtractionResult",
    "PolicyTag", "ArchiveTag", "RetentionDate", "Preview", "RightsManagementLicenseData", "PredictedActionReasons",
    "IsClutter", "BlockStatus", "HasBlockedImages", "TextBody", "IconIndex", "SearchKey", "SortKey", "Hashtags",
    "Mentions", "MentionedMe",
    # Message
    "Sender", "ToRecipients", "CcRecipients", "BccRecipients", "IsReadReceiptRequested",
    "IsDeliveryReceiptRequested", "ConversationIndex", "ConversationTopic", "From", "InternetMessageId", "IsRead",
    "IsResponseRequested", "References", "ReplyTo", "ReceivedBy", "ReceivedRepresenting",
    # CalendarItem
    "UID", "RecurrenceId", "DateTimeStamp", "Start", "End", "OriginalStart", "IsAllDayEvent",
    "LegacyFreeBusyStatus", "Location", "When", "IsMeeting", "IsCancelled", "IsRecurring",
    "MeetingRequestWasSent", "IsResponseRequested", "CalendarItemType", "MyResponseType", "Organizer",
    "RequiredAttendees", "OptionalAttendees", "Resources", "ConflictingMeetingCount", "AdjacentMeetingCount",
    "Duration", "TimeZone", "AppointmentReplyTime", "AppointmentSequenceNumber", "AppointmentState", "Recurrence",
    "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences", "MeetingTimeZone",
    "StartTimeZone", "EndTimeZone", "ConferenceType", "AllowNewTimeProposal", "IsOnlineMeeting",
    "MeetingWorkspaceUrl", "NetShowUrl",
    # Contact
    "FileAs", "FileAsMapping", "DisplayName", "GivenName", "Initials", "MiddleName", "Nickname", "CompleteName",
    "CompanyName", "EmailAddresses", "PhysicalAddresses", "PhoneNumbers", "AssistantName", "Birthday",
    "BusinessHomePage", "Children", "Companies", "ContactSource", "Department", "Generation", "ImAddresses",
    "JobTitle", "Manager", "Mileage", "OfficeLocation", "PostalAddressIndex", "Profession", "SpouseName",
    "Surname", "WeddingAnniversary", "HasPicture", "PhoneticFullName", "PhoneticFirstName", "PhoneticLastName",
    "Alias", "Notes",
]
RANK = {tag: i for i, tag in enumerate(ORDER)}
COMPUTED_ONLY = {"ItemId"}


def tag_of(uri: str) -> str:
    if uri in SPECIAL_TAGS:
        return SPECIAL_TAGS[uri]
    if uri.startswith("contacts:PhysicalAddress:"):
        return "PhysicalAddresses"
    return uri.split(":", 1)[-1]


def ext_key(el: etree._Element) -> str:
    """A stable key for an ExtendedFieldURI: set/tag/name/id and type, case-insensitive on GUIDs."""
    a = el.attrib
    return "|".join(str(a.get(k, "")).lower() for k in (
        "DistinguishedPropertySetId", "PropertySetId", "PropertyTag", "PropertyName", "PropertyId", "PropertyType"))


@dataclass
class Shape:
    base: str = "IdOnly"
    tags: set[str] = field(default_factory=set)
    ext: dict[str, etree._Element] = field(default_factory=dict)
    body_type: str = "Best"

    @classmethod
    def parse(cls, el: etree._Element | None, *, for_find: bool = False, op: str = "") -> Shape:
        if el is None:
            return cls()
        shape = cls(base=(el.findtext(t("BaseShape")) or "IdOnly").strip(),
                    body_type=(el.findtext(t("BodyType")) or "Best").strip())
        props = el.find(t("AdditionalProperties"))
        for p in props if props is not None else ():
            name = local(p)
            if name in ("FieldURI", "IndexedFieldURI"):
                uri = p.get("FieldURI", "")
                if for_find and (uri in NOT_IN_FIND or (uri.split(":")[0] == "contacts" and "Photo" in uri)):
                    raise ItemError("ErrorInvalidPropertyRequest",
                                    f"The property {uri.split(':')[-1]} can't be used in {op} requests.")
                shape.tags.add(tag_of(uri))
            elif name == "ExtendedFieldURI":
                shape.ext[ext_key(p)] = p
        return shape


def _sorted(tags: list[str]) -> list[str]:
    return sorted(tags, key=lambda x: RANK.get(x, len(RANK)))


def render_props(parent: etree._Element, props: dict[str, etree._Element], ext: dict[str, etree._Element],
                 shape: Shape, *, id_el: etree._Element) -> None:
    """Append the shaped properties (ItemId first) under `parent` (the t:Message / t:CalendarItem / …)."""
    parent.append(id_el)
    if shape.base == "AllProperties":
        wanted = set(props) | shape.tags
    elif shape.base == "Default":
        wanted = ({"Subject", "Start", "End", "DisplayName", "ParentFolderId", "ItemClass", "Sensitivity",
                   "DateTimeReceived", "HasAttachments", "IsRead", "From", "Location", "CalendarItemType",
                   "Organizer", "GivenName", "Surname", "EmailAddresses", "CompanyName"} & set(props)) | shape.tags
    else:
        wanted = set(shape.tags)
    for tag in _sorted([w for w in wanted if w not in COMPUTED_ONLY]):
        if tag == "ExtendedProperty":
            continue
        el = props.get(tag)
        if el is not None:
            if tag == "Body" and shape.body_type == "Text" and el.get("BodyType") == "HTML":
                el = copy.deepcopy(el)
                el.set("BodyType", "Text")
                el.text = _strip_html(el.text or "")
            parent.append(copy.deepcopy(el))
        if tag == "HasAttachments" and el is None:
            sub(parent, t("HasAttachments"), "false")
        if tag == "ExtendedProperty":
            pass
    # extended properties sit at their schema position; lxml order does not matter to readers
    for key, _uri in shape.ext.items():
        found = ext.get(key)
        if found is not None:
            parent.append(copy.deepcopy(found))


def _strip_html(html: str) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
