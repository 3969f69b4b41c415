"""Small helpers the HTTP triggers share: JSON answers and problem bodies with a reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func

# Every answer says what it is: no browser may sniff an echoed or JSON body into HTML.
NOSNIFF: Mapping[str, str] = {"X-Content-Type-Options": "nosniff"}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json",
                             headers={**NOSNIFF, **(headers or {})})


def problem(status: int, reason: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> func.HttpResponse:
    """An RFC 9457-style problem body; `reason` names the field or condition at fault."""
    return func.HttpResponse(json.dumps({"status": status, "error": reason, **extra}), status_code=status,
                             mimetype="application/problem+json", headers={**NOSNIFF, **(headers or {})})
