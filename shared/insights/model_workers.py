"""The sentence model in worker processes, so the host's event loop never waits for it.

Why: the model is compute-bound numpy (~40-105 ms of CPU per mail). Run in the host's threads it
holds the GIL between numpy calls, and the event loop - which carries every storage, Graph and Pega
await of every round and the notification intake - waited for the GIL at each wake-up: p99 loop lag
30-105 ms, rounds stretched to seconds, storage calls timed out (docs/performance.md). In a worker
process the model has its own interpreter and the loop stays responsive; the host only pickles the
item's text there and the result back.

- Jobs wait in the host (one asyncio slot per worker and event loop), so a job's time limit counts
  its own run, not its queue time, and a slow moment never cascades into time-outs of the jobs behind
  it. A new pool is started (a worker up, its model loaded) under its own, longer limit, in a thread:
  forking waits for the child, which must not stall the event loop. (A caller cancelled mid-job frees
  its slot while the job still runs; the next job may wait behind it.)
- A job over its limit or a worker that died (out of memory) in a job takes the pool down, with the
  other jobs then in flight; those items sync without insights (the caller's choice), the next job
  starts a fresh pool. A pool found broken before the job was handed over costs nothing: the job
  runs on a new pool.
- Workers exit when the host dies, even by SIGKILL: each one watches a pipe only the host holds
  open; its end-of-file means the host is gone (a pool worker otherwise waits forever for work).
- The pool starts on the first job, and each worker loads the model before its first job.
- ``close`` kills the workers rather than wait for a job: it runs when the host stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from shared.insights.core import BACKLOG, CoreJob, CoreResult, LocalAnalyzer, run_core
from shared.insights.rules import RuleSet

log = logging.getLogger(__name__)

LocalKind = Literal["model", "vader"]

class ModelWorkerError(RuntimeError):
    """The worker could not give this job's result (time limit, worker died); the item goes without insights."""


# --- the worker process ----------------------------------------------------------------------
_analyzer: LocalAnalyzer | None = None
_rules: RuleSet | None = None


def _exit_with_host(alive: Any) -> None:
    try:
        alive.recv()  # the host never writes: this returns only by end-of-file, when the host is gone
    except (EOFError, OSError):
        pass
    os._exit(0)


def _start_worker(local: LocalKind, rules: RuleSet | None, alive: Any, nice: int = 0,
                  sentiment_model: str = "mpnet") -> None:
    global _analyzer, _rules
    if nice > 0:  # below the host: record sync and notification intake come first when CPU is short
        os.nice(nice)
    threading.Thread(target=_exit_with_host, args=(alive,), name="host-watch", daemon=True).start()
    if local == "vader":
        from shared.insights.sentiment import VaderAnalyzer

        _analyzer = VaderAnalyzer()
    else:
        from shared.insights.model_analyzer import ModelAnalyzer

        _analyzer = ModelAnalyzer(name=sentiment_model)
    _rules = rules
    # load the model now (it loads lazily otherwise), so the first item does not pay for it
    run_core(_WARM_UP, _analyzer, _rules)


def _ping() -> bool:
    return True


def _run(job: CoreJob) -> CoreResult:
    if _analyzer is None:  # pragma: no cover - the initializer always ran first
        raise RuntimeError("model worker not initialised")
    return run_core(job, _analyzer, _rules)


def _warm_up_job() -> CoreJob:
    from shared.insights.models import CrmContext, Direction, EntityType, ItemKind

    return CoreJob(kind=ItemKind.EMAIL, context=CrmContext(entity_type=EntityType.NONE), direction=Direction.INBOUND,
                   subject="Hello", body="Thanks for the call today. Could you send the quote?")  # fmt: skip


_WARM_UP = _warm_up_job()


# --- the host side ---------------------------------------------------------------------------
def _context() -> Any:
    # spawn: a fresh interpreter, never a fork of the threaded host. Not the forkserver the attachment
    # extractor starts with its parsers preloaded and its workers under an address-space cap: a server
    # started here first (without those preloads) changed what that cap leaves for an attachment
    # (tests/insights/test_attachments.py::test_memory_limit_turns_allocation_into_a_skip failed after
    # a model worker had started). A pool starts once per host, so spawn's slower start costs little.
    return multiprocessing.get_context("spawn")


class ModelWorkers:
    """``await workers.run(job)``: :func:`shared.insights.core.run_core` in one of ``processes`` worker processes."""

    def __init__(self, *, local: LocalKind = "model", rules: RuleSet | None = None, processes: int = 1,
                 timeout_seconds: float = 60.0, startup_seconds: float = 120.0, nice: int = 0,
                 sentiment_model: str = "mpnet") -> None:  # fmt: skip
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.nice = nice
        self.sentiment_model = sentiment_model
        self._pending = 0  # jobs waiting for or running in a process (all loops of this host)
        self.local: LocalKind = local
        self.rules = rules
        self.processes = processes
        self.timeout_seconds = timeout_seconds
        self.startup_seconds = startup_seconds
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._pipe: tuple[Any, Any] | None = None  # the pipe the workers watch: (their end, the host's end)
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

    @property
    def busy(self) -> bool:
        """Is there a backlog: would a new job wait behind BACKLOG jobs per process (≈ 0.2 s of the
        model's work)? The deferred-insights rule (INSIGHTS_DEFERRED=auto, shared.sync.gather) then
        writes the record without its insights and queues them, rather than making it wait."""
        return self._pending >= self.processes * BACKLOG

    async def run(self, job: CoreJob) -> CoreResult:
        self._pending += 1
        try:
            return await self._run_in_slot(job)
        finally:
            self._pending -= 1

    async def _run_in_slot(self, job: CoreJob) -> CoreResult:
        loop = asyncio.get_running_loop()
        slots = self._slots.setdefault(loop, asyncio.Semaphore(self.processes))
        async with slots:
            for attempt in (1, 2):
                # starting a pool forks and waits for its first worker's model: in a thread, under its own
                # limit; a running pool is taken as it is (no thread hop per item)
                pool = self._pool
                if pool is None:
                    pool = await asyncio.to_thread(self._ready_pool)
                try:
                    future = pool.submit(_run, job)
                except (BrokenProcessPool, RuntimeError):
                    # a worker died while idle, or another caller just stopped this pool: the job never
                    # started, so it runs on a new pool (once)
                    self._discard(pool)
                    if attempt == 2:
                        raise ModelWorkerError("the insights worker pool cannot take work") from None
                    continue
                try:
                    return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_seconds)
                except TimeoutError:
                    self._discard(pool)
                    raise ModelWorkerError(f"insights took longer than {self.timeout_seconds:g}s (worker stopped)") from None
                except BrokenProcessPool:
                    self._discard(pool)
                    raise ModelWorkerError("the insights worker process died") from None
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for health checks and tests)."""
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return [p.pid for p in list(procs.values()) if p.pid is not None]

    def _ready_pool(self) -> ProcessPoolExecutor:
        """The current pool; a new one is started and waited for (a worker up, its model loaded) within
        ``startup_seconds``, so no item's time limit pays for the start. Blocking: call it in a thread."""
        with self._lock:
            if self._pool is not None:
                return self._pool
            ctx = _context()
            pipe = ctx.Pipe(duplex=False)
            pool = ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_start_worker,
                                       initargs=(self.local, self.rules, pipe[0], self.nice,
                                                 self.sentiment_model))  # fmt: skip
            try:
                pool.submit(_ping).result(timeout=self.startup_seconds)
            except Exception as exc:
                _stop(pool)
                _close(pipe)
                raise ModelWorkerError(f"the insights worker did not start ({type(exc).__name__})") from None
            self._pool, self._pipe = pool, pipe
            return pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Stop ``pool`` (killing a worker stuck in a job: the executor has no other way to) if it is
        still the current one; the next job starts a new pool."""
        with self._lock:
            if self._pool is not pool:
                return
            self._pool, pipe = None, self._pipe
            self._pipe = None
        _stop(pool)
        _close(pipe)
        log.warning("insights: model worker pool stopped; the next item starts a new one")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            pipe, self._pipe = self._pipe, None
        if pool is not None:
            _stop(pool)  # a job still running is not waited for: the host is going away
        _close(pipe)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers (the executor has no other way to stop a job) and shut it down."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _close(pipe: tuple[Any, Any] | None) -> None:
    for end in pipe or ():
        with contextlib.suppress(OSError):
            end.close()
