"""A thin async wrapper over one Azure table: typed errors, ETags, idempotent deletes.

Repositories (mailboxes, links, ...) build on this instead of azure-data-tables directly so
that error mapping and concurrency rules live in one place.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.config import StorageSettings
from shared.storage.connection import expand_connection_string, transport_options
from shared.storage.errors import mapped_errors

log = logging.getLogger(__name__)

Entity = dict[str, Any]


@dataclass(frozen=True)
class TableNames:
    """Names of the state tables. A prefix lets tests (and side-by-side deployments) isolate."""

    prefix: str = "pes"

    def _n(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def mailboxes(self) -> str:
        return self._n("mailboxes")

    @property
    def links(self) -> str:
        return self._n("links")

    @property
    def cursors(self) -> str:
        return self._n("cursors")

    @property
    def subscriptions(self) -> str:
        return self._n("subscriptions")

    @property
    def operations(self) -> str:
        return self._n("operations")

    @property
    def health(self) -> str:
        return self._n("health")

    @property
    def deadletters(self) -> str:
        return self._n("deadletters")

    @property
    def coalesce(self) -> str:
        return self._n("coalesce")

    @property
    def failures(self) -> str:
        return self._n("failures")

    @property
    def claims(self) -> str:
        return self._n("claims")

    @property
    def roundlease(self) -> str:
        return self._n("roundlease")

    @property
    def graphslots(self) -> str:
        return self._n("graphslots")

    def all(self) -> list[str]:
        return [self.mailboxes, self.links, self.cursors, self.subscriptions, self.operations, self.health,
                self.deadletters, self.coalesce, self.failures, self.claims, self.roundlease, self.graphslots]


def _prepare(entity: Mapping[str, Any]) -> Entity:
    """Large ints need an explicit Int64 type or the service rejects them."""
    out: Entity = {}
    for k, v in entity.items():
        if isinstance(v, int) and not isinstance(v, bool) and not (-(2**31) <= v < 2**31):
            out[k] = EntityProperty(v, EdmType.INT64)
        else:
            out[k] = v
    return out


def _plain(entity: Any) -> Entity:
    out: Entity = dict(entity)
    meta = getattr(entity, "metadata", {}) or {}
    out["_etag"] = meta.get("etag")
    for k, v in list(out.items()):
        if isinstance(v, EntityProperty):
            out[k] = v.value
    return out


class Table:
    """One table. Every method maps service errors via :func:`mapped_errors`."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self.name = client.table_name

    async def get(self, pk: str, rk: str) -> Entity | None:
        with mapped_errors(f"read {self.name}"):
            try:
                return _plain(await self._client.get_entity(pk, rk))
            except ResourceNotFoundError:
                return None

    async def insert(self, entity: Mapping[str, Any]) -> str:
        """Create; AlreadyExistsError if the key exists (the basis of insert-if-absent idempotency)."""
        with mapped_errors(f"insert into {self.name}"):
            meta = await self._client.create_entity(_prepare(entity))
        return str(meta.get("etag"))

    async def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        """Replace only if unchanged since read (ConcurrencyError otherwise)."""
        with mapped_errors(f"update {self.name}"):
            meta = await self._client.update_entity(
                _prepare(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        return str(meta.get("etag"))

    async def merge(self, entity: Mapping[str, Any], *, etag: str | None = None) -> str:
        with mapped_errors(f"merge {self.name}"):
            if etag:
                meta = await self._client.update_entity(
                    _prepare(entity), mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            else:
                meta = await self._client.update_entity(_prepare(entity), mode=UpdateMode.MERGE)
        return str(meta.get("etag"))

    async def upsert(self, entity: Mapping[str, Any], *, merge: bool = False) -> str:
        with mapped_errors(f"upsert {self.name}"):
            meta = await self._client.upsert_entity(
                _prepare(entity), mode=UpdateMode.MERGE if merge else UpdateMode.REPLACE
            )
        return str(meta.get("etag"))

    async def delete(self, pk: str, rk: str, *, etag: str | None = None) -> None:
        """Idempotent: deleting an absent entity succeeds; with `etag`, only if unchanged."""
        with mapped_errors(f"delete in {self.name}"):
            if etag:
                try:
                    await self._client.delete_entity(pk, rk, etag=etag, match_condition=MatchConditions.IfNotModified)
                except ResourceNotFoundError:
                    return
            else:
                await self._client.delete_entity(pk, rk)

    async def query(
        self, filter_: str, *, parameters: Mapping[str, Any] | None = None, select: Sequence[str] | None = None
    ) -> AsyncIterator[Entity]:
        with mapped_errors(f"query {self.name}"):
            pages = self._client.query_entities(
                filter_, parameters=dict(parameters or {}), select=list(select) if select else None
            )
            async for e in pages:
                yield _plain(e)

    async def partition(self, pk: str) -> AsyncIterator[Entity]:
        async for e in self.query("PartitionKey eq @pk", parameters={"pk": pk}):
            yield e

    async def transact(self, operations: Sequence[tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> None:
        """All-or-nothing within ONE partition (Azure rejects mixed partitions; Azurite does not)."""
        pks = {op[1]["PartitionKey"] for op in operations}
        if len(pks) != 1:
            raise ValueError("a table transaction must stay in one partition")
        ops = [(op[0], _prepare(op[1]), *op[2:]) for op in operations]
        with mapped_errors(f"transaction on {self.name}"):
            await self._client.submit_transaction(ops)  # type: ignore[arg-type]


class TableStore:
    """Async Table service access for one storage account; tables created on first open."""

    def __init__(self, service: TableServiceClient, names: TableNames) -> None:
        self._service = service
        self.names = names
        self._tables: dict[str, Table] = {}

    @classmethod
    def from_settings(cls, storage: StorageSettings, *, names: TableNames | None = None,
                      request_hook: Callable[[Any], None] | None = None) -> TableStore:
        """`request_hook` sees every HTTP request the SDK sends (the scale tests and bench count them)."""
        kwargs: dict[str, Any] = {
            "connection_timeout": storage.timeout_seconds,
            "read_timeout": storage.timeout_seconds,
            "retry_total": 2,
        }
        if request_hook is not None:
            kwargs["raw_request_hook"] = request_hook
        kwargs.update(transport_options(storage))
        if storage.connection_string:
            cs = expand_connection_string(storage.connection_string)
            service = TableServiceClient.from_connection_string(cs, **kwargs)
        else:
            from azure.identity.aio import DefaultAzureCredential

            cred = DefaultAzureCredential(managed_identity_client_id=storage.managed_identity_client_id)
            service = TableServiceClient(endpoint=str(storage.table_service_uri), credential=cred, **kwargs)
        return cls(service, names or TableNames())

    async def open(self) -> TableStore:
        for name in self.names.all():
            await self.ensure(name)
        return self

    async def ensure(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            with mapped_errors(f"create table {name}"):
                try:
                    await self._service.create_table(name)
                except ResourceExistsError:
                    pass
            table = Table(self._service.get_table_client(name))
            self._tables[name] = table
        return table

    def table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            table = Table(self._service.get_table_client(name))
            self._tables[name] = table
        return table

    async def existing(self) -> set[str]:
        """Names of the account's tables (readiness checks)."""
        found: set[str] = set()
        with mapped_errors("list tables"):
            async for t in self._service.list_tables():
                found.add(str(t.name))
        return found

    async def ping(self) -> None:
        """Cheap reachability check for /api/health."""
        with mapped_errors("list tables"):
            async for _ in self._service.list_tables(results_per_page=1):
                break

    async def close(self) -> None:
        await self._service.close()
