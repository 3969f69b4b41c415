"""Property tests: extraction never raises on arbitrary input; the rules engine is deterministic."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.insights import (
    AttachmentInput,
    BodyType,
    CrmContext,
    Direction,
    EntityType,
    ExtractionLimits,
    ItemKind,
    Opportunity,
    RuleFacts,
    SkipReason,
    VaderAnalyzer,
    email_new_text,
    suggest_actions,
)
from shared.insights.attachments import AttachmentExtractor
from shared.insights.sentences import split_sentences

_INLINE = AttachmentExtractor(ExtractionLimits(isolation="inline", timeout_seconds=2.0))
_VADER = VaderAnalyzer()

names = st.sampled_from(["a.pdf", "a.docx", "a.eml", "a.html", "a.txt", "a.msg", "a.bin", "noext"])
prefixes = st.sampled_from([b"", b"%PDF-1.4\n", b"PK\x03\x04", b"From: a@b\r\n", b"<html><div>"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, prefix=prefixes, data=st.binary(max_size=2048))
def test_extraction_never_raises_on_arbitrary_bytes(name: str, prefix: bytes, data: bytes) -> None:
    r = _INLINE.extract_sync(AttachmentInput(name, prefix + data))
    assert r.ok or isinstance(r.skipped, SkipReason)
    assert r.ok == bool(r.text)


@settings(max_examples=200, deadline=None)
@given(body=st.text(max_size=3000), html=st.booleans())
def test_new_text_never_raises_and_is_a_subset(body: str, html: bool) -> None:
    out = email_new_text(body, BodyType.HTML if html else BodyType.TEXT)
    assert isinstance(out, str)
    if not html:
        assert len(out) <= len(body) + 1


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=2000))
def test_sentences_cover_only_input_text(text: str) -> None:
    for s in split_sentences(text):
        assert s.text.strip() and 0 <= s.offset <= len(text)


words = st.sampled_from(
    ["no", "not", "complaint", "meeting", "schedule", "a", "call", "quote", "pricing", "unacceptable", "great",
     "terrible", "refund", "we", "can", "meet", "?", ".", ",", "but", "don't", "need", "escalate", "available"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    tokens=st.lists(words, max_size=40),
    direction=st.sampled_from(list(Direction)),
    entity=st.sampled_from(list(EntityType)),
    has_opp=st.booleans(),
)
def test_rules_engine_is_deterministic(tokens: list[str], direction: Direction, entity: EntityType, has_opp: bool) -> None:
    body = " ".join(tokens)
    ctx = CrmContext(entity_type=entity, opportunities=(Opportunity("O1"),) if has_opp else ())
    facts_a = RuleFacts(kind=ItemKind.EMAIL, context=ctx, direction=direction, body=body, sentiment=_VADER.analyze_sync(body))
    facts_b = RuleFacts(kind=ItemKind.EMAIL, context=ctx, direction=direction, body=body, sentiment=_VADER.analyze_sync(body))
    a, b = suggest_actions(facts_a), suggest_actions(facts_b)
    assert a == b
    assert len({x.action for x in a}) == len(a)
    assert [x.priority for x in a] == sorted(x.priority for x in a)
    if direction is Direction.OUTBOUND:
        assert not {x.action for x in a} & {"call_back", "alert_account_owner", "propose_meeting", "prepare_quote"}
