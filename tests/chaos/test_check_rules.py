"""The chaos check's classification of simulator request-log entries (pure logic)."""

from __future__ import annotations

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
