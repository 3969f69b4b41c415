"""Small helpers the HTTP triggers share: JSON answers and problem bodies with a reason."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import azure.functions as func

from shared.errors import InvalidMessageError, PermanentError, TransientError
from shared.ops.privacy import sanitize_error

log = logging.getLogger(__name__)

# Every answer says what it is: no browser may sniff an echoed or JSON body into HTML.
NOSNIFF: Mapping[str, str] = {"X-Content-Type-Options": "nosniff"}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json",
                             headers={**NOSNIFF, **(headers or {})})


def problem(status: int, reason: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> func.HttpResponse:
    """An RFC 9457-style problem body; `reason` names the field or condition at fault."""
    return func.HttpResponse(json.dumps({"status": status, "error": reason, **extra}), status_code=status,
                             mimetype="application/problem+json", headers={**NOSNIFF, **(headers or {})})


def answering(handler: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
              ) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
    """One place that turns the typed errors of shared/ into answers of the admin API: the caller's
    mistake is a 400, something Exchange or Pega will not do a 404/409, a dependency that is down a
    503 — never a 500."""

    @functools.wraps(handler)
    async def answer(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req)
        except InvalidMessageError as exc:
            return problem(400, str(exc))
        except PermanentError as exc:
            status = 404 if getattr(exc, "status", None) == 404 else 409
            return problem(status, f"refused by a service: {sanitize_error(str(exc))}")
        except TransientError as exc:
            log.warning("%s: %s", handler.__name__, type(exc).__name__)
            return problem(503, f"a service is unavailable: {type(exc).__name__}", headers={"Retry-After": "5"})

    return answer
