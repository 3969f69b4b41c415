"""Pure tests of parsing, mapping, hashing, merge and the planner — examples and Hypothesis properties,
including a state machine that edits, touches and syncs an item on both sides."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shared.config import ConflictPolicy, PrivatePolicy
from shared.storage.links import Link
from shared.sync.mapping import (
    content_hash,
    fields_of,
    map_event,
    mapped_from_pega,
    snapshot,
    three_way,
    to_pega_data,
)
from shared.sync.planner import (
    Cancel,
    Close,
    Create,
    NoOp,
    PegaState,
    Policy,
    Skip,
    Update,
    hold_deletions,
    plan,
)
from shared.sync.records import (
    ContactRecord,
    EventRecord,
    MessageRecord,
    Removal,
    fill_from_master,
    parse_contact,
    parse_event,
    parse_message,
    parse_page,
)
from shared.sync.timezones import parse_datetime_tz, parse_iso_utc

UTC = dt.UTC
CAL = Policy(kind="calendar", window_start=dt.datetime(2026, 1, 1, tzinfo=UTC),
             window_end=dt.datetime(2026, 12, 31, tzinfo=UTC))
MAIL = Policy(kind="email", direction="Inbound")
CONTACTS = Policy(kind="contacts")


def link(graph_id: str = "e1", kind: str = "event", **kw: Any) -> Link:
    return Link(mailbox="rep@contoso.example", kind=kind, graph_id=graph_id, pega_id="P-1", **kw)


def event(**kw: Any) -> EventRecord:
    base = dict(id="e1", change_key="ck1", subject="Call", start=dt.datetime(2026, 3, 10, 16, tzinfo=UTC),
                end=dt.datetime(2026, 3, 10, 17, tzinfo=UTC), start_tz="UTC", original_tz="Pacific Standard Time",
                body="<p>x</p>", body_type="html", location="Room 1")
    base.update(kw)
    return EventRecord(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- parsing


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=10)
KEYS = st.sampled_from([
    "id", "@odata.etag", "changeKey", "subject", "body", "from", "toRecipients", "start", "end", "type", "attendees",
    "organizer", "recurrence", "isCancelled", "isDraft", "categories", "emailAddresses", "businessAddress",
    "singleValueExtendedProperties", "receivedDateTime", "originalStart", "location", "@removed", "sensitivity",
])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, JSON, max_size=10), st.text(min_size=1, max_size=5))
def test_parsers_never_raise_on_odd_json(raw: dict[str, Any], item_id: str) -> None:
    raw = {**raw, "id": item_id}
    for parser in (parse_message, parse_event, parse_contact):
        parser(raw)
    parse_page({"value": [raw, "junk", None], "@odata.nextLink": "x"}, "calendar")


def test_message_parse_reads_change_key_from_etag_and_private_flag() -> None:
    m = parse_message({"id": "m1", "@odata.etag": 'W/"CQAAABYAAAD"', "isDraft": False,
                       "from": {"emailAddress": {"address": "Dana@Fabrikam.example", "name": "Dana"}},
                       "singleValueExtendedProperties": [{"id": "Integer 0x36", "value": "2"},
                                                         {"id": "Integer 0x0036", "value": "2"}],
                       "receivedDateTime": "2026-03-10T08:15:00Z"})
    assert isinstance(m, MessageRecord)
    assert m.change_key == "CQAAABYAAAD" and m.is_private and m.sender and m.sender.name == "Dana"
    assert isinstance(parse_message({"id": "m2", "@removed": {"reason": "deleted"}}), Removal)


def test_times_with_windows_zone_and_seven_digit_fractions_become_utc_across_dst() -> None:
    before, tz = parse_datetime_tz({"dateTime": "2026-10-26T09:00:00.0000000", "timeZone": "Pacific Standard Time"})
    after, _ = parse_datetime_tz({"dateTime": "2026-11-02T09:00:00.0000000", "timeZone": "Pacific Standard Time"})
    assert tz == "Pacific Standard Time"
    assert before == dt.datetime(2026, 10, 26, 16, tzinfo=UTC), "PDT is UTC-7"
    assert after == dt.datetime(2026, 11, 2, 17, tzinfo=UTC), "PST is UTC-8"
    assert parse_iso_utc("2026-03-10T16:00:00.1234567Z") == dt.datetime(2026, 3, 10, 16, 0, 0, 123456, tzinfo=UTC)


def test_sparse_occurrence_is_filled_from_its_master_keeping_its_own_id_and_times() -> None:
    master = event(id="M", type="seriesMaster", recurrence={"pattern": {}}, attendees=())
    occ = parse_event({"id": "M.20260317T160000Z", "type": "occurrence", "seriesMasterId": "M",
                       "start": {"dateTime": "2026-03-17T16:00:00.0000000", "timeZone": "UTC"},
                       "end": {"dateTime": "2026-03-17T17:00:00.0000000", "timeZone": "UTC"}})
    assert isinstance(occ, EventRecord) and occ.sparse
    full = fill_from_master(occ, master)
    assert (full.id, full.subject, full.start.day, full.recurrence, full.series_master_id) == (
        "M.20260317T160000Z", "Call", 17, None, "M")


# ---------------------------------------------------------------- mapping and hashing


@given(st.text(max_size=5), st.datetimes(timezones=st.just(UTC)))
def test_change_key_and_last_modified_never_change_the_content_hash(ck: str, modified: dt.datetime) -> None:
    base = event()
    touched = replace(base, change_key=ck, last_modified=modified)
    assert content_hash(map_event(base)) == content_hash(map_event(touched))


@given(st.sampled_from(["subject", "location", "body"]), st.text(min_size=1, max_size=20).map(lambda s: s + "!"))
def test_a_change_to_a_mapped_field_changes_the_hash(name: str, value: str) -> None:
    base = event()
    assert content_hash(map_event(base)) != content_hash(map_event(replace(base, **{name: value})))


def test_mapping_round_trips_through_pega_neutral_records() -> None:
    mapped = map_event(event(attendees=()))
    assert mapped_from_pega("calendar", to_pega_data("calendar", mapped)) == mapped


def test_snapshot_keeps_long_values_as_digests_and_hashes_equal() -> None:
    mapped = map_event(event(body="x" * 5000))
    snap = snapshot(mapped)
    assert snap["body"].startswith("#sha256:")
    assert content_hash(fields_of(snap)) == content_hash(mapped)


# ---------------------------------------------------------------- merge

VALUES = st.sampled_from(["a", "b", "c"])
FIELDS = ("subject", "location", "body")


@given(st.fixed_dictionaries({f: VALUES for f in FIELDS}), st.fixed_dictionaries({f: VALUES for f in FIELDS}),
       st.fixed_dictionaries({f: VALUES for f in FIELDS}), st.sampled_from(list(ConflictPolicy)), st.booleans())
def test_three_way_merge_properties(snap, ex, pg, policy, exchange_newer) -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
    ex_t, pg_t = (t0 + dt.timedelta(seconds=1), t0) if exchange_newer else (t0, t0 + dt.timedelta(seconds=1))
    r = three_way(snap, ex, pg, policy=policy, exchange_time=ex_t, pega_time=pg_t)
    for f in FIELDS:
        assert r.merged[f] in (ex[f], pg[f])
        if ex[f] == pg[f]:
            assert f not in r.to_pega and f not in r.to_exchange and r.merged[f] == ex[f]
        elif pg[f] == snap[f]:
            assert f in r.to_pega and r.merged[f] == ex[f], "changed in Exchange only: Exchange wins"
        elif ex[f] == snap[f]:
            assert f in r.to_exchange and r.merged[f] == pg[f], "changed in Pega only: Pega wins"
        else:
            assert any(c.field == f for c in r.conflicts), "a true conflict is recorded"
            winner = "exchange" if (policy is ConflictPolicy.EXCHANGE or
                                    (policy is ConflictPolicy.NEWER and exchange_newer)) else "pega"
            assert r.merged[f] == (ex[f] if winner == "exchange" else pg[f])
    assert {c.field for c in r.conflicts} == {f for f in FIELDS if ex[f] != snap[f] != pg[f] != ex[f]}


# ---------------------------------------------------------------- planner decisions


@pytest.mark.parametrize(("item", "lk", "policy", "expected"), [
    (Removal("e1"), None, CAL, (NoOp, "not_linked")),
    (Removal("e1"), link(), CAL, (Cancel, "deleted")),
    (Removal("e1"), link(state="closed"), CAL, (NoOp, "already_closed")),
    (Removal("m1"), link("m1", "email"), MAIL, (NoOp, "removed_kept_in_pega")),
    (Removal("c1"), link("c1", "contact"), CONTACTS, (Close, "deleted")),
    (MessageRecord("m1", is_draft=True), None, MAIL, (Skip, "draft")),
    (MessageRecord("m1", sensitivity=2), None, MAIL, (Skip, "private")),
    (event(sensitivity="private"), None, CAL, (Skip, "private")),
    (event(type="seriesMaster"), None, CAL, (NoOp, "series_master")),
    (event(is_cancelled=True), None, CAL, (Skip, "cancelled")),
    (event(is_cancelled=True), link(), CAL, (Cancel, "cancelled")),
    (event(start=dt.datetime(2027, 3, 1, tzinfo=UTC), end=dt.datetime(2027, 3, 1, 1, tzinfo=UTC)), None, CAL,
     (Skip, "outside_window")),
    (event(), None, CAL, (Create, "new")),
    (ContactRecord("c1"), None, CONTACTS, (Skip, "no_category")),
    (ContactRecord("c1"), link("c1", "contact"), CONTACTS, (Close, "category_removed")),
    (ContactRecord("c1", categories=("pegasasync",), sensitivity=2), None, CONTACTS, (Skip, "private")),
    (ContactRecord("c1", categories=("PegaSASync",)), link("c1", "contact", state="closed"), CONTACTS,
     (Create, "reopen")),
])
def test_planner_decisions(item, lk, policy, expected) -> None:
    action = plan(item, lk, policy, association_found=True)
    assert (type(action), action.reason) == expected


def test_unassociated_new_mail_is_skipped_and_masked_private_appointment_hides_content() -> None:
    assert plan(MessageRecord("m1"), None, MAIL, association_found=False) == Skip("m1", "no_association")
    masked = plan(event(sensitivity="private", attendees=()), None, replace(CAL, private_policy=PrivatePolicy.MASK))
    assert isinstance(masked, Create)
    assert masked.mapped["subject"] == "Private appointment" and masked.mapped["body"] == ""
    assert masked.mapped["start"] == "2026-03-10T16:00:00Z"


def test_delete_safety_threshold() -> None:
    lk = link()
    cancels = [Cancel(f"e{i}", lk) for i in range(6)]
    assert hold_deletions(cancels, linked_active=10, share=0.5)
    assert not hold_deletions(cancels, linked_active=20, share=0.5)
    assert not hold_deletions(cancels[:4], linked_active=4, share=0.5), "a small mailbox can still delete"
    assert hold_deletions(cancels[:2], linked_active=8, share=0.5, already=4), "counted across the round"


# ---------------------------------------------------------------- state machine


class BothSides(RuleBasedStateMachine):
    """An appointment edited in Outlook and in Pega, touched, and synced Exchange → Pega.

    The planner output is applied to an in-memory Pega record and link exactly like the applier does.
    """

    @initialize()
    def start(self) -> None:
        self.clock = dt.datetime(2026, 3, 1, tzinfo=UTC)
        self.ck = 0
        self.ex = event(change_key="ck0", last_modified=self.clock, attendees=())
        self.pega: dict[str, Any] | None = None
        self.pega_time = self.clock
        self.link: Link | None = None
        self.creates = 0
        self.ex_dirty: set[str] = set()
        self.pg_dirty: set[str] = set()
        self.only_touched = False

    def _tick(self) -> dt.datetime:
        self.clock += dt.timedelta(seconds=1)
        return self.clock

    def _bump(self) -> str:
        self.ck += 1
        return f"ck{self.ck}"

    @rule(field=st.sampled_from(["subject", "location"]), value=st.sampled_from(["x", "y", "z"]))
    def edit_in_outlook(self, field: str, value: str) -> None:
        if getattr(self.ex, field) != value:
            self.ex_dirty.add(field)
            self.only_touched = False
        self.ex = replace(self.ex, change_key=self._bump(), last_modified=self._tick(), **{field: value})

    @rule()
    def open_in_outlook(self) -> None:
        self.ex = replace(self.ex, change_key=self._bump(), last_modified=self._tick())
        self.only_touched = not self.ex_dirty and self.link is not None

    @rule(field=st.sampled_from(["subject", "location"]), value=st.sampled_from(["p", "q", "x"]))
    def edit_in_pega(self, field: str, value: str) -> None:
        if self.pega is not None and self.pega[field] != value:
            self.pg_dirty.add(field)
            self.pega[field] = value
            self.pega_time = self._tick()

    @rule()
    def sync(self) -> None:
        state = PegaState("P-1", dict(self.pega), self.pega_time) if self.pega is not None else None
        action = plan(self.ex, self.link, CAL, pega=state)
        if self.only_touched and not self.pg_dirty:
            assert isinstance(action, NoOp), f"a touch must write nothing: {action}"
        # fields changed in Exchange only (relative to the last synced snapshot) must reach Pega
        snap = fields_of(self.link.snapshot) if self.link is not None else {}
        expected_ex = {f: getattr(self.ex, f) for f in ("subject", "location")
                       if self.pega is not None and getattr(self.ex, f) != snap.get(f) and self.pega[f] == snap.get(f)}
        if isinstance(action, Create):
            self.creates += 1
            self.pega = dict(action.mapped)
            self.link = link(graph_change_key=self.ex.change_key, graph_hash=action.hash, snapshot=action.snapshot)
        elif isinstance(action, Update):
            assert self.pega is not None and self.link is not None
            self.pega.update(action.fields)
            self.link = replace(self.link, graph_change_key=self.ex.change_key, graph_hash=action.hash,
                                snapshot=action.snapshot)
            for f, v in expected_ex.items():
                assert self.pega[f] == v, "an Exchange-only change reaches Pega"
            synced = fields_of(action.snapshot)
            for f in ("subject", "location"):  # Pega's newer values are not in Outlook until pushed (seed 434)
                assert synced[f] == getattr(self.ex, f), "the last synced state is what Outlook holds"
        elif isinstance(action, NoOp) and action.refresh is not None:
            self.link = action.refresh
        else:
            assert isinstance(action, NoOp), action
        self.ex_dirty.clear()
        self.pg_dirty.clear()
        self.only_touched = False
        # idempotent: the same item planned again right away writes nothing
        again = plan(self.ex, self.link, CAL, pega=PegaState("P-1", dict(self.pega or {}), self.pega_time))
        assert isinstance(again, NoOp), again

    @invariant()
    def never_a_duplicate(self) -> None:
        assert self.creates <= 1


TestBothSides = BothSides.TestCase
TestBothSides.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


def test_origin_decisions_apply_to_unlinked_items_only_and_in_order() -> None:
    from shared.sync.planner import LinkOwn, Origin, Skip, origin_action
    from shared.sync.records import Address, EventRecord, MessageRecord

    now = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)
    pol = Policy(kind="calendar")
    occ = EventRecord(id="occ", type="occurrence", series_master_id="m", start=now, end=now, subject="s",
                      organizer=Address("boss@contoso.example"))
    single = replace(occ, id="one", type="singleInstance", series_master_id=None)
    both = Origin(pega_stamp="APPT-1", series_from_pega=True, organizer_synced=True)
    assert origin_action(occ, None, both, pol) == Skip("occ", "series_from_pega")
    assert origin_action(single, None, both, pol) == Skip("one", "synced_from_organizer")
    own = origin_action(single, None, Origin(pega_stamp="APPT-1"), pol)
    assert isinstance(own, LinkOwn) and own.pega_id == "APPT-1" and own.snapshot["_by"] == "pega"
    linked = Link(mailbox="m@x", kind="event", graph_id="one", pega_id="APPT-9")
    assert origin_action(single, linked, both, pol) is None, "a link always wins"
    assert origin_action(single, None, None, pol) is None
    msg = MessageRecord(id="mail", subject="x", pega_stamp="EMAIL-1")
    assert isinstance(origin_action(msg, None, Origin(pega_stamp="EMAIL-1"), Policy(kind="email")), LinkOwn)
