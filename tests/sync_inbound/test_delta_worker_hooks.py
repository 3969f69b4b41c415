"""The delta worker's queue handler is the ops-guarded one: a round is traced/metered (telemetry
records it) and a malformed body is still a PermanentError (dead letter at once)."""

from __future__ import annotations

from typing import Any

import pytest

from functions import delta_worker
from shared.errors import PermanentError
from shared.ops import telemetry
from shared.queues.envelope import Envelope


async def test_delta_worker_runs_the_round_inside_the_ops_guard(inbound, monkeypatch) -> None:
    await inbound.onboard()
    await inbound.graph.control.inbound_mail(inbound.upn, subject="guarded", body="hi",
                                             **{"from": {"address": "dana@fabrikam.example", "name": "Dana"}})

    async def services() -> Any:
        return inbound.services

    rounds: list[Any] = []
    monkeypatch.setattr(delta_worker, "services", services)
    monkeypatch.setattr(telemetry, "record_round", lambda report, **kw: rounds.append(report))
    handler = delta_worker.handlers()["delta.sync"]

    await handler(Envelope(type="delta.sync", body={"mailbox": inbound.upn, "kind": "email", "reason": "poll"}))
    assert [(r.mailbox, r.kind, r.completed) for r in rounds] == [(inbound.upn.lower(), "email", True)]

    for bad in ({"mailbox": "no-at-sign", "kind": "email"}, {"mailbox": inbound.upn, "kind": "tasks"}, {}):
        with pytest.raises(PermanentError):
            await handler(Envelope(type="delta.sync", body=bad))
    assert len(rounds) == 1
