"""Insights of received mail (with its attachments, fetched only when the message has any, within the
insights limits) and new appointments: in the record's create, or written after it by the insight
worker (INSIGHTS_DEFERRED); field names come from the mapping's `insights` section."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from tests.sync_inbound.test_calendar_e2e import appointments, event_body, sim_now

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}


async def new_positive_meeting(inbound) -> dict:
    """A meeting created in Outlook whose invitation text is plainly positive."""
    now = await sim_now(inbound)
    body = event_body("Pricing workshop", now + dt.timedelta(days=2))
    body["body"] = {"contentType": "text", "content": "Great news! We are excited to review the proposal together."}
    return await inbound.user_call("POST", "events", json=body)


async def test_a_new_appointment_carries_its_insights(inbound) -> None:
    await inbound.onboard()
    ev = await new_positive_meeting(inbound)
    report = await inbound.run("calendar")
    assert report.outcomes["created"] == 1, report.as_dict()
    [rec] = [r for r in await appointments(inbound) if r["content"]["ExchangeID"] == ev["id"]]
    c = rec["content"]
    assert c["SentimentLabel"] == "positive" and c["SentimentAnalyzer"], c
    assert "SuggestedActions" in c


@pytest.mark.parametrize("deferred", [
    pytest.param(False, marks=pytest.mark.sync_env({"INSIGHTS_DEFERRED": "never"}), id="inline"),
    pytest.param(True, marks=pytest.mark.sync_env({"INSIGHTS_DEFERRED": "always"}), id="deferred"),
])
async def test_received_mail_attachments_are_analyzed_only_when_the_message_has_some(inbound, deferred) -> None:
    await inbound.onboard()
    text = b"This proposal is terrible and we are very disappointed with the pricing."
    with_att = await inbound.graph.control.inbound_mail(
        inbound.upn, subject="Feedback", body="See attached.", **{"from": DANA},
        attachments=[{"name": "notes.txt", "contentType": "text/plain", "contentBytes": base64.b64encode(text).decode()},
                     {"name": "huge.bin", "contentType": "application/octet-stream",
                      "contentBytes": base64.b64encode(b"x" * (11 * 1024 * 1024)).decode()}])
    await inbound.graph.control.inbound_mail(inbound.upn, subject="Plain", body="Thanks!", **{"from": DANA})
    report = await inbound.run("email")
    assert report.outcomes["created"] == 2, report.as_dict()
    if deferred:  # the insight worker reads them, after the records
        assert "attachments" not in report.graph_requests_by_purpose, report.graph_requests_by_purpose
    else:  # one list call and one $value for the small attachment; the 11 MB one is over the limit; none for "Plain"
        assert report.graph_requests_by_purpose.get("attachments") == 2, report.graph_requests_by_purpose
    [rec] = [r for r in await inbound.pega_records("email") if r["content"]["ExchangeID"] == with_att["immutableId"]]
    analyzed = json.loads(rec["content"]["AttachmentInsights"])
    assert [a.get("name") for a in analyzed] == ["notes.txt"], analyzed
    assert analyzed[0]["sentiment"]["label"] == "negative", analyzed  # the attachment's text was read


RENEWAL_RULES = """
version: 1
rules:
  - id: tenant-renewal-desk
    action: handle_renewal
    title: Send to the renewal desk
    reason: "The tenant's own rule"
    priority: 2
    applies_to: [email]
    when: {type: phrases, phrases: [purchase order], scope: [subject, body]}
"""


@pytest.mark.insights_rules(RENEWAL_RULES)
@pytest.mark.parametrize("inbound_env", [
    pytest.param("1", marks=pytest.mark.sync_env({"INSIGHTS_ANALYZER": "vader", "INSIGHTS_WORKER_PROCESSES": "1"})),
    pytest.param("0", marks=pytest.mark.sync_env({"INSIGHTS_ANALYZER": "vader", "INSIGHTS_WORKER_PROCESSES": "0"})),
])
async def test_the_sync_uses_the_analyzer_and_rules_file_the_settings_name(inbound, inbound_env) -> None:
    """INSIGHTS_ANALYZER and INSIGHTS_RULES_FILE reach the host's rounds, with the model in a worker
    process and in the host's threads alike (they were documented but the sync used the defaults)."""
    await inbound.onboard()
    sent = await inbound.graph.control.inbound_mail(
        inbound.upn, subject="Renewal", body="Our purchase order for next year is attached below.", **{"from": DANA})
    report = await inbound.run("email")
    assert report.outcomes["created"] == 1, report.as_dict()
    [rec] = [r for r in await inbound.pega_records("email") if r["content"]["ExchangeID"] == sent["immutableId"]]
    c = rec["content"]
    assert c["SentimentAnalyzer"] == "vader", c
    assert [a["rule"] for a in json.loads(c["SuggestedActions"])] == ["tenant-renewal-desk"], c["SuggestedActions"]
