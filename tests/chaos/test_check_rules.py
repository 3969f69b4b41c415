"""The chaos check's classification of simulator request-log entries (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.chaos.check import is_write


@pytest.mark.parametrize(("method", "path", "write"), [
    ("POST", "/prweb/api/application/v2/data_views/D_EmailList", False),  # a DX v2 query is a read
    ("POST", "$batch", False),
    ("POST", "/prweb/api/application/v2/cases", True),
    ("PATCH", "/prweb/api/application/v2/cases/X/actions/Edit", True),
    ("POST", "users/u/events", True),
    ("GET", "users/u/events", False),
])
def test_reads_sent_as_post_are_not_echo_writes(method: str, path: str, write: bool) -> None:
    assert is_write({"method": method, "path": path, "status": 200}) is write


def test_a_refused_write_is_no_write() -> None:
    assert is_write({"method": "POST", "path": "users/u/events", "status": 429}) is False


def _world(row: dict) -> Any:
    from bench.chaos.check import World

    return World(pega=[], graph_items=[], folders={}, users={}, health={}, deadletters={"value": []}, outbound=[],
                 mailbox_health={"alex@contoso.example": {"kinds": [row]}})


def test_a_failed_operation_listed_in_health_is_visible_not_stuck() -> None:
    """A send the server refused for good is a failed operation the admin health API lists
    (`failures_open`): visible, so the check counts it lost but never stuck."""
    from bench.chaos.workload import Item

    item = Item("[c1-E1]", "rep_email", "alex@contoso.example", "[c1-E1]")
    assert _world({"kind": "email", "state": "degraded", "failures_open": 1}).visible(item)
    assert not _world({"kind": "email", "state": "ok", "failures_open": 0}).visible(item)


def test_the_settle_waits_for_every_operation_pega_started() -> None:
    """Chaos seed 253: both sides matched the ground truth while an update still waited behind its
    create, so the settle ended and that operation was judged stuck. Converged means every operation
    has ended too."""
    from bench.chaos.check import settled

    assert settled([{"status": "succeeded"}, {"status": "failed"}])
    for pending in ("accepted", "running", "Pending"):
        assert not settled([{"status": "succeeded"}, {"status": pending}])
