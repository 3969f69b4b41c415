"""Queue envelopes: valid ones round-trip, bad ones fail with a reason that names the problem."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidMessageError
from shared.queues.envelope import Envelope, json_schema


def test_round_trip():
    env = Envelope(type="delta.sync", body={"mailbox": "alex@contoso.example", "kind": "email"})
    back = Envelope.loads(env.dumps())
    assert back == env


@pytest.mark.parametrize(("text", "reason"), [
    ("not json", "not JSON"),
    ("[1,2]", "not a JSON object"),
    (json.dumps({"v": 2, "type": "x"}), "version"),
    (json.dumps({"v": 1}), "type"),
    (json.dumps({"v": 1, "type": "Bad Type"}), "type"),
    (json.dumps({"v": 1, "type": "x", "body": []}), "body"),
    (json.dumps({"v": 1, "type": "x", "surprise": 1}), "surprise"),
])
def test_invalid_messages_name_the_problem(text, reason):
    with pytest.raises(InvalidMessageError) as err:
        Envelope.loads(text)
    assert reason in str(err.value)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(data):
    try:
        Envelope.loads(data)
    except InvalidMessageError:
        pass


def test_schema_is_published():
    schema = json_schema()
    assert set(schema["required"]) >= {"type"}
    assert "body" in schema["properties"]
