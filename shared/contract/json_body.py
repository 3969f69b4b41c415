"""Hostile-input guards for every JSON body the service reads (Pega API, Graph intake, admin API).

Why a guard before any schema: Python's JSON decoder recurses, so a body of a few thousand `[`
raises RecursionError — not a ValueError — and escaped as a 500; and JSON may carry lone UTF-16
surrogates (`"\\ud800"`), which decode into a `str` that cannot be encoded as UTF-8, so the first
hash, table write or log of it raised UnicodeEncodeError, again a 500. Both are the caller's
fault and get a 400 that names what is wrong: :func:`load` bounds the nesting (a limit far above
any document of the contract), :func:`find_unencodable` names the dotted path of the first string
(or object key) that is not valid Unicode text.
"""

from __future__ import annotations

import json
from typing import Any

from shared.contract.errors import ContractViolation

MAX_DEPTH = 32  # the deepest contract document (recurrence.range.*) nests 4 levels


def load(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed JSON of `body`, or ContractViolation (field "body") when it is not JSON,
    not UTF-8, or nested deeper than `max_depth`."""
    try:
        doc = json.loads(body or b"")
    except RecursionError:
        raise ContractViolation(f"the request body is nested more than {max_depth} levels deep",
                                field="body") from None
    except (ValueError, UnicodeDecodeError):
        raise ContractViolation("the request body is not valid JSON (UTF-8)", field="body") from None
    if depth_exceeds(doc, max_depth):
        raise ContractViolation(f"the request body is nested more than {max_depth} levels deep", field="body")
    return doc


def depth_exceeds(doc: Any, max_depth: int) -> bool:
    """Whether containers nest deeper than `max_depth` (iterative: safe on any input)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def is_text(value: str) -> bool:
    """A str that is valid Unicode text (no lone surrogate), i.e. encodable as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_name(value: str) -> str:
    """A field or key name fit for an error message even when it holds a lone surrogate."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def find_unencodable(doc: Any) -> str | None:
    """The dotted path of the first string or key that is not valid Unicode text; None if all are."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                return path or "body"
            continue
        if isinstance(value, dict):
            children: list[tuple[Any, str]] = []
            for key, child in value.items():
                child_path = f"{path}.{safe_name(key)}" if path else safe_name(key)
                if not is_text(key):
                    return child_path
                children.append((child, child_path))
        elif isinstance(value, list):
            children = [(child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))  # document order
    return None


def check_text(doc: Any) -> None:
    """ContractViolation naming the first field whose text is not valid Unicode."""
    bad = find_unencodable(doc)
    if bad is not None:
        raise ContractViolation(f"{bad}: contains an unpaired UTF-16 surrogate (not valid Unicode text)",
                                field=bad)
