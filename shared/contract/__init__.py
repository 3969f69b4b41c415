"""The HTTP contract Pega calls (openapi.yaml): operations, routes and request-body validation."""

from shared.contract.loader import (
    FUNCTION_KEY_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    ContractOperation,
    ContractViolation,
    build_path,
    check_idempotency_key,
    function_route,
    load_openapi,
    operation,
    operations,
    request_schema,
    routes,
    validate_request,
)

__all__ = [
    "FUNCTION_KEY_HEADER", "IDEMPOTENCY_KEY_HEADER", "ContractOperation", "ContractViolation", "build_path",
    "check_idempotency_key", "function_route", "load_openapi", "operation", "operations", "request_schema", "routes",
    "validate_request",
]
