"""The simulator's clock: real UTC time plus an offset that tests can advance.

Graph-domain times (lastModifiedDateTime, subscription expiry, throttling windows) use this clock so
that a test can jump days ahead; token lifetimes use real time because the client caches tokens by
its own clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset.total_seconds()

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, when: datetime) -> datetime:
        self.offset = when - datetime.now(UTC)
        return self.now()


def iso(dt: datetime) -> str:
    """Graph's usual timestamp form: UTC with a Z, no fraction."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso7(dt: datetime) -> str:
    """Subscription timestamps: UTC with seven fractional digits and a Z."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are UTC. Accepts up to 7 fractional digits."""
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    if "." in v:
        head, _, tail = v.partition(".")
        frac = ""
        rest = ""
        for i, ch in enumerate(tail):
            if not ch.isdigit():
                rest = tail[i:]
                break
            frac += ch
        v = f"{head}.{frac[:6].ljust(6, '0')}{rest}"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt
