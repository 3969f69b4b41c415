"""Cross-mailbox claims: one Pega record for one real-world thing, whichever rep's mailbox sees it first.

The same mail reaches two onboarded reps (To/Cc, a distribution list, a Bcc); the same external
meeting invites two reps; two reps keep the same customer in their contacts. Each mailbox runs its
own rounds, concurrently, so "look in Pega, then create" lets both create. A claim is an
insert-if-absent row keyed by what identifies the thing across mailboxes — the internetMessageId,
the meeting occurrence's iCalUId, the contact's e-mail address — taken BEFORE the Pega create:

- the first round inserts the claim (`creating`, owner = its mailbox and item), creates the record
  and completes the claim with the Pega id;
- a later round finds the completed claim and links its own item to that record (adopts it);
- a round that finds a claim still `creating` by someone else waits (a TransientError: the item is
  retried shortly) — unless the claim is stale (its owner died mid-create), then it takes the claim
  over and first looks the previous owner's item up in Pega (the create may have happened);
- the owner's own replay (a retry, or the round again after the host died) may find its claim still
  `creating` with a create request that was sent and never answered. Pega may still be processing
  that request (a slow answer is not a lost write), so a lookup now would miss a record that lands a
  moment later, and a second create would duplicate it. The replay waits until the request can no
  longer land (`landing_window`: the Pega timeout and a margin from when it was sent), then looks up
  by its own external id and creates only if absent. A create Pega answered, even with an error, has
  nothing in flight (`settle`), so its retry does not wait.

Items with no cross-mailbox identity (a meeting without attendees, a contact without an address)
take a claim on their own mailbox and item id, for the replay rule above.

Holders: the mailboxes whose items are linked to the record. A meeting copy removed by one
attendee, or a contact one rep stops syncing, must not cancel/close the record the others still
hold; the last holder's removal does.

Keys are hashed (an address is personal data, and keys are length-limited); the partition is a
hash bucket so claims spread across partitions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace

from shared.errors import TransientError
from shared.storage.errors import AlreadyExistsError, ConcurrencyError
from shared.storage.tables import Entity, Table

log = logging.getLogger(__name__)

CREATING = "creating"
DONE = "done"
STALE_AFTER = dt.timedelta(minutes=2)
MAX_PREVIOUS = 8  # previous owners of a claim remembered (each one's create is looked up before ours)


def landing_window(pega_timeout_seconds: float) -> dt.timedelta:
    """How long after the claim was written an unanswered create may still land in Pega. The claim is
    written before what precedes the create — a lookup by external id and a token request, each
    bounded by the Pega timeout — then the create itself runs up to the timeout, and Pega may go on
    with it for about as long after the client gave up: four timeouts and a margin."""
    return dt.timedelta(seconds=4 * pega_timeout_seconds + 5)


class ClaimBusyError(TransientError):
    """Another mailbox is creating this record right now; retry the item shortly."""


@dataclass(frozen=True)
class Claim:
    namespace: str  # email | event | contact
    digest: str
    pega_id: str = ""
    state: str = CREATING
    owner: str = ""  # "<mailbox>|<exchange id>" of the creator
    holders: tuple[str, ...] = ()
    mine: bool = False  # True: the caller holds the create
    previous_owners: tuple[str, ...] = ()  # owners of a stale claim taken over, whose create may have happened
    in_flight: bool = True  # a create was sent and not answered (only meaningful while `creating`)
    replayed: bool = False  # the caller's own earlier create may have happened: look up before creating
    etag: str | None = None
    updated_at: dt.datetime | None = None

    @property
    def pk(self) -> str:
        return f"{self.namespace}-{self.digest[:2]}"

    def entity(self) -> Entity:
        return {"PartitionKey": self.pk, "RowKey": self.digest, "namespace": self.namespace,
                "pega_id": self.pega_id, "state": self.state, "owner": self.owner,
                "holders": json.dumps(sorted(set(self.holders))), "in_flight": self.in_flight,
                "previous_owners": json.dumps(list(self.previous_owners)), "updated_at": dt.datetime.now(dt.UTC)}


def digest_of(namespace: str, key: str) -> str:
    return hashlib.sha256(f"{namespace}\x00{key}".encode()).hexdigest()[:40]


@dataclass
class ClaimStore:
    table: Table
    stale_after: dt.timedelta = field(default=STALE_AFTER)

    def _from(self, e: Entity, namespace: str) -> Claim:
        return Claim(namespace=namespace, digest=str(e["RowKey"]), pega_id=str(e.get("pega_id") or ""),
                     state=str(e.get("state") or CREATING), owner=str(e.get("owner") or ""),
                     holders=tuple(json.loads(e.get("holders") or "[]")), etag=e.get("_etag"),
                     in_flight=bool(e.get("in_flight", True)),
                     previous_owners=tuple(json.loads(e.get("previous_owners") or "[]")),
                     updated_at=e.get("updated_at"))

    async def get(self, namespace: str, key: str) -> Claim | None:
        c = Claim(namespace, digest_of(namespace, key))
        e = await self.table.get(c.pk, c.digest)
        return self._from(e, namespace) if e else None

    async def claim(self, namespace: str, key: str, *, mailbox: str, item_id: str,
                    now: dt.datetime | None = None, landing_window: dt.timedelta = dt.timedelta(0)) -> Claim:
        """Claim the create of `key` for this mailbox's item, or learn who has it (see module doc).
        `landing_window`: how long after it was sent an unanswered create may still land in Pega."""
        now = now or dt.datetime.now(dt.UTC)
        owner = f"{mailbox.lower()}|{item_id}"
        fresh = Claim(namespace, digest_of(namespace, key), owner=owner, holders=(mailbox.lower(),), mine=True)
        for _ in range(4):
            try:
                return replace(fresh, etag=await self.table.insert(fresh.entity()))
            except AlreadyExistsError:
                pass
            e = await self.table.get(fresh.pk, fresh.digest)
            if e is None:
                continue
            current = self._from(e, namespace)
            if current.state == DONE and current.pega_id:
                return current
            if current.owner == owner:  # our own create, replayed after a crash or a retry
                sent = current.updated_at or now
                if current.in_flight and now < sent + landing_window:
                    wait = (sent + landing_window - now).total_seconds()
                    raise ClaimBusyError("this item's unanswered create may still land in Pega",
                                         retry_after=max(1.0, wait))
                again = replace(current, mine=True, replayed=True, in_flight=True)
                try:  # the replay's create is the one in flight from now on
                    return replace(again, etag=await self.table.replace(again.entity(), etag=str(current.etag)))
                except ConcurrencyError:
                    continue
            age = now - (current.updated_at or now)
            # stale only once the owner's create can no longer land (a live owner renews it by replaying)
            if age < (max(self.stale_after, landing_window) if current.in_flight else self.stale_after):
                raise ClaimBusyError("another mailbox is creating this record", retry_after=5.0)
            taken = Claim(namespace, current.digest, owner=owner, holders=(*current.holders, mailbox.lower()),
                          mine=True, previous_owners=(*current.previous_owners, current.owner)[-MAX_PREVIOUS:])
            try:
                etag = await self.table.replace(taken.entity(), etag=str(current.etag))
            except ConcurrencyError:
                continue
            log.info("took over a stale %s claim", namespace)
            return replace(taken, etag=etag)
        raise ClaimBusyError("the claim keeps changing", retry_after=2.0)

    async def drop(self, claim: Claim) -> None:
        """An item-only claim whose create is done: nothing else will ever hold it, and a replay finds
        the record by its external id, so the row goes (idempotent)."""
        await self.table.delete(claim.pk, claim.digest)

    async def settle(self, claim: Claim) -> None:
        """Pega answered the claim's create (with an error): nothing is in flight, a retry need not wait.
        Best effort: a claim that moved on meanwhile belongs to whoever moved it."""
        if not claim.mine or not claim.etag:
            return
        try:
            await self.table.replace(replace(claim, in_flight=False).entity(), etag=claim.etag)
        except ConcurrencyError:
            log.info("a %s claim changed before its failed create was settled", claim.namespace)

    async def complete(self, claim: Claim, pega_id: str) -> None:
        """The Pega record exists: later rounds of other mailboxes adopt it."""
        done = Claim(claim.namespace, claim.digest, pega_id=pega_id, state=DONE, owner=claim.owner,
                     holders=claim.holders)
        for _ in range(4):
            try:
                if claim.etag:
                    await self.table.replace(done.entity(), etag=claim.etag)
                else:
                    await self.table.upsert(done.entity())
                return
            except ConcurrencyError:
                current = await self.get_by_digest(claim.namespace, claim.digest)
                if current is None:
                    claim = Claim(claim.namespace, claim.digest)
                    continue
                done = Claim(claim.namespace, claim.digest, pega_id=pega_id, state=DONE, owner=claim.owner,
                             holders=tuple({*current.holders, *done.holders}))
                claim = current
        raise ClaimBusyError("could not complete the claim", retry_after=2.0)

    async def get_by_digest(self, namespace: str, digest: str) -> Claim | None:
        c = Claim(namespace, digest)
        e = await self.table.get(c.pk, c.digest)
        return self._from(e, namespace) if e else None

    async def add_holder(self, claim: Claim, mailbox: str) -> None:
        await self._change_holders(claim.namespace, claim.digest, add=mailbox.lower())

    async def release(self, namespace: str, digest: str, mailbox: str) -> int:
        """This mailbox no longer holds the record; returns how many holders remain (0 if no claim:
        a record that was never shared is the caller's alone)."""
        return await self._change_holders(namespace, digest, remove=mailbox.lower())

    async def _change_holders(self, namespace: str, digest: str, *, add: str = "", remove: str = "") -> int:
        for _ in range(8):
            current = await self.get_by_digest(namespace, digest)
            if current is None:
                return 0
            holders = set(current.holders)
            if add:
                holders.add(add)
            if remove:
                holders.discard(remove)
            if holders == set(current.holders):
                return len(holders)
            new = replace(current, holders=tuple(holders))
            try:
                await self.table.replace(new.entity(), etag=str(current.etag))
                return len(holders)
            except ConcurrencyError:
                continue
        raise ClaimBusyError("the claim's holders keep changing", retry_after=2.0)

