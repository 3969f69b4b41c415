"""DX API v2 data views: which rows a data view holds, and its query language.

Filters follow wire-shapes §14: named conditions (`F1`...) with `lhs.field`, a comparator,
`rhs.value` (or `rhs.values` for IN/NOT_IN), optional `ignoreCase`, combined by `logic` with
AND/OR/NOT and parentheses (all ANDed when `logic` is absent). Paging is either
`pageNumber`+`pageSize` (max 5000) or `maxResultsToFetch`, never both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.pega.store import Store, index_key


class QueryError(ValueError):
    """A malformed query: answered 400 naming `field`."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _source(store: Store, data_view_id: str) -> str | None:
    """What a data view lists: a record kind, "operator", or None (no such data view)."""
    dv = store.mapping.data_views
    if data_view_id == dv.operators:
        return "operator"
    return {
        dv.contacts: "contact", dv.organizations: "organization", dv.leads: "lead",
        dv.opportunities: "opportunity", dv.appointments: "appointment", dv.emails: "email",
        "D_TaskList": "task", "D_AccountList": "account",
    }.get(data_view_id)


def data_view_exists(store: Store, data_view_id: str) -> bool:
    return _source(store, data_view_id) is not None


def data_view_rows(store: Store, data_view_id: str, body: Any = None) -> list[dict[str, Any]] | None:
    """Rows of a data view, or None when the data view does not exist. With the query `body`, a filter
    that ANDs an EQ or IN condition narrows the rows through the store's field index first (the query
    still runs on them in full: the index only has to find a superset, in creation order)."""
    kind = _source(store, data_view_id)
    if kind is None:
        return None
    if kind == "operator":
        dv, of = store.mapping.data_views, store.mapping.operator
        return [
            {"pxObjClass": "Data-Admin-Operator-ID", dv.id_field: f"DATA-ADMIN-OPERATOR-ID {o.operator_id.upper()}",
             of.operator_id: o.operator_id, of.email: o.email, of.name: o.name}
            for o in store.operators.values()
        ]
    narrowed = _indexed_candidates(store, kind, body)
    return [r.row() for r in (store.of_kind(kind) if narrowed is None else narrowed)]


_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _indexed_candidates(store: Store, kind: str, body: Any) -> list[Any] | None:
    """Records that may match the filter, found through field indexes: a filter that ANDs all its
    conditions, one of them EQ/IN on a field, or one that ORs all its conditions, each of them EQ/IN on a
    field (the union, as a database unions two index scans); None otherwise (every record of the kind is
    a candidate)."""
    try:
        flt = body["query"]["filter"]
        conditions = flt["filterConditions"]
        logic = flt.get("logic") or ""
    except (KeyError, TypeError, AttributeError):
        return None
    if not isinstance(conditions, dict) or not isinstance(logic, str):
        return None
    words = _WORDS.findall(logic)
    operators = {w.upper() for w in words} & {"AND", "OR", "NOT"}
    if logic and (set(words) - {"AND", "and", "OR", "or"} != set(conditions) or "NOT" in operators):
        return None  # a condition left out, or negated: not narrowed
    if operators == {"OR"}:  # F1 OR F2 ...: every condition must be indexable
        found: dict[str, Any] = {}
        for cond in conditions.values():
            part = _index_lookup(store, kind, cond)
            if part is None:
                return None
            found.update((r.id, r) for r in part)
        return [found[rid] for rid in sorted(found, key=store.position)]
    if "OR" in operators:
        return None  # a mix: not narrowed
    for cond in conditions.values():  # a plain AND of every condition
        part = _index_lookup(store, kind, cond)
        if part is not None:
            return part
    return None


def _index_lookup(store: Store, kind: str, cond: Any) -> list[Any] | None:
    """The records an EQ/IN condition on a field matches (through the field index), or None."""
    if not isinstance(cond, dict) or not isinstance(cond.get("lhs"), dict):
        return None
    comparator = str(cond.get("comparator", "")).upper()
    path, rhs, ignore = cond["lhs"].get("field"), cond.get("rhs") or {}, bool(cond.get("ignoreCase"))
    if not isinstance(path, str) or not isinstance(rhs, dict):
        return None
    values: Any = None
    if comparator == "EQ" and "value" in rhs:
        values = [rhs["value"]]
    elif comparator == "IN":
        values = rhs.get("values", rhs.get("value"))
    if not isinstance(values, list) or any(v is None or isinstance(v, (dict, list)) for v in values):
        return None
    keys = [k for k in (index_key(v, ignore) for v in values) if k is not None]
    return store.find_eq(kind, path, keys, ignore_case=ignore)


def _get(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _norm(v: Any, ignore_case: bool) -> Any:
    return v.lower() if ignore_case and isinstance(v, str) else v


def _compare(comparator: str, left: Any, cond: dict[str, Any], ignore_case: bool) -> bool:
    rhs = cond.get("rhs") or {}
    if comparator == "IS_NULL":
        return left is None or left == ""
    if comparator == "IS_NOT_NULL":
        return not (left is None or left == "")
    if comparator == "IS_TRUE":
        return left is True or str(left).lower() == "true"
    if comparator == "IS_FALSE":
        return not (left is True or str(left).lower() == "true")
    if comparator in ("IN", "NOT_IN"):
        values = rhs.get("values", rhs.get("value"))
        if not isinstance(values, list):
            raise QueryError(f"{comparator} needs rhs.values as a list", "rhs.values")
        hit = _norm(left, ignore_case) in [_norm(v, ignore_case) for v in values]
        return hit if comparator == "IN" else not hit
    if "value" not in rhs:
        raise QueryError(f"{comparator} needs rhs.value", "rhs.value")
    right = _norm(rhs["value"], ignore_case)
    left = _norm(left, ignore_case)
    if comparator == "EQ":
        return left == right or (left is not None and str(left) == str(right))
    if comparator == "NEQ":
        return not (left == right or (left is not None and str(left) == str(right)))
    if comparator in ("CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH"):
        text, sub = ("" if left is None else str(left)), str(right)
        result = {
            "CONTAINS": sub in text, "NOT_CONTAINS": sub not in text,
            "STARTS_WITH": text.startswith(sub), "ENDS_WITH": text.endswith(sub),
        }[comparator]
        return result
    if comparator in ("GT", "GTE", "LT", "LTE"):
        if left is None:
            return False
        try:
            a, b = (float(left), float(right)) if _numeric(left) and _numeric(right) else (str(left), str(right))
        except (TypeError, ValueError):
            return False
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[comparator]
    raise QueryError(f"unknown comparator {comparator}", "comparator")


def _numeric(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    try:
        float(str(v))
    except ValueError:
        return False
    return True


_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_]*)")


def compile_logic(logic: str, names: set[str]) -> Callable[[dict[str, bool]], bool]:
    """Parse `F1 AND (F2 OR NOT F3)` into a function of the condition results."""
    tokens: list[str] = []
    pos = 0
    text = logic.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise QueryError(f"cannot parse filter logic near {text[pos:pos + 10]!r}", "filter.logic")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    i = 0

    def peek() -> str | None:
        return tokens[i] if i < len(tokens) else None

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise QueryError("filter logic ends too early", "filter.logic")
        i += 1
        return tokens[i - 1]

    def expr() -> Callable[[dict[str, bool]], bool]:
        left = term()
        while (peek() or "").upper() == "OR":
            take()
            right, prev = term(), left
            left = lambda env, a=prev, b=right: a(env) or b(env)  # noqa: E731
        return left

    def term() -> Callable[[dict[str, bool]], bool]:
        left = factor()
        while (peek() or "").upper() == "AND":
            take()
            right, prev = factor(), left
            left = lambda env, a=prev, b=right: a(env) and b(env)  # noqa: E731
        return left

    def factor() -> Callable[[dict[str, bool]], bool]:
        tok = take()
        if tok.upper() == "NOT":
            inner = factor()
            return lambda env: not inner(env)
        if tok == "(":
            inner = expr()
            if take() != ")":
                raise QueryError("unbalanced parentheses in filter logic", "filter.logic")
            return inner
        if tok not in names:
            raise QueryError(f"filter logic names unknown condition {tok}", "filter.logic")
        return lambda env: env[tok]

    fn = expr()
    if i != len(tokens):
        raise QueryError(f"unexpected {tokens[i]!r} in filter logic", "filter.logic")
    return fn


def _distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`distinctResultsOnly`: equal rows (over the selected fields) once, in first-seen order."""
    seen: set[str] = set()
    out = []
    for row in rows:
        key = repr(sorted(row.items()))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def check_count_query(body: dict[str, Any]) -> None:
    """`/count` with a query must name what to count: a query without `select` is a 400 in DX API v2."""
    query = body.get("query")
    if query is not None and (not isinstance(query, dict) or not query.get("select")):
        raise QueryError("a count query needs query.select", "query.select")


def run_query(rows: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """Filter, sort, select and page `rows` per the request body; returns the response body."""
    query = body.get("query") or {}
    if not isinstance(query, dict):
        raise QueryError("query must be an object", "query")
    flt = query.get("filter") or {}
    conditions = flt.get("filterConditions") or {}
    if not isinstance(conditions, dict):
        raise QueryError("filterConditions must be an object", "filter.filterConditions")
    for name, cond in conditions.items():
        if not isinstance(cond, dict) or not isinstance(cond.get("lhs"), dict) or "field" not in cond["lhs"]:
            raise QueryError(f"condition {name} needs lhs.field", f"filter.filterConditions.{name}.lhs.field")
        if "comparator" not in cond:
            raise QueryError(f"condition {name} needs a comparator", f"filter.filterConditions.{name}.comparator")
    logic_text = flt.get("logic") or " AND ".join(conditions)
    logic = compile_logic(logic_text, set(conditions)) if conditions else (lambda env: True)

    def keep(row: dict[str, Any]) -> bool:
        env = {
            name: _compare(str(c["comparator"]).upper(), _get(row, c["lhs"]["field"]), c, bool(c.get("ignoreCase")))
            for name, c in conditions.items()
        }
        return logic(env)

    result = [r for r in rows if keep(r)]
    for sort in reversed(query.get("sortBy") or []):
        fld, desc = sort.get("field"), str(sort.get("type", "ASC")).upper() == "DESC"
        result.sort(key=lambda r, f=fld: (_get(r, f) is None, str(_get(r, f) or "")), reverse=desc)
    select = [s.get("field") for s in (query.get("select") or []) if isinstance(s, dict) and s.get("field")]
    if select:
        result = [{"pxObjClass": r.get("pxObjClass"), **{f: _get(r, f) for f in select}} for r in result]
    if query.get("distinctResultsOnly"):
        result = _distinct(result)

    paging = body.get("paging") or {}
    out: dict[str, Any] = {"pxObjClass": "Pega-API-DataExploration-Data"}
    if "maxResultsToFetch" in paging and ("pageNumber" in paging or "pageSize" in paging):
        raise QueryError("paging: use pageNumber/pageSize or maxResultsToFetch, not both", "paging")
    if "pageNumber" in paging or "pageSize" in paging:
        number, size = int(paging.get("pageNumber", 1)), int(paging.get("pageSize", 100))
        if number < 1 or not 1 <= size <= 5000:
            raise QueryError("pageNumber must be >= 1 and pageSize 1..5000", "paging.pageSize")
        page = result[(number - 1) * size: number * size]
        for rank, row in enumerate(page, start=(number - 1) * size + 1):
            row["pzRank"] = rank
        out.update({"pageNumber": number, "pageSize": size, "data": page})
    else:
        limit = int(paging.get("maxResultsToFetch", 5000))
        if limit < 1:
            raise QueryError("maxResultsToFetch must be >= 1", "paging.maxResultsToFetch")
        out.update({"data": result[:limit], "resultCount": min(limit, len(result)),
                    "hasMoreResults": len(result) > limit, "pageSize": limit})
    out["queryStats"] = {"pxObjClass": "Embed-DataExploration-QueryStats", "sourceType": "RDBMS",
                         "sourceExecutionTime": "0.1 ms"}
    return out
