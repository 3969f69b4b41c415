"""Message and event bodies as Pega receives them: safe HTML and clean, canonical text.

Exchange returns bodies as HTML unless a request prefers text (graph.md §10), and in practice a
mix of both arrives. Whatever the form, the same body must give the same mapped value, or echo
suppression and change detection would flip between the HTML and the text form of one body.
So:

- :func:`safe_html` runs every HTML body through a maintained sanitizer (nh3, the Python binding
  of the Rust crate ammonia) with an allow-list: no ``<script>``/``<style>``, no event-handler
  attributes (``onerror=``, ``onclick=``...), no ``javascript:`` links and, by default, no remote
  content (``<img src="https://...">`` tracking pixels lose their ``src``; ``cid:`` inline images and
  ``data:`` URIs stay).
- :func:`canonical_text` is the text a person reads: the sanitized HTML rendered to text (or the
  text body as it is), every line stripped, whitespace runs collapsed, blank lines dropped. Blank
  lines are dropped because Exchange's HTML puts ``\\r\\n`` between tags, so the number of blank
  lines a converter sees is not stable across the two forms; the words and line breaks are.

Pega receives the canonical text (``body_type`` "text"); the content hash of the mapped fields is
over that text only, so an HTML and a text rendering of one body hash the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import nh3

from shared.insights.html_text import html_to_text

_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b\u200c\u200d\ufeff]+")
# Schemes a link or inline image may use; everything else (javascript:, vbscript:, file:) goes.
_LINK_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}
_REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
# Longest body converted (characters of HTML); a bigger one is cut, never a crash or a stall.
MAX_BODY_CHARS = 4_000_000


def _attribute_filter(allow_remote: bool) -> Callable[[str, str, str], str | None]:
    def keep(tag: str, attr: str, value: str) -> str | None:
        if not allow_remote and attr in ("src", "srcset", "background") and _REMOTE.match(value or ""):
            return None  # remote content (tracking pixels, remote images) is not fetched by Pega's UI
        return value

    return keep


def safe_html(html: str, *, allow_remote: bool = False) -> str:
    """The body HTML with only an allow-list of tags and attributes left (nh3's defaults), no
    script or style content, no event handlers, no script URLs, and no remote content unless
    `allow_remote`."""
    return nh3.clean(
        html[:MAX_BODY_CHARS],
        url_schemes=_LINK_SCHEMES,
        attribute_filter=_attribute_filter(allow_remote),
        clean_content_tags={"script", "style"},
        link_rel="noopener noreferrer nofollow",
    )


def canonical_text(content: str | None, content_type: str | None) -> str:
    """The readable text of a body, identical for the HTML and the text form of the same body."""
    return sanitized(content, content_type)[1]


def sanitized(content: str | None, content_type: str | None) -> tuple[str, str]:
    """(safe HTML — "" for a text body —, canonical text) of a body, with one sanitizer pass."""
    if not content:
        return "", ""
    html = ""
    if (content_type or "").lower() == "html":
        html = safe_html(content)
        text, _ = html_to_text(html, max_chars=MAX_BODY_CHARS)
    else:
        text = content[:MAX_BODY_CHARS]
    lines = (_WS.sub(" ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return html, "\n".join(line for line in lines if line)
