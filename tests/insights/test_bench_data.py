"""The evaluation data parses, is large and balanced enough, and the metrics are computed correctly."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.insights_eval import DATA, LABELS, load, metrics


def test_labelled_sets_are_balanced_and_big_enough() -> None:
    dev = load(DATA / "insights_sentiment.txt")
    holdout = load(DATA / "insights_sentiment_holdout.txt")
    assert len(dev) >= 150 and len(holdout) >= 60
    for items in (dev, holdout):
        counts = Counter(it.label for it in items)
        assert set(counts) == set(LABELS)
        assert max(counts.values()) - min(counts.values()) <= 0.1 * len(items)
        assert all(it.text for it in items)
    tags = Counter(t for it in dev for t in it.tags)
    assert tags["sarcasm"] >= 5 and tags["negation"] >= 5 and tags["mixed"] >= 5 and tags["quoted"] >= 5
    assert not {it.text for it in dev} & {it.text for it in holdout}


def test_metrics_on_a_known_example() -> None:
    gold = ["positive", "positive", "neutral", "negative"]
    pred = ["positive", "neutral", "neutral", "positive"]
    m = metrics(gold, pred)
    assert m["accuracy"] == 0.5
    assert m["per_class"]["positive"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["neutral"]["precision"] == 0.5 and m["per_class"]["neutral"]["recall"] == 1.0
    assert m["per_class"]["negative"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.6667 + 0.0) / 3, abs=1e-3)
    assert m["confusion"]["matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
