"""`make bench`: run every benchmark module (or those named) and print a summary.

Numbers are stated as ratios against a baseline measured in the same run; absolute figures
depend on the machine (the reference machine is 2 cores).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench

RESULTS = Path(__file__).resolve().parent / "results"


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
                  and m.name != "chaos")  # `make chaos`, not part of `make bench`


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chaos"]:  # the chaos harness has its own options (`python -m bench chaos --seeds 1-200`)
        from bench.chaos.cli import main as chaos_main

        return chaos_main(argv[1:])
    p = argparse.ArgumentParser(prog="make bench")
    p.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    args = p.parse_args(argv)
    names = args.names or discover()
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {}
    failed = False
    for name in names:
        mod = importlib.import_module(f"bench.{name}")
        if not hasattr(mod, "run"):
            continue
        started = time.perf_counter()
        print(f"bench {name}: running", flush=True)
        try:
            result = mod.run()
        except Exception as exc:
            failed = True
            print(f"bench {name}: FAILED {type(exc).__name__}: {exc}", flush=True)
            continue
        summary[name] = {"seconds": round(time.perf_counter() - started, 1), "headline": result.get("headline")}
        print(f"bench {name}: {json.dumps(result.get('headline'))}", flush=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
