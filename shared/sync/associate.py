"""Association of an email/appointment with Pega records, with lookups cached for one round.

Pega's order: a contact with one of the addresses, then a lead, then an organization by the
address's domain; plus the open opportunity of what was found (as Creatio's "Connected to").
The mailbox's own domain never associates. A round sees the same correspondents again and
again, so each address/domain is looked up at most once per round.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.pega import Association, PegaRef
from shared.pega.adapter import PegaAdapter


class AssociationCache:
    def __init__(self, records: PegaAdapter, *, own_domains: Iterable[str]) -> None:
        self.records = records
        self.m = records.m
        self.own = {d.lower().lstrip("@") for d in own_domains}
        self._contacts: dict[str, PegaRef | None] = {}
        self._leads: dict[str, PegaRef | None] = {}
        self._orgs: dict[str, PegaRef | None] = {}
        self._opps: dict[tuple[str | None, str | None], str | None] = {}
        self.lookups = 0

    async def contact(self, address: str) -> PegaRef | None:
        """The active Pega contact with this address (cached for the round)."""
        address = address.lower()
        if address not in self._contacts:
            self.lookups += 1
            self._contacts[address] = await self.records.find_contact_by_email(address)
        return self._contacts[address]

    async def _lead(self, address: str) -> PegaRef | None:
        if address not in self._leads:
            self.lookups += 1
            self._leads[address] = await self.records.find_lead_by_email(address)
        return self._leads[address]

    async def organization(self, domain: str) -> PegaRef | None:
        domain = domain.lower()
        if domain not in self._orgs:
            self.lookups += 1
            self._orgs[domain] = await self.records.find_organization_by_domain(domain)
        return self._orgs[domain]

    async def _opportunity(self, organization_id: str | None, contact_id: str | None) -> str | None:
        key = (organization_id, contact_id)
        if key not in self._opps:
            self.lookups += 1
            ref = await self.records.find_open_opportunity(organization_id=organization_id, contact_id=contact_id)
            self._opps[key] = ref.id if ref else None
        return self._opps[key]

    def candidates(self, addresses: Iterable[str]) -> list[str]:
        seen: list[str] = []
        for a in addresses:
            a = (a or "").strip().lower()
            if "@" not in a or a.rsplit("@", 1)[1] in self.own or a in seen:
                continue
            seen.append(a)
        return seen

    async def associate(self, addresses: Iterable[str]) -> Association:
        cands = self.candidates(addresses)
        for address in cands:
            contact = await self.contact(address)
            if contact:
                org = str(contact.row.get(self.m.contact.organization_id) or "") or None
                opp = await self._opportunity(org, contact.id)
                return Association(contact_id=contact.id, organization_id=org, opportunity_id=opp,
                                   matched_address=address)
        for address in cands:
            lead = await self._lead(address)
            if lead:
                return Association(lead_id=lead.id, matched_address=address)
        for address in cands:
            org_ref = await self.organization(address.rsplit("@", 1)[1])
            if org_ref:
                opp = await self._opportunity(org_ref.id, None)
                return Association(organization_id=org_ref.id, opportunity_id=opp, matched_address=address)
        return Association()
