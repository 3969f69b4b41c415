"""A small OData $filter parser and evaluator, enough for what Outlook clients send.

Supports ``eq ne gt ge lt le``, ``and or not``, parentheses, ``contains/startswith/endswith``, and
lambda ``any`` over collections, e.g.
``singleValueExtendedProperties/Any(ep: ep/id eq 'String {guid} Name PegaId' and ep/value eq 'X')``.
String equality is case-insensitive, as in Exchange; extended-property ids compare their type and
GUID case-insensitively and their name case-sensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.graph.clock import parse_iso
from sandbox.graph.errors import GraphError

_DT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?")
_NUM = re.compile(r"-?\d+(\.\d+)?")
_WORD = re.compile(r"[A-Za-z_@#$][\w/.@#$]*")
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


@dataclass
class Tok:
    kind: str  # str, num, dt, word, punct
    value: Any


def _tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            j = i + 1
            buf = []
            while True:
                if j >= len(text):
                    raise GraphError(400, "BadRequest", "Invalid filter clause: unterminated string literal.")
                if text[j] == "'":
                    if j + 1 < len(text) and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            toks.append(Tok("str", "".join(buf)))
            i = j + 1
        elif ch in "(),:":
            toks.append(Tok("punct", ch))
            i += 1
        elif ch.isdigit() or (ch == "-" and i + 1 < len(text) and text[i + 1].isdigit()):
            m = _DT.match(text, i)
            if m and ("-" in m.group(0)[1:]):
                toks.append(Tok("dt", parse_iso(m.group(0))))
                i = m.end()
            else:
                m2 = _NUM.match(text, i)
                assert m2 is not None
                toks.append(Tok("num", float(m2.group(0))))
                i = m2.end()
        else:
            m = _WORD.match(text, i)
            if not m:
                raise GraphError(400, "BadRequest", f"Invalid filter clause near '{text[i:i + 20]}'.")
            toks.append(Tok("word", m.group(0)))
            i = m.end()
    return toks


Node = tuple[Any, ...]


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.pos = 0

    def peek(self) -> Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise GraphError(400, "BadRequest", "Invalid filter clause: unexpected end.")
        self.pos += 1
        return tok

    def expect(self, punct: str) -> None:
        tok = self.take()
        if tok.kind != "punct" or tok.value != punct:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: expected '{punct}'.")

    def is_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.value.lower() in words

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise GraphError(400, "BadRequest", "Invalid filter clause: trailing tokens.")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.is_word("or"):
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.is_word("and"):
            self.take()
            node = ("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.is_word("not"):
            self.take()
            return ("not", self.unary())
        left = self.primary()
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.value.lower() in _OPS:
            self.take()
            return ("cmp", tok.value.lower(), left, self.primary())
        return left

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "punct" and tok.value == "(":
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind in ("str", "num", "dt"):
            return ("lit", tok.value)
        if tok.kind == "word":
            w = tok.value
            lw = w.lower()
            if lw in ("true", "false"):
                return ("lit", lw == "true")
            if lw == "null":
                return ("lit", None)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "punct" and nxt.value == "(":
                if lw.endswith("/any") or lw.endswith("/all"):
                    self.take()
                    var = self.take()
                    if var.kind != "word":
                        raise GraphError(400, "BadRequest", "Invalid lambda expression.")
                    if self.peek() is not None and self.peek().kind == "punct" and self.peek().value == ")":  # type: ignore[union-attr]
                        self.take()
                        return ("any", w[:-4], None, None)
                    self.expect(":")
                    body = self.or_()
                    self.expect(")")
                    return ("any" if lw.endswith("/any") else "all", w[:-4], var.value, body)
                self.take()
                args = [self.or_()]
                while self.peek() is not None and self.peek().value == ",":  # type: ignore[union-attr]
                    self.take()
                    args.append(self.or_())
                self.expect(")")
                return ("fn", lw, args)
            return ("path", w)
        raise GraphError(400, "BadRequest", "Invalid filter clause.")


def parse_filter(text: str) -> Node:
    return _Parser(_tokenize(text)).parse()


def canon_prop_id(value: str) -> str:
    """Extended property ids: type, GUID and the 'Name'/'Id' keywords case-insensitive; the name itself not."""
    m = re.match(r"^\s*(\w+)\s+\{([0-9a-fA-F-]+)\}\s+(Name|Id)\s+(.+?)\s*$", value, re.IGNORECASE)
    if m:
        typ, guid, kw, name = m.groups()
        if kw.lower() == "id":
            name = name.lower()
        return f"{typ.lower()} {{{guid.lower()}}} {kw.lower()} {name}"
    m = re.match(r"^\s*(\w+)\s+(0x[0-9a-fA-F]+)\s*$", value)
    if m:
        return f"{m.group(1).lower()} 0x{int(m.group(2), 16):04x}"
    return value


def _resolve(path: str, env: dict[str, Any], obj: dict[str, Any]) -> Any:
    parts = path.split("/")
    cur: Any
    if parts[0] in env:
        cur = env[parts[0]]
        parts = parts[1:]
    else:
        cur = obj
    for p in parts:
        if isinstance(cur, dict):
            found = None
            for k, v in cur.items():
                if k.lower() == p.lower():
                    found = v
                    break
            cur = found
        else:
            return None
    return cur


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, datetime) and isinstance(b, str):
        return a, parse_iso(b)
    if isinstance(b, datetime) and isinstance(a, str):
        try:
            return parse_iso(a), b
        except ValueError:
            return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold(), b.casefold()
    if isinstance(a, bool) or isinstance(b, bool):
        return a, b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a), float(b)
    return a, b


def _eval(node: Node, obj: dict[str, Any], env: dict[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "path":
        return _resolve(node[1], env, obj)
    if op == "and":
        return bool(_eval(node[1], obj, env)) and bool(_eval(node[2], obj, env))
    if op == "or":
        return bool(_eval(node[1], obj, env)) or bool(_eval(node[2], obj, env))
    if op == "not":
        return not _eval(node[1], obj, env)
    if op == "cmp":
        _, cop, ln, rn = node
        a, b = _eval(ln, obj, env), _eval(rn, obj, env)
        if (ln[0] == "path" and ln[1].lower().endswith("/id") and isinstance(a, str) and isinstance(b, str)
                and ("{" in b or "0x" in b.lower())):
            a, b = canon_prop_id(a), canon_prop_id(b)
            return (a == b) if cop == "eq" else (a != b) if cop == "ne" else False
        if a is None or b is None:
            return (a is b) if cop == "eq" else (a is not b) if cop == "ne" else False
        a, b = _coerce(a, b)
        try:
            return {"eq": a == b, "ne": a != b, "gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[cop]
        except TypeError:
            return False
    if op in ("any", "all"):
        coll = _resolve(node[1], env, obj) or []
        if node[2] is None:
            return bool(coll)
        results = (bool(_eval(node[3], obj, {**env, node[2]: el})) for el in coll)
        return any(results) if op == "any" else all(results)
    if op == "fn":
        name, args = node[1], node[2]
        if name == "cast":  # cast(ep/value, Edm.Int32): singlevaluelegacyextendedproperty-get.md
            return _cast(_eval(args[0], obj, env), args[1] if len(args) > 1 else ("path", ""))
        vals = [_eval(a, obj, env) for a in args]
        if name in ("contains", "startswith", "endswith"):
            if not isinstance(vals[0], str) or not isinstance(vals[1], str):
                return False
            s, sub = vals[0].casefold(), vals[1].casefold()
            return {"contains": sub in s, "startswith": s.startswith(sub), "endswith": s.endswith(sub)}[name]
        raise GraphError(400, "BadRequest", f"Unsupported filter function '{name}'.")
    raise GraphError(400, "BadRequest", "Invalid filter clause.")


_CASTS = {"edm.int16": int, "edm.int32": int, "edm.int64": int, "edm.double": float, "edm.single": float,
          "edm.decimal": float, "edm.string": str, "edm.boolean": lambda v: str(v).lower() == "true"}


def _cast(value: Any, type_node: Node) -> Any:
    type_name = str(type_node[1]).lower() if type_node[0] in ("path", "lit") else ""
    conv = _CASTS.get(type_name)
    if conv is None:
        raise GraphError(400, "BadRequest", f"Unsupported cast target '{type_node[1]}'.")
    if value is None:
        return None
    try:
        return conv(value)
    except (TypeError, ValueError):
        return None


def matches(node: Node, obj: dict[str, Any]) -> bool:
    return bool(_eval(node, obj, {}))
