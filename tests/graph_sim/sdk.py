"""Small helpers for driving the real msgraph-sdk in these tests."""

from __future__ import annotations

from kiota_abstractions.base_request_configuration import RequestConfiguration


def prefer(*values: str, **query: object) -> RequestConfiguration:
    """A request configuration carrying Prefer headers (and optional query parameters object)."""
    config: RequestConfiguration = RequestConfiguration()
    for v in values:
        config.headers.add("Prefer", v)
    if "query_parameters" in query:
        config.query_parameters = query["query_parameters"]
    return config


IMMUTABLE = 'IdType="ImmutableId"'
