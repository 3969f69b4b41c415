"""Sentence splitting good enough for business email (no model, linear time).

Plain-text mail is often hard-wrapped at ~72 columns, so a line break is only a boundary when the
line ends like a sentence, the next line starts a list item, or the line is short (a greeting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ABBREV = re.compile(
    r"\b(?:e\.g|i\.e|etc|vs|approx|Mr|Mrs|Ms|Dr|Prof|Inc|Ltd|Co|Corp|No|Nr|St|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9À-Ý])|(?<=[!?])\s+")
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s+")
_PLACEHOLDER = "\x00"


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    offset: int


def _paragraph_units(text: str) -> list[tuple[str, int]]:
    """Join hard-wrapped lines into units; return (unit, offset of its first char)."""
    units: list[tuple[str, int]] = []
    cur: list[str] = []
    cur_off = 0
    pos = 0
    prev = ""
    for raw in text.split("\n"):
        line = raw.strip()
        start = pos + (len(raw) - len(raw.lstrip()))
        pos += len(raw) + 1
        if not line:
            if cur:
                units.append((" ".join(cur), cur_off))
                cur = []
            prev = ""
            continue
        boundary = (
            not cur
            or prev.endswith((".", "!", "?", ":", ";"))
            or _BULLET.match(line) is not None
            or len(prev) < 40
        )
        if boundary and cur:
            units.append((" ".join(cur), cur_off))
            cur = []
        if not cur:
            cur_off = start
        cur.append(line)
        prev = line
    if cur:
        units.append((" ".join(cur), cur_off))
    return units


def split_sentences(text: str, *, max_sentences: int = 2000) -> list[Sentence]:
    out: list[Sentence] = []
    for unit, off in _paragraph_units(text):
        protected = _ABBREV.sub(lambda m: m.group(0)[:-1] + _PLACEHOLDER, unit)
        start = 0
        for m in _BOUNDARY.finditer(protected):
            piece = protected[start : m.start()].replace(_PLACEHOLDER, ".").strip()
            if piece:
                out.append(Sentence(piece, off + start))
            start = m.end()
        piece = protected[start:].replace(_PLACEHOLDER, ".").strip()
        if piece:
            out.append(Sentence(piece, off + start))
        if len(out) >= max_sentences:
            return out[:max_sentences]
    return out
