"""The entry points the sync calls: an Insight per email/appointment, with attachments, actions and Pega fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.insights import (
    AppointmentInput,
    AttachmentExtractor,
    AttachmentInput,
    BodyType,
    CrmContext,
    Direction,
    EmailInput,
    EntityType,
    ExtractionLimits,
    Insight,
    ItemKind,
    Opportunity,
    PegaInsightFields,
    SentimentLabel,
    SkipReason,
    ThreadHistory,
    analyze_appointment,
    analyze_email,
)
from tests.insights.files import make_docx, make_docx_ratio_bomb, make_pdf

CTX = CrmContext(
    entity_type=EntityType.CONTACT,
    entity_id="CON-6",
    entity_name="Dana Whitfield",
    account_owner="alex@contoso.example",
    opportunities=(Opportunity("OPP-12", "Fabrikam renewal"),),
    now=datetime(2024, 6, 10, tzinfo=UTC),
)

OUTLOOK_REPLY = """<html><body><div class="WordSection1">
<p class="MsoNormal">Hi Alex,</p>
<p class="MsoNormal">I am really disappointed: the invoice is wrong again and the export is still broken.
This is unacceptable. Can we schedule a call tomorrow?</p>
<p class="MsoNormal">Kind regards,<br>Dana Whitfield<br>Head of Procurement | Fabrikam<br>+44 20 7946 0018</p>
<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">
<p class="MsoNormal"><b>From:</b> Alex &lt;alex@contoso.example&gt;<br><b>Sent:</b> Monday, June 3, 2024 10:00 AM<br>
<b>To:</b> Dana Whitfield<br><b>Subject:</b> Great news</p></div>
<p class="MsoNormal">We are thrilled and delighted, everything is fantastic!</p></div></body></html>"""


@pytest.fixture(scope="module")
def extractor() -> Iterator[AttachmentExtractor]:
    with AttachmentExtractor(ExtractionLimits()) as ex:
        yield ex


async def test_outlook_reply_end_to_end(extractor: AttachmentExtractor) -> None:
    email = EmailInput(subject="RE: Great news", body=OUTLOOK_REPLY, direction=Direction.INBOUND, sender="dana@fabrikam.example")
    insight = await analyze_email(email, CTX, extractor=extractor)
    assert isinstance(insight, Insight) and insight.kind is ItemKind.EMAIL
    assert "thrilled" not in insight.text and "Head of Procurement" not in insight.text
    assert insight.sentiment.label is SentimentLabel.NEGATIVE
    assert [a.action for a in insight.actions] == ["call_back", "alert_account_owner", "propose_meeting"]
    for a in insight.actions:
        assert a.reason and a.evidence


async def test_attachments_get_their_own_sentiment_and_skip_reasons(extractor: AttachmentExtractor) -> None:
    email = EmailInput(
        subject="Documents",
        body="Please see the attached documents.",
        body_type=BodyType.TEXT,
        attachments=(
            AttachmentInput("feedback.pdf", make_pdf([["The pilot was a great success and the team loves it."]]), "application/pdf"),
            AttachmentInput("rfq.docx", make_docx(["Request for quotation: please send pricing for 300 seats."])),
            AttachmentInput("bomb.docx", make_docx_ratio_bomb(20)),
            AttachmentInput("logo.png", b"\x89PNG\r\n", "image/png", is_inline=True),
        ),
    )
    insight = await analyze_email(email, CTX, extractor=extractor)
    by_name = {a.name: a for a in insight.attachments}
    assert by_name["feedback.pdf"].sentiment is not None
    assert by_name["feedback.pdf"].sentiment.label is SentimentLabel.POSITIVE
    assert by_name["bomb.docx"].skipped is SkipReason.BOMB and by_name["bomb.docx"].sentiment is None
    assert by_name["logo.png"].skipped is SkipReason.UNSUPPORTED_TYPE
    quote = next(a for a in insight.actions if a.action == "prepare_quote")
    assert any("attachment rfq.docx" in e.detail for e in quote.evidence)


async def test_appointment_body(extractor: AttachmentExtractor) -> None:
    appt = AppointmentInput(
        subject="Escalation review",
        body="<p>We need to discuss the repeated outages; the situation is unacceptable for us.</p>"
        "<div>Microsoft Teams meeting</div><div>Join on your computer</div>",
        organizer="dana@fabrikam.example",
        is_organizer_external=True,
    )
    insight = await analyze_appointment(appt, CTX, extractor=extractor)
    assert insight.kind is ItemKind.APPOINTMENT
    assert "Teams" not in insight.text
    assert insight.sentiment.label is SentimentLabel.NEGATIVE
    assert {a.action for a in insight.actions} == {"call_back", "alert_account_owner"}  # no 'propose appointment'


async def test_outbound_email_in_a_silent_thread_suggests_follow_up(extractor: AttachmentExtractor) -> None:
    ctx = CrmContext(
        entity_type=EntityType.LEAD, entity_name="Lee", now=CTX.now,
        thread=ThreadHistory(message_count=2, last_outbound_at=CTX.now - timedelta(days=6)),  # type: ignore[operator]
    )  # fmt: skip
    email = EmailInput(subject="Checking in", body="Just checking in on my last email.", body_type=BodyType.TEXT,
                       direction=Direction.OUTBOUND)  # fmt: skip
    insight = await analyze_email(email, ctx, extractor=extractor)
    assert [a.action for a in insight.actions] == ["follow_up"]


async def test_empty_body_uses_the_subject(extractor: AttachmentExtractor) -> None:
    email = EmailInput(subject="RE: FW: Terrible experience with your support", body="", body_type=BodyType.TEXT)
    insight = await analyze_email(email, CrmContext(), extractor=extractor)
    assert insight.sentiment.label is SentimentLabel.NEGATIVE


async def test_pega_fields_default_and_custom_mapping(extractor: AttachmentExtractor) -> None:
    email = EmailInput(subject="x", body=OUTLOOK_REPLY, direction=Direction.INBOUND)
    insight = await analyze_email(email, CTX, extractor=extractor)
    fields = insight.to_pega_fields()
    assert fields["SentimentLabel"] == "negative"
    assert -1 <= fields["SentimentScore"] < 0
    assert json.loads(fields["SentimentDrivers"])
    actions = json.loads(fields["SuggestedActions"])
    assert actions[0]["action"] == "call_back" and actions[0]["reason"] and actions[0]["evidence"]
    assert fields["SuggestedActionTop"] == "Call back within a day"
    custom = insight.to_pega_fields({"label": "pyx_Sentiment", "score": None, "drivers": None, "confidence": None,
                                     "analyzer": None, "actions": "pyx_Actions", "top_action": None,
                                     "attachments": None, "max_text_length": 200})  # fmt: skip
    assert set(custom) == {"pyx_Sentiment", "pyx_Actions"}
    assert len(custom["pyx_Actions"]) <= 200 and isinstance(json.loads(custom["pyx_Actions"]), list)
    with pytest.raises(ValueError, match="unknown insights field keys"):
        insight.to_pega_fields({"lable": "x"})
    assert PegaInsightFields().label == "SentimentLabel"


async def test_huge_html_body_is_bounded(extractor: AttachmentExtractor) -> None:
    import time

    body = "<html><head><style>" + ".c{color:red}" * 400_000 + "</style></head><body><p>Too late again.</p></body></html>"
    t = time.monotonic()
    insight = await analyze_email(EmailInput(subject="x", body=body), CTX, extractor=extractor)
    assert time.monotonic() - t < 10.0
    # input beyond 20x the text cap is not read: the paragraph after 5 MB of CSS is never reached
    assert insight.text == "" and insight.sentiment.label is SentimentLabel.NEUTRAL


async def test_unexpected_input_never_raises(extractor: AttachmentExtractor) -> None:
    weird = EmailInput(subject="", body="<<<>>>\x00\ufffd<div" * 1000, attachments=(AttachmentInput("", b""),))
    insight = await analyze_email(weird, CrmContext(), extractor=extractor)
    assert insight.attachments[0].skipped is not None


async def test_plain_strings_lists_and_naive_datetimes_are_accepted(extractor: AttachmentExtractor) -> None:
    """What a caller holds from Graph JSON: "html"/"inbound" strings, lists, naive timestamps."""
    email = EmailInput(subject="x", body="<p>This is unacceptable.</p><blockquote>old praise, great</blockquote>",
                       body_type="HTML", direction="inbound", attachments=[])  # type: ignore[arg-type]  # fmt: skip
    assert email.body_type is BodyType.HTML and email.direction is Direction.INBOUND
    ctx = CrmContext(
        entity_type="contact",  # type: ignore[arg-type]
        opportunities=[Opportunity("O1")],  # type: ignore[arg-type]
        now=datetime(2024, 6, 10),  # naive
        thread=ThreadHistory(last_outbound_at=datetime(2024, 6, 1, tzinfo=UTC)),
    )
    insight = await analyze_email(email, ctx, extractor=extractor)
    assert insight.text == "This is unacceptable."
    assert {"call_back", "alert_account_owner"} <= {a.action for a in insight.actions}
    assert ctx.days_since_last_outbound_without_reply() == 9.0
    with pytest.raises(ValueError):
        EmailInput(subject="x", body="", body_type="markdown")  # type: ignore[arg-type]
