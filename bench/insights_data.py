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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench" / "data"  # the project's own self-written sets
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


@dataclass(frozen=True)
class Item:
    label: str
    text: str
    tags: tuple[str, ...]


def load(path: Path) -> list[Item]:
    items: list[Item] = []
    label: str | None = None
    tags: tuple[str, ...] = ()
    buf: list[str] = []

    def flush() -> None:
        if label is not None:
            items.append(Item(label, "".join(buf).strip(), tags))

    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("=== "):
            flush()
            head, _, rest = line[4:].partition("|")
            label = head.strip()
            if label not in LABELS:
                raise ValueError(f"{path.name}: unknown label {label!r}")
            tags = tuple(t.strip() for t in rest.split(",") if t.strip())
            buf = []
        elif label is not None:
            buf.append(line)
        elif not line.startswith("#") and line.strip():
            raise ValueError(f"{path.name}: text before the first header")
    flush()
    return items
