"""The seeded fault schedule: what goes wrong, and when, during one seed's workload.

Faults come from the simulators' control APIs (Graph: 429 with Retry-After, 5xx, hangs past the
client timeout, latency, lost responses, dropped / duplicated / reordered / delayed notifications,
`missed` and `subscriptionRemoved` lifecycle events, expired delta tokens; Pega: 429, 5xx, slow
answers, lost responses, stale eTags, revoked tokens) and from the harness (SIGKILL of the Functions
host mid-round and mid-send with a restart a few seconds later, an Azurite restart, a jump of the
whole stack's clock past subscription expiry). The schedule is a pure function of the seed;
`clear()` ends every simulator fault and brings every stopped service back.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.actors import Actors
from bench.chaos.stack import ChaosStack
from bench.chaos.workload import DANA, REPS
from sandbox.settings import SYNC_APP_ID

GRAPH_FAULTS = ("graph_429", "graph_5xx", "graph_timeout", "graph_lost", "graph_delay", "notifications",
                "lifecycle_missed", "subscription_removed", "delta_expired")
PEGA_FAULTS = ("pega_429", "pega_5xx", "pega_slow", "pega_lost", "pega_stale", "token_revoked")
HARNESS_FAULTS = ("kill_host_mid_round", "kill_host_mid_send", "azurite_restart", "clock_jump_expiry")
ALL_FAULTS = GRAPH_FAULTS + PEGA_FAULTS + HARNESS_FAULTS


@dataclass
class Fault:
    at: float  # seconds after the workload starts
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    error: str | None = None


def schedule(seed: int, *, duration: float, enabled: bool = True, only: tuple[str, ...] = ()) -> list[Fault]:
    """The seed's faults. Every seed gets several Graph, Pega and harness faults at random moments."""
    if not enabled:
        return []
    rng = random.Random(seed * 7919 + 17)
    pool = list(only) if only else None
    names: list[str] = []
    if pool:
        names = [rng.choice(pool) for _ in range(max(3, len(pool)))]
    else:
        names += rng.sample(GRAPH_FAULTS, k=rng.randint(3, 5))
        names += rng.sample(PEGA_FAULTS, k=rng.randint(2, 4))
        names += rng.sample(HARNESS_FAULTS, k=rng.randint(1, 2))
    out = []
    for name in names:
        out.append(Fault(round(rng.uniform(1.0, duration * 0.85), 1), name, _params(rng, name)))
    return sorted(out, key=lambda f: f.at)


def _params(rng: random.Random, name: str) -> dict[str, Any]:
    write_paths = r"(events|messages|contacts|send|sendMail|reply|createReply)"
    table: dict[str, dict[str, Any]] = {
        "graph_429": {"path": ".*", "kind": "error", "status": 429, "retryAfter": rng.choice((1, 2, 3)),
                      "rate": rng.choice((0.2, 0.4)), "count": rng.randint(5, 25)},
        "graph_5xx": {"path": ".*", "kind": "error", "status": rng.choice((500, 502, 503, 504)),
                      "rate": rng.choice((0.15, 0.3)), "count": rng.randint(5, 20)},
        "graph_timeout": {"path": ".*", "kind": "timeout", "timeoutSeconds": 12, "rate": 0.2,
                          "count": rng.randint(1, 3)},
        "graph_lost": {"path": write_paths, "kind": "lost", "method": rng.choice(("POST", "PATCH")),
                       "rate": 0.5, "count": rng.randint(1, 3)},
        "graph_delay": {"path": ".*", "kind": "delay", "delayMs": rng.choice((500, 1500, 3000)), "rate": 0.3,
                        "count": rng.randint(5, 20)},
        "notifications": {"dropRate": rng.choice((0.0, 0.3, 0.7)), "duplicateRate": rng.choice((0.0, 0.3)),
                          "reorder": rng.random() < 0.5, "delayMs": rng.choice((0, 500, 2000))},
        "lifecycle_missed": {"mailbox": rng.choice(sorted(REPS)), "pick": rng.random()},
        "subscription_removed": {"mailbox": rng.choice(sorted(REPS)), "pick": rng.random()},
        "delta_expired": {"mailbox": rng.choice(sorted(REPS))},
        "pega_429": {"path_contains": "/prweb/api", "status": 429, "retry_after": 1, "times": rng.randint(2, 8)},
        "pega_5xx": {"path_contains": "/prweb/api", "status": rng.choice((500, 502, 503)),
                     "times": rng.randint(2, 8)},
        "pega_slow": {"path_contains": "/prweb/api", "delay_seconds": rng.choice((2.0, 4.0)),
                      "times": rng.randint(2, 6)},
        "pega_lost": {"path_contains": "/prweb/api", "method": rng.choice(("POST", "PATCH", "PUT")), "status": 500,
                      "after_write": True, "times": rng.randint(1, 3)},
        "pega_stale": {"path_contains": "/prweb/api", "stale_etag": True, "times": rng.randint(1, 3)},
        "token_revoked": {},
        "kill_host_mid_round": {"down": round(rng.uniform(1.0, 4.0), 1)},
        "kill_host_mid_send": {"down": round(rng.uniform(1.0, 4.0), 1), "operator": rng.choice(sorted(REPS.values())),
                               "after": round(rng.uniform(0.05, 0.8), 2)},
        "azurite_restart": {"down": round(rng.uniform(1.0, 3.0), 1)},
        "clock_jump_expiry": {"seconds": 7 * 86400 + 3600},
    }
    return dict(table[name])


class Injector:
    """Applies a schedule against a running stack; every action is logged in the fault's record."""

    def __init__(self, stack: ChaosStack, actors: Actors, faults: list[Fault], *, seed: int) -> None:
        self.stack = stack
        self.a = actors
        self.faults = faults
        self.seed = seed
        self.sends = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for f in self.faults:
            await asyncio.sleep(max(0.0, t0 + f.at - loop.time()))
            try:
                await self._apply(f)
                f.done = True
            except Exception as exc:
                f.error = f"{type(exc).__name__}: {exc}"[:300]

    async def _apply(self, f: Fault) -> None:
        p = f.params
        if f.name.startswith("graph_"):
            await self.a.gsim("POST", "faults", json={**p, "app": SYNC_APP_ID})
        elif f.name == "notifications":
            await self.a.gsim("POST", "faults/notifications", json=p)
        elif f.name in ("lifecycle_missed", "subscription_removed"):
            await self._lifecycle(f)
        elif f.name == "delta_expired":
            await self.a.gsim("POST", "delta/expire", json={"user": p["mailbox"]})
        elif f.name.startswith("pega_"):
            await self.a.psim("POST", "faults", json=p)
        elif f.name == "token_revoked":
            await self.a.psim("POST", "tokens/revoke")
        elif f.name == "kill_host_mid_round":
            await self._off_loop(lambda: self.stack.restart_host(down_seconds=p["down"]))
        elif f.name == "kill_host_mid_send":
            await self._kill_mid_send(p)
        elif f.name == "azurite_restart":
            await self._off_loop(lambda: self.stack.restart_azurite(down_seconds=p["down"]))
        elif f.name == "clock_jump_expiry":
            if not self.stack.clock_enabled:
                raise RuntimeError("libfaketime is not available: clock jumps are off")
            self.stack.write_clock(self.stack.clock_offset + float(p["seconds"]))
            await asyncio.sleep(1.5)  # the faked clocks re-read the offset file every second
            await self.a.gsim("POST", "clock", json={})  # let the Graph simulator expire subscriptions now
        else:
            raise ValueError(f"unknown fault {f.name}")

    async def _lifecycle(self, f: Fault) -> None:
        users = {u["userPrincipalName"].lower(): u["id"] for u in (await self.a.gsim("GET", "users"))["value"]}
        every = (await self.a.gsim("GET", "subscriptions"))["value"]
        subs = [s for s in every if s.get("userId") == users.get(f.params["mailbox"].lower())] or every
        if not subs:
            raise RuntimeError("no subscription to act on")
        sub = subs[int(f.params["pick"] * len(subs)) % len(subs)]
        event = "missed" if f.name == "lifecycle_missed" else "subscriptionRemoved"
        f.params["subscription"] = sub["id"]
        await self.a.gsim("POST", f"subscriptions/{sub['id']}/lifecycle", json={"event": event})

    async def _kill_mid_send(self, p: dict[str, Any]) -> None:
        """A rep sends an email from Pega; the host is killed while that send is in flight."""
        self.sends += 1
        upn = next(u for u, o in REPS.items() if o == p["operator"])
        tag = f"[c{self.seed}-K{self.sends}]"
        rec = await self.a.rep("POST", "emails", {"operator": p["operator"], "content": {
            "Subject": f"Offer {tag}", "Body": f"Dear Dana, our offer {tag}.", "BodyType": "text",
            "ToAddresses": DANA}})
        p["sent"] = {"tag": tag, "pega_id": rec["id"], "mailbox": upn}
        await asyncio.sleep(p["after"])
        await self._off_loop(lambda: self.stack.restart_host(down_seconds=p["down"]))

    @staticmethod
    async def _off_loop(fn: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, fn)

    async def clear(self) -> None:
        """Faults end: simulator rules cleared, notifications normal, stopped services running again."""
        if "host" in self.stack.dead():
            await self._off_loop(self.stack.start_host)
        await self.a.gsim("DELETE", "faults")
        await self.a.gsim("POST", "faults/notifications",
                          json={"dropRate": 0, "duplicateRate": 0, "reorder": False, "delayMs": 0})
        await self.a.psim("DELETE", "faults")


Step = Callable[[], Awaitable[None]]
