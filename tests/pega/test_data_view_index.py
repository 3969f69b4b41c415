"""Issue 16: the Pega simulator's data views answer EQ/IN lookups (by email, domain, external id)
through field indexes kept current by every write. The index may only narrow the rows: whatever the
records and the query, the answer equals the full scan's (Hypothesis), and a lookup among many
records reads only what it finds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.pega.dataviews import data_view_rows, run_query
from sandbox.pega.store import Actor, Store
from shared.pega.mapping import load_mapping

ACTOR = Actor("alex")
VALUES = st.sampled_from(["a@x.example", "A@X.example", "b@y.example", "5", 5, True, "", "c"])


def _store() -> Store:
    return Store(mapping=load_mapping(None))


def _query(field: str, comparator: str, value: Any, ignore: bool, extra: bool, *,
           second: str = "neq") -> dict[str, Any]:
    """F1: `comparator` on `field`; with `extra`, F2 on the status: NEQ Closed (no index can answer it)
    or IN [Open] (an index can: an OR of the two is then a union of two index lookups)."""
    rhs = {"values": value if isinstance(value, list) else [value]} if comparator == "IN" else {"value": value}
    conds: dict[str, Any] = {"F1": {"lhs": {"field": field}, "comparator": comparator, "rhs": rhs, "ignoreCase": ignore}}
    if extra and second == "neq":
        conds["F2"] = {"lhs": {"field": "pyStatusWork"}, "comparator": "NEQ", "rhs": {"value": "Closed"}}
    elif extra:
        conds["F2"] = {"lhs": {"field": "pyStatusWork"}, "comparator": "IN", "rhs": {"values": ["Open"]}}
    return {"query": {"filter": {"filterConditions": conds}}, "paging": {"maxResultsToFetch": 5000}}


@settings(max_examples=150, deadline=None)
@given(
    contents=st.lists(st.fixed_dictionaries({"Email": VALUES, "pyStatusWork": st.sampled_from(["Open", "Closed"])}),
                      max_size=12),
    updates=st.lists(st.tuples(st.integers(0, 11), VALUES), max_size=6),
    comparator=st.sampled_from(["EQ", "IN"]),
    value=st.one_of(VALUES, st.lists(VALUES, max_size=3)),
    ignore=st.booleans(), extra=st.booleans(),
    logic=st.sampled_from(["", "F1 AND F2", "F1 OR F2", "(F1 or F2)", "NOT F1", "F1 AND NOT F2"]),
    second=st.sampled_from(["neq", "in"]),
)
def test_indexed_answers_equal_the_full_scan(contents, updates, comparator, value, ignore, extra, logic, second):
    store = _store()
    dv = store.mapping.data_views.contacts
    if comparator == "EQ" and isinstance(value, list):
        value = value[0] if value else "a@x.example"
    body = _query("Email", comparator, value, ignore, extra or bool(logic), second=second)
    if logic:
        body["query"]["filter"]["logic"] = logic
    recs = [store.create("contact", c, ACTOR) for c in contents]
    run_query(data_view_rows(store, dv, body) or [], body)  # builds the index before the updates
    for i, v in updates:
        if recs:
            store.update(recs[i % len(recs)], {"Email": v}, ACTOR)
    indexed = run_query(data_view_rows(store, dv, body) or [], body)
    full = run_query(data_view_rows(store, dv) or [], body)
    assert indexed["data"] == full["data"]


def test_a_lookup_among_many_records_reads_only_its_matches():
    store = _store()
    for i in range(3000):
        store.create("contact", {"Email": f"c{i}@x.example"}, ACTOR)
    body = _query("Email", "EQ", "C2999@X.example", True, False)
    rows = data_view_rows(store, store.mapping.data_views.contacts, body)
    assert rows is not None and [r["Email"] for r in rows] == ["c2999@x.example"]
    assert store.get(rows[0]["pzInsKey"].lower()) is not None  # ids are case-insensitive, found by index


def test_an_or_of_two_lookups_among_many_records_reads_only_their_matches():
    """The email lookups before a create ask for Exchange ids OR internetMessageIds in one query."""
    store = _store()
    for i in range(3000):
        store.create("contact", {"Email": f"c{i}@x.example", "pyStatusWork": "Closed" if i % 1000 else "Open"}, ACTOR)
    body = _query("Email", "IN", ["c5@x.example", "c7@x.example"], False, True, second="in")
    body["query"]["filter"]["logic"] = "F1 OR F2"
    rows = data_view_rows(store, store.mapping.data_views.contacts, body)
    assert rows is not None
    assert [r["Email"] for r in rows] == ["c0@x.example", "c5@x.example", "c7@x.example", "c1000@x.example",
                                          "c2000@x.example"], "the union of both lookups, in creation order"
    assert run_query(rows, body)["data"] == run_query(data_view_rows(store, store.mapping.data_views.contacts) or [],
                                                      body)["data"]
