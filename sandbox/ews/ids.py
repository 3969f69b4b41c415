"""Ids shaped like Exchange's: base64 EWS ids ("AAMkA…") that embed the mailbox GUID, change keys
("CQAAABYAAAA…"), and occurrence ids that carry their series and original start.

An EWS id is opaque to clients; these follow the real layout closely enough that code which (wrongly)
parses or shortens them would break here as it would against Exchange.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid

_OCC = b"\x00OCC\x00"


def mailbox_guid(smtp: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, smtp.lower()))


def new_id(smtp: str, *, folder: bool = False) -> str:
    raw = (b"\x00\x03\x24\x00" + mailbox_guid(smtp).encode() + (b"\x00\x2e\x00" if folder else b"\x00\x46\x00")
           + b"\x00\x00\x00\x00" + os.urandom(22))
    return base64.b64encode(raw).decode()


def change_key(n: int) -> str:
    return base64.b64encode(b"\x09\x00\x00\x00\x16\x00\x00\x00" + n.to_bytes(8, "big") + os.urandom(4)).decode()


def occurrence_id(master_id: str, original_start_iso: str) -> str:
    return base64.b64encode(base64.b64decode(master_id) + _OCC + original_start_iso.encode()).decode()


def split_occurrence(item_id: str) -> tuple[str, str] | None:
    """(master id, original start) of an occurrence id; None for any other id."""
    try:
        raw = base64.b64decode(item_id, validate=True)
    except (binascii.Error, ValueError):
        return None
    if _OCC not in raw:
        return None
    master, start = raw.split(_OCC, 1)
    return base64.b64encode(master).decode(), start.decode()


def well_formed(item_id: str) -> bool:
    try:
        raw = base64.b64decode(item_id, validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw[:4] == b"\x00\x03\x24\x00"
