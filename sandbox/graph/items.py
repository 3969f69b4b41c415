"""How an item is presented to one request: which id format, time zone, $select and $expand."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.graph.model import Item
from sandbox.graph.odata import Expand, Prefer, parse_expand, parse_select, q


@dataclass(frozen=True)
class View:
    immutable: bool = False
    tz: str | None = None
    select: tuple[str, ...] | None = None
    expand: Expand = field(default_factory=Expand)
    graph_base: str = "https://graph.microsoft.com/v1.0"
    body_type: str | None = None  # Prefer: outlook.body-content-type
    allow_unsafe_html: bool = False  # Prefer: outlook.allow-unsafe-html

    def item_id(self, item: Item) -> str:
        return item.uid if self.immutable else item.rest_id

    def selected(self, name: str) -> bool:
        return self.select is not None and name.lower() in {s.lower() for s in self.select}


def view_of(request: web.Request, *, allow_select: bool = True) -> View:
    prefer: Prefer = request["prefer"]
    sel = parse_select(request) if allow_select else None
    return View(immutable=prefer.immutable_ids, tz=prefer.timezone, select=tuple(sel) if sel else None,
                expand=parse_expand(q(request, "expand")), graph_base=request["graph_base"],
                body_type=prefer.body_content_type, allow_unsafe_html=prefer.allow_unsafe_html)


_TAGS = re.compile(r"<[^>]+>")
_BREAKS = re.compile(r"<br\s*/?>|</p>|</div>|</li>|</tr>", re.IGNORECASE)
_INVISIBLE = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# "Outlook removes any potentially unsafe HTML (for example, JavaScript) embedded in the body"
# unless the request sends Prefer: outlook.allow-unsafe-html (message-get.md).
_SCRIPT = re.compile(r"<script\b.*?</script\s*>|<script\b[^>]*/?>", re.IGNORECASE | re.DOTALL)
_HANDLER = re.compile(r"""\s+on[a-z]+\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_JS_URL = re.compile(r"""(href|src)\s*=\s*(["']?)\s*javascript:[^"'\s>]*\2""", re.IGNORECASE)
_HTML_HEAD = ('<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n'
              '</head>\r\n<body>\r\n')
_HTML_TAIL = "\r\n</body>\r\n</html>\r\n"


def preview(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    text = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        text = html.unescape(_TAGS.sub(" ", _INVISIBLE.sub(" ", text)))
    return " ".join(text.split())[:255]


def html_to_text(content: str) -> str:
    raw = _BREAKS.sub("\n", _INVISIBLE.sub(" ", content))
    text = html.unescape(_TAGS.sub(" ", raw))
    return "\r\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip()) + "\r\n"


def text_to_html(content: str) -> str:
    """A text body as Exchange renders it in HTML: escaped, line breaks as <br>, in a PlainText div."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    inner = "<br>\r\n".join(html.escape(line, quote=False) for line in lines)
    return f'{_HTML_HEAD}<div class="PlainText">{inner}</div>{_HTML_TAIL}'


def wrap_html(content: str) -> str:
    """Stored HTML as a complete document (Exchange always returns <html>...<body>...)."""
    if re.search(r"<html\b", content, re.IGNORECASE):
        return content
    return f"{_HTML_HEAD}{content}{_HTML_TAIL}"


def strip_unsafe(content: str) -> str:
    return _JS_URL.sub(r'\1=\2\2', _HANDLER.sub("", _SCRIPT.sub("", content)))


def body_as(body: dict[str, Any] | None, view: View) -> dict[str, Any]:
    """The body as Graph returns it: HTML by default (a text body is converted), text when the request
    prefers outlook.body-content-type="text" (message-get.md, event-get.md); unsafe HTML removed
    unless Prefer: outlook.allow-unsafe-html."""
    body = body or {"contentType": "text", "content": ""}
    ctype = str(body.get("contentType", "text")).lower()
    content = str(body.get("content") or "")
    if view.body_type == "text":
        return {"contentType": "text", "content": html_to_text(content) if ctype == "html" else content}
    if ctype == "html":
        content = wrap_html(content)
        return {"contentType": "html", "content": content if view.allow_unsafe_html else strip_unsafe(content)}
    return {"contentType": "html", "content": text_to_html(content)}


# Enum members as v1.0 spells them; Graph accepts any casing and answers in this one (lower camel).
ENUMS: dict[str, tuple[str, ...]] = {
    "importance": ("low", "normal", "high"),
    "sensitivity": ("normal", "personal", "private", "confidential"),
    "showAs": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    "attendeeType": ("required", "optional", "resource"),
    "bodyType": ("text", "html"),
    "patternType": ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"),
    "dayOfWeek": ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"),
    "weekIndex": ("first", "second", "third", "fourth", "last"),
    "rangeType": ("endDate", "noEnd", "numbered"),
    "inferenceClassification": ("focused", "other"),
    "flagStatus": ("notFlagged", "complete", "flagged"),
    "onlineMeetingProvider": ("unknown", "skypeForBusiness", "skypeForConsumer", "teamsForBusiness"),
}
_ENUM_INDEX = {kind: {m.lower(): m for m in members} for kind, members in ENUMS.items()}


def enum_value(kind: str, value: Any) -> Any:
    """The documented (lower camel) spelling of an enum member given in any casing; 400 otherwise."""
    if value is None:
        return None
    found = _ENUM_INDEX[kind].get(str(value).lower())
    if found is None:
        from sandbox.graph.errors import GraphError

        raise GraphError(400, "RequestBodyRead", f"Requested value '{value}' was not found.")
    return found


def norm_body(value: Any) -> dict[str, Any]:
    body = dict(value or {})
    body["contentType"] = enum_value("bodyType", body.get("contentType") or "text")
    return body


def email(address: str, name: str | None = None) -> dict[str, Any]:
    return {"emailAddress": {"name": name or address, "address": address}}


def norm_recipients(value: Any) -> list[dict[str, Any]]:
    out = []
    for r in value or []:
        ea = (r or {}).get("emailAddress") or {}
        addr = ea.get("address")
        if addr:
            out.append(email(addr, ea.get("name")))
    return out
