"""The local VADER analyzer: labels, sentence drivers, courtesy weighting, and the plain baseline."""

from __future__ import annotations

import pytest

from shared.insights import SentimentAnalyzer, SentimentLabel, VaderAnalyzer, VaderConfig
from shared.insights.sentences import split_sentences


@pytest.fixture(scope="module")
def vader() -> VaderAnalyzer:
    return VaderAnalyzer()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("We are very disappointed with the delay. This is the third time this quarter.", SentimentLabel.NEGATIVE),
        ("The rollout went smoothly and our agents love the new dashboard.", SentimentLabel.POSITIVE),
        ("Could you send me the updated price list for the enterprise edition?", SentimentLabel.NEUTRAL),
        ("Please find attached the signed NDA.", SentimentLabel.NEUTRAL),
        ("", SentimentLabel.NEUTRAL),
    ],
)
def test_labels(vader: VaderAnalyzer, text: str, label: SentimentLabel) -> None:
    assert vader.analyze_sync(text).label is label


def test_drivers_are_the_sentences_that_pushed_the_label(vader: VaderAnalyzer) -> None:
    r = vader.analyze_sync(
        "Hi Sam, hope you are well. The meeting is on Tuesday. The export is broken and my team is furious. "
        "The invoice is also wrong."
    )
    assert r.label is SentimentLabel.NEGATIVE
    assert r.drivers[0].text == "The export is broken and my team is furious."
    assert all(d.compound < 0 for d in r.drivers)
    assert "The meeting is on Tuesday." not in {d.text for d in r.drivers}
    assert -1.0 <= r.scores.compound <= 1.0
    assert r.scores.positive + r.scores.neutral + r.scores.negative == pytest.approx(1.0, abs=0.01)


def test_courtesy_does_not_outweigh_the_message(vader: VaderAnalyzer) -> None:
    text = "Hope you are well! Thanks so much for your help. Unfortunately the upgrade failed again and we lost data."
    assert vader.analyze_sync(text).label is SentimentLabel.NEGATIVE
    # stock VADER over the whole text reads the courtesy as the message
    assert VaderAnalyzer(VaderConfig.plain()).analyze_sync(text).label is SentimentLabel.POSITIVE


def test_lexicon_updates_are_per_instance() -> None:
    a = VaderAnalyzer(VaderConfig(lexicon_updates={"widget": 3.0}))
    b = VaderAnalyzer()
    assert a.analyze_sync("The widget.").label is SentimentLabel.POSITIVE
    assert b.analyze_sync("The widget.").label is SentimentLabel.NEUTRAL


async def test_protocol_and_async_batch(vader: VaderAnalyzer) -> None:
    assert isinstance(vader, SentimentAnalyzer)
    res = await vader.analyze(["Great!", "Terrible.", "Tuesday."])
    assert [r.label for r in res] == [SentimentLabel.POSITIVE, SentimentLabel.NEGATIVE, SentimentLabel.NEUTRAL]


def test_sentence_splitting_business_text() -> None:
    text = "Hi Sam,\n\nThe delivery, e.g. the pilot units, was late. We expected\nbetter from Contoso Inc. on this.\n- item one\n- item two"
    got = [s.text for s in split_sentences(text)]
    assert got == [
        "Hi Sam,",
        "The delivery, e.g. the pilot units, was late.",
        "We expected better from Contoso Inc. on this.",
        "- item one",
        "- item two",
    ]
    for s in split_sentences(text):
        assert text[s.offset : s.offset + 5] == s.text[:5]


def test_run_on_text_is_scored_in_bounded_time(vader: VaderAnalyzer) -> None:
    import time

    text = " ".join(["not", "great", "meeting", "bad", "quote"] * 10_000)  # one 50k-word "sentence"
    t = time.monotonic()
    r = vader.analyze_sync(text)
    assert time.monotonic() - t < 5.0  # stock VADER is quadratic in sentence length (minutes here)
    assert len(r.sentences) > 1
