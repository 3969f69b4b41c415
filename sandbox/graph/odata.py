"""OData request options and response shaping shared by the resource handlers.

Reads ``Prefer`` (IdType, outlook.timezone, odata.maxpagesize), ``$select``, ``$expand``,
``$filter``, ``$top``/``$skip``/``$orderby``, and builds Graph-shaped JSON responses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.graph.errors import GRAPH_JSON, GraphError
from sandbox.graph.odata_filter import Node, canon_prop_id, matches, parse_filter


@dataclass(frozen=True)
class Prefer:
    immutable_ids: bool = False
    timezone: str | None = None
    maxpagesize: int | None = None
    body_content_type: str | None = None
    allow_unsafe_html: bool = False

    def applied(self) -> list[str]:
        out = []
        if self.immutable_ids:
            out.append('IdType="ImmutableId"')
        if self.timezone:
            out.append(f'outlook.timezone="{self.timezone}"')
        if self.maxpagesize:
            out.append(f"odata.maxpagesize={self.maxpagesize}")
        if self.body_content_type in ("text", "html"):
            # message-get.md: a response acknowledges either preference with Preference-Applied
            out.append(f'outlook.body-content-type="{self.body_content_type}"')
        return out


_PREF = re.compile(r'\s*([\w.\-]+)\s*(?:=\s*("([^"]*)"|[^,;]*))?')


def parse_prefer(request: web.Request) -> Prefer:
    immutable = False
    tz = None
    page = None
    body_type = None
    unsafe = False
    for header in request.headers.getall("Prefer", []):
        for part in header.split(","):
            m = _PREF.match(part)
            if not m:
                continue
            key = m.group(1).lower()
            val = m.group(3) if m.group(3) is not None else (m.group(2) or "").strip()
            if key == "idtype":
                immutable = val.lower() == "immutableid"
            elif key == "outlook.timezone":
                tz = val
            elif key == "odata.maxpagesize":
                try:
                    page = max(1, int(val))
                except ValueError as exc:
                    raise GraphError(400, "BadRequest", "Invalid odata.maxpagesize preference.") from exc
            elif key == "outlook.body-content-type":
                body_type = val.lower()
            elif key == "outlook.allow-unsafe-html":
                unsafe = True
    return Prefer(immutable, tz, page, body_type, unsafe)


def q(request: web.Request, name: str) -> str | None:
    """Query option by name, with or without the $ prefix, case-insensitive (as Graph accepts)."""
    want = name.lower().lstrip("$")
    for k, v in request.query.items():
        if k.lower().lstrip("$") == want:
            return v
    return None


def split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or quotes."""
    out: list[str] = []
    buf: list[str] = []
    depth, quote = 0, False
    for ch in text:
        if ch == "'":
            quote = not quote
        if not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "," and depth == 0:
                out.append("".join(buf).strip())
                buf = []
                continue
        buf.append(ch)
    if "".join(buf).strip():
        out.append("".join(buf).strip())
    return out


@dataclass(frozen=True)
class Expand:
    ext_single: bool = False
    ext_filter: Node | None = None
    attachments: bool = False
    other: tuple[str, ...] = ()


def parse_expand(text: str | None) -> Expand:
    if not text:
        return Expand()
    ext_single, ext_filter, attachments, other = False, None, False, []
    for part in split_top(text):
        name, _, rest = part.partition("(")
        lname = name.strip().lower()
        if lname == "singlevalueextendedproperties":
            ext_single = True
            if rest:
                inner = rest.rstrip(")")
                m = re.match(r"\s*\$filter\s*=\s*(.*)$", inner, re.IGNORECASE | re.DOTALL)
                if m:
                    ext_filter = parse_filter(m.group(1))
        elif lname == "attachments":
            attachments = True
        elif lname in ("multivalueextendedproperties", "extensions", "instances", "calendar", "childfolders",
                       "exceptionoccurrences"):
            other.append(lname)
        else:
            raise GraphError(400, "BadRequest", f"Could not find a property named '{name.strip()}' to expand.")
    return Expand(ext_single, ext_filter, attachments, tuple(other))


def ext_props_list(ext: dict[str, str], flt: Node | None) -> list[dict[str, str]]:
    props = [{"id": k, "value": v} for k, v in ext.items()]
    if flt is not None:
        props = [p for p in props if matches(flt, p)]
    return props


ALWAYS = ("id", "@odata.etag", "@odata.type", "@removed", "@odata.id")


def apply_select(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return obj
    want = {s.lower() for s in select}
    return {k: v for k, v in obj.items() if k in ALWAYS or k.lower() in want
            or k == "singleValueExtendedProperties"}


def parse_select(request: web.Request) -> list[str] | None:
    s = q(request, "select")
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def find_ext(ext: dict[str, str], prop_id: str) -> str | None:
    want = canon_prop_id(prop_id)
    for k, v in ext.items():
        if canon_prop_id(k) == want:
            return v
    return None


def set_ext(ext: dict[str, str], props: list[dict[str, Any]] | None) -> None:
    """Write singleValueExtendedProperties from a request body (value is always a string)."""
    for p in props or []:
        pid, val = p.get("id"), p.get("value")
        if not isinstance(pid, str):
            raise GraphError(400, "ErrorInvalidExtendedPropertyValue", "Extended property id is required.")
        want = canon_prop_id(pid)
        for k in list(ext):
            if canon_prop_id(k) == want:
                del ext[k]
        if val is not None:
            ext[pid] = str(val)


def graph_json(request: web.Request, body: Any, status: int = 200, headers: dict[str, str] | None = None
               ) -> web.Response:
    hdrs = dict(headers or {})
    prefer: Prefer | None = request.get("prefer")
    if prefer is not None and prefer.applied():
        hdrs["Preference-Applied"] = ", ".join(prefer.applied())
    hdrs["Content-Type"] = GRAPH_JSON
    return web.Response(status=status, body=json.dumps(body).encode(), headers=hdrs)


def context_url(request: web.Request, fragment: str) -> str:
    return f"{request['graph_base']}/$metadata#{fragment}"


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                                            "header is set and payload is of valid JSON format.") from exc
    if not isinstance(data, dict):
        raise GraphError(400, "BadRequest", "Request payload must be a JSON object.")
    return data


async def read_action(request: web.Request) -> dict[str, Any]:
    """Action parameters are case-insensitive in Graph (msgraph-sdk sends PascalCase: "DestinationId").
    Returns the body with top-level keys in camelCase."""
    body = await read_json(request)
    return {(k[:1].lower() + k[1:]): v for k, v in body.items()}


def list_page(request: web.Request, items: list[dict[str, Any]], context: str, *, default_top: int = 10
              ) -> web.Response:
    """A plain (non-delta) collection page with $top/$skip and an @odata.nextLink."""
    top_s, skip_s = q(request, "top"), q(request, "skip")
    prefer: Prefer = request["prefer"]
    try:
        top = int(top_s) if top_s else (prefer.maxpagesize or default_top)
        skip = int(skip_s) if skip_s else 0
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Invalid $top or $skip.") from exc
    if top < 1 or top > 1000:
        raise GraphError(400, "ErrorInvalidArgument", "The value of $top must be between 1 and 1000.")
    page = items[skip: skip + top]
    body: dict[str, Any] = {"@odata.context": context_url(request, context), "value": page}
    if skip + top < len(items):
        url = request.url
        query = {k: v for k, v in url.query.items() if k.lower().lstrip("$") not in ("skip", "top")}
        query["$top"] = str(top)
        query["$skip"] = str(skip + top)
        body["@odata.nextLink"] = str(request["public_url"].with_query(query))
    return graph_json(request, body)


def _sort_key(name: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
    return lambda o: (o.get(name) is None, str(o.get(name) or ""))


def apply_filter_order(request: web.Request, objs: list[dict[str, Any]], default_order: str | None = None
                       ) -> list[dict[str, Any]]:
    flt = q(request, "filter")
    if flt:
        node = parse_filter(flt)
        objs = [o for o in objs if matches(node, o)]
    order = q(request, "orderby") or default_order
    if order:
        for clause in reversed(split_top(order)):
            field, _, direction = clause.strip().partition(" ")
            desc = direction.strip().lower() == "desc"
            objs.sort(key=_sort_key(field), reverse=desc)
    return objs
