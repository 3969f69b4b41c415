"""What one request runs with: the store, the target mailbox (impersonated, or the caller's own),
the caller's account, the simulator clock's now, and the log of messages Exchange "sent"."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from sandbox.ews.soap import ItemError, local, t
from sandbox.ews.store import Account, Folder, Item, Mailbox, Store


@dataclass
class Ctx:
    store: Store
    mb: Mailbox
    account: Account
    now: dt.datetime
    sent: list[dict[str, Any]] = field(default_factory=list)
    request_server_version: str = ""

    def folder_of(self, el: etree._Element) -> Folder:
        """A t:FolderId or t:DistinguishedFolderId (a t:Mailbox inside must be the target mailbox)."""
        name = local(el)
        if name == "DistinguishedFolderId":
            mbx = el.findtext(f"{t('Mailbox')}/{t('EmailAddress')}")
            if mbx and mbx.lower() != self.mb.smtp:
                target = self.store.mailboxes.get(mbx.lower())
                if target is None:
                    raise ItemError("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
                raise ItemError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            return self.mb.folder(str(el.get("Id")))
        if name == "FolderId":
            return self.mb.folder(str(el.get("Id")))
        raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")

    def item(self, item_id: str) -> Item:
        from sandbox.ews import calendar, ids

        occ = ids.split_occurrence(item_id)
        if occ is not None:
            master = self.mb.items.get(occ[0])
            if master is None:
                raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
            found = calendar.occurrence(master, calendar.parse_dt(occ[1]))
            if found is None:  # the id of a deleted occurrence no longer resolves
                raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
            return found
        if not ids.well_formed(item_id):
            raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
        found_item = self.mb.items.get(item_id)
        if found_item is None:
            raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
        return found_item

    def master_of(self, item_id: str) -> tuple[Item, str] | None:
        from sandbox.ews import ids

        occ = ids.split_occurrence(item_id)
        if occ is None:
            return None
        master = self.mb.items.get(occ[0])
        if master is None:
            raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
        return master, occ[1]
