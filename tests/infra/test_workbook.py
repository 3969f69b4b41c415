"""The operations workbook (infra/workbook.json) is well-formed, queries Application Insights, uses
only its declared parameters, and reads exactly the telemetry contract documented in docs/deploy.md."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.bicep import INFRA, ROOT

WORKBOOK = INFRA / "workbook.json"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# The telemetry contract: OpenTelemetry instrument names the app emits (customMetrics.name) and the
# attributes (customDimensions keys) the workbook slices by. Documented in docs/deploy.md.
METRICS = {
    "pes.items.synced", "pes.items.skipped", "pes.items.failed", "pes.items.deadlettered",
    "pes.sync.latency", "pes.remote.calls", "pes.incidents.open",
}
DIMENSIONS = {"pes.mailbox", "pes.kind", "pes.direction", "pes.reason", "pes.service", "pes.status_code"}


@pytest.fixture(scope="module")
def workbook() -> dict[str, Any]:
    return json.loads(WORKBOOK.read_text())


def _queries(workbook: dict[str, Any]) -> dict[str, str]:
    return {i["name"]: i["content"]["query"] for i in workbook["items"] if i["type"] == 3}


def _parameters(workbook: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for i in workbook["items"] if i["type"] == 9 for p in i["content"]["parameters"]]


def test_shape(workbook):
    assert workbook["version"] == "Notebook/1.0"
    names = [i["name"] for i in workbook["items"]]
    assert len(names) == len(set(names)), "item names must be unique"
    ids = [p["id"] for p in _parameters(workbook)]
    assert len(ids) == len(set(ids)), "parameter ids must be unique"
    assert len(_queries(workbook)) >= 6


def test_queries_run_against_application_insights(workbook):
    declared = {p["name"] for p in _parameters(workbook)}
    for item in workbook["items"]:
        if item["type"] != 3:
            continue
        c = item["content"]
        assert c["queryType"] == 0 and c["resourceType"] == "microsoft.insights/components", item["name"]
        assert c["timeContextFromParameter"] in declared, item["name"]


def test_queries_use_only_declared_parameters(workbook):
    declared = {p["name"] for p in _parameters(workbook)}
    for name, query in _queries(workbook).items():
        used = set(re.findall(r"\{(\w+)(?::\w+)?\}", query))
        assert used <= declared, f"{name} uses undeclared parameters {sorted(used - declared)}"


def test_queries_have_balanced_brackets_and_quotes(workbook):
    for name, query in _queries(workbook).items():
        for o, c in ("()", "[]", "{}"):
            assert query.count(o) == query.count(c), f"{name}: unbalanced {o}{c}"
        assert query.count('"') % 2 == 0, f"{name}: unbalanced double quotes"


def test_metric_and_dimension_names_follow_the_contract(workbook):
    text = "\n".join(_queries(workbook).values()) + "\n".join(
        p.get("query", "") for p in _parameters(workbook)
    )
    metrics = set(re.findall(r'"(pes\.[a-z_.]+)"', text)) - DIMENSIONS
    dims = set(re.findall(r'customDimensions\["([^"]+)"\]', text))
    assert metrics == METRICS, f"metrics outside the contract: {sorted(metrics - METRICS)}; unused: {sorted(METRICS - metrics)}"
    assert dims <= DIMENSIONS, f"dimensions outside the contract: {sorted(dims - DIMENSIONS)}"


def test_no_personal_data_is_queried(workbook):
    text = json.dumps(workbook).lower()
    for word in ("upn", "subject", "emailaddress", "userprincipalname", "body"):
        assert f'customdimensions[\\"{word}' not in text and f"customdimensions['{word}" not in text


def test_required_panels_are_present(workbook):
    queries = _queries(workbook)
    joined = "\n".join(queries.values())
    assert "percentilesw(" in queries["latency"] and "50, 95" in queries["latency"]
    assert '"429"' in queries["remote-calls"]
    assert "pes.items.deadlettered" in queries["failures"]
    assert "pes.incidents.open" in queries["open-incidents"]
    assert "direction" in queries["items-synced"] and "kind" in queries["items-synced"]
    assert "dependencies" in joined and "traces" in joined
    assert "by mailbox" in queries["per-mailbox"]


def test_contract_is_documented():
    if not DEPLOY_DOC.exists():
        pytest.fail("docs/deploy.md is missing", pytrace=False)
    doc = DEPLOY_DOC.read_text()
    missing = sorted(n for n in METRICS | DIMENSIONS if f"`{n}`" not in doc)
    assert not missing, f"docs/deploy.md does not document: {missing}"
