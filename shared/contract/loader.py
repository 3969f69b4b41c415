"""Read openapi.yaml once and answer: which operations exist, at which (method, path), and is a
request body valid for one of them (with the offending field named).

The document is the single source of truth: the HTTP triggers (issue 6) validate bodies with
:func:`validate_request`, the Pega simulator builds its outbound URLs with :func:`build_path`,
and a test compares :func:`routes` with the registered function routes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from shared.contract.errors import ContractViolation
from shared.contract.json_body import check_text
from shared.contract.values import check_values

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
FUNCTION_KEY_HEADER = "x-functions-key"
_METHODS = ("get", "put", "post", "patch", "delete")


@dataclass(frozen=True)
class ContractOperation:
    operation_id: str
    method: str  # upper case
    path: str  # as in openapi.yaml, e.g. /pega/v1/appointments/{pegaId}
    path_params: tuple[str, ...]
    request_schema_name: str | None


@functools.lru_cache(maxsize=4)
def load_openapi(path: str | Path | None = None) -> dict[str, Any]:
    """The parsed document (cached; treat as read-only)."""
    with open(path or OPENAPI_PATH, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict) or "paths" not in doc:
        raise ValueError(f"{path or OPENAPI_PATH} is not an OpenAPI document")
    return doc


def operations(doc: dict[str, Any] | None = None) -> list[ContractOperation]:
    doc = doc or load_openapi()
    out = []
    for path, item in doc["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if not op:
                continue
            ref = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get(
                "schema", {}).get("$ref")
            out.append(ContractOperation(
                operation_id=op["operationId"], method=method.upper(), path=path,
                path_params=tuple(re.findall(r"{([^}]+)}", path)),
                request_schema_name=ref.rsplit("/", 1)[1] if ref else None,
            ))
    return out


def routes(doc: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(METHOD, path) for every operation, e.g. ("POST", "/pega/v1/appointments")."""
    return sorted((o.method, o.path) for o in operations(doc))


def function_route(path: str) -> str:
    """The Azure Functions `route=` for an OpenAPI path (servers end in /api, routes have no leading slash)."""
    return path.lstrip("/")


@functools.lru_cache(maxsize=64)
def operation(operation_id: str) -> ContractOperation:
    for op in operations():
        if op.operation_id == operation_id:
            return op
    raise KeyError(f"no operation {operation_id!r} in openapi.yaml")


def build_path(operation_id: str, **params: str) -> str:
    """The request path for an operation with its path parameters URL-encoded (ids contain spaces)."""
    op = operation(operation_id)
    missing = set(op.path_params) - set(params)
    if missing:
        raise KeyError(f"{operation_id} needs path parameters {sorted(missing)}")
    return re.sub(r"{([^}]+)}", lambda m: quote(str(params[m.group(1)]), safe=""), op.path)


def request_schema(operation_id: str) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) for the operation's request body."""
    op = operation(operation_id)
    if op.request_schema_name is None:
        raise KeyError(f"{operation_id} has no request body")
    doc = load_openapi()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{op.request_schema_name}",
        "components": {"schemas": doc["components"]["schemas"]},
    }


@functools.lru_cache(maxsize=64)
def _validator(operation_id: str) -> Draft202012Validator:
    schema = request_schema(operation_id)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_request(operation_id: str, body: Any) -> None:
    """Raise ContractViolation naming the field when `body` does not fit the operation's schema,
    holds text that is not valid Unicode, or a value no schema pattern can rule out (an impossible
    date, an unknown time zone, an end before its start: shared.contract.values)."""
    check_text(body)
    errors = list(_validator(operation_id).iter_errors(body))
    if errors:
        err = _most_specific(errors)
        raise ContractViolation(_message(err), field=_field_of(err))
    check_values(body)


def _leaves(errors: list[ValidationError]) -> list[ValidationError]:
    out: list[ValidationError] = []
    for e in errors:
        if e.context and not (e.validator == "anyOf" and all(c.validator == "required" for c in e.context)):
            out.extend(_leaves(list(e.context)))
        else:
            out.append(e)
    return out


def _most_specific(errors: list[ValidationError]) -> ValidationError:
    """The error a caller can act on: a real leaf (not the "unevaluated" echo of a failed allOf),
    deepest in the document first; ties broken by jsonschema's relevance."""
    leaves = _leaves(errors)
    real = [e for e in leaves if e.validator not in ("unevaluatedProperties", "additionalProperties")
            or not any(x.validator not in ("unevaluatedProperties", "additionalProperties") for x in leaves)]
    # a null branch of "oneOf: [X, null]" is never the useful complaint when X failed deeper
    real = [e for e in real if not (e.validator == "type" and e.validator_value == "null")] or real
    deepest = max(len(e.absolute_path) for e in real)
    return best_match([e for e in real if len(e.absolute_path) == deepest])


def check_idempotency_key(value: str | None) -> str:
    """The Idempotency-Key header value, or ContractViolation naming the header."""
    if not value or not 1 <= len(value) <= 128 or not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise ContractViolation(
            "Idempotency-Key header is required: 1-128 visible ASCII characters", field=IDEMPOTENCY_KEY_HEADER)
    return value


def _path_of(err: ValidationError) -> str:
    return ".".join(str(p) for p in err.absolute_path)


def _field_of(err: ValidationError) -> str:
    base = _path_of(err)
    extra = ""
    if err.validator == "required":
        m = re.match(r"'([^']+)' is a required property", err.message)
        extra = m.group(1) if m else ""
    elif err.validator in ("unevaluatedProperties", "additionalProperties"):
        m = re.search(r"\('([^']+)'", err.message)
        extra = m.group(1) if m else ""
    elif err.validator == "anyOf" and err.context:
        names = [re.match(r"'([^']+)'", e.message) for e in err.context if e.validator == "required"]
        extra = "|".join(n.group(1) for n in names if n)
    return ".".join(p for p in (base, extra) if p)


def _message(err: ValidationError) -> str:
    field = _field_of(err)
    if err.validator == "anyOf" and err.context and all(e.validator == "required" for e in err.context):
        return f"one of these fields is required: {field.replace('|', ', ')}"
    if err.validator in ("unevaluatedProperties", "additionalProperties"):
        return f"unknown field {field}"
    msg = err.message if len(err.message) <= 200 else err.message[:200] + "..."
    return f"{field}: {msg}" if field and err.validator != "required" else msg
