"""Issue 15: actions a sales manager would sign off, automated-mail detection, multilingual quote removal,
Office/.msg attachments sniffed from content, and the packaged sentence model.

Real data from ../shared/data is read in place (never copied); those tests skip when it is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.insights_data import ATTACHMENTS, REPLIES
from shared.insights import (
    AttachmentExtractor,
    AttachmentInput,
    BodyType,
    CrmContext,
    Direction,
    EmailInput,
    EntityType,
    ExtractionLimits,
    Opportunity,
    SkipReason,
    analyze_email,
    email_new_text,
)
from shared.insights.attachments import detect_kind
from shared.insights.automated import MessageClass, classify
from shared.insights.model_analyzer import ModelAnalyzer
from shared.sync.records import parse_message

ROOT = Path(__file__).resolve().parents[2]
CTX = CrmContext(entity_type=EntityType.CONTACT, entity_id="C-1", entity_name="Dana", account_owner="Sam",
                 opportunities=(Opportunity("O-1", "Expansion"),))  # fmt: skip


async def _actions(body: str, subject: str = "Hello", headers: dict[str, str] | None = None) -> dict[str, object]:
    insight = await analyze_email(EmailInput(subject=subject, body=body, body_type=BodyType.TEXT,
                                             direction=Direction.INBOUND, headers=headers or {}), CTX)  # fmt: skip
    return {a.action: a for a in insight.actions}


# --- automated mail -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "subject", "body", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: offer", "Back on Monday.", MessageClass.AUTO_REPLY),
        ({"X-Auto-Response-Suppress": "All"}, "Re: offer", "Back on Monday.", MessageClass.AUTO_REPLY),
        ({"List-Unsubscribe": "<mailto:u@x.example>"}, "News", "Our spring news.", MessageClass.BULK),
        ({"Precedence": "bulk"}, "News", "Our spring news.", MessageClass.BULK),
        ({"Content-Type": "multipart/report; report-type=delivery-status; boundary=x"}, "x", "y", MessageClass.BOUNCE),
        ({"Content-Type": 'multipart/report; report-type="disposition-notification"'}, "x", "y", MessageClass.READ_RECEIPT),
        ({}, "Automatic reply: pricing", "I am away.", MessageClass.AUTO_REPLY),
        ({}, "Automatische Antwort: Angebot", "Ich bin nicht im Büro.", MessageClass.AUTO_REPLY),
        ({}, "Undeliverable: proposal", "Delivery has failed.", MessageClass.BOUNCE),
    ],
)
def test_machine_written_mail_is_recognised(headers: dict[str, str], subject: str, body: str, kind: MessageClass) -> None:
    found = classify(headers, subject, body)
    assert found is not None and found.kind is kind
    assert found.evidence  # the reason is stated


def test_person_written_mail_is_not_automated() -> None:
    assert classify({"Auto-Submitted": "no"}, "Re: offer", "I was out of office last week; can we meet Tuesday?") is None
    assert classify({}, "Re: out of office plans", "Can we unsubscribe two users from the plan?") is None


async def test_out_of_office_reply_gets_no_action_only() -> None:
    """Before: an out-of-office reply mentioning a meeting got "propose appointment"."""
    got = await _actions("I am out of the office until Monday. I will be happy to schedule a meeting when I am back.",
                         subject="Automatic reply: Re: proposal", headers={"Auto-Submitted": "auto-replied"})  # fmt: skip
    assert set(got) == {"no_action"}
    assert "auto reply" in got["no_action"].reason  # type: ignore[attr-defined]


async def test_newsletter_gets_no_action_not_a_quote() -> None:
    got = await _actions("Request a quote for our premium plan today! Unsubscribe | View in browser",
                         subject="Weekly digest", headers={"List-Unsubscribe": "<https://x.example/u>"})  # fmt: skip
    assert set(got) == {"no_action"}


# --- actions a sales manager expects --------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "action"),
    [
        ("Could we set up 30 minutes next week to walk through the rollout plan?", "propose_meeting"),
        ("Are you free Thursday afternoon for a quick chat about the pilot?", "propose_meeting"),
        ("What would 250 seats cost on the Enterprise plan?", "prepare_quote"),
        ("We will need another 40 licences for the support team next month.", "prepare_quote"),
        ("Before we go further our procurement needs a mutual NDA in place.", "legal_review"),
        ("Please complete our vendor security questionnaire and share your SOC 2 report.", "security_review"),
        ("My new direct line is +49 30 1234 5678; the old number is no longer in use.", "update_contact_details"),
        ("Our subscription ends on 30 September and we would like to renew for another year.", "handle_renewal"),
        ("We've decided not to renew our contract when it expires in March.", "alert_account_owner"),
        ("Thanks for the demo. I'll discuss internally and get back to you next week.", "follow_up"),
    ],
)
async def test_everyday_wording_raises_the_expected_action(body: str, action: str) -> None:
    got = await _actions(f"Hi Sam,\n\n{body}\n\nBest,\nDana")
    assert action in got, sorted(got)
    suggestion = got[action]
    assert suggestion.reason and suggestion.evidence  # type: ignore[attr-defined]


async def test_routine_nda_request_is_not_an_alert() -> None:
    got = await _actions("Hi Sam,\n\nCould you send over your standard NDA template so we can share requirements?\n\nThanks")
    assert "legal_review" in got
    assert "alert_account_owner" not in got


@pytest.mark.parametrize(
    "body",
    [
        "The meeting yesterday went well, thanks. No need to schedule another call for now.",
        "Thanks for the update, sounds good. Have a great weekend!",
        "Can we pay by invoice instead of credit card?",
    ],
)
async def test_no_action_needed_for_routine_mail(body: str) -> None:
    got = await _actions(body)
    assert not ({"propose_meeting", "prepare_quote", "alert_account_owner"} & set(got)), sorted(got)


async def test_intent_evidence_names_the_sentence_and_the_example() -> None:
    got = await _actions("Do you have time for a coffee when you are in Munich next month?")
    ev = [e for e in got["propose_meeting"].evidence if e.condition == "intent"]  # type: ignore[attr-defined]
    assert ev and ev[0].sentence and "similar to" in ev[0].detail


def test_internet_message_headers_reach_the_record() -> None:
    rec = parse_message({"id": "m1", "internetMessageHeaders": [{"name": "Auto-Submitted", "value": "auto-replied"},
                                                                  {"name": "Precedence", "value": "bulk"}]})  # fmt: skip
    assert rec.headers == (("Auto-Submitted", "auto-replied"), ("Precedence", "bulk"))  # type: ignore[union-attr]


# --- quoted history in other languages and clients ------------------------------------------------
@pytest.mark.parametrize(
    "history",
    [
        "ср, 30 апр. 2025 г. в 15:19, Sam Carter <sam@contoso.example>:\n> OLDTEXT",
        "20 окт. 2016 г. 19:37 пользователь \"Sam Carter\" <sam@contoso.example> написал:\n\nOLDTEXT",
        "W dniu 2017-01-09 11:59:39 użytkownik Sam <sam@contoso.example> napisał:\nOLDTEXT",
        "Den 24. nov. 2025 kl. 10.00 skrev Sam Carter <sam@contoso.example>:\nOLDTEXT",
        "-----Oprindelig meddelelse-----\nFra: Sam Carter\nSendt: 24. november 2025 10:00\nTil: Dana\nEmne: Hej\n\nOLDTEXT",
        "________________________________\nFrom: Sam Carter\nSent: Monday, June 3, 2024 10:00 AM\nTo: Dana\nSubject: RE: x\n\nOLDTEXT",
        "Da: Sam Carter\nInviato: martedì 3 gennaio 2017 10:35\nA: dana@fabrikam.example\nOggetto: offerta\n\nOLDTEXT",
        "On Mon, Aug 26, 2019 at 4:37 PM The Contoso Team <\nsam@contoso.example>\nwrote:\n> OLDTEXT",
    ],
)
def test_non_english_and_wrapped_reply_headers_cut_history(history: str) -> None:
    out = email_new_text(f"The invoice is wrong again.\n\n{history}\n", BodyType.TEXT)
    assert "The invoice is wrong again." in out
    assert "OLDTEXT" not in out


@pytest.mark.skipif(not (REPLIES / "cases.jsonl").exists(), reason="../shared/data/email_replies not present")
def test_real_russian_and_hotmail_replies_lose_their_history() -> None:
    from bench.insights_replies import norm

    cases = {json.loads(x)["id"]: json.loads(x) for x in (REPLIES / "cases.jsonl").read_text().splitlines() if x.strip()}
    for cid in ("crisp/email_russian", "discourse/embedded_email_russian_1", "crisp/email_13", "alfonsrv/email_danish_1"):
        c = cases[cid]
        got = email_new_text((REPLIES / c["input"]).read_text(errors="replace"), BodyType.TEXT)
        want = (REPLIES / c["expected"]).read_text(errors="replace")
        assert norm(got) == norm(want), cid


# --- attachments -----------------------------------------------------------------------------------
def _manifest() -> list[dict[str, str]]:
    path = ATTACHMENTS / "manifest.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


@pytest.mark.skipif(not _manifest(), reason="../shared/data/attachments not present")
def test_every_real_attachment_yields_text_or_a_stated_reason() -> None:
    from bench.insights_attachments import _ACCEPT

    with AttachmentExtractor(ExtractionLimits(timeout_seconds=30)) as ex:
        for row in _manifest():
            got = ex.extract_sync(AttachmentInput(Path(row["file"]).name, (ATTACHMENTS / row["file"]).read_bytes()))
            assert got.ok or got.detail, row["file"]
            assert (got.skipped.value if got.skipped else None) in _ACCEPT[row["expect"]], (row["file"], got.skipped, got.detail)


@pytest.mark.skipif(not _manifest(), reason="../shared/data/attachments not present")
@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("docx/docx_text_boxes.docx", None),
        ("docx/docx_headers_footers.docx", None),
        ("docx/docx_footnotes.docx", None),
        ("docx/docx_comments.docx", None),
        ("xlsx/xlsx_strict_ooxml.xlsx", None),
        ("pptx/pptx_basic.pptx", None),
        ("msg/msg_simple.msg", None),
        ("msg/msg_cyrillic.msg", None),
    ],
)
def test_office_parts_strict_ooxml_and_msg_are_read(file: str, words: None) -> None:
    row = next(r for r in _manifest() if r["file"] == file)
    data = (ATTACHMENTS / file).read_bytes()
    with AttachmentExtractor(ExtractionLimits(timeout_seconds=30)) as ex:
        got = ex.extract_sync(AttachmentInput(Path(file).name, data))
    assert got.ok, got.detail
    hint = (row.get("text_hint") or "").split()[:3]
    if hint and file.endswith((".docx", ".xlsx", ".pptx")):
        assert all(w.lower() in got.text.lower() for w in hint), (hint, got.text[:200])


@pytest.mark.skipif(not _manifest(), reason="../shared/data/attachments not present")
def test_type_comes_from_content_not_name() -> None:
    data = (ATTACHMENTS / "msg/msg_simple.msg").read_bytes()
    assert detect_kind("mail.eml", "message/rfc822", data[:4096], data) == "msg"
    with AttachmentExtractor(ExtractionLimits(timeout_seconds=30)) as ex:
        got = ex.extract_sync(AttachmentInput("mail.eml", data, "message/rfc822"))
    assert got.ok and got.kind == "msg"


def test_docx_text_box_header_footnote_comment_from_generated_file() -> None:
    from tests.insights.files import ooxml_docx_with_all_parts

    data = ooxml_docx_with_all_parts()
    with AttachmentExtractor(ExtractionLimits(isolation="inline")) as ex:
        got = ex.extract_sync(AttachmentInput("x.docx", data))
    assert got.ok, got.detail
    for word in ("BODYTEXT", "BOXTEXT", "HEADERTEXT", "FOOTERTEXT", "FOOTNOTETEXT", "COMMENTTEXT"):
        assert word in got.text
    assert got.text.count("BOXTEXT") == 1  # the VML fallback copy is not read twice
    assert "DELETEDTEXT" not in got.text


def test_unsupported_types_state_why() -> None:
    with AttachmentExtractor(ExtractionLimits(isolation="inline")) as ex:
        rtf = ex.extract_sync(AttachmentInput("a.bin", b"{\\rtf1\\ansi hello}"))
        tnef = ex.extract_sync(AttachmentInput("winmail.dat", b"\x78\x9f\x3e\x22" + b"\0" * 64))
    assert rtf.skipped is SkipReason.UNSUPPORTED_TYPE and "RTF" in rtf.detail
    assert tnef.skipped is SkipReason.UNSUPPORTED_TYPE and "TNEF" in tnef.detail


# --- the sentence model ------------------------------------------------------------------------------
def test_importing_insights_loads_no_model() -> None:
    code = ("import shared.insights, shared.insights.encoder as e, shared.insights.model_analyzer as m, sys;"
            "print(e._shared is None and not m._shared and 'tokenizers' not in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    assert out.stdout.strip() == "True"


def test_model_labels_business_negatives_with_confidence_and_drivers() -> None:
    a = ModelAnalyzer()
    body = ("Hi Sam,\n\nhope you are well. The integration still fails every night and nobody from your "
            "support team has responded in four days. This is not what we were promised.\n\nBest regards,\nDana")  # fmt: skip
    r = a.analyze_sync(email_new_text(body, BodyType.TEXT))
    assert r.analyzer == "mpnet"
    assert r.label.value == "negative"
    assert r.confidence is not None and 0.34 <= r.confidence <= 1.0
    assert r.drivers and any("fails" in d.text or "promised" in d.text for d in r.drivers)
    pos = a.analyze_sync("Thanks for the smooth onboarding, the team loves the new dashboards!")
    assert pos.label.value == "positive"


def test_model_missing_falls_back_to_vader_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.insights.model_analyzer as m

    monkeypatch.setattr(m, "_shared", {})
    monkeypatch.setattr(m, "_failed", {})
    monkeypatch.setattr(m, "HEAD", tmp_path / "missing.json")
    monkeypatch.setattr(m.SentimentHead.__init__, "__defaults__", (tmp_path / "missing.json",))
    r = ModelAnalyzer().analyze_sync("This is terrible service.")
    assert r.analyzer.endswith("(fallback)") and r.fallback_reason


def test_the_sentiment_model_is_the_fine_tuned_mpnet_kept_in_int8() -> None:
    """The head names the MPNet files (format 3); its weights stay int8 in memory (cast per call), and no
    shipped file exceeds the 100 MB a Git host accepts per file."""
    import numpy as np

    import shared.insights.model_analyzer as m
    from shared.insights.mpnet_encoder import MPNetEncoder

    model = m.shared_model()
    assert model.head.architecture == "mpnet" and isinstance(model.encoder, MPNetEncoder)
    assert len(model.encoder._layers) == 12
    assert model.encoder._layers[0]["fi"].dtype == np.int8 and model.encoder._word_q.dtype == np.int8
    assert all((m.MODEL_DIR / f).stat().st_size < 100 * 2**20 for f in model.head.encoder_files)


def test_the_light_minilm_sentiment_model_is_a_setting_away() -> None:
    """INSIGHTS_SENTIMENT_MODEL=minilm: the fine-tuned MiniLM (a tenth of the MPNet's CPU), which shares
    the intents' vocabulary table instead of loading a second one."""
    import shared.insights.model_analyzer as m
    from shared.insights.encoder import shared_encoder
    from shared.insights.settings import build_analyzer, load_insights_settings

    analyzer = build_analyzer(load_insights_settings({"INSIGHTS_SENTIMENT_MODEL": "minilm"}))
    r = analyzer.analyze_sync("This is terrible service.")
    assert r.analyzer == "minilm" and r.label.value == "negative" and not r.fallback_reason
    model = m.shared_model("minilm")
    assert model.head.architecture == "minilm" and model.head.encoder == "sentiment_minilm.npz"
    assert model.encoder._word_q is shared_encoder()._word_q
    with pytest.raises(ValueError):
        m.ModelAnalyzer(name="bert")


def test_relative_position_buckets_follow_mpnets_bidirectional_buckets() -> None:
    """Key minus query position: exact within 8 tokens, logarithmic up to 128, the sign picks the half."""
    from shared.insights.mpnet_encoder import relative_buckets

    b = relative_buckets(300)
    assert (b[0, 0], b[1, 0], b[7, 0], b[8, 0], b[20, 0], b[200, 0]) == (0, 1, 7, 8, 10, 15)  # key before query
    assert (b[0, 1], b[0, 20], b[0, 200]) == (17, 26, 31)  # key after query
    assert b.min() == 0 and b.max() == 31


def test_missing_fine_tuned_weights_fall_back_to_vader_and_say_so(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import shared.insights.model_analyzer as m

    (tmp_path / "sentiment_head.json").write_bytes(m.HEAD.read_bytes())  # the head names a weights file not there
    monkeypatch.setattr(m, "_shared", {})
    monkeypatch.setattr(m, "_failed", {})
    monkeypatch.setattr(m, "MODEL_DIR", tmp_path)
    monkeypatch.setattr(m.SentimentHead.__init__, "__defaults__", (tmp_path / "sentiment_head.json",))
    r = ModelAnalyzer().analyze_sync("This is terrible service.")
    assert r.analyzer == "vader (fallback)"  # the analyzer that actually scored it
    assert r.fallback_reason and "not loadable" in r.fallback_reason
    assert r.label.value == "negative"
