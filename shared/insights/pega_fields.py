"""Insight → flat Pega fields. The field names are configuration (the Pega mapping), not code.

The defaults below are this library's own small mapping; the Pega mapping configuration in
shared/pega/ can carry an ``insights`` section with the same keys and pass it here. A key set to
``None`` (or absent from a mapping dict) is not written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from shared.insights.models import Insight


@dataclass(frozen=True, slots=True)
class PegaInsightFields:
    label: str | None = "SentimentLabel"  # positive | neutral | negative
    score: str | None = "SentimentScore"  # compound, -1..1, 3 decimals
    confidence: str | None = "SentimentConfidence"  # JSON {"positive","neutral","negative"}
    drivers: str | None = "SentimentDrivers"  # JSON list of the driving sentences
    analyzer: str | None = "SentimentAnalyzer"  # vader | azure-language (+ "(fallback)")
    actions: str | None = "SuggestedActions"  # JSON list of {action,title,rule,priority,reason,evidence,due_in_hours}
    top_action: str | None = "SuggestedActionTop"  # title of the most urgent suggestion, "" if none
    attachments: str | None = "AttachmentInsights"  # JSON list of per-attachment sentiment or skip reason
    max_text_length: int = 32_000  # JSON fields are cut (as valid JSON) to stay under Pega text limits

    @staticmethod
    def from_mapping(m: Mapping[str, Any]) -> PegaInsightFields:
        """Build from a mapping-config section; unknown keys are rejected so typos surface at start."""
        known = {f.name for f in fields(PegaInsightFields)}
        unknown = set(m) - known
        if unknown:
            raise ValueError(f"unknown insights field keys: {', '.join(sorted(unknown))}")
        return PegaInsightFields(**dict(m))


DEFAULT_FIELDS = PegaInsightFields()


def _json_list(items: list[Any], limit: int) -> str:
    """JSON array of as many leading items as fit in ``limit`` characters (always valid JSON)."""
    out = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    while len(out) > limit and items:
        items = items[:-1]
        out = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return out


def to_pega_fields(insight: Insight, mapping: PegaInsightFields | Mapping[str, Any] | None = None) -> dict[str, Any]:
    m = mapping if isinstance(mapping, PegaInsightFields) else (
        PegaInsightFields.from_mapping(mapping) if mapping is not None else DEFAULT_FIELDS
    )  # fmt: skip
    s = insight.sentiment
    out: dict[str, Any] = {}
    if m.label:
        out[m.label] = s.label.value
    if m.score:
        out[m.score] = round(s.scores.compound, 3)
    if m.confidence:
        out[m.confidence] = json.dumps(
            {"positive": round(s.scores.positive, 3), "neutral": round(s.scores.neutral, 3), "negative": round(s.scores.negative, 3)}
        )
    if m.drivers:
        out[m.drivers] = _json_list([d.text[:500] for d in s.drivers], m.max_text_length)
    if m.analyzer:
        out[m.analyzer] = s.analyzer
    if m.actions:
        out[m.actions] = _json_list([a.to_dict() for a in insight.actions], m.max_text_length)
    if m.top_action:
        out[m.top_action] = insight.actions[0].title if insight.actions else ""
    if m.attachments:
        out[m.attachments] = _json_list([a.to_dict() for a in insight.attachments], m.max_text_length)
    return out
