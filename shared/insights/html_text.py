"""HTML → plain text with the stdlib parser, optionally dropping quoted history and signatures.

Why the stdlib ``html.parser`` and not a tree builder: it is a streaming tokenizer (no recursion,
no tree in memory), so a deeply nested or huge document costs linear time and constant stack —
the property an attachment parser needs. We only track the few elements we skip.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never text a person reads.
_INVISIBLE = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "object", "xml"})
_BLOCK = frozenset(
    {
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "section", "article", "header", "footer", "blockquote", "pre", "hr", "dd", "dt", "address",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source", "embed"})

# Quoted history: skip the element (Gmail/Apple/Thunderbird/Yahoo wrap the quote in one element).
_QUOTE_CLASSES = frozenset({"gmail_quote", "gmail_extra", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote"})
# Outlook marks where the quoted message starts; everything after the marker is history.
_CUT_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"})
_SIGNATURE_IDS = frozenset({"signature", "ms-outlook-mobile-signature"})
_SIGNATURE_CLASSES = frozenset({"gmail_signature", "moz-signature", "signature"})


class _TextBuilder(HTMLParser):
    def __init__(self, *, strip_quotes: bool, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self.strip_quotes = strip_quotes
        self.max_chars = max_chars
        self.parts: list[str] = []
        self.size = 0
        self.skip_tag: str | None = None  # tag name of the element being skipped
        self.skip_depth = 0  # how many of skip_tag are open inside it
        self.stopped = False  # Outlook reply marker seen, or max_chars reached
        self.truncated = False
        self.depth = 0
        self.last_newlines = 0
        self.max_depth_seen = 0

    # -- helpers -----------------------------------------------------------------------------
    def _emit(self, s: str) -> None:
        if self.stopped or not s:
            return
        if s == "\n" and self.last_newlines >= 2:
            return  # thousands of nested blocks must not fill the character budget with blank lines
        self.last_newlines = self.last_newlines + 1 if s == "\n" else (0 if s.strip() else self.last_newlines)
        room = self.max_chars - self.size
        if len(s) >= room:
            s = s[: max(room, 0)]
            self.stopped = True
            self.truncated = True
        self.parts.append(s)
        self.size += len(s)

    def _should_skip(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag in _INVISIBLE:
            return True
        if not self.strip_quotes:
            return False
        a = {k.lower(): (v or "") for k, v in attrs}
        classes = set(a.get("class", "").lower().split())
        el_id = a.get("id", "").lower()
        if tag == "blockquote":
            return True
        if classes & _QUOTE_CLASSES or classes & _SIGNATURE_CLASSES:
            return True
        return el_id in _SIGNATURE_IDS or a.get("data-smartmail", "") == "gmail_signature"

    # -- parser callbacks ---------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        if tag not in _VOID:
            self.depth += 1
            self.max_depth_seen = max(self.max_depth_seen, self.depth)
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth += 1
            return
        if self.strip_quotes:
            el_id = next((v or "" for k, v in attrs if k.lower() == "id"), "").lower()
            if el_id in _CUT_IDS:
                self.stopped = True
                return
        if tag not in _VOID and self._should_skip(tag, attrs):
            self.skip_tag = tag
            self.skip_depth = 1
            return
        if tag in _BLOCK:
            self._emit("\n")
        elif tag in ("td", "th"):
            self._emit(" ")
        if tag == "li":
            self._emit("- ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is None and tag in _BLOCK:
            self._emit("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.depth = max(0, self.depth - 1)
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth <= 0:
                    self.skip_tag = None
            return
        if tag in _BLOCK:
            self._emit("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_tag is None:
            self._emit(data)


_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_MANY_NL = re.compile(r"\n\s*\n(\s*\n)+")


def normalise_whitespace(text: str) -> str:
    lines = [_WS.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NL.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(html: str, *, strip_quotes: bool = False, max_chars: int = 1_000_000) -> tuple[str, bool]:
    """Visible text of ``html`` and whether it was cut at ``max_chars``.

    With ``strip_quotes`` the quoted history (blockquotes, Gmail/Yahoo/Thunderbird quote wrappers,
    everything after Outlook's ``divRplyFwdMsg``/``appendonsend`` marker) and signature blocks are dropped.
    """
    parser = _TextBuilder(strip_quotes=strip_quotes, max_chars=max_chars)
    # Feed in slices so a huge document stops being tokenised once max_chars of text are out.
    step = 65536
    for i in range(0, len(html), step):
        if parser.stopped:
            break
        parser.feed(html[i : i + step])
    if not parser.stopped:
        parser.close()
    return normalise_whitespace("".join(parser.parts)), parser.truncated
