"""Backfill of a large mailbox on the sandbox: time, items/s, Graph requests and Pega calls per item,
and CPU per item by process (this process runs the product's code, as the Functions worker would;
the simulators and Azurite are measured with psutil).

A fresh Graph-simulator mailbox gets N received mails (BENCH_INBOUND_ITEMS, default 2,000 so that `make bench` stays short; 10,000 for the issue-16 target) from a
mix of Pega contacts, leads, organizations and unknown senders; then one onboarding round runs
in-process exactly as the delta worker runs it (same run_delta_round; continuations followed
in-process instead of through the queue). Graph requests are the simulator's own per-mailbox
counts for the sync app (/_sim/requests). Pega requests are the Pega simulator's counters.
With BENCH_PROFILE=1 the round runs under cProfile and the top entries land in
`results/inbound_backfill_profile.txt` (profiling inflates the CPU figures: compare like with like).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import time
from pathlib import Path
from typing import Any

from bench._cpu import ProcessCpu, write_profile

RESULTS = Path(__file__).resolve().parent / "results"


def _suffix() -> str:
    """BENCH_SUFFIX names a variant's result files (e.g. `_no_insights`), so variants do not overwrite."""
    return os.environ.get("BENCH_SUFFIX", "")


async def _run(n: int, batch: int) -> dict[str, Any]:
    from bench._inbound_stack import sandbox_stack, sync_services
    from shared.storage.mailboxes import Mailbox
    from shared.sync.inbound import run_delta_round

    with sandbox_stack() as stack:
        upn = await stack.new_user()
        t_seed = time.perf_counter()
        await stack.seed_mail(upn, n)
        seed_s = time.perf_counter() - t_seed
        async with sync_services(stack) as (services, ctx):
            mb = Mailbox.with_defaults(upn, "alex", services.settings.sync)
            from dataclasses import replace

            await services.state.mailboxes.put(replace(mb, batch_size=batch))
            before = await stack.graph_requests(upn)
            pega_before = await stack.pega_requests()
            cpu = ProcessCpu({svc.name: svc.proc.pid for svc in stack.services})
            profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE") == "1" else None
            if profiler is not None:
                profiler.enable()
            started = time.perf_counter()
            invocations, pages = 0, 0
            purposes: dict[str, int] = {}
            outcomes: dict[str, int] = {}
            skipped: dict[str, int] = {}
            restarts: list[str] = []
            reread = 0
            while True:
                report = await run_delta_round(services, mailbox=upn, kind="email", reason="onboard", context=ctx,
                                               enqueue_continuation=False)
                invocations += 1
                pages += report.pages
                for k, v in report.outcomes.items():
                    outcomes[k] = outcomes.get(k, 0) + v
                for k, v in report.skipped.items():
                    skipped[k] = skipped.get(k, 0) + v
                for k, v in report.graph_requests_by_purpose.items():
                    purposes[k] = purposes.get(k, 0) + v
                restarts += report.unfiltered_restarts
                reread += report.reread_items
                if report.completed:
                    break
            elapsed = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
                write_profile(profiler, RESULTS / f"inbound_backfill{_suffix()}_profile.txt")
            cpu_s = cpu.seconds()
            pega_calls = await stack.pega_requests() - pega_before
            graph = await stack.graph_requests(upn) - before
            links = len(await services.state.links.list(upn, kind="email"))
            # a second round right after: nothing changed, nothing written
            t2 = time.perf_counter()
            again = await run_delta_round(services, mailbox=upn, kind="email", reason="poll", context=ctx)
            idle_s = time.perf_counter() - t2
            # the insights the rounds deferred (the model was busy), worked off as the insight worker would
            cpu_ins = ProcessCpu({svc.name: svc.proc.pid for svc in stack.services})
            t3 = time.perf_counter()
            deferred = await _drain_insights(services, ctx)
            insights_s = time.perf_counter() - t3
            insights_cpu = cpu_ins.seconds()
    # every item read has an outcome; items of a filtered first round abandoned at Graph's 5,000 cap
    # are read again by the unfiltered round (as no-ops or the same skip): count each mail once
    items_read = sum(outcomes.values())
    processed = items_read - reread
    return {
        "items": n, "batch_size": batch, "seed_seconds": round(seed_s, 1),
        "backfill_seconds": round(elapsed, 2), "items_per_second": round(n / elapsed, 1),
        "graph_requests": graph, "graph_requests_per_item": round(graph / n, 4),
        "graph_requests_by_purpose": purposes,
        "graph_requests_per_item_without_sensitivity_checks": round(
            (graph - purposes.get("sensitivity_check", 0)) / n, 4),
        "invocations": invocations, "pages": pages, "outcomes": outcomes, "skipped": skipped,
        "processed": processed, "items_read": items_read, "reread_items": reread,
        "unfiltered_restarts": restarts, "links": links, "next_round_seconds": round(idle_s, 3), "next_round_synced": again.synced,
        "pega_calls": pega_calls, "pega_calls_per_item": round(pega_calls / n, 3),
        "cpu_ms_per_item": {k: round(v * 1000 / n, 3) for k, v in cpu_s.items()},
        "profiled": profiler is not None,
        "deferred_insights": {**deferred, "seconds": round(insights_s, 2),
                              "per_second": round(deferred["jobs"] / insights_s, 1) if deferred["jobs"] else None,
                              "cpu_ms_per_job": {k: round(v * 1000 / max(1, deferred["jobs"]), 2)
                                                 for k, v in insights_cpu.items()}},
    }


async def _drain_insights(services: Any, ctx: Any) -> dict[str, int]:
    """Run the `insight-work` messages the backfill queued through the queue worker, 16 at a time
    (the host's batchSize); returns how many messages and jobs there were."""
    import asyncio
    import json

    from shared.queues import names
    from shared.queues.worker import run_message
    from shared.sync import insight_jobs

    await services.queues.ensure(names.INSIGHT_WORK)
    q = services.queues.client(names.INSIGHT_WORK)
    handlers = insight_jobs.handlers(services, context=ctx)
    messages = jobs = 0

    async def one(m: Any) -> None:
        await run_message(queue=names.INSIGHT_WORK, text=m.content, dequeue_count=1, handlers=handlers,
                          deadletters=services.state.deadletters, sender=services.queues, redact=insight_jobs.redact)
        await q.delete_message(m)

    while True:
        got = [m async for m in q.receive_messages(messages_per_page=16, visibility_timeout=600, max_messages=16)]
        if not got:
            return {"messages": messages, "jobs": jobs}
        messages += len(got)
        jobs += sum(len(json.loads(m.content)["body"]["jobs"]) for m in got)
        await asyncio.gather(*(one(m) for m in got))


def _chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    labels = list(result["outcomes"]) + [f"skip:{k}" for k in result["skipped"]]
    values = list(result["outcomes"].values()) + list(result["skipped"].values())
    a.barh(labels, values, color="#4477aa")
    title = f"{result['items']:,} mails: what happened"
    if result.get("reread_items"):
        title += f"\n({result['items_read']:,} reads: {result['reread_items']:,} again after the 5,000 cap)"
    a.set_title(title, fontsize=10)
    b.bar(["items/s", "Graph req/100 items"], [result["items_per_second"], result["graph_requests_per_item"] * 100],
          color=["#228833", "#ee6677"])
    b.set_title(f"backfill {result['backfill_seconds']} s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run() -> dict[str, Any]:
    n = int(os.environ.get("BENCH_INBOUND_ITEMS", "2000"))
    batch = int(os.environ.get("BENCH_INBOUND_BATCH", "200"))
    result = asyncio.run(_run(n, batch))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"inbound_backfill{_suffix()}.json").write_text(json.dumps(result, indent=2))
    _chart(result, RESULTS / f"inbound_backfill{_suffix()}.png")
    result["headline"] = {k: result[k] for k in ("items", "backfill_seconds", "items_per_second",
                                                 "graph_requests_per_item", "pega_calls_per_item",
                                                 "cpu_ms_per_item")}
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
