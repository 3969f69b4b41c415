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

    def item_id(self, item: Item) -> str:
        return item.uid if self.immutable else item.rest_id

    def selected(self, name: str) -> bool:
        return self.select is not None and name.lower() in {s.lower() for s in self.select}


def view_of(request: web.Request, *, allow_select: bool = True) -> View:
    prefer: Prefer = request["prefer"]
    sel = parse_select(request) if allow_select else None
    return View(immutable=prefer.immutable_ids, tz=prefer.timezone, select=tuple(sel) if sel else None,
                expand=parse_expand(q(request, "expand")), graph_base=request["graph_base"],
                body_type=prefer.body_content_type)


_TAGS = re.compile(r"<[^>]+>")
_BREAKS = re.compile(r"<br\s*/?>|</p>|</div>|</li>|</tr>", re.IGNORECASE)


def preview(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    text = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        text = html.unescape(_TAGS.sub(" ", text))
    return " ".join(text.split())[:255]


def body_as(body: dict[str, Any] | None, view: View) -> dict[str, Any]:
    """The body, converted to text when the request prefers outlook.body-content-type="text"."""
    body = body or {"contentType": "text", "content": ""}
    if view.body_type == "text" and str(body.get("contentType", "")).lower() == "html":
        raw = _BREAKS.sub("\n", str(body.get("content") or ""))
        text = html.unescape(_TAGS.sub(" ", raw))
        return {"contentType": "text", "content": "\n".join(" ".join(line.split()) for line in text.splitlines()
                                                            if line.strip())}
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
