"""Email: Inbox and Sent Items → Pega email interaction cases — once, associated, threaded, with insights.

Real Graph simulator and Pega simulator over HTTP, state in Azurite.
"""

from __future__ import annotations

import uuid

import pytest
from azure.storage.queue.aio import QueueClient

from shared.config import PrivatePolicy
from shared.queues.worker import run_message
from shared.sync import inbound as inbound_mod
from shared.sync.inbound import run_delta_round

pytestmark = [
    pytest.mark.parametrize("backend", ["graph", "ews"]),  # Exchange Online and on-premises mailboxes
    pytest.mark.parametrize("pega_adapter", ["sync-service", "dx-v2"]),  # shared/pega/adapter.py
]

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
PRIVATE = [{"id": "Integer 0x0036", "value": "2"}]


def by_exchange_id(records, exchange_id):
    return [r for r in records if r["content"].get("ExchangeID") == exchange_id]


async def test_received_mail_is_created_once_associated_with_insights_and_replays_change_nothing(inbound) -> None:
    await inbound.onboard()
    sent = await inbound.inbound_mail(subject="Quarterly pricing",
                                                    body="Great news, the team loved the demo. We would love a quote.", **{"from": DANA})
    first = await inbound.run("email")
    assert first.outcomes["created"] == 1 and first.completed, first.as_dict()

    [rec] = by_exchange_id(await inbound.pega_records("email"), sent["immutableId"])
    c = rec["content"]
    assert c["Direction"] == "Inbound" and c["FromAddress"] == "dana@fabrikam.example"
    assert c["ContactID"] and c["OrganizationID"] and c["OpportunityID"], "contact, organization and open opportunity"
    assert c["ConversationID"] == sent["conversationId"]
    assert c["SentimentLabel"] == "positive" and "Prepare a quote" in c["SuggestedActionTop"]

    # the same round again, and a replay of the same pages (Graph redelivers): nothing is written
    await inbound.replay_next_delta()
    replay = await inbound.run("email")
    again = await inbound.run("email")
    assert replay.items >= 1 and replay.skipped["unchanged"] >= 1, replay.as_dict()
    for r in (again, replay):
        assert not (r.outcomes["created"] or r.outcomes["updated"]), r.as_dict()
    [after] = by_exchange_id(await inbound.pega_records("email"), sent["immutableId"])
    assert after["etag"] == rec["etag"], "the Pega case was not written again"
    assert len(await inbound.links("email")) == 1


async def test_sent_mail_is_outbound_and_a_reply_keeps_its_thread(inbound) -> None:
    await inbound.onboard()
    await inbound.user_call("POST", "sendMail", json={"message": {
        "subject": "Fleet renewal", "body": {"contentType": "text", "content": "Here is our offer."},
        "toRecipients": [{"emailAddress": DANA}]}})
    sent_items = await inbound.user_call("GET", "mailFolders/sentitems/messages")
    first = sent_items["value"][0]
    await inbound.inbound_mail(subject="RE: Fleet renewal", body="Thanks, looks good.",
                                             inReplyTo=first["internetMessageId"], **{"from": DANA})
    report = await inbound.run("email")
    assert report.outcomes["created"] == 2, report.as_dict()
    records = [r["content"] for r in await inbound.pega_records("email")]
    directions = sorted(r["Direction"] for r in records)
    assert directions == ["Inbound", "Outbound"]
    assert len({r["ConversationID"] for r in records}) == 1, "the reply is in the same thread"
    outbound = next(r for r in records if r["Direction"] == "Outbound")
    assert outbound["ContactID"], "a sent mail associates by its recipients"
    assert "SentimentLabel" not in outbound, "insights are for received mail"


async def test_unassociated_mail_and_drafts_are_skipped_with_their_reason(inbound) -> None:
    await inbound.onboard()
    await inbound.inbound_mail(subject="Hello", body="hi",
                                             **{"from": {"address": "someone@unknown-co.example"}})
    # a message created through the API is a draft, even in the Inbox
    await inbound.user_call("POST", "mailFolders/inbox/messages", json={
        "subject": "draft", "toRecipients": [{"emailAddress": DANA}]})
    report = await inbound.run("email")
    assert report.skipped["no_association"] == 1 and report.skipped["draft"] == 1, report.as_dict()
    assert report.synced == 0
    assert await inbound.pega_records("email") == []
    health = await inbound.services.state.health.get(inbound.upn, "email")
    assert health.skip_reasons["no_association"] == 1 and health.skip_reasons["draft"] == 1


async def test_private_mail_is_skipped_unless_the_mailbox_allows_it(inbound) -> None:
    await inbound.onboard()
    await inbound.user_call("POST", "sendMail", json={"message": {
        "subject": "Salary talk", "body": {"contentType": "text", "content": "confidential"},
        "toRecipients": [{"emailAddress": DANA}], "singleValueExtendedProperties": PRIVATE}})
    skipped = await inbound.run("email")
    assert skipped.skipped["private"] == 1 and skipped.synced == 0, skipped.as_dict()

    mb = await inbound.services.state.mailboxes.get(inbound.upn)
    await inbound.onboard(private_policy=PrivatePolicy.FULL, backfill=mb.backfill)
    allowed = await inbound.run("email", full_resync=True)
    assert allowed.outcomes["created"] == 1, allowed.as_dict()
    [rec] = await inbound.pega_records("email")
    assert rec["content"]["Subject"] == "Salary talk"


async def test_throttled_round_is_deferred_by_retry_after_and_then_completes(inbound, unique_name) -> None:
    await inbound.onboard()
    await inbound.inbound_mail(subject="Pricing", body="hi", **{"from": DANA})
    clear = await inbound.throttle_delta(retry_after=7)
    queue = "t" + unique_name

    async def handler(env):
        await run_delta_round(inbound.services, mailbox=env.body["mailbox"], kind=env.body["kind"],
                              reason=env.body["reason"], context=inbound.ctx)

    from shared.queues.envelope import Envelope

    env = Envelope(type="delta.sync", body={"mailbox": inbound.upn, "kind": "email", "reason": "notification",
                                            "full_resync": False})
    try:
        outcome = await run_message(queue=queue, text=env.dumps(), dequeue_count=1, handlers={"delta.sync": handler},
                                    deadletters=inbound.services.state.deadletters, sender=inbound.services.queues)
        assert outcome.status == "deferred", outcome
        async with QueueClient.from_connection_string(inbound.services.settings.storage.connection_string,
                                                      queue) as q:
            props = await q.get_queue_properties()
            assert props.approximate_message_count == 1
            assert [m async for m in q.receive_messages()] == [], "invisible for Retry-After (7 s)"
            await q.delete_queue()
        health = await inbound.services.state.health.get(inbound.upn, "email")
        assert health.throttled == 1 and health.consecutive_failures == 1
        assert await inbound.pega_records("email") == []
        report = await inbound.run("email")
        assert report.outcomes["created"] == 1, report.as_dict()
        assert (await inbound.services.state.health.get(inbound.upn, "email")).consecutive_failures == 0
    finally:
        await clear()


async def test_expired_delta_token_resyncs_fully_without_duplicates(inbound) -> None:
    await inbound.onboard()
    await inbound.inbound_mail(subject="one", body="a", **{"from": DANA})
    assert (await inbound.run("email")).outcomes["created"] == 1
    await inbound.expire_delta_tokens()
    await inbound.inbound_mail(subject="two", body="b", **{"from": DANA})
    report = await inbound.run("email")
    assert report.full_resync, report.as_dict()
    assert report.outcomes["created"] == 1 and report.skipped["unchanged"] == 1, report.as_dict()
    records = await inbound.pega_records("email")
    assert sorted(r["content"]["Subject"] for r in records) == ["one", "two"]


async def test_crash_mid_page_replays_the_round_and_never_skips_or_duplicates(inbound, monkeypatch) -> None:
    await inbound.onboard(batch_size=2)
    for i in range(5):
        await inbound.inbound_mail(subject=f"m{i}", body="x", **{"from": DANA})
    calls = {"n": 0}
    real = inbound_mod.Applier.apply

    class WorkerKilled(BaseException):
        """The process dies (SIGKILL): nothing of the round's own error handling runs."""

    async def dying(self, action, extras, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise WorkerKilled()
        return await real(self, action, extras, **kw)

    monkeypatch.setattr(inbound_mod.Applier, "apply", dying)
    with pytest.raises(WorkerKilled):
        await inbound.run("email")
    monkeypatch.setattr(inbound_mod.Applier, "apply", real)
    partial = len(await inbound.pega_records("email"))
    assert 0 < partial < 5
    report = await inbound.run("email")
    assert report.restarted_after_crash, report.as_dict()
    subjects = sorted(r["content"]["Subject"] for r in await inbound.pega_records("email"))
    assert subjects == [f"m{i}" for i in range(5)], "every mail exactly once"


async def test_a_long_round_stops_after_max_pages_and_continues_from_its_cursor(inbound) -> None:
    queue = inbound.services.queues
    await inbound.onboard(batch_size=2)
    for i in range(5):
        await inbound.inbound_mail(subject=f"c{i}", body="x", **{"from": DANA})
    sent: list = []

    real_send = queue.send

    async def capture(name, envelope, *, delay_seconds=0):
        if name != "delta-work":  # the insight jobs go on as usual
            return await real_send(name, envelope, delay_seconds=delay_seconds)
        sent.append((name, envelope))
        return uuid.uuid4().hex

    queue.send = capture  # type: ignore[method-assign]
    try:
        first = await inbound.run("email", max_pages=1)
        assert first.continued and not first.completed and first.pages == 1
        assert sent and sent[0][0] == "delta-work" and sent[0][1].body["continuation"] is True
        rounds = 1
        report = first
        while not report.completed:
            report = await inbound.run("email", max_pages=1)
            rounds += 1
            assert rounds < 10
    finally:
        queue.send = real_send  # type: ignore[method-assign]
    assert sorted(r["content"]["Subject"] for r in await inbound.pega_records("email")) == [f"c{i}" for i in range(5)]
    mb = await inbound.services.state.mailboxes.get(inbound.upn)
    assert mb.backfill == {"email:inbox": "done", "email:sentitems": "done"}


async def test_private_mail_arriving_after_onboarding_is_still_skipped(inbound) -> None:
    await inbound.onboard()
    await inbound.inbound_mail(subject="hello", body="x", **{"from": DANA})
    assert (await inbound.run("email")).outcomes["created"] == 1
    await inbound.user_call("POST", "sendMail", json={"message": {
        "subject": "Private later", "body": {"contentType": "text", "content": "x"},
        "toRecipients": [{"emailAddress": DANA}], "singleValueExtendedProperties": PRIVATE}})
    report = await inbound.run("email")  # an incremental round, read through the stored deltaLink
    assert report.skipped["private"] == 1 and report.synced == 0, report.as_dict()
    assert [r["content"]["Subject"] for r in await inbound.pega_records("email")] == ["hello"]


async def test_an_incremental_round_trusts_the_expansion_and_costs_no_request_per_message(inbound) -> None:
    """The delta token carries the first call's $expand (graph.md); a message without sensitivity
    simply has no property list. No per-message sensitivity GET — against real Graph that would be
    one extra request per new message."""
    await inbound.onboard()
    await inbound.inbound_mail(subject="first", body="x", **{"from": DANA})
    assert (await inbound.run("email")).outcomes["created"] == 1
    for i in range(3):
        await inbound.inbound_mail(subject=f"later {i}", body="x", **{"from": DANA})
    report = await inbound.run("email")
    assert report.outcomes["created"] == 3, report.as_dict()
    assert report.graph_requests_by_purpose == {"delta_page": report.graph_requests}, report.as_dict()
    await inbound.inbound_mail(subject="private later", body="x", **{"from": DANA},
                                             singleValueExtendedProperties={"Integer 0x0036": "2"})
    report = await inbound.run("email")
    assert report.skipped["private"] == 1 and report.synced == 0, report.as_dict()
    assert report.graph_requests_by_purpose == {"delta_page": report.graph_requests}, report.as_dict()


@pytest.mark.graph_only("two Graph mailboxes; tests/sync_inbound/test_ews_e2e.py has the hybrid case")
async def test_the_same_mail_in_two_onboarded_mailboxes_is_one_pega_case(inbound) -> None:
    from dataclasses import replace as dc_replace

    from shared.storage.mailboxes import Mailbox

    await inbound.onboard()
    other = (await inbound.graph.control.new_user())["userPrincipalName"]
    await inbound.services.state.mailboxes.put(Mailbox.with_defaults(other, "blair", inbound.services.settings.sync))
    imid = f"<{uuid.uuid4().hex}@fabrikam.example>"
    for upn in (inbound.upn, other):
        await inbound.graph.control.inbound_mail(upn, subject="To both reps", body="hi", internetMessageId=imid,
                                                 **{"from": DANA})
    first = await inbound.run("email")
    second = await dc_replace(inbound, upn=other).run("email")
    assert first.outcomes["created"] == 1, first.as_dict()
    assert second.outcomes["linked_existing"] == 1 and second.outcomes["created"] == 0, second.as_dict()
    assert len([r for r in await inbound.pega_records("email") if r["content"]["InternetMessageID"] == imid]) == 1
    [link] = await inbound.services.state.links.list(other, kind="email")
    assert link.pega_id == (await inbound.links("email"))[0].pega_id


async def test_mail_older_than_the_past_days_setting_is_not_backfilled(inbound) -> None:
    import datetime as dt

    await inbound.onboard(past_days=7)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await inbound.inbound_mail(subject="old", body="x", receivedDateTime=old,
                                             **{"from": DANA})
    await inbound.inbound_mail(subject="new", body="x", **{"from": DANA})
    report = await inbound.run("email")
    # the delta $filter keeps the old mail off the page (the simulator honours it, as Graph does); a
    # server that ignored it would hand it over and the planner would skip it as outside_window
    assert report.outcomes["created"] == 1 and report.items - report.skipped["outside_window"] == 1, report.as_dict()
    assert [r["content"]["Subject"] for r in await inbound.pega_records("email")] == ["new"]
