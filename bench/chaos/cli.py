"""`python -m bench chaos --seeds 1-200` / `make chaos SEEDS=1-200`: run seeds, one line each, a
summary, JSON and a PNG under bench/results/; a failing seed prints the command that replays it."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.chaos.faults import ALL_FAULTS
from bench.chaos.runner import SABOTAGES, SeedOptions, SeedResult, run_seed

RESULTS = Path(__file__).resolve().parent.parent / "results"


def parse_seeds(text: str) -> list[int]:
    """`1-200`, `7`, `1,5,9-12`."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part[1:]:
            lo, _, hi = part.partition("-")
            if int(hi) < int(lo):
                raise argparse.ArgumentTypeError(f"bad seed range {part!r}")
            out += range(int(lo), int(hi) + 1)
        else:
            out.append(int(part))
    if not out:
        raise argparse.ArgumentTypeError("no seeds")
    return out


def replay_command(seed: int, args: argparse.Namespace) -> str:
    extra = []
    if args.no_faults:
        extra.append("--no-faults")
    if args.only:
        extra.append(f"--only {','.join(args.only)}")
    if args.sabotage:
        extra.append(f"--sabotage {','.join(args.sabotage)}")
    return " ".join([f"make chaos SEEDS={seed}"] + ([f"CHAOS_ARGS={shlex.quote(' '.join(extra))}"] if extra else []))


def _names(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(n for n in value.split(",") if n)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown}; known: {', '.join(allowed)}")
    return names


def summary(results: list[SeedResult]) -> dict[str, Any]:
    totals = {k: sum(r.counts[k] for r in results) for k in ("lost", "duplicated", "wrong", "echo", "stuck")}
    secs = [r.seconds for r in results]
    return {
        "seeds": len(results), "clean": sum(r.clean for r in results), "void": sum(bool(r.void) for r in results),
        "failing_seeds": [r.seed for r in results if not r.clean], "totals": totals,
        "seconds": {"max": max(secs), "median": statistics.median(secs), "total": round(sum(secs), 1)} if secs else {},
        "over_2_minutes": [r.seed for r in results if r.seconds > 120],
    }


def chart(results: list[SeedResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = [r.seed for r in results]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(7, len(seeds) * 0.12 + 4), 6), sharex=True)
    bottom = [0] * len(results)
    colors = {"lost": "#d62728", "duplicated": "#ff7f0e", "wrong": "#9467bd", "echo": "#8c564b", "stuck": "#7f7f7f"}
    for k, color in colors.items():
        vals = [r.counts[k] for r in results]
        ax1.bar(range(len(seeds)), vals, bottom=bottom, color=color, label=k)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax1.set_ylabel("findings per seed")
    ax1.legend(ncol=5, fontsize=8)
    ax1.set_title(f"chaos: {sum(r.clean for r in results)}/{len(results)} seeds clean")
    ax2.bar(range(len(seeds)), [r.seconds for r in results], color=["#2ca02c" if r.clean else "#d62728"
                                                                     for r in results])
    ax2.axhline(120, color="grey", linestyle="--")
    ax2.text(0, 122, "2 min budget", fontsize=8)
    ax2.set_ylabel("wall seconds")
    ax2.set_xticks(range(len(seeds)))
    ax2.set_xticklabels([str(s) for s in seeds], rotation=90, fontsize=6 if len(seeds) > 40 else 8)
    ax2.set_xlabel("seed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1-5"), help="e.g. 1-200 or 3,7,11-20")
    p.add_argument("--no-faults", action="store_true", help="the workload only (a clean baseline)")
    p.add_argument("--only", type=lambda v: _names(v, ALL_FAULTS, "fault"), default=(),
                   help=f"only these faults (comma-separated): {', '.join(ALL_FAULTS)}")
    p.add_argument("--sabotage", type=lambda v: _names(v, SABOTAGES, "sabotage"), default=(),
                   help="break things on purpose to prove the check notices: " + ", ".join(SABOTAGES))
    p.add_argument("--keep-logs", action="store_true", help="keep every seed's service logs (failing seeds always)")
    p.add_argument("--out", default="chaos", help="results name under bench/results/ (NAME.json, NAME.png)")
    p.add_argument("--fail-fast", action="store_true")
    args = p.parse_args(argv)
    results: list[SeedResult] = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for seed in args.seeds:
        r = run_seed(seed, SeedOptions(faults=not args.no_faults, only=args.only, sabotage=args.sabotage,
                                       keep_logs=args.keep_logs))
        results.append(r)
        print(r.line(), flush=True)
        if r.log_dir:  # the seed's verdicts beside its logs, before the whole run ends
            (Path(r.log_dir) / "result.json").write_text(json.dumps(asdict(r), indent=2, default=str))
        if not r.clean:
            for prob in r.problems[:8]:
                print(f"    {prob['verdict']}: {prob['kind']} {prob['key']}: {prob['detail']}", flush=True)
            for e in r.echo[:4]:
                print(f"    echo: {e}", flush=True)
            for s in r.stuck[:4]:
                print(f"    stuck: {s}", flush=True)
            print(f"    replay: {replay_command(seed, args)}   logs: {r.log_dir}", flush=True)
            if args.fail_fast:
                break
    s = summary(results)
    print(f"summary: {s['clean']}/{s['seeds']} seeds clean; lost {s['totals']['lost']}, duplicated "
          f"{s['totals']['duplicated']}, wrong {s['totals']['wrong']}, echo {s['totals']['echo']}, stuck "
          f"{s['totals']['stuck']}; void {s['void']}; per seed max {s['seconds'].get('max')}s, median "
          f"{s['seconds'].get('median')}s" + (f"; failing: {s['failing_seeds']}" if s["failing_seeds"] else ""),
          flush=True)
    out = {"benchmark": "chaos", "started": started, "args": {k: v for k, v in vars(args).items() if k != "seeds"},
           "seed_list": args.seeds, "summary": s, "seeds": [asdict(r) for r in results]}
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2, default=str))
    chart(results, RESULTS / f"{args.out}.png")
    return 0 if s["clean"] == s["seeds"] else 1


if __name__ == "__main__":
    sys.exit(main())
