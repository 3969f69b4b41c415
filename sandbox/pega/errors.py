"""Pega's error bodies: DX API v2 (`errorClassification`/`errorDetails`) and v1 (`errors`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def v2_error(status: int, classification: str, message: str, *, code: str = "", field: str = "") -> web.Response:
    """A DX API v2 error; a field reference carries Pega's leading `.` (`.caseTypeID`, `.paging`)."""
    if field and not field.startswith("."):
        field = "." + field
    body: dict[str, Any] = {
        "errorClassification": classification,
        "localizedValue": message,
        "errorDetails": [
            {
                "message": code or f"Error_{classification.replace(' ', '_')}",
                "erroneousInputOutputFieldInPage": field,
                "erroneousInputOutputIdentifier": "",
                "errorClassification": "",
                "localizedValue": message,
                "messageParameters": [],
            }
        ],
    }
    return web.json_response(body, status=status)


def v1_error(status: int, error_id: str, message: str) -> web.Response:
    body = {
        "pxObjClass": "Pega-API-CaseManagement-Case",
        "errors": [{"ID": error_id, "message": message, "pxObjClass": "Pega-API-Error"}],
    }
    return web.json_response(body, status=status)


def oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
