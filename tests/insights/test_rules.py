"""Each default rule fires on its case and stays quiet on near-misses; the rules file is validated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.insights import (
    CrmContext,
    Direction,
    EntityType,
    ItemKind,
    Opportunity,
    RuleFacts,
    RuleSet,
    ThreadHistory,
    VaderAnalyzer,
    load_rules,
    suggest_actions,
    suggest_follow_ups,
)

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
CONTACT_WITH_OPP = CrmContext(
    entity_type=EntityType.CONTACT,
    entity_id="CON-6",
    entity_name="Dana Whitfield",
    account_owner="alex@contoso.example",
    opportunities=(Opportunity("OPP-12", "Fabrikam renewal"),),
    now=NOW,
)
_vader = VaderAnalyzer()


def facts(body: str, *, context: CrmContext = CONTACT_WITH_OPP, direction: Direction = Direction.INBOUND,
          subject: str = "", kind: ItemKind = ItemKind.EMAIL, attachments: tuple[tuple[str, str], ...] = ()) -> RuleFacts:  # fmt: skip
    return RuleFacts(
        kind=kind,
        context=context,
        direction=direction,
        subject=subject,
        body=body,
        attachments=attachments,
        sentiment=_vader.analyze_sync(body),
        attachment_sentiments=tuple((n, _vader.analyze_sync(t)) for n, t in attachments),
    )


def actions(f: RuleFacts) -> set[str]:
    return {a.action for a in suggest_actions(f)}


# --- negative + open opportunity → call back ----------------------------------------------------
def test_negative_contact_on_open_opportunity_gets_a_call_back() -> None:
    f = facts("We are very disappointed with the delays. The rollout is a mess and my team is frustrated.")
    result = suggest_actions(f)
    call = next(a for a in result if a.action == "call_back")
    assert call.due_in_hours == 24 and call.priority == 1
    assert "Fabrikam renewal" in call.reason and "Dana Whitfield" in call.reason
    assert any(e.sentence and "frustrated" in e.sentence for e in call.evidence)
    assert any("OPP-12" in e.detail for e in call.evidence)


@pytest.mark.parametrize(
    "variant",
    [
        {"context": CrmContext(entity_type=EntityType.CONTACT, opportunities=(Opportunity("O1", is_open=False),))},
        {"context": CrmContext(entity_type=EntityType.ORGANIZATION, opportunities=(Opportunity("O1"),))},
        {"direction": Direction.OUTBOUND},
    ],
)
def test_call_back_near_misses(variant: dict) -> None:
    f = facts("We are very disappointed with the delays. The rollout is a mess and my team is frustrated.", **variant)
    assert "call_back" not in actions(f)


def test_positive_message_on_open_opportunity_no_call_back() -> None:
    assert "call_back" not in actions(facts("Great demo, the team loved it and we are excited to move forward."))


# --- complaint → alert owner --------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "I want to file a formal complaint about your support.",
        "This is unacceptable, I will escalate this to your CEO.",
        "Please cancel our subscription effective immediately.",
        "We expect a refund for the outage.",
        "Honestly the worst service we have ever had.",
        "We are considering switching to another vendor.",
        "The service has been appalling for weeks.",
        "I have escalated this internally.",
    ],
)
def test_complaint_language_alerts_the_owner(text: str) -> None:
    result = suggest_actions(facts(text))
    alert = next(a for a in result if a.action == "alert_account_owner")
    assert "alex@contoso.example" in alert.reason
    assert any(e.phrase for e in alert.evidence)


@pytest.mark.parametrize(
    "text",
    [
        "No complaints at all, the rollout went well.",
        "We have nothing to complain about.",
        "This is not a complaint, just a question about the invoice.",
        "There is no need to escalate, it is solved.",
        "In the worst case we move the go-live by a week.",
        "Thanks for the quick refund, great service!",
    ],
)
def test_complaint_near_misses(text: str) -> None:
    assert "alert_account_owner" not in actions(facts(text))


def test_complaint_words_in_outbound_mail_do_not_alert() -> None:
    assert "alert_account_owner" not in actions(facts("Sorry about the complaint, we will refund you.", direction=Direction.OUTBOUND))


# --- meeting request → propose appointment ------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Can we schedule a call next week to discuss the rollout?",
        "Are you available on Thursday afternoon?",
        "I'd like to set up a meeting with your product team.",
        "Let's meet in person when you are in Berlin.",
        "We would love a demo for our regional managers.",
        "When would you be free for a quick call?",
        "Why don't we book a meeting for Friday?",
        "I can't wait to meet next week!",
        "Can't we schedule a call for Monday instead?",
        "Does Tuesday at 2pm work for you?",
        "Could you give us a demo of the mobile app?",
    ],
)
def test_meeting_request_proposes_an_appointment(text: str) -> None:
    result = suggest_actions(facts(text))
    assert "propose_meeting" in {a.action for a in result}
    prop = next(a for a in result if a.action == "propose_meeting")
    assert any(e.sentence for e in prop.evidence)


@pytest.mark.parametrize(
    "text",
    [
        "We are not interested in a meeting at this point.",
        "No need to schedule a call, email is fine.",
        "I don't want to set up a meeting yet.",
        "The meeting yesterday went well.",
        "A call is not necessary, the answer is clear.",
        "Sorry, I'm not available next week.",
        "I'll catch up with my team and get back to you.",
        "Thanks, the demo went well.",
        "That does not work for you? Fine.",
    ],
)
def test_meeting_near_misses(text: str) -> None:
    assert "propose_meeting" not in actions(facts(text))


# --- pricing → prepare quote --------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Could you send us a quote for 200 seats?",
        "What is your pricing for the enterprise edition?",
        "How much would the premium support tier cost?",
        "Is a volume discount possible?",
        "What would it cost for 50 users?",
        "Please send us a proposal for the rollout.",
    ],
)
def test_pricing_language_prepares_a_quote(text: str) -> None:
    assert "prepare_quote" in actions(facts(text))


def test_quote_request_in_an_attachment_counts() -> None:
    f = facts("See attached.", attachments=(("rfq.pdf", "Request for quotation: 300 licences, delivery in Q3."),))
    quote = next(a for a in suggest_actions(f) if a.action == "prepare_quote")
    assert any("attachment rfq.pdf" in e.detail for e in quote.evidence)


@pytest.mark.parametrize(
    "text",
    [
        "No need for a quote, we already have the numbers.",
        "We do not need pricing right now.",
        "Our quarterly report is attached.",  # 'quarterly' must not match 'quote'
        "Thanks, the quotes from our customers are in the case study.",  # 'quotes' is another word than 'quote'
    ],
)
def test_pricing_near_misses(text: str) -> None:
    assert "prepare_quote" not in actions(facts(text))


# --- no reply → follow up -----------------------------------------------------------------------
def _waiting(days: float, *, replied: bool = False) -> CrmContext:
    sent = NOW - timedelta(days=days)
    return CrmContext(
        entity_type=EntityType.LEAD,
        entity_name="Lee Park",
        now=NOW,
        thread=ThreadHistory(message_count=3, last_outbound_at=sent, last_inbound_at=sent + timedelta(hours=1) if replied else None),
    )


def test_no_reply_for_n_days_suggests_follow_up() -> None:
    result = suggest_follow_ups(_waiting(4))
    assert [a.action for a in result] == ["follow_up"]
    assert "4 days" in result[0].reason
    # also when we sync another outbound email into the silent thread
    assert "follow_up" in actions(facts("Just checking in.", context=_waiting(5), direction=Direction.OUTBOUND))


def test_follow_up_near_misses() -> None:
    assert suggest_follow_ups(_waiting(2)) == ()
    assert suggest_follow_ups(_waiting(10, replied=True)) == ()
    # an inbound message is itself the reply
    assert "follow_up" not in actions(facts("Sorry for the late answer.", context=_waiting(10)))
    # an unassociated thread is nobody's to follow up
    ctx = CrmContext(now=NOW, thread=ThreadHistory(last_outbound_at=NOW - timedelta(days=9)))
    assert suggest_follow_ups(ctx) == ()


# --- engine -------------------------------------------------------------------------------------
def test_one_suggestion_per_action_and_priority_order() -> None:
    f = facts("This is unacceptable and I want a refund. We are very disappointed. Can we schedule a call? Send a quote too.")
    result = suggest_actions(f)
    assert [a.action for a in result] == ["call_back", "alert_account_owner", "propose_meeting", "prepare_quote"]
    assert len({a.action for a in result}) == len(result)


def test_rules_are_data_custom_file(tmp_path: Path) -> None:
    rules = {
        "version": 1,
        "rules": [
            {
                "id": "renewal-mention",
                "action": "flag_renewal",
                "title": "Renewal discussion",
                "reason": "{entity_name} mentioned renewal",
                "priority": 2,
                "when": {"type": "all", "of": [
                    {"type": "phrases", "phrases": ["renewal", "renew"]},
                    {"type": "not", "condition": {"type": "sentiment", "labels": ["negative"]}},
                ]},
            },
            {
                "id": "same-action-lower-priority",
                "action": "flag_renewal",
                "title": "x",
                "reason": "x",
                "priority": 5,
                "when": {"type": "phrases", "patterns": [r"\brenew\w*"]},
            },
        ],
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    rs = load_rules(path)
    result = suggest_actions(facts("We plan to renew for three more years, great partnership."), rs)
    assert [a.action for a in result] == ["flag_renewal"]
    assert result[0].rule_id == "renewal-mention" and result[0].also_matched_rules == ("same-action-lower-priority",)
    assert result[0].reason == "Dana Whitfield mentioned renewal"
    assert suggest_actions(facts("The renewal is a disaster and we are furious."), rs)[0].rule_id == "same-action-lower-priority"


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": [{"id": "x", "action": "a", "title": "t", "reason": "r", "when": {"type": "phrases"}}]},
        {"rules": [{"id": "x", "action": "a", "title": "t", "reason": "r", "when": {"type": "phrases", "patterns": ["("]}}]},
        {"rules": [{"id": "x", "action": "a", "title": "t", "reason": "r", "when": {"type": "bogus"}}]},
        {"rules": [{"id": "x", "action": "a", "title": "t", "reason": "r", "when": {"type": "context", "typo": 1}}]},
        {"rules": [{"id": "x", "action": "a", "title": "t", "reason": "r", "when": {"type": "context"}}] * 2},
    ],
)
def test_invalid_rules_fail_with_configuration_error(bad: dict) -> None:
    with pytest.raises(ConfigurationError):
        RuleSet.from_mapping(bad)


def test_default_rules_load_and_cover_the_issue() -> None:
    rs = load_rules()
    assert {r.action for r in rs.rules} >= {"call_back", "propose_meeting", "prepare_quote", "alert_account_owner", "follow_up"}


def test_rules_apply_only_to_their_item_kinds() -> None:
    f = facts("Can we schedule a call next week?", kind=ItemKind.APPOINTMENT)
    assert "propose_meeting" not in actions(f)
