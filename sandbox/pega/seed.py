"""Demo data matching the Graph demo tenant (docs/pega-simulator.md lists it)."""

from __future__ import annotations

from sandbox.pega.config import INTEGRATION_OPERATOR
from sandbox.pega.store import Actor, Operator, Store

SEED_ACTOR = Actor(operator="administrator", channel="seed")


def seed(store: Store) -> dict[str, str]:
    """Fill an empty store; returns the ids of the seeded records by name. Emits no change events."""
    m = store.mapping
    listeners, store.listeners = store.listeners, []
    try:
        for op in (
            Operator("alex", "alex@contoso.example", "Alex Example"),
            Operator("blair", "blair@contoso.example", "Blair Example"),
            Operator("casey", "onprem.rep@contoso.example", "Casey On-Premises"),
            Operator(INTEGRATION_OPERATOR, "exchange-sync@contoso.example", "Exchange Sync Integration"),
        ):
            store.operators[op.operator_id] = op
        fabrikam = store.create("organization", {
            m.organization.name: "Fabrikam", m.organization.domain: "fabrikam.example", "Website": "https://fabrikam.example",
        }, SEED_ACTOR)
        northwind = store.create("organization", {
            m.organization.name: "Northwind Traders", m.organization.domain: "northwind-traders.example",
        }, SEED_ACTOR)
        dana = store.create("contact", {
            m.contact.first_name: "Dana", m.contact.last_name: "Example", m.contact.email: "dana@fabrikam.example",
            m.contact.business_phone: "+1 425 555 0100", m.contact.job_title: "Purchasing Manager",
            m.contact.company_name: "Fabrikam", m.contact.organization_id: fabrikam.id, m.contact.operator: "alex",
        }, SEED_ACTOR)
        lee = store.create("lead", {
            m.lead.first_name: "Lee", m.lead.last_name: "Example", m.lead.email: "lee@northwind.example",
            m.lead.company_name: "Northwind", m.lead.status: "Open",
        }, SEED_ACTOR)
        account = store.create("account", {"Name": "Fabrikam - Main", "OrganizationID": fabrikam.id}, SEED_ACTOR)
        opportunity = store.create("opportunity", {
            m.opportunity.name: "Fabrikam fleet renewal", m.opportunity.organization_id: fabrikam.id,
            m.opportunity.contact_id: dana.id, m.opportunity.stage: "Qualification", m.opportunity.status: "Open",
            "Amount": 125000, "OwnerOperator": "alex",
        }, SEED_ACTOR)
        closed_opp = store.create("opportunity", {
            m.opportunity.name: "Fabrikam pilot (won)", m.opportunity.organization_id: fabrikam.id,
            m.opportunity.stage: "Closed Won", m.opportunity.status: "Resolved-Won", "OwnerOperator": "alex",
        }, SEED_ACTOR)
    finally:
        store.listeners = listeners
    return {
        "fabrikam": fabrikam.id, "northwind_traders": northwind.id, "dana": dana.id, "lee": lee.id,
        "account": account.id, "opportunity": opportunity.id, "closed_opportunity": closed_opp.id,
    }
