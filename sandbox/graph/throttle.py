"""Outlook service limits per (app id, mailbox): requests per window and concurrent requests.

Throttled requests still count toward the window (Graph: "usage keeps being counted while you are
throttled"), so a client that ignores Retry-After stays throttled. Limits are configurable through
/_sim/throttle so tests can reach them quickly.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field

from sandbox.graph.clock import SimClock


@dataclass
class ThrottleConfig:
    requests_per_window: int = 10_000
    window_seconds: float = 600.0
    concurrency: int = 4
    concurrency_retry_after: float = 1.0
    enabled: bool = True

    def update(self, data: dict[str, object]) -> None:
        for k, v in data.items():
            if k in self.__dataclass_fields__:
                setattr(self, k, type(getattr(self, k))(v))  # type: ignore[call-arg]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Verdict:
    allowed: bool
    retry_after: float = 0.0
    reason: str = ""


@dataclass
class _Usage:
    times: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class Throttle:
    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.config = ThrottleConfig()
        self.usage: dict[tuple[str, str], _Usage] = defaultdict(_Usage)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.throttled: dict[tuple[str, str], int] = defaultdict(int)

    def reset(self) -> None:
        self.config = ThrottleConfig()
        self.usage.clear()
        self.counts.clear()
        self.throttled.clear()

    def acquire(self, app: str, mailbox: str) -> Verdict:
        """Count a request and decide; when allowed the caller must call release()."""
        key = (app, mailbox)
        self.counts[key] += 1
        u = self.usage[key]
        now = self.clock.monotonic()
        cfg = self.config
        while u.times and u.times[0] <= now - cfg.window_seconds:
            u.times.popleft()
        u.times.append(now)
        if not cfg.enabled:
            u.in_flight += 1
            return Verdict(True)
        if len(u.times) > cfg.requests_per_window:
            # Retry after the oldest request that must expire for the window to drop below the limit.
            excess = len(u.times) - cfg.requests_per_window
            oldest = u.times[excess - 1]
            wait = max(0.001, oldest + cfg.window_seconds - now)
            self.throttled[key] += 1
            return Verdict(False, float(math.ceil(wait)), "MailboxRequestRate")
        if u.in_flight >= cfg.concurrency:
            self.throttled[key] += 1
            return Verdict(False, cfg.concurrency_retry_after, "MailboxConcurrency")
        u.in_flight += 1
        return Verdict(True)

    def release(self, app: str, mailbox: str) -> None:
        u = self.usage[(app, mailbox)]
        u.in_flight = max(0, u.in_flight - 1)

    def report(self) -> list[dict[str, object]]:
        return [{"app": a, "mailbox": m, "requests": n, "throttled": self.throttled.get((a, m), 0),
                 "inFlight": self.usage[(a, m)].in_flight if (a, m) in self.usage else 0}
                for (a, m), n in sorted(self.counts.items())]
