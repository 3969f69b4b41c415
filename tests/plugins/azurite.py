"""Azurite for the test session: one emulator on free ports, shared by every test.

Tests isolate themselves by using unique table/queue names (see `unique_name`), not by
restarting the emulator, which keeps the suite fast on a 2-core CI machine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from sandbox.proc import azurite_connection_string, start_azurite


@pytest.fixture(scope="session")
def azurite_conn() -> Iterator[str]:
    """Connection string of a running Azurite (reuses AZURITE_CONNECTION_STRING when set)."""
    existing = os.environ.get("AZURITE_CONNECTION_STRING")
    if existing:
        yield existing
        return
    svc = start_azurite()
    try:
        yield azurite_connection_string(svc)
    finally:
        svc.stop()


@pytest.fixture
def unique_name() -> str:
    """A storage-safe unique name (letters and digits, starts with a letter)."""
    return "t" + uuid.uuid4().hex[:12]
