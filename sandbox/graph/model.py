"""In-memory data model of the simulated tenant: users, folders and Outlook items.

An item keeps its Graph properties as the JSON a client wrote (camelCase), plus the metadata
Exchange maintains itself: an immutable id, a default (REST) id that changes when the item moves,
a changeKey that changes on every modification, and the MAPI extended properties.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ItemKind = Literal["message", "event", "contact"]
FolderKind = Literal["mail", "contacts", "calendar"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_immutable_id() -> str:
    """Immutable ids look like Exchange's (AAkALg...) and never change for the item's life."""
    return "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A" + _b64(secrets.token_bytes(24))


def new_rest_id() -> str:
    """Default ids (AAMkAD...) are minted again whenever the item moves to another folder."""
    return "AAMkADAwATM0MDAAMS1i" + _b64(secrets.token_bytes(24))


def new_folder_id() -> str:
    return "AAMkADAwATM0MDAAMS1iAAAuAAAAAAEM" + _b64(secrets.token_bytes(12))


def new_change_key() -> str:
    return "CQAAABYAAAD" + _b64(secrets.token_bytes(15))


def new_conversation_id() -> str:
    return "AAQkADAwATM0MDAAMS1i" + _b64(secrets.token_bytes(18))


@dataclass
class User:
    id: str
    upn: str
    display_name: str
    external: bool = False

    def to_graph(self) -> dict[str, Any]:
        given, _, surname = self.display_name.partition(" ")
        return {
            "id": self.id, "userPrincipalName": self.upn, "displayName": self.display_name,
            "mail": self.upn, "givenName": given or None, "surname": surname or None,
            "jobTitle": None, "officeLocation": None, "preferredLanguage": "en-US",
            "mobilePhone": None, "businessPhones": [],
        }


@dataclass
class Folder:
    id: str
    owner: str
    kind: FolderKind
    display_name: str
    well_known: str | None = None
    parent_id: str | None = None


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    content_id: str | None = None
    last_modified: datetime | None = None


@dataclass
class UploadSession:
    token: str
    owner: str
    item_uid: str
    name: str
    content_type: str
    size: int
    is_inline: bool
    content_id: str | None
    received: bytearray = field(default_factory=bytearray)
    expires: datetime | None = None


@dataclass
class Exception_:
    """A modified occurrence of a recurring series (Graph type ``exception``)."""

    original_start: datetime  # UTC
    overrides: dict[str, Any]
    change_key: str
    created: datetime
    modified: datetime
    ext: dict[str, str] = field(default_factory=dict)


@dataclass
class Item:
    uid: str  # the immutable id
    kind: ItemKind
    owner: str  # user id
    folder_id: str
    rest_id: str
    data: dict[str, Any]
    change_key: str
    created: datetime
    modified: datetime
    ext: dict[str, str] = field(default_factory=dict)  # extended property id -> value
    attachments: list[Attachment] = field(default_factory=list)
    photo: bytes | None = None
    # events only
    exceptions: dict[str, Exception_] = field(default_factory=dict)  # key: iso of original start (UTC)
    cancelled: set[str] = field(default_factory=set)  # iso of original starts (UTC)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def touch(self, now: datetime) -> None:
        self.change_key = new_change_key()
        self.modified = now


@dataclass
class Mailbox:
    user: User
    folders: dict[str, Folder] = field(default_factory=dict)

    def well_known(self, name: str) -> Folder | None:
        for f in self.folders.values():
            if f.well_known == name.lower():
                return f
        return None
