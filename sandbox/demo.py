"""Demo tenant set-up for `make run`: onboard the two demo reps through the admin API.

Uses the same HTTP API an operator would (PUT /api/admin/mailboxes/{upn} with the master key),
so `make run` exercises onboarding exactly as production does.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEMO_REPS = {"alex@contoso.example": "alex", "blair@contoso.example": "blair"}
# the on-premises rep (EWS simulator), onboarded with backend "ews" when EWS_URL is set
DEMO_ONPREM_REPS = {"onprem.rep@contoso.example": "casey"}


def prepare(env: Mapping[str, str]) -> None:
    base = env["SYNC_NOTIFICATION_URL_BASE"].rstrip("/")
    key = env["LOCAL_HOST_MASTER_KEY"]
    reps = [(upn, {"pega_operator": op}) for upn, op in DEMO_REPS.items()]
    if env.get("EWS_URL"):
        reps += [(upn, {"pega_operator": op, "backend": "ews"}) for upn, op in DEMO_ONPREM_REPS.items()]
    for upn, body in reps:
        operator = body["pega_operator"]
        req = urllib.request.Request(f"{base}/admin/mailboxes/{upn}", method="PUT",
                                     data=json.dumps(body).encode(),
                                     headers={"x-functions-key": key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                print(f"sandbox: onboarded {upn} as Pega operator '{operator}' ({r.status})", file=sys.stderr)
        except urllib.error.URLError as exc:
            print(f"sandbox: could not onboard {upn}: {exc}", file=sys.stderr)
