"""Pure properties of what the real service sends (issue #13): the HTML and text forms of one body map
to the same value; all-day dates are instants of the event's own zone whatever zone they were
rendered in; unknown zones are errors with a reason; non-mail is classified. No I/O."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.graph.items import text_to_html  # Exchange's HTML rendering of a text body, as the simulator models it
from shared.config import PrivatePolicy
from shared.errors import PermanentError
from shared.outbound.graph_payloads import graph_time_zone, mapped_appointment
from shared.sync.bodies import safe_html
from shared.sync.mapping import BODY_HTML, content_hash, fields_of, map_event, map_message
from shared.sync.planner import Policy, Skip, plan
from shared.sync.records import EventRecord, MessageRecord, classify_message, parse_event, parse_message
from shared.sync.timezones import UnknownTimeZoneError, windows_name, zone

words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=0, max_size=30)
bodies = st.lists(words, min_size=1, max_size=6).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(bodies)
def test_html_and_text_forms_of_one_body_hash_the_same(text: str) -> None:
    as_text = parse_message({"id": "m", "body": {"contentType": "text", "content": text}})
    as_html = parse_message({"id": "m", "body": {"contentType": "html", "content": text_to_html(text)}})
    assert isinstance(as_text, MessageRecord) and isinstance(as_html, MessageRecord)
    assert as_text.body_text == as_html.body_text
    a, b = map_message(as_text, direction="Inbound"), map_message(as_html, direction="Inbound")
    assert fields_of(a) == fields_of(b) and content_hash(a) == content_hash(b)
    assert BODY_HTML not in a  # a text body has no HTML to offer


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_sanitized_html_never_carries_script_or_handlers(noise: str) -> None:
    html = f'<p onmouseover="x()">{noise}</p><script>{noise}</script><img src="http://t.example/{noise}">'
    out = safe_html(html)
    assert "<script" not in out and "onmouseover" not in out and "t.example" not in out


def test_pega_html_body_and_exchange_form_compare_equal() -> None:
    pega = mapped_appointment({"body": {"contentType": "html", "content": "<p>Agenda</p><p>1. pricing</p>"}})
    ev = parse_event({"id": "e", "body": {"contentType": "html", "content": (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
        "<body><p>Agenda</p>\r\n<p>1. pricing</p></body></html>")}})
    assert isinstance(ev, EventRecord)
    assert pega["body"] == map_event(ev)["body"] == "Agenda\n1. pricing"
    assert pega["body_type"] == map_event(ev)["body_type"] == "text"


@pytest.mark.parametrize("rendered_in", ["UTC", "Tokyo Standard Time", "Pacific Standard Time"])
def test_all_day_is_the_same_instant_whatever_zone_graph_rendered_it_in(rendered_in: str) -> None:
    raw = {"id": "e", "isAllDay": True, "originalStartTimeZone": "Pacific Standard Time",
           "start": {"dateTime": "2026-12-01T00:00:00.0000000", "timeZone": rendered_in},
           "end": {"dateTime": "2026-12-02T00:00:00.0000000", "timeZone": rendered_in}}
    ev = parse_event(raw)
    assert isinstance(ev, EventRecord)
    mapped = map_event(ev)
    assert (mapped["start"], mapped["end"]) == ("2026-12-01T08:00:00Z", "2026-12-02T08:00:00Z")
    # what Pega sends for the same appointment maps identically: no spurious conflict
    pega = mapped_appointment({"isAllDay": True, "start": {"dateTime": "2026-12-01T00:00", "timeZone":
                                                           "America/Los_Angeles"},
                               "end": {"dateTime": "2026-12-01T00:00", "timeZone": "America/Los_Angeles"}})
    assert (pega["start"], pega["end"], pega["time_zone"]) == (mapped["start"], mapped["end"], mapped["time_zone"])


def test_unknown_zone_is_an_error_with_a_reason_never_utc() -> None:
    with pytest.raises(UnknownTimeZoneError):
        zone("Mars Standard Time")
    with pytest.raises(PermanentError, match="unknown time zone"):
        graph_time_zone("Mars Standard Time")
    ev = parse_event({"id": "e", "subject": "x", "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Mars"},
                      "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "Mars"}})
    assert isinstance(ev, EventRecord) and ev.problem == "unknown_time_zone" and ev.start is None
    action = plan(ev, None, Policy(kind="calendar", private_policy=PrivatePolicy.SKIP))
    assert action == Skip("e", "unknown_time_zone")


def test_cldr_names_both_ways() -> None:
    assert windows_name("Asia/Colombo") == "Sri Lanka Standard Time"
    assert windows_name("America/Los_Angeles") == "Pacific Standard Time"
    assert windows_name("pacific sa standard time") == "Pacific SA Standard Time"
    assert zone("Sri Lanka Standard Time").utcoffset(dt.datetime(2026, 1, 1)) == dt.timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(("odata_type", "message_class", "headers", "expected"), [
    ("#microsoft.graph.message", "IPM.Note", {}, ""),
    ("#microsoft.graph.eventMessageRequest", "", {}, "meeting_message"),
    ("#microsoft.graph.eventMessageResponse", "IPM.Schedule.Meeting.Resp.Pos", {}, "meeting_message"),
    ("#microsoft.graph.message", "IPM.Schedule.Meeting.Canceled", {}, "meeting_message"),
    ("#microsoft.graph.message", "REPORT.IPM.Note.NDR", {}, "non_delivery_report"),
    ("#microsoft.graph.message", "REPORT.IPM.Note.DR", {}, "delivery_report"),
    ("#microsoft.graph.message", "REPORT.IPM.Note.IPNRN", {}, "read_receipt"),
    ("#microsoft.graph.message", "IPM.Note.Rules.OofTemplate.Microsoft", {}, "auto_reply"),
    ("#microsoft.graph.message", "", {"auto-submitted": "auto-replied"}, "auto_reply"),
    ("#microsoft.graph.message", "", {"content-type": "multipart/report; report-type=delivery-status"},
     "non_delivery_report"),
    ("#microsoft.graph.message", "", {"auto-submitted": "no"}, ""),
])
def test_mail_that_is_not_correspondence(odata_type: str, message_class: str, headers: dict[str, str],
                                         expected: str) -> None:
    assert classify_message(odata_type, message_class, headers) == expected


def test_a_meeting_message_plans_as_a_skip_counted_by_reason() -> None:
    msg = parse_message({"id": "m", "@odata.type": "#microsoft.graph.eventMessageRequest", "subject": "Call",
                         "from": {"emailAddress": {"address": "dana@fabrikam.example"}}})
    assert plan(msg, None, Policy(kind="email")) == Skip("m", "meeting_message")
