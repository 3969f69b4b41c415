"""Pure tests of the $filter parser/evaluator used by list endpoints."""

from __future__ import annotations

import pytest

from sandbox.graph.errors import GraphError
from sandbox.graph.odata_filter import canon_prop_id, matches, parse_filter

MSG = {
    "subject": "Quarterly Pricing", "isRead": False, "importance": "high",
    "receivedDateTime": "2025-03-10T08:15:00Z", "categories": ["Pega", "Deal"],
    "from": {"emailAddress": {"address": "dana@fabrikam.example"}},
    "singleValueExtendedProperties": [{"id": "String {0A1B2C3D-0000-4000-8000-00000000D3A1} Name PegaId",
                                       "value": "CASE-1"}],
}


@pytest.mark.parametrize(("expr", "expected"), [
    ("subject eq 'quarterly pricing'", True),
    ("isRead eq false and importance eq 'high'", True),
    ("isRead eq true or importance eq 'low'", False),
    ("not (isRead eq true)", True),
    ("receivedDateTime ge 2025-03-10T00:00:00Z", True),
    ("receivedDateTime gt 2025-03-11T00:00:00Z", False),
    ("from/emailAddress/address eq 'DANA@fabrikam.example'", True),
    ("categories/any(c:c eq 'deal')", True),
    ("categories/any(c:c eq 'nope')", False),
    ("contains(subject, 'pric') and startswith(subject,'Quar')", True),
    ("singleValueExtendedProperties/Any(ep: ep/id eq 'String {0a1b2c3d-0000-4000-8000-00000000d3a1} Name PegaId'"
     " and ep/value eq 'case-1')", True),
    ("singleValueExtendedProperties/Any(ep: ep/id eq 'String {0a1b2c3d-0000-4000-8000-00000000d3a1} Name pegaid')",
     False),
    ("subject eq 'it''s'", False),
])
def test_filter_expressions(expr: str, expected: bool) -> None:
    assert matches(parse_filter(expr), MSG) is expected


@pytest.mark.parametrize("bad", ["subject eq", "subject eq 'open", "(isRead eq true", "frobnicate(subject)"])
def test_malformed_filters_are_400(bad: str) -> None:
    with pytest.raises(GraphError) as err:
        matches(parse_filter(bad), MSG)
    assert err.value.status == 400


def test_property_id_canonical_form() -> None:
    assert canon_prop_id("Integer 0x36") == canon_prop_id("integer 0x0036")
    assert canon_prop_id("String {AB} Name X") != canon_prop_id("String {ab} Name x")
