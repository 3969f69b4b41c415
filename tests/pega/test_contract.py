"""openapi.yaml: a valid OpenAPI 3.1 document, and the loader's routes, paths and body validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from shared.contract import (
    ContractViolation,
    build_path,
    check_idempotency_key,
    function_route,
    load_openapi,
    operations,
    request_schema,
    routes,
    validate_request,
)
from shared.contract.loader import OPENAPI_PATH

EXPECTED_ROUTES = [
    ("GET", "/pega/v1/operations/{operationId}"),
    ("PATCH", "/pega/v1/appointments/{pegaId}"),
    ("PATCH", "/pega/v1/contacts/{pegaId}"),
    ("POST", "/pega/v1/appointments"),
    ("POST", "/pega/v1/appointments/{pegaId}/cancel"),
    ("POST", "/pega/v1/contacts"),
    ("POST", "/pega/v1/contacts/{pegaId}/close"),
    ("POST", "/pega/v1/emails"),
    ("POST", "/pega/v1/emails/{originalPegaId}/reply"),
    ("POST", "/pega/v1/emails/{originalPegaId}/reply-all"),
]

APPOINTMENT: dict[str, Any] = {
    "pegaId": "PEGASA-WORK-APPOINTMENT A-1001", "operator": "alex", "mailbox": "alex@contoso.example",
    "subject": "Review", "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "W. Europe Standard Time"},
    "attendees": [{"email": "dana@fabrikam.example", "name": "Dana", "type": "required"}],
    "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
                   "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 4}},
    "body": {"contentType": "html", "content": "<p>hi</p>"}, "changedAt": "2026-11-22T06:00:00.123Z",
}


def test_openapi_document_is_valid() -> None:
    spec, _ = read_from_filename(str(OPENAPI_PATH))
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_routes_and_security() -> None:
    assert routes() == EXPECTED_ROUTES
    doc = load_openapi()
    assert doc["security"] == [{"entraBearer": [], "functionKey": []}]
    assert doc["components"]["securitySchemes"]["functionKey"]["name"] == "x-functions-key"
    for op in operations():
        params = doc["paths"][op.path][op.method.lower()].get("parameters", [])
        names = [p.get("name") or p.get("$ref", "").rsplit("/", 1)[-1] for p in params]
        if op.method != "GET":
            assert "IdempotencyKey" in names, op.operation_id
            assert op.request_schema_name, op.operation_id
            assert "202" in doc["paths"][op.path][op.method.lower()]["responses"]


def test_function_route_and_build_path() -> None:
    assert function_route("/pega/v1/appointments/{pegaId}") == "pega/v1/appointments/{pegaId}"
    assert build_path("cancelAppointment", pegaId="PEGASA-WORK-APPOINTMENT A-1001") == \
        "/pega/v1/appointments/PEGASA-WORK-APPOINTMENT%20A-1001/cancel"
    with pytest.raises(KeyError):
        build_path("cancelAppointment")


def test_request_schema_is_self_contained() -> None:
    from jsonschema import Draft202012Validator

    schema = request_schema("createAppointment")
    Draft202012Validator.check_schema(schema)
    assert Draft202012Validator(schema).is_valid(APPOINTMENT)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("subject"), "subject"),
    (lambda b: b["start"].pop("timeZone"), "start.timeZone"),
    (lambda b: b.update(start={"dateTime": "tomorrow", "timeZone": "UTC"}), "start.dateTime"),
    (lambda b: b["attendees"].append({"email": "not-an-address"}), "attendees.1.email"),
    (lambda b: b["attendees"][0].update(type="vip"), "attendees.0.type"),
    (lambda b: b.update(colour="red"), "colour"),
    (lambda b: (b.pop("operator"), b.pop("mailbox")), "operator|mailbox"),
    (lambda b: b["recurrence"]["pattern"].update(interval=0), "recurrence.pattern.interval"),
    (lambda b: b.update(changedAt="2026-11-22 06:00"), "changedAt"),
    (lambda b: b["body"].update(contentType="rtf"), "body.contentType"),
])
def test_invalid_bodies_name_the_field(mutate: Any, field: str) -> None:
    body = copy.deepcopy(APPOINTMENT)
    mutate(body)
    with pytest.raises(ContractViolation) as err:
        validate_request("createAppointment", body)
    assert err.value.field == field


def test_update_needs_a_changed_field_and_create_bodies_validate() -> None:
    with pytest.raises(ContractViolation, match="one of these fields"):
        validate_request("updateAppointment", {"operator": "alex", "changedAt": "2026-11-22T06:00:00Z"})
    validate_request("updateAppointment", {"mailbox": "alex@contoso.example", "changedAt": "2026-11-22T06:00:00Z",
                                           "recurrence": None})
    validate_request("cancelAppointment", {"operator": "alex", "changedAt": "2026-11-22T06:00:00Z"})
    validate_request("sendEmail", {"pegaId": "E-1", "operator": "alex", "subject": "Hi", "changedAt": "2026-11-22T06:00:00Z",
                                   "body": {"content": "x"}, "to": [{"email": "dana@fabrikam.example"}],
                                   "attachments": [{"name": "a.txt", "contentBytes": "aGVsbG8="}]})
    with pytest.raises(ContractViolation) as err:
        validate_request("sendEmail", {"pegaId": "E-1", "operator": "alex", "subject": "Hi",
                                       "changedAt": "2026-11-22T06:00:00Z", "body": {"content": "x"}, "to": []})
    assert err.value.field == "to"
    with pytest.raises(ContractViolation) as err:
        validate_request("replyToEmail", {"pegaId": "E-2", "operator": "alex", "changedAt": "2026-11-22T06:00:00Z",
                                          "body": {"content": "x"},
                                          "attachments": [{"name": "a", "contentBytes": "not base64!"}]})
    assert err.value.field == "attachments.0.contentBytes"
    validate_request("createContact", {"pegaId": "C-1", "operator": "alex", "surname": "Example",
                                       "changedAt": "2026-11-22T06:00:00Z"})
    with pytest.raises(ContractViolation):
        validate_request("createContact", {"pegaId": "C-1", "operator": "alex", "changedAt": "2026-11-22T06:00:00Z"})
    validate_request("closeContact", {"mailbox": "alex@contoso.example", "changedAt": "2026-11-22T06:00:00Z"})


def test_idempotency_key_header() -> None:
    assert check_idempotency_key("0b9f-key") == "0b9f-key"
    for bad in (None, "", "has space", "x" * 129):
        with pytest.raises(ContractViolation) as err:
            check_idempotency_key(bad)
        assert err.value.field == "Idempotency-Key"
