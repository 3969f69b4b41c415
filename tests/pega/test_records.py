"""Sync operations (shared.pega.records) against the simulator: lookups and idempotent upserts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.pega.control import PegaSimControl
from shared.errors import TransientError
from shared.pega import (
    AppointmentData,
    Attendee,
    ContactData,
    EmailData,
    PegaRecords,
    RecordKind,
    UpsertAction,
)

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def appointment(subject: str = "Kick-off") -> AppointmentData:
    return AppointmentData(
        subject=subject, start=START, end=START + timedelta(hours=1), time_zone="Europe/Berlin",
        location="Teams", body="<p>Agenda</p>", body_type="html", operator="alex",
        attendees=[Attendee("dana@fabrikam.example", "Dana Example")],
    )


async def test_seeded_lookups(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    seeded = await pega_control.reset()
    dana = await pega_records.find_contact_by_email("Dana@Fabrikam.example")
    assert dana is not None and dana.id == seeded["dana"]
    assert (await pega_records.find_lead_by_email("lee@northwind.example")).id == seeded["lee"]  # type: ignore[union-attr]
    assert (await pega_records.find_organization_by_domain("fabrikam.example")).id == seeded["fabrikam"]  # type: ignore[union-attr]
    opp = await pega_records.find_open_opportunity(organization_id=seeded["fabrikam"])
    assert opp is not None and opp.id == seeded["opportunity"]  # the won one is not open
    assert await pega_records.find_contact_by_email("nobody@fabrikam.example") is None
    alex = await pega_records.find_operator_by_email("alex@contoso.example")
    assert alex is not None and alex.row["pyUserIdentifier"] == "alex"


async def test_associate_in_pega_order(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    seeded = await pega_control.reset()
    a = await pega_records.associate(["alex@contoso.example", "dana@fabrikam.example"], own_domains=["contoso.example"])
    assert (a.contact_id, a.organization_id, a.opportunity_id) == (seeded["dana"], seeded["fabrikam"], seeded["opportunity"])
    a = await pega_records.associate(["lee@northwind.example"])
    assert a.lead_id == seeded["lee"] and a.contact_id is None
    a = await pega_records.associate(["someone.new@fabrikam.example"])
    assert a.organization_id == seeded["fabrikam"] and a.contact_id is None and a.opportunity_id == seeded["opportunity"]
    a = await pega_records.associate(["x@unknown.example"])
    assert not a.found


async def test_appointment_upsert_create_update_unchanged(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    first = await pega_records.upsert_appointment("AAMkAD-ext-1", appointment())
    assert first.action is UpsertAction.CREATED
    case, data = await pega_records.get_appointment(first.id)
    assert case.content["ExchangeID"] == "AAMkAD-ext-1"
    assert case.content["StartTime"] == "2026-12-01T09:00:00.000Z"
    assert data.start == START and data.attendees == [Attendee("dana@fabrikam.example", "Dana Example")]
    again = await pega_records.upsert_appointment("AAMkAD-ext-1", appointment())
    assert again.action is UpsertAction.UNCHANGED and again.id == first.id
    moved = appointment()
    moved.start, moved.end = START + timedelta(days=1), START + timedelta(days=1, hours=1)
    upd = await pega_records.upsert_appointment("AAMkAD-ext-1", moved, known_id=first.id)
    assert upd.action is UpsertAction.UPDATED
    assert (await pega_control.record(first.id))["content"]["StartTime"] == "2026-12-02T09:00:00.000Z"
    assert len(await pega_control.records("appointment")) == 1


async def test_retry_after_lost_response_never_duplicates(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    # The create is written, then the answer is lost (503): the caller only sees a transient error.
    await pega_control.add_fault(method="POST", path_contains="/application/v2/cases", status=503, after_write=True)
    with pytest.raises(TransientError):
        await pega_records.upsert_appointment("AAMkAD-lost-1", appointment("Lost answer"))
    assert len(await pega_control.records("appointment")) == 1
    retried = await pega_records.upsert_appointment("AAMkAD-lost-1", appointment("Lost answer"))
    assert retried.action is UpsertAction.UNCHANGED
    records = await pega_control.records("appointment")
    assert len(records) == 1 and records[0]["id"] == retried.id


async def test_stale_link_falls_back_to_external_id(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    created = await pega_records.upsert_appointment("AAMkAD-ext-2", appointment())
    res = await pega_records.upsert_appointment("AAMkAD-ext-2", appointment("Renamed"),
                                                known_id="PEGASA-WORK-APPOINTMENT A-424242")
    assert res.id == created.id and res.action is UpsertAction.UPDATED


async def test_cancel_appointment_is_idempotent_and_not_a_delete(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    created = await pega_records.upsert_appointment("AAMkAD-ext-3", appointment())
    cancelled = await pega_records.cancel_appointment(created.id)
    assert cancelled.status == "Resolved-Cancelled"
    again = await pega_records.cancel_appointment(created.id)
    assert again.status == "Resolved-Cancelled"
    assert (await pega_control.record(created.id))["content"]["pyStatusWork"] == "Resolved-Cancelled"
    # a later change from Exchange does not reopen or touch the cancelled case
    res = await pega_records.upsert_appointment("AAMkAD-ext-3", appointment("after cancel"))
    assert res.action is UpsertAction.SKIPPED_RESOLVED


async def test_email_upsert_and_lookup(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    seeded = await pega_control.reset()
    data = EmailData(subject="Pricing", body="Hello", body_type="text", sender="dana@fabrikam.example",
                     to=["alex@contoso.example"], cc=["blair@contoso.example"], direction="Inbound",
                     received_at=START, conversation_id="conv-1", contact_id=seeded["dana"], operator="alex")
    res = await pega_records.upsert_email("AAMkAD-mail-1", data)
    assert res.action is UpsertAction.CREATED
    ref = await pega_records.find_by_external_id(RecordKind.EMAIL, "AAMkAD-mail-1")
    assert ref is not None and ref.id == res.id
    _, back = await pega_records.get_email(res.id)
    assert back.to == ["alex@contoso.example"] and back.cc == ["blair@contoso.example"]
    assert back.received_at == START
    assert (await pega_records.upsert_email("AAMkAD-mail-1", data)).action is UpsertAction.UNCHANGED


async def test_contact_upsert_close_and_reopen(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    data = ContactData(first_name="Robin", last_name="Example", email="robin@fabrikam.example", operator="alex")
    res = await pega_records.upsert_contact("AAMkAD-con-1", data)
    assert res.action is UpsertAction.CREATED and res.id.startswith("PEGACRM-ENTITY-CONTACT CON-")
    assert (await pega_records.find_contact_by_email("robin@fabrikam.example")).id == res.id  # type: ignore[union-attr]
    data.job_title = "CFO"
    assert (await pega_records.upsert_contact("AAMkAD-con-1", data, known_id=res.id)).action is UpsertAction.UPDATED
    closed = await pega_records.close_contact(res.id)
    assert closed.etag
    assert (await pega_control.record(res.id))["content"]["pyStatusWork"] == "Closed"
    assert await pega_records.find_contact_by_email("robin@fabrikam.example") is None  # closed ones do not associate
    await pega_records.close_contact(res.id)  # no-op
    again = await pega_records.upsert_contact("AAMkAD-con-1", data)
    assert again.id == res.id and again.action is UpsertAction.UPDATED
    assert (await pega_control.record(res.id))["content"]["pyStatusWork"] == "Active"
    assert len([r for r in await pega_control.records("contact") if r["content"].get("ExchangeID") == "AAMkAD-con-1"]) == 1


async def test_contact_create_lost_answer_is_not_duplicated(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    await pega_control.add_fault(method="POST", path_contains="/api/v1/contacts", status=500, after_write=True)
    data = ContactData(first_name="Lost", last_name="Answer", email="lost@fabrikam.example")
    with pytest.raises(TransientError):
        await pega_records.upsert_contact("AAMkAD-con-lost", data)
    res = await pega_records.upsert_contact("AAMkAD-con-lost", data)
    assert res.action is UpsertAction.UNCHANGED
    assert len([r for r in await pega_control.records("contact") if r["content"].get("ExchangeID") == "AAMkAD-con-lost"]) == 1


async def test_set_external_id_reports_exchange_id_back(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    rep = await pega_control.create_appointment("alex", {"Subject": "From Pega"})
    await pega_records.set_external_id(RecordKind.APPOINTMENT, rep["id"], "AAMkAD-back-1")
    ref = await pega_records.find_by_external_id(RecordKind.APPOINTMENT, "AAMkAD-back-1")
    assert ref is not None and ref.id == rep["id"]


async def test_upserts_write_extra_content_in_the_same_create(pega_records: PegaRecords,
                                                             pega_control: PegaSimControl) -> None:
    await pega_control.reset()
    extra = {"SentimentLabel": "positive", "SuggestedActionTop": "Prepare a quote"}
    appt = await pega_records.upsert_appointment("AAMk-extra-appt", appointment(), extra=extra)
    mail = await pega_records.upsert_email("AAMk-extra-mail", EmailData(subject="Pricing", body="hi"), extra=extra)
    assert appt.action is UpsertAction.CREATED and mail.action is UpsertAction.CREATED
    for rid in (appt.id, mail.id):
        content = (await pega_control.record(rid))["content"]
        assert {k: content.get(k) for k in extra} == extra
    again = await pega_records.upsert_email("AAMk-extra-mail", EmailData(subject="Pricing", body="hi"), extra=extra)
    assert again.action is UpsertAction.UNCHANGED and again.id == mail.id


async def test_a_reset_never_hands_out_an_id_twice(pega_records: PegaRecords, pega_control: PegaSimControl) -> None:
    """Regression: the simulator restarted its counters on reset, so a test's new appointment got the id an
    earlier test had linked in our (persistent) state, and the sync reported that old meeting's Exchange id."""
    first = await pega_records.upsert_appointment("AAMkA-reset-1", appointment())
    await pega_control.reset()
    second = await pega_records.upsert_appointment("AAMkA-reset-2", appointment())
    assert first.id != second.id
