"""Graph-style error bodies (wire-shapes §10) and Entra AADSTS error bodies (wire-shapes §13)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from aiohttp import web

GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


class GraphError(Exception):
    """Raised by handlers; rendered by the error middleware as a Graph error body."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(what: str = "The specified object was not found in the store.") -> GraphError:
    return GraphError(404, "ErrorItemNotFound", what)


def bad_request(message: str, code: str = "ErrorInvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def error_body(code: str, message: str, request_id: str, client_request_id: str | None = None,
               inner: dict[str, str] | None = None) -> dict[str, object]:
    inner_error: dict[str, str] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    if inner:
        inner_error.update(inner)
    return {"error": {"code": code, "message": message, "innerError": inner_error}}


def error_response(status: int, code: str, message: str, request: web.Request | None = None,
                   headers: dict[str, str] | None = None, inner: dict[str, str] | None = None) -> web.Response:
    rid = (request.get("request_id") if request is not None else None) or str(uuid.uuid4())
    crid = request.headers.get("client-request-id") if request is not None else None
    body = error_body(code, message, rid, crid, inner)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=headers or {})


def throttled_response(retry_after: float, request: web.Request | None, message: str) -> web.Response:
    ra = f"{retry_after:g}"
    return error_response(429, "TooManyRequests", "Please retry again later.", request,
                          headers={"Retry-After": ra},
                          inner={"code": "429", "status": "429", "message": message})


def aadsts_response(status: int, error: str, code: int, description: str) -> web.Response:
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    ts = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}",
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
