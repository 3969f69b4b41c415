"""Injected faults: HTTP errors, timeouts and latency on Graph paths; notification mishaps.

Rules are matched in order against the method and a regex on the normalized Graph path (after
/v1.0, e.g. ``users/alex@contoso.example/messages``). A rule fires with probability ``rate`` and at
most ``count`` times (``None`` = unlimited).

Kinds: ``error`` (answer ``status`` instead of running the request), ``timeout`` (hang, then 504),
``delay`` (latency, then run it), ``lost`` (run the request, then answer 504: the write happened but
the answer never arrived) and ``drop`` (answer success without running the request: a write that
silently vanishes; not something Graph does — it exists so the chaos harness can prove it notices a
lost write).
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FaultRule:
    path: str = ".*"
    method: str | None = None
    kind: str = "error"  # error | timeout | delay | lost | drop
    status: int = 503
    code: str | None = None
    rate: float = 1.0
    count: int | None = None
    retry_after: float | None = None
    delay_ms: int = 0
    timeout_seconds: float = 30.0
    app: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    fired: int = 0

    def matches(self, method: str, path: str, app: str | None) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.app and self.app != app:
            return False
        if not re.search(self.path, path, re.IGNORECASE):
            return False
        return random.random() < self.rate


@dataclass
class NotificationFaults:
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder: bool = False
    delay_ms: int = 0


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    notifications: NotificationFaults = field(default_factory=NotificationFaults)

    def add(self, data: dict[str, Any]) -> FaultRule:
        allowed = FaultRule.__dataclass_fields__.keys() - {"id", "fired"}
        rule = FaultRule(**{k: v for k, v in data.items() if k in allowed})
        if rule.kind not in ("error", "timeout", "delay", "lost", "drop"):
            raise ValueError("kind must be error, timeout, delay, lost or drop")
        re.compile(rule.path)
        self.rules.append(rule)
        return rule

    def pick(self, method: str, path: str, app: str | None) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(method, path, app):
                rule.fired += 1
                return rule
        return None

    def set_notifications(self, data: dict[str, Any]) -> None:
        for k, v in data.items():
            if k in NotificationFaults.__dataclass_fields__:
                setattr(self.notifications, k, v)

    def reset(self) -> None:
        self.rules.clear()
        self.notifications = NotificationFaults()

    def as_dict(self) -> dict[str, Any]:
        return {"rules": [asdict(r) for r in self.rules], "notifications": asdict(self.notifications)}
