"""The chaos harness in CI: a small fixed set of seeds against the whole `make run` stack.

- The harness must notice every kind of failure: one seed with the faults off and deliberate
  sabotage (one Pega create that happens twice, a Pega record tampered with before the check, a
  write made as the sync service while nothing changes) must be reported as duplicated, wrong and
  echo — each on the very item that was broken; a simulator that drops every sent mail must show
  as lost + stuck (not yet seen to fire: xfail, see the chaos report).
- A seed with the faults off must be clean (the harness reports no false failures).
- Seeds with faults (the CI set) must be clean: "exactly once, nothing lost" under faults.

The last two are expected to fail until issue #11's engine defects are fixed (the harness finds them
with the faults off too: one mail to both reps makes two email cases, one customer held by both reps
makes two Pega contacts). They are marked xfail(strict=False) with that reason; remove the marker
when the engine is fixed (each seed's replay command is in its failure output). Each seed takes
about 1.5-2 minutes on the 2-core machine.
"""

from __future__ import annotations

import re

import pytest

from bench.chaos.runner import SeedOptions, SeedResult, run_seed

pytestmark = pytest.mark.slow

CI_FAULT_SEEDS = (3,)
ENGINE_DEFECTS = ("issue #11: duplicate email cases / Pega contacts for items two reps share, and the fault "
                  "findings in /work/chaos-findings.md; remove this marker once the engine is fixed")


def _explain(r: SeedResult) -> str:
    lines = [r.line()] + [f"  {p['verdict']}: {p['kind']} {p['key']}: {p['detail']}" for p in r.problems]
    lines += [f"  echo: {e}" for e in r.echo] + [f"  stuck: {s}" for s in r.stuck]
    lines.append(f"  replay: make chaos SEEDS={r.seed}   logs: {r.log_dir}")
    return "\n".join(lines)


@pytest.mark.timeout(400)
def test_the_harness_notices_each_kind_of_failure():
    r = run_seed(101, SeedOptions(faults=False, midnight=False, sabotage=("drop", "duplicate", "wrong", "echo")))
    assert r.void is None, _explain(r)
    problems = r.problems
    # duplicate: the first Pega case create ran twice (not the shared-mail / shared-contact scenarios)
    twice = [p for p in problems if p["verdict"] == "duplicated" and not re.search(r"-[bs]\d+\]", p["key"])]
    assert twice, _explain(r)
    # wrong: a Pega appointment tampered with just before the check
    assert any(p["verdict"] == "wrong" and "tampered by the harness" in p["detail"] for p in problems), _explain(r)
    # echo: a write as the sync service during the quiet window
    assert any(e["where"] == "graph" and e["when"] == "quiet window" for e in r.echo), _explain(r)


@pytest.mark.timeout(400)
@pytest.mark.xfail(reason="the drop sabotage (Graph fault kind `drop` on sends) has not been seen to fire yet: "
                          "open question in the chaos report", strict=False)
def test_the_harness_notices_a_vanished_send_as_lost_and_stuck():
    r = run_seed(103, SeedOptions(faults=False, midnight=False, sabotage=("drop",)))
    assert r.void is None, _explain(r)
    dropped = [p for p in r.problems if p["verdict"] == "lost" and p["kind"] in ("rep_email", "rep_reply")]
    assert dropped and dropped[0]["visible"] is False and r.counts["stuck"] >= 1, _explain(r)


@pytest.mark.timeout(400)
@pytest.mark.xfail(reason=ENGINE_DEFECTS, strict=False)
def test_a_seed_without_faults_is_clean():
    r = run_seed(102, SeedOptions(faults=False, midnight=False))
    assert r.void is None and r.clean, _explain(r)


@pytest.mark.timeout(400)
@pytest.mark.xfail(reason=ENGINE_DEFECTS, strict=False)
@pytest.mark.parametrize("seed", CI_FAULT_SEEDS)
def test_ci_seed_is_clean_under_faults(seed):
    r = run_seed(seed, SeedOptions())
    assert r.void is None and r.clean, _explain(r)
