"""The sentence model in worker processes (shared.insights.model_workers): the same insights as in the
host's threads, a stuck or dead worker costs one item's insights and never the next one's, and no
worker outlives its host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from shared.insights import BodyType, CrmContext, Direction, EmailInput, EntityType, Opportunity, analyze_email
from shared.insights.model_workers import ModelWorkerError, ModelWorkers

CONTEXT = CrmContext(entity_type=EntityType.CONTACT, entity_id="C-1", opportunities=(Opportunity("O-1"),))
MAILS = [
    EmailInput(subject="RE: Renewal", body="We are very disappointed: the rollout slipped again. Please call me.",
               body_type=BodyType.TEXT, direction=Direction.INBOUND),
    EmailInput(subject="Seats", body="<p>What would 250 seats cost?</p><p>Are you free Thursday for a call?</p>",
               body_type=BodyType.HTML, direction=Direction.INBOUND),
    EmailInput(subject="Thanks", body="Great session yesterday, the team loved it.", body_type=BodyType.TEXT,
               direction=Direction.INBOUND),
]


@pytest.fixture
def workers():
    w = ModelWorkers(processes=1)
    yield w
    w.close()


async def test_a_worker_process_gives_the_insights_the_host_threads_give(workers) -> None:
    for mail in MAILS:
        in_thread = await analyze_email(mail, CONTEXT)
        in_worker = await analyze_email(mail, CONTEXT, runner=workers)
        assert in_worker == in_thread
    assert workers.worker_pids and os.getpid() not in workers.worker_pids


async def test_a_job_over_its_time_limit_costs_its_insights_only(workers) -> None:
    workers.timeout_seconds = 0.001  # the first job starts the worker and loads the model: far longer
    with pytest.raises(ModelWorkerError):
        await analyze_email(MAILS[0], CONTEXT, runner=workers)
    workers.timeout_seconds = 120.0
    insight = await analyze_email(MAILS[0], CONTEXT, runner=workers)
    assert insight.sentiment.label.value == "negative"


async def test_a_dead_worker_is_replaced(workers) -> None:
    await analyze_email(MAILS[2], CONTEXT, runner=workers)
    [pid] = workers.worker_pids
    os.kill(pid, signal.SIGKILL)
    if psutil.pid_exists(pid):
        psutil.Process(pid).wait(timeout=30)
    outcomes = []
    for _ in range(2):  # the death is noticed by the first job at the latest; the next one runs on a new worker
        try:
            outcomes.append((await analyze_email(MAILS[2], CONTEXT, runner=workers)).sentiment.label.value)
        except ModelWorkerError:
            outcomes.append("lost")
    assert outcomes[-1] == "positive", outcomes
    assert pid not in workers.worker_pids


async def test_a_pool_that_cannot_take_work_costs_no_item_its_insights(workers) -> None:
    """A pool shut down by another caller (or broken while idle) before this job was handed over:
    the job runs on a new pool instead of losing its insights."""
    await analyze_email(MAILS[2], CONTEXT, runner=workers)
    [before] = workers.worker_pids
    workers._pool.shutdown(wait=True)  # type: ignore[union-attr]
    insight = await analyze_email(MAILS[2], CONTEXT, runner=workers)
    assert insight.sentiment.label.value == "positive"
    assert workers.worker_pids and before not in workers.worker_pids


HOST = textwrap.dedent("""
    import asyncio, sys
    from shared.insights import BodyType, CrmContext, Direction, EmailInput, EntityType, analyze_email
    from shared.insights.model_workers import ModelWorkers

    async def main():
        w = ModelWorkers(local="vader", processes=2)
        mail = EmailInput(subject="Hi", body="Thanks a lot!", body_type=BodyType.TEXT, direction=Direction.INBOUND)
        await asyncio.gather(*(analyze_email(mail, CrmContext(entity_type=EntityType.NONE), runner=w) for _ in range(4)))
        print(" ".join(map(str, w.worker_pids)), flush=True)
        sys.stdin.read()  # until the test kills this process

    if __name__ == "__main__":
        asyncio.run(main())
""")


def test_workers_exit_when_their_host_is_killed(tmp_path) -> None:
    script = tmp_path / "host.py"
    script.write_text(HOST, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    host = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                            text=True)
    try:
        line = host.stdout.readline() if host.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line
        workers = [psutil.Process(p) for p in pids]
        host.kill()  # SIGKILL: no clean-up code of the host runs
        host.wait(timeout=30)
        _gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, [p.pid for p in alive]
    finally:
        if host.poll() is None:
            host.kill()


async def test_the_workers_run_below_the_hosts_cpu_priority() -> None:
    """INSIGHTS_WORKER_NICE: the model's processes yield the CPU to the host's rounds and intake."""
    w = ModelWorkers(local="vader", processes=1, nice=7)
    try:
        await analyze_email(MAILS[2], CONTEXT, runner=w)
        [pid] = w.worker_pids
        assert psutil.Process(pid).nice() == min(19, os.nice(0) + 7)
    finally:
        w.close()


async def test_a_worker_process_scores_with_the_sentiment_model_the_settings_name() -> None:
    """INSIGHTS_SENTIMENT_MODEL reaches the worker process: the light MiniLM model there gives what it
    gives in the host's threads, and says which model it was."""
    from shared.insights.model_analyzer import ModelAnalyzer

    w = ModelWorkers(processes=1, sentiment_model="minilm")
    try:
        in_worker = await analyze_email(MAILS[0], CONTEXT, runner=w)
    finally:
        w.close()
    in_thread = ModelAnalyzer(name="minilm").analyze_sync(MAILS[0].body)
    assert in_worker.sentiment.analyzer == "minilm"
    assert in_worker.sentiment.label == in_thread.label
