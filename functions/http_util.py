"""Small helpers the HTTP triggers share: JSON answers and problem bodies with a reason."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json",
                             headers=headers)


def problem(status: int, reason: str, **extra: Any) -> func.HttpResponse:
    """An RFC 9457-style problem body; `reason` names the field or condition at fault."""
    return func.HttpResponse(json.dumps({"status": status, "error": reason, **extra}), status_code=status,
                             mimetype="application/problem+json")
