"""The state store: every repository over one storage account, opened once per event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.config import StorageSettings
from shared.storage.cursors import CursorRepository
from shared.storage.deadletters import DeadLetterRepository
from shared.storage.failures import FailureRepository
from shared.storage.health import HealthRepository
from shared.storage.links import LinkRepository
from shared.storage.mailboxes import MailboxRepository
from shared.storage.operations import OperationRepository
from shared.storage.subscriptions import SubscriptionRepository
from shared.storage.tables import Table, TableNames, TableStore
from shared.sync.claims import ClaimStore
from shared.sync.coalesce import Coalescer


@dataclass
class StateStore:
    tables: TableStore
    mailboxes: MailboxRepository
    links: LinkRepository
    cursors: CursorRepository
    subscriptions: SubscriptionRepository
    operations: OperationRepository
    health: HealthRepository
    deadletters: DeadLetterRepository
    coalescer: Coalescer
    failures: FailureRepository
    claims: ClaimStore
    graphslots: Table  # Graph's per-mailbox slots across instances (shared/graph/mailbox_slots.py)

    @classmethod
    async def open(cls, storage: StorageSettings, *, names: TableNames | None = None,
                   request_hook: Callable[[Any], None] | None = None) -> StateStore:
        ts = await TableStore.from_settings(storage, names=names, request_hook=request_hook).open()
        n = ts.names
        return cls(
            tables=ts,
            mailboxes=MailboxRepository(ts.table(n.mailboxes)),
            links=LinkRepository(ts.table(n.links)),
            cursors=CursorRepository(ts.table(n.cursors)),
            subscriptions=SubscriptionRepository(ts.table(n.subscriptions)),
            operations=OperationRepository(ts.table(n.operations)),
            health=HealthRepository(ts.table(n.health)),
            deadletters=DeadLetterRepository(ts.table(n.deadletters)),
            coalescer=Coalescer(ts.table(n.coalesce)),
            failures=FailureRepository(ts.table(n.failures)),
            claims=ClaimStore(ts.table(n.claims)),
            graphslots=ts.table(n.graphslots),
        )

    async def close(self) -> None:
        await self.tables.close()
