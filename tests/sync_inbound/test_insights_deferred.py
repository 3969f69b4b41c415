"""Insights off the critical path (INSIGHTS_DEFERRED): a round writes the record, queues an
`insights.write` message on `insight-work` (Azurite), and the insight worker writes the fields onto the
record — never over a rep's edit, never onto a record that is gone. `auto` (the default) does so only
while the local model is busy; `always` for every new record; `never` writes them in the create."""

from __future__ import annotations

import pytest

from shared.queues import names
from shared.queues.envelope import Envelope
from shared.queues.worker import run_message
from shared.storage.errors import StorageUnavailableError
from shared.sync import insight_jobs
from shared.sync.inbound import run_delta_round
from tests.sync_inbound.test_calendar_e2e import appointments
from tests.sync_inbound.test_insights_e2e import new_positive_meeting

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
INSIGHT_FIELDS = ("SentimentLabel", "SentimentAnalyzer", "SuggestedActions")
BOTH_ADAPTERS = pytest.mark.parametrize("pega_adapter", ["sync-service", "dx-v2"])
pytestmark = pytest.mark.sync_env({"INSIGHTS_DEFERRED": "always"})


async def round_only(inbound, kind: str = "email"):
    """The round alone, leaving its insight jobs queued (Inbound.run also drains them)."""
    return await run_delta_round(inbound.services, mailbox=inbound.upn, kind=kind, reason="poll",
                                 context=inbound.ctx)


async def case_of(inbound, sent) -> dict:
    [rec] = [r for r in await inbound.pega_records("email") if r["content"]["ExchangeID"] == sent["immutableId"]]
    return rec


@BOTH_ADAPTERS
async def test_the_record_arrives_first_and_its_insights_follow(inbound) -> None:
    await inbound.onboard()
    sent = await inbound.inbound_mail(subject="Renewal", body="We are delighted with the pilot, thank you!",
                                      **{"from": DANA})
    report = await round_only(inbound)
    assert report.outcomes["created"] == 1, report.as_dict()
    before = (await case_of(inbound, sent))["content"]
    assert before["Subject"] == "Renewal"
    assert not any(before.get(f) for f in INSIGHT_FIELDS), before

    [outcome] = await inbound.drain_insights()
    assert outcome.status == "done", outcome
    after = (await case_of(inbound, sent))["content"]
    assert after["SentimentLabel"] == "positive" and after["SentimentAnalyzer"], after
    insight_props = {v for v in inbound.ctx.mapping.insights.model_dump().values() if isinstance(v, str)}
    assert {"SentimentLabel", "SuggestedActions"} <= insight_props

    def others(content: dict) -> dict:
        return {k: v for k, v in content.items() if k not in insight_props and not k.startswith(("px", "py", "pz"))}

    assert others(after) == others(before), "only insight fields change"
    assert len(await inbound.pega_records("email")) == 1


@pytest.mark.sync_env({"INSIGHTS_DEFERRED": "never"})
async def test_inline_insights_ride_in_the_create(inbound) -> None:
    """INSIGHTS_DEFERRED=never: the create carries them and nothing is queued."""
    await inbound.onboard()
    sent = await inbound.inbound_mail(subject="Renewal", body="We are delighted with the pilot, thank you!",
                                      **{"from": DANA})
    await round_only(inbound)
    assert (await case_of(inbound, sent))["content"]["SentimentLabel"] == "positive"
    assert await inbound.drain_insights() == []


@BOTH_ADAPTERS
async def test_a_record_purged_in_pega_before_its_insights_is_not_recreated(inbound) -> None:
    await inbound.onboard()
    sent = await inbound.inbound_mail(subject="Hello", body="Thanks a lot, great meeting!", **{"from": DANA})
    await round_only(inbound)
    rec = await case_of(inbound, sent)
    await inbound.pega_control.purge(rec["id"])
    [outcome] = await inbound.drain_insights()
    assert outcome.status == "done", outcome
    assert await inbound.pega_records("email") == [], "insights never re-create a record"


@BOTH_ADAPTERS
async def test_a_rep_edit_between_the_record_and_its_insights_is_kept(inbound) -> None:
    await inbound.onboard()
    ev = await new_positive_meeting(inbound)
    await round_only(inbound, "calendar")
    [rec] = [r for r in await appointments(inbound) if r["content"]["ExchangeID"] == ev["id"]]
    await inbound.pega_control.update_appointment(rec["id"], "alex", {"Subject": "Pricing workshop (Pega)",
                                                                      "Location": "Room 7"})
    [outcome] = await inbound.drain_insights()
    assert outcome.status == "done", outcome
    [after] = [r for r in await appointments(inbound) if r["content"]["ExchangeID"] == ev["id"]]
    c = after["content"]
    assert c["SentimentLabel"] == "positive", c
    assert c["Subject"] == "Pricing workshop (Pega)" and c["Location"] == "Room 7", "the rep's edit stays"


async def test_a_failed_queue_send_replays_the_page_and_queues_the_jobs_again(inbound, monkeypatch) -> None:
    """Jobs are queued before the page's links: when the send fails, the page is applied again (its
    records found by external id, none created twice) and the jobs are queued then."""
    await inbound.onboard()
    sent = await inbound.inbound_mail(subject="Hello", body="Thanks a lot, great meeting!", **{"from": DANA})
    real = inbound.services.queues.send

    async def refuse_insights(queue, envelope, **kw):
        if queue == names.INSIGHT_WORK:
            raise StorageUnavailableError("send to insight-work: timed out")
        return await real(queue, envelope, **kw)

    monkeypatch.setattr(inbound.services.queues, "send", refuse_insights)
    with pytest.raises(StorageUnavailableError):
        await round_only(inbound)
    assert await inbound.drain_insights() == []
    assert await inbound.links("email") == [], "the page's links wait for its jobs"
    monkeypatch.setattr(inbound.services.queues, "send", real)
    again = await inbound.run("email")
    assert again.completed, again.as_dict()
    [rec] = await inbound.pega_records("email")
    assert rec["content"]["ExchangeID"] == sent["immutableId"] and rec["content"]["SentimentLabel"] == "positive"
    assert len(await inbound.links("email")) == 1


async def test_a_malformed_insights_message_is_a_dead_letter_that_keeps_no_mail_text(inbound) -> None:
    secret = "Confidential pricing: 42 per seat"
    env = Envelope(type=insight_jobs.MESSAGE_TYPE, body={"mailbox": "m1", "jobs": [
        {"kind": "email", "graph_id": "AAMk1", "pega_id": "", "subject": secret, "body": secret}]})
    text = env.dumps()
    outcome = await run_message(queue=names.INSIGHT_WORK, text=text, dequeue_count=1,
                                handlers=insight_jobs.handlers(inbound.services, context=inbound.ctx),
                                deadletters=inbound.services.state.deadletters, sender=inbound.services.queues,
                                redact=insight_jobs.redact)
    assert outcome.status == "dead_lettered" and "jobs.0.pega_id" in outcome.cause, outcome
    letter = await inbound.services.state.deadletters.get(names.INSIGHT_WORK, env.id)
    assert letter is not None and secret not in letter.message and "AAMk1" in letter.message
    # replaying the redacted letter cannot write insights from nothing: a dead letter again, with why
    again = await run_message(queue=names.INSIGHT_WORK, text=letter.message, dequeue_count=1,
                              handlers=insight_jobs.handlers(inbound.services, context=inbound.ctx),
                              deadletters=inbound.services.state.deadletters, sender=inbound.services.queues,
                              redact=insight_jobs.redact)
    assert again.status == "dead_lettered" and "keeps no mail text" in again.cause, again


@pytest.mark.sync_env({"INSIGHTS_DEFERRED": "auto", "INSIGHTS_ANALYZER": "vader"})
async def test_auto_defers_only_while_the_model_is_busy(inbound) -> None:
    """`auto`: an idle model's insights ride in the create; while the model has a backlog (here jobs held
    at the door of its only process), new records go first and their insights follow."""
    import asyncio

    from shared.insights.engine import insights_engine
    from shared.insights.model_workers import ModelWorkers, _warm_up_job

    await inbound.onboard()
    idle = await inbound.inbound_mail(subject="First", body="Thanks a lot, great meeting!", **{"from": DANA})
    await round_only(inbound)
    assert (await case_of(inbound, idle))["content"]["SentimentLabel"] == "positive", "idle model: inline"
    assert await inbound.drain_insights() == []

    runner = insights_engine(inbound.services.settings.insights).runner
    assert isinstance(runner, ModelWorkers) and runner.processes == 1
    slots = runner._slots[asyncio.get_running_loop()]
    await slots.acquire()  # the process is taken: the next job waits at its door
    held = [asyncio.create_task(runner.run(_warm_up_job()))]
    try:
        await asyncio.sleep(0)
        assert not runner.busy, "one job waiting is no backlog"
        while not runner.busy:
            held.append(asyncio.create_task(runner.run(_warm_up_job())))
            await asyncio.sleep(0)
        busy = await inbound.inbound_mail(subject="Second", body="Thanks a lot, great meeting!", **{"from": DANA})
        await round_only(inbound)
        assert not (await case_of(inbound, busy))["content"].get("SentimentLabel"), "busy model: deferred"
    finally:
        slots.release()
        await asyncio.gather(*held)
    [outcome] = await inbound.drain_insights()
    assert outcome.status == "done"
    assert (await case_of(inbound, busy))["content"]["SentimentLabel"] == "positive"
