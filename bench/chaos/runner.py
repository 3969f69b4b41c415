"""One seed end to end: fresh stack, workload under faults, faults cleared, bounded settle, check."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos import check as checks
from bench.chaos import onprem
from bench.chaos.actors import Actors, HarnessError
from bench.chaos.faults import Injector, schedule
from bench.chaos.stack import ROOT_LOGS, ChaosStack
from bench.chaos.workload import DANA, REPS, Item, Workload
from sandbox.settings import SYNC_APP_ID

WORKLOAD_SECONDS = 30.0
SETTLE_SECONDS = 65.0  # faults cleared -> everything must have converged within this
QUIET_SECONDS = 5.0  # after convergence: any write of the sync service now is an echo
# When the faults clear, a minute passes on the stack's clock: the safety-net poll (interval 1 minute,
# the shortest the setting allows; its timer ticks every minute) then finds every kind due at its next
# tick, so a seed need not wait two ticks for a missed notification to be polled up.
CLEAR_CLOCK_STEP = 61.0
READY_SECONDS = 60.0
SABOTAGES = ("drop", "duplicate", "wrong", "echo", "onprem")


@dataclass
class SeedOptions:
    faults: bool = True
    only: tuple[str, ...] = ()  # restrict faults to these names
    sabotage: tuple[str, ...] = ()  # deliberately break things (harness self-test)
    midnight: bool | None = None  # None: the seed decides
    keep_logs: bool = False
    onprem: bool = True  # the on-premises (EWS) rep takes part (its scenarios and faults)
    log_root: Path = ROOT_LOGS


@dataclass
class SeedResult:
    seed: int
    counts: dict[str, int]
    clean: bool
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    items: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    echo: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)
    void: str | None = None  # the harness itself failed: no verdict on the product
    midnight: bool = False
    log_dir: str | None = None
    converged_after: float | None = None
    operations: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        c = self.counts
        text = (f"seed {self.seed}: lost {c['lost']}, duplicated {c['duplicated']}, wrong {c['wrong']}, "
                f"echo {c['echo']}, stuck {c['stuck']}")
        if self.void:
            text += f" (VOID: {self.void})"
        return text + f"  [{self.seconds:.0f}s]"


def _midnight_offset(rng: random.Random) -> float:
    """Clock offset that puts 00:00 UTC in the middle of the workload (about 20-45 s after the start)."""
    now = time.time()
    midnight = (now // 86400 + 1) * 86400
    return midnight - now - rng.uniform(35.0, 55.0)


async def _ready(a: Actors, within: float) -> None:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        ok = 0
        for upn in REPS:
            try:
                d = await a.admin("GET", f"mailboxes/{upn}")
            except HarnessError as exc:
                last = str(exc)
                continue
            active = [s for s in d.get("subscriptions", []) if s.get("status") == "active"]
            ok += len(active) >= 3 and all(v == "done" for v in (d.get("backfill") or {}).values())
            last = d
        if ok == len(REPS):
            return
        await asyncio.sleep(0.5)
    raise HarnessError(f"the demo mailboxes were not ready within {within:.0f}s: {str(last)[:300]}")


async def _onprem_ready(a: Actors, within: float) -> None:
    """The on-premises rep's first rounds are done (no push subscription rows: EWS is pulled)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            d = await a.admin("GET", f"mailboxes/{onprem.ONPREM}")
            backfill = d.get("backfill") or {}
            if backfill and all(v == "done" for v in backfill.values()):
                return
            last = backfill
        except HarnessError as exc:
            last = str(exc)
        await asyncio.sleep(0.5)
    raise HarnessError(f"the on-premises mailbox was not ready within {within:.0f}s: {str(last)[:300]}")


async def _onprem_faults(a: Actors, url: str, seed: int, *, duration: float, record: list[dict[str, Any]]) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for at, name, params in onprem.fault_schedule(seed, duration=duration):
        await asyncio.sleep(max(0.0, t0 + at - loop.time()))
        entry: dict[str, Any] = {"at": at, "name": name, "params": params, "done": False, "error": None}
        try:
            await onprem.apply_fault(a.http, url, name, params)
            entry["done"] = True
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        record.append(entry)


async def _log_pos(a: Actors) -> tuple[int, int]:
    g = await a.gsim("GET", "requests/log", params={"since": 10**9})
    p = await a.psim("GET", "requests/log", params={"since": 10**9})
    return int(g["total"]), int(p["total"])


async def _sabotage_before(a: Actors, kinds: tuple[str, ...]) -> None:
    if "drop" in kinds:  # every send of a mail silently vanishes (the product re-sends one that stays a draft)
        await a.gsim("POST", "faults", json={"path": r"(sendMail|messages/[^/]+/send)$", "method": "POST",
                                             "kind": "drop", "app": SYNC_APP_ID})
    if "duplicate" in kinds:  # the first Pega case create happens twice
        await a.psim("POST", "faults", json={"method": "POST", "path_contains": "/application/v2/cases",
                                             "duplicate_write": True, "times": 1})


async def _sabotage_quiet(a: Actors, stack: ChaosStack, kinds: tuple[str, ...], truth: list[Item]) -> None:
    if "echo" not in kinds:
        return
    ev = next((i for i in truth if i.kind == "event" and i.mailbox in REPS and i.present and not i.closed
               and not i.alternatives), None)
    if ev is None:
        return
    r = await a._request("POST", f"{a.graph}/{stack.settings['GRAPH_TENANT_ID']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": SYNC_APP_ID, "client_secret": "sandbox-sync-secret",
        "scope": "https://graph.microsoft.com/.default"})
    token = r.json()["access_token"]
    await a._request("PATCH", f"{a.graph}/v1.0/users/{ev.mailbox}/events/{ev.ids['graph_id']}",
                     headers={"Authorization": f"Bearer {token}"}, json={"categories": ["echo-sabotage"]})


async def _sabotage_final(a: Actors, kinds: tuple[str, ...], truth: list[Item]) -> None:
    if "wrong" not in kinds:
        return
    for item in truth:
        if item.kind == "event" and item.mailbox in REPS and item.present and not item.closed and not item.alternatives:
            rec = next((r for r in await a.pega_records("appointment")
                        if r["content"].get("ExchangeID") == item.ids["graph_id"]), None)
            if rec:
                from urllib.parse import quote

                await a.rep("PATCH", f"appointments/{quote(rec['id'], safe='')}", {
                    "operator": REPS[item.mailbox], "content": {"Subject": "tampered by the harness"}})
                return


async def _converged(a: Actors, truth: Any, outlook: onprem.OnPremOutlook | None, *,
                     storage: str) -> tuple[bool, checks.Result | None]:
    try:
        world = await checks.World.read(a, outlook)
    except HarnessError:
        return False, None
    res = checks.check(truth, world)
    if not res.clean:
        return False, res
    return checks.settled(await checks.operations(a, world)) and await _insights_written(storage), res


async def _insights_written(storage: str) -> bool:
    """Have the deferred insights (shared.sync.insight_jobs) been written? A job still queued, being
    worked or waiting out a retry writes to Pega later: that is the sync's own outstanding work, not
    an echo in the quiet window, so the system has not settled before the queue reads empty."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue.aio import QueueClient

    from shared.queues import names
    from shared.storage.connection import expand_connection_string

    async with QueueClient.from_connection_string(expand_connection_string(storage), names.INSIGHT_WORK) as q:
        try:
            props = await q.get_queue_properties()
        except ResourceNotFoundError:
            return True
        return (props.approximate_message_count or 0) == 0


async def run_seed_async(seed: int, opts: SeedOptions) -> SeedResult:
    t0 = time.monotonic()
    rng = random.Random(seed)
    midnight = opts.midnight if opts.midnight is not None else rng.random() < 0.25
    stack = ChaosStack.create(seed, log_root=opts.log_root, clock_offset=_midnight_offset(rng) if midnight else 0.0)
    phases: dict[str, float] = {}
    result = SeedResult(seed, dict.fromkeys(checks.COUNTS, 0), False, 0.0, midnight=midnight)
    a: Actors | None = None
    keep = opts.keep_logs
    try:
        await asyncio.get_running_loop().run_in_executor(None, stack.start_all)
        a = Actors(stack.urls, master_key=stack.settings["LOCAL_HOST_MASTER_KEY"])
        from sandbox import demo

        await asyncio.get_running_loop().run_in_executor(None, demo.prepare, stack.settings)
        await a.psim("PUT", "config", json={"outbound": {"max_attempts": 60, "backoff_seconds": 0.25,
                                                         "max_backoff_seconds": 2.0, "timeout_seconds": 15}})
        await _ready(a, READY_SECONDS)
        ews_url = stack.urls.get("ews") if opts.onprem else None
        outlook = onprem.OnPremOutlook(ews_url) if ews_url else None
        if outlook is not None and ews_url:
            await outlook.ready(a.http)
            await _onprem_ready(a, READY_SECONDS)
        phases["start"] = round(time.monotonic() - t0, 1)
        await _sabotage_before(a, opts.sabotage)
        if "onprem" in opts.sabotage and ews_url:  # the on-premises server refuses every send, for good
            await onprem.refuse_sends(a.http, ews_url)

        def stack_now() -> dt.datetime:
            return dt.datetime.fromtimestamp(stack.now(), dt.UTC)

        work = Workload(seed, a, now=stack_now, duration=WORKLOAD_SECONDS, onprem=outlook)
        plan = schedule(seed, duration=WORKLOAD_SECONDS, enabled=opts.faults, only=opts.only)
        injector = Injector(stack, a, plan, seed=seed)
        onprem_record: list[dict[str, Any]] = []
        side = [_onprem_faults(a, ews_url, seed, duration=WORKLOAD_SECONDS, record=onprem_record)] if (
            outlook is not None and ews_url and opts.faults and not opts.only) else []
        t1 = time.monotonic()
        truth, *_ = await asyncio.gather(work.run(), injector.run(), *side)
        phases["workload"] = round(time.monotonic() - t1, 1)
        for f in plan:  # the email sent just before a kill is ground truth too
            sent = f.params.get("sent")
            if sent:
                truth.add(Item(sent["tag"], "rep_email", sent["mailbox"], sent["tag"], ids={"pega_id": sent["pega_id"]},
                               fields={"Subject": f"Offer {sent['tag']}", "To": {DANA}}))
        await injector.clear()
        if ews_url:
            await onprem.clear_faults(a.http, ews_url)
            if "onprem" in opts.sabotage:  # a sabotage is no fault: it outlives the clearing
                await onprem.refuse_sends(a.http, ews_url)
        if "drop" in opts.sabotage:  # a sabotage is no fault: it outlives the clearing (a send that never happens)
            await _sabotage_before(a, ("drop",))
        if stack.clock_enabled:
            stack.write_clock(stack.clock_offset + CLEAR_CLOCK_STEP)
        result.faults = sorted([{"at": f.at, "name": f.name, "params": f.params, "done": f.done, "error": f.error}
                                for f in plan] + onprem_record, key=lambda f: float(f["at"]))
        if truth.errors:
            raise HarnessError("workload: " + " | ".join(truth.errors[:3]))
        # settle: until both sides match the ground truth, bounded
        t2 = time.monotonic()
        while time.monotonic() - t2 < SETTLE_SECONDS:
            ok, _ = await _converged(a, truth, outlook, storage=stack.settings["AzureWebJobsStorage"])
            if ok:
                result.converged_after = round(time.monotonic() - t2, 1)
                break
            await asyncio.sleep(2.0)
        phases["settle"] = round(time.monotonic() - t2, 1)
        # quiet window: nothing changes, so the sync service must write nothing
        g0, p0 = await _log_pos(a)
        e0 = await onprem.requests_total(a.http, ews_url) if ews_url else 0
        await _sabotage_quiet(a, stack, opts.sabotage, truth.items)
        await asyncio.sleep(QUIET_SECONDS)
        g_quiet = (await a.gsim("GET", "requests/log", params={"since": g0}))["value"]
        p_quiet = (await a.psim("GET", "requests/log", params={"since": p0}))["value"]
        e_quiet = await onprem.sync_writes_since(a.http, ews_url, e0) if ews_url else []
        p_all = (await a.psim("GET", "requests/log"))["value"]
        await _sabotage_final(a, opts.sabotage, truth.items)
        world = await checks.World.read(a, outlook)
        res = checks.check(truth, world)
        res.echo = checks.echo_findings(truth, quiet_graph=g_quiet, quiet_pega=p_quiet, all_pega=p_all, world=world)
        res.echo += [{"where": "ews", "when": "quiet window", "operation": e.get("operation")} for e in e_quiet]
        res.counts["echo"] = len(res.echo)
        ops = await checks.operations(a, world)
        checks.judge_operations(res, truth, ops, world)
        result.operations = {st: sum(1 for o in ops if o["status"] == st) for st in {o["status"] for o in ops}}
        result.counts = res.counts
        result.clean = res.clean
        result.items = len(truth.items)
        result.problems = [asdict(v) for v in res.verdicts if v.verdict != "ok"]
        result.echo = res.echo
        result.stuck = res.stuck
    except (HarnessError, RuntimeError, TimeoutError, OSError) as exc:
        result.void = f"{type(exc).__name__}: {exc}"[:500]
        dead = stack.dead()
        if dead:
            result.void += f" (dead: {dead})"
    finally:
        if a is not None:
            await a.close()
        keep = keep or not result.clean
        await asyncio.get_running_loop().run_in_executor(None, lambda: stack.stop(keep=False))
        result.log_dir = str(stack.log_dir) if keep else None
        if not keep:
            import shutil

            shutil.rmtree(stack.log_dir, ignore_errors=True)
    result.phases = phases
    result.seconds = round(time.monotonic() - t0, 1)
    return result


def run_seed(seed: int, opts: SeedOptions | None = None) -> SeedResult:
    return asyncio.run(run_seed_async(seed, opts or SeedOptions()))
