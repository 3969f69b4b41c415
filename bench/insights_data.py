"""Where the insights benchmarks find their data, and the one fixed held-out split.

Real data lives outside the repository in ``../shared/data`` (see its README; never copied here).
The split is a hash of each row's upstream reference with a fixed salt, so it is stable when rows
are added or reordered, and the same in training (``bench/insights_train.py``) and evaluation
(``bench/insights_eval.py``): 30 % of the rows are held out and never used to fit or choose anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("INSIGHTS_SHARED_DATA", REPO.parent / "shared" / "data"))
SENTIMENT = SHARED_DATA / "sentiment" / "sentiment_en.jsonl"
REPLIES = SHARED_DATA / "email_replies"
ATTACHMENTS = SHARED_DATA / "attachments"
INTENTS = SHARED_DATA / "email_intents"
SPLIT_SALT = "insights-holdout-v1:"
HOLDOUT_PERCENT = 30
LABELS = ("positive", "neutral", "negative")


def is_holdout(ref: str) -> bool:
    digest = hashlib.sha256((SPLIT_SALT + ref).encode("utf-8")).hexdigest()
    return int(digest, 16) % 100 < HOLDOUT_PERCENT


def sentiment_rows() -> list[dict[str, Any]]:
    """Rows of sentiment_en.jsonl, each with ``holdout`` set; [] when the shared data is absent."""
    if not SENTIMENT.exists():
        return []
    rows = [json.loads(line) for line in SENTIMENT.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        r["holdout"] = is_holdout(r["ref"])
    return rows
