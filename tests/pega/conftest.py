"""Fixtures local to the Pega-side tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.pega.entra_stub import EntraStub


@pytest.fixture
async def entra() -> AsyncIterator[EntraStub]:
    stub = await EntraStub().start()
    try:
        yield stub
    finally:
        await stub.stop()
