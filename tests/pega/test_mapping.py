"""Mapping configuration: defaults, JSON overrides (PEGA_MAPPING_FILE), and errors that name the key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.config import load_settings
from shared.errors import ConfigurationError
from shared.pega import AppointmentData, Attendee, PegaClient, load_mapping
from shared.pega.convert import from_content, parse_datetime, to_content
from shared.pega.mapping import DEFAULT_MAPPING


def test_defaults() -> None:
    m = load_mapping(None)
    assert m is DEFAULT_MAPPING
    assert (m.case_types.appointment, m.case_types.email, m.case_types.task) == (
        "PegaSA-Work-Appointment", "PegaSA-Work-Email", "PegaSA-Work-Task")


def test_json_file_overrides_a_subset(tmp_path: Path) -> None:
    f = tmp_path / "mapping.json"
    f.write_text(json.dumps({"case_types": {"appointment": "ACME-CRM-Work-Meeting"},
                             "appointment": {"subject": "MeetingTitle"}}))
    m = load_mapping(str(f))
    assert m.case_types.appointment == "ACME-CRM-Work-Meeting"
    assert m.case_types.email == "PegaSA-Work-Email"
    content = to_content(AppointmentData(subject="x"), m.appointment)
    assert content == {"MeetingTitle": "x"}


async def test_client_reads_the_mapping_file_from_settings(tmp_path: Path) -> None:
    f = tmp_path / "mapping.json"
    f.write_text(json.dumps({"data_views": {"contacts": "D_MyContacts"}}))
    settings = load_settings({"PEGA_BASE_URL": "http://127.0.0.1:1", "PEGA_MAPPING_FILE": str(f),
                              "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    async with PegaClient(settings.pega) as client:
        assert client.mapping.data_views.contacts == "D_MyContacts"


@pytest.mark.parametrize("text", ["{not json", json.dumps({"case_types": {"apointment": "x"}}),
                                  json.dumps({"appointment": {"subject": 5}})])
def test_bad_files_fail_naming_the_setting(tmp_path: Path, text: str) -> None:
    f = tmp_path / "mapping.json"
    f.write_text(text)
    with pytest.raises(ConfigurationError) as err:
        load_mapping(str(f))
    assert "PEGA_MAPPING_FILE" in str(err.value)
    with pytest.raises(ConfigurationError):
        load_mapping(str(tmp_path / "missing.json"))


def test_conversion_round_trip() -> None:
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    data = AppointmentData(subject="DST night", start=start, attendees=[Attendee("a@b.example", type="optional")])
    content = to_content(data, DEFAULT_MAPPING.appointment, attendee_fields=DEFAULT_MAPPING.attendee)
    assert content["StartTime"] == "2026-03-29T00:30:00.000Z"
    back = from_content(AppointmentData, content, DEFAULT_MAPPING.appointment, attendee_fields=DEFAULT_MAPPING.attendee)
    assert back == data
    with pytest.raises(ValueError, match="timezone-aware"):
        to_content(AppointmentData(start=datetime(2026, 1, 1)), DEFAULT_MAPPING.appointment)
    assert parse_datetime("20250305T140005.123 GMT") == datetime(2025, 3, 5, 14, 0, 5, 123000, tzinfo=UTC)


def test_insights_section_defaults_are_the_insights_library_defaults(tmp_path: Path) -> None:
    from dataclasses import asdict

    from shared.insights import PegaInsightFields

    assert DEFAULT_MAPPING.insights.model_dump() == asdict(PegaInsightFields())
    f = tmp_path / "mapping.json"
    f.write_text(json.dumps({"insights": {"label": "Mood", "drivers": None}}))
    m = load_mapping(str(f))
    assert (m.insights.label, m.insights.drivers, m.insights.score) == ("Mood", None, "SentimentScore")
    f.write_text(json.dumps({"insights": {"lable": "Mood"}}))
    with pytest.raises(ConfigurationError, match=r"insights\.lable"):
        load_mapping(str(f))
