"""CPU accounting for the benchmarks: CPU seconds per process between two moments (psutil, children
included for process groups such as Azurite's node), and cProfile's top entries as text."""

from __future__ import annotations

import contextlib
import io
import os
import pstats
from pathlib import Path

import psutil


def _cpu(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of a process (all its threads) and, with `children`, its descendants
    (0 when gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *(proc.children(recursive=True) if children else [])]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class ProcessCpu:
    """CPU used by named processes (with their children) and by this one alone (`this`: every thread,
    not the stack it started) since construction. Names in `split` are also reported without their
    children, and their children apart as `<name>.workers` (the host's model and parser workers)."""

    def __init__(self, pids: dict[str, int], *, split: tuple[str, ...] = ()) -> None:
        self.pids = {**pids, "this": os.getpid()}
        self.split = tuple(n for n in split if n in pids)
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        out = {name: _cpu(pid, children=name != "this") for name, pid in self.pids.items()}
        for name in self.split:
            own = _cpu(self.pids[name], children=False)
            out[f"{name}.workers"] = max(0.0, out[name] - own)
            out[name] = own
        return out

    def rss_mb(self) -> dict[str, float]:
        """Resident memory now, MB, per named process (its children not included; those of `split`
        names summed as `<name>.workers`)."""
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                out[name] = round(proc.memory_info().rss / 2**20, 1)
                if name in self.split:
                    kids = [c.memory_info().rss for c in proc.children(recursive=True)]
                    out[f"{name}.workers"] = round(sum(kids) / 2**20, 1)
        return out

    def seconds(self) -> dict[str, float]:
        now = self._now()
        return {name: max(0.0, now[name] - self.start.get(name, 0.0)) for name in now}


def write_profile(profiler: object, path: Path, *, top: int = 40) -> str:
    """The profile's top entries by cumulative and by own time, written to `path` and returned."""
    out = io.StringIO()
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)  # type: ignore[arg-type]
        stats.strip_dirs().sort_stats(key).print_stats(top)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue())
    return out.getvalue()
