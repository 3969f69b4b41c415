"""A tiny case-insensitive router for Graph paths.

Graph treats segment names case-insensitively and accepts OData key syntax
(``mailFolders('inbox')``) as well as plain segments (``mailFolders/inbox``), and msgraph-sdk calls
functions with parentheses (``delta()``). Paths are normalized to plain segments before matching.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]

_KEY = re.compile(r"^([^()]+)\((.*)\)$")


def normalize_segments(raw_path: str) -> list[str]:
    """Split an encoded path into decoded segments, expanding name('key') and name() forms."""
    out: list[str] = []
    for seg in raw_path.split("?")[0].split("/"):
        if not seg:
            continue
        seg = unquote(seg)
        m = _KEY.match(seg)
        if m:
            out.append(m.group(1))
            key = m.group(2).strip()
            if key:
                if len(key) >= 2 and key[0] == key[-1] == "'":
                    key = key[1:-1].replace("''", "'")
                out.append(key)
        else:
            out.append(seg)
    return out


@dataclass
class Route:
    method: str
    parts: list[str]
    handler: Handler
    scope: str  # permission family: mail, calendar, contacts, users, subscriptions, batch


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, scope: str) -> None:
        self.routes.append(Route(method.upper(), [p for p in pattern.strip("/").split("/") if p], handler, scope))

    def match(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]] | str | None:
        """The route and its params; "405" when the path exists with another method; None when unknown."""
        path_hit = False
        best: tuple[int, Route, dict[str, str]] | None = None
        for r in self.routes:
            if len(r.parts) != len(segments):
                continue
            params: dict[str, str] = {}
            ok = True
            for pat, seg in zip(r.parts, segments, strict=True):
                if pat.startswith("{"):
                    params[pat[1:-1]] = seg
                elif pat.lower() != seg.lower():
                    ok = False
                    break
            if not ok:
                continue
            path_hit = True
            if r.method == method.upper():
                literal = sum(1 for x in r.parts if not x.startswith("{"))
                if best is None or literal > best[0]:
                    best = (literal, r, params)
        if best is not None:
            return best[1], best[2]
        return "405" if path_hit else None
