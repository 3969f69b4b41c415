"""The mailbox backend seam: which reader a round uses for a mailbox, chosen per mailbox at
onboarding (Mailbox.backend). Graph = Exchange Online (shared/sync/source.py); EWS = Exchange
Server on-premises (shared/ews). Both produce the same records, so planning, Pega writes, links,
health, dry runs and dead letters are one engine."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import PermanentError

if TYPE_CHECKING:
    from shared.config import InsightsSettings
    from shared.insights import AttachmentInput
    from shared.runtime import Services
    from shared.storage.mailboxes import Mailbox
    from shared.sync.context import SyncContext
    from shared.sync.records import DeltaPage, EventRecord, Item


class MailboxBackend(Protocol):
    """What a round reads through (ExchangeReader for Graph, EwsReader for EWS)."""

    requests: int
    by_purpose: Counter[str]

    def url_of(self, path: str, params: dict[str, str | int] | None) -> str: ...
    async def page(self, url: str, kind: str) -> DeltaPage: ...
    async def event(self, event_id: str) -> EventRecord | None: ...
    async def event_stamp(self, event_id: str) -> str: ...
    async def attachments(self, message_id: str, limits: InsightsSettings) -> tuple[AttachmentInput, ...]: ...
    async def contact_folder_id(self, name: str) -> str: ...
    async def contact_photo(self, contact_id: str) -> bytes | None: ...
    async def items(self, kind: str, item_ids: list[str], *, purpose: str = "get_items"
                    ) -> dict[str, Item | Exception]: ...
    async def deleted_items_folder_id(self) -> str: ...
    async def default_contact_folder_id(self) -> str: ...
    async def child_folders(self, folder: str) -> list[dict[str, Any]]: ...
    async def top_level_folders(self) -> list[dict[str, Any]]: ...
    async def well_known_folder_id(self, name: str) -> str: ...


class BackendNotConfiguredError(PermanentError):
    """An on-premises mailbox while EWS_URL is not set: an administrator must configure it."""


def reader_for(services: Services, ctx: SyncContext, mb: Mailbox) -> MailboxBackend:
    if mb.backend == "ews":
        from shared.ews.gateway import ews_gateway
        from shared.ews.reader import EwsReader

        if not services.settings.ews.configured:
            raise BackendNotConfiguredError("mailbox is on-premises (backend ews) but EWS_URL is not set")
        # EWS addresses the rep by SMTP address (impersonation); state rows by the mailbox's key
        return EwsReader(ews_gateway(services.settings.ews), mb.upn, page_size=mb.batch_size,
                         links=services.state.links, links_key=mb.key)
    from shared.sync.source import ExchangeReader

    return ExchangeReader(ctx.gateway, mb.key, page_size=mb.batch_size)
