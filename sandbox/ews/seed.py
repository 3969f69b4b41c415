"""What a fresh simulator holds: the service account with ApplicationImpersonation
(svc-pega-sync), one without the role (svc-noimp), and the demo on-premises rep's mailbox."""

from __future__ import annotations

from typing import Any

SERVICE_USER = "CONTOSO\\svc-pega-sync"
SERVICE_PASSWORD = "Sandbox-Impersonation-1"
NO_ROLE_USER = "CONTOSO\\svc-noimp"
NO_ROLE_PASSWORD = "Sandbox-NoRole-1"
DEMO_ONPREM_REP = "onprem.rep@contoso.example"


def seed(sim: Any) -> None:
    with sim.store.lock:
        sim.store.add_account(SERVICE_USER, SERVICE_PASSWORD, impersonation=True)
        sim.store.add_account(NO_ROLE_USER, NO_ROLE_PASSWORD, impersonation=False)
        sim.store.add_mailbox(DEMO_ONPREM_REP, display_name="On-premises Rep")
        sim.ntlm.write()
