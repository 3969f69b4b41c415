"""What /api/health reports. Fast (bounded by a short timeout) and never leaks configuration values."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from shared import __version__
from shared.config import get_settings
from shared.errors import ConfigurationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    version: str
    mode: str
    storage: str  # reachable | unreachable | unconfigured
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": "ok" if self.ok else "degraded", "version": self.version,
                             "mode": self.mode, "storage": self.storage}
        if self.detail:
            d["detail"] = self.detail
        return d


async def check(*, budget_seconds: float = 3.0) -> HealthReport:
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        return HealthReport(False, __version__, "unknown", "unconfigured", detail=str(exc))
    from shared.runtime import services

    try:
        svc = await asyncio.wait_for(services(settings), budget_seconds)
        await asyncio.wait_for(svc.state.tables.ping(), budget_seconds)
        storage = "reachable"
    except Exception as exc:  # report, don't crash: health must answer
        log.warning("health: storage unreachable: %s", type(exc).__name__)
        storage = "unreachable"
    return HealthReport(storage == "reachable", __version__, settings.mode.value, storage)
