"""The contract's nine write operations: which kind/action each is, and the link kind it touches.

The contract's operationId (openapi.yaml) is the public name; the Operation row stores `kind`
and `action` (shared.storage.operations), and the mapping here is the only translation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpKind:
    operation_id: str  # contract operationId, e.g. createAppointment
    kind: str  # appointment | email | contact (Operation.kind)
    action: str  # create | update | cancel | send | reply | reply_all | close (Operation.action)
    link_kind: str  # event | email | contact (Link.kind)
    mailbox_kind: str  # calendar | email | contacts (Mailbox.enabled / health kind)


_ALL = (
    OpKind("createAppointment", "appointment", "create", "event", "calendar"),
    OpKind("updateAppointment", "appointment", "update", "event", "calendar"),
    OpKind("cancelAppointment", "appointment", "cancel", "event", "calendar"),
    OpKind("sendEmail", "email", "send", "email", "email"),
    OpKind("replyToEmail", "email", "reply", "email", "email"),
    OpKind("replyAllToEmail", "email", "reply_all", "email", "email"),
    OpKind("createContact", "contact", "create", "contact", "contacts"),
    OpKind("updateContact", "contact", "update", "contact", "contacts"),
    OpKind("closeContact", "contact", "close", "contact", "contacts"),
)

BY_OPERATION_ID = {k.operation_id: k for k in _ALL}
BY_KIND_ACTION = {(k.kind, k.action): k for k in _ALL}
WRITE_OPERATIONS = tuple(BY_OPERATION_ID)
STATUS_OPERATION = "getOperation"


def by_operation_id(operation_id: str) -> OpKind:
    return BY_OPERATION_ID[operation_id]


def by_kind_action(kind: str, action: str) -> OpKind:
    return BY_KIND_ACTION[(kind, action)]
