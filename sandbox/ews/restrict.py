"""FindItem restrictions (the SearchExpression subset clients use): IsEqualTo, IsNotEqualTo,
IsGreaterThan(OrEqualTo), IsLessThan(OrEqualTo), Contains, Exists, And, Or, Not — over FieldURI and
ExtendedFieldURI paths, compared as text (times compare correctly as ISO UTC strings)."""

from __future__ import annotations

from lxml import etree

from sandbox.ews.fields import ext_key, tag_of
from sandbox.ews.soap import ItemError, local, t
from sandbox.ews.store import Item


def _value(path: etree._Element, item: Item) -> list[str]:
    name = local(path)
    if name == "ExtendedFieldURI":
        found = item.ext.get(ext_key(path))
        return [v.text or "" for v in found.iter(t("Value"))] if found is not None else []
    if name == "IndexedFieldURI":
        container = item.props.get(tag_of(path.get("FieldURI", "")))
        if container is None:
            return []
        return ["".join(e.itertext()) for e in container if e.get("Key") == path.get("FieldIndex")]
    el = item.props.get(tag_of(path.get("FieldURI", "")))
    if el is None:
        return []
    strings = [s.text or "" for s in el.iter(t("String"))]
    return strings or ["".join(el.itertext())]


def _constant(expr: etree._Element) -> str:
    const = expr.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
    if const is None:
        const = expr.find(t("Constant"))
    if const is None:
        raise ItemError("ErrorInvalidRestriction", "The restriction is not valid.")
    return str(const.get("Value") or "")


def _norm(v: str) -> str:
    return v.replace(".0000000Z", "Z").replace("+00:00", "Z")


def matches(expr: etree._Element, item: Item) -> bool:
    op = local(expr)
    if op == "And":
        return all(matches(e, item) for e in expr)
    if op == "Or":
        return any(matches(e, item) for e in expr)
    if op == "Not":
        return not matches(expr[0], item)
    path = expr[0]
    values = [_norm(v) for v in _value(path, item)]
    if op == "Exists":
        return bool(values)
    const = _norm(_constant(expr))
    if op == "Contains":
        mode = expr.get("ContainmentComparison") or ""
        fold = "IgnoreCase" in mode
        c = const.lower() if fold else const
        vals = [v.lower() for v in values] if fold else values
        if expr.get("ContainmentMode") == "FullString":
            return c in vals
        if expr.get("ContainmentMode") == "Prefixed":
            return any(v.startswith(c) for v in vals)
        return any(c in v for v in vals)
    compare = {"IsEqualTo": lambda a: a == const, "IsNotEqualTo": lambda a: a != const,
               "IsGreaterThan": lambda a: a > const, "IsGreaterThanOrEqualTo": lambda a: a >= const,
               "IsLessThan": lambda a: a < const, "IsLessThanOrEqualTo": lambda a: a <= const}.get(op)
    if compare is None:
        raise ItemError("ErrorUnsupportedQueryFilter", f"The restriction {op} is not supported.")
    if op == "IsNotEqualTo":
        return all(compare(v) for v in values)
    return any(compare(v) for v in values)
