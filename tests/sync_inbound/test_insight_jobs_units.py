"""The pure parts of the deferred insights: which items get a job, what a job carries, how a page's
jobs are packed into queue messages (each within Azure Storage's 64 KB, base64-encoded)."""

from __future__ import annotations

import base64
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.pega.models import Association
from shared.sync import insight_jobs
from shared.sync.insight_jobs import InsightBatch, InsightJob, job_for, pack
from shared.sync.records import Address, EventRecord, MessageRecord

QUEUE_LIMIT = 64 * 1024  # bytes of a message as the queue stores it (base64 of the envelope's JSON)

# short texts of any characters, and long ones of characters JSON escapes or UTF-8 widens
bodies = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300),
    st.builds(lambda n, piece: (piece * n)[:n], st.integers(1_000, 30_000),
              st.sampled_from(["x", "é", '<b>"q"</b>\n', "\u2028", "😀", "\x01"])))


def mail(body: str, *, body_type: str = "html", text: str = "", **kw) -> MessageRecord:
    return MessageRecord(id="AAMk" + str(abs(hash(body)) % 10**8), subject="S", body=body, body_type=body_type,
                         body_text=text, sender=Address("dana@fabrikam.example", "Dana"),
                         received_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), **kw)


@settings(max_examples=60, deadline=None)
@given(st.lists(bodies, min_size=1, max_size=40), st.lists(st.text(max_size=200), max_size=10))
def test_every_message_fits_the_queue_and_the_jobs_keep_their_order(texts, header_values) -> None:
    jobs = [job_for(mail(t, text=t[:5000], headers=tuple(("X-H", v) for v in header_values)), "inbox", f"E-{i}",
                    Association(contact_id="C-1"), own_domain="contoso.example") for i, t in enumerate(texts)]
    assert all(j is not None for j in jobs)
    envelopes = pack("m1", jobs)  # type: ignore[arg-type]
    assert len(envelopes) <= len(jobs)
    assert all(len(base64.b64encode(e.dumps().encode())) <= QUEUE_LIMIT for e in envelopes)
    back = [j for e in envelopes for j in InsightBatch.model_validate(e.body).jobs]
    assert back == jobs


@given(bodies)
def test_a_large_body_travels_as_the_rounds_plain_text(body) -> None:
    job = job_for(mail(body, text="Plain new text."), "inbox", "E-1", None, own_domain="contoso.example")
    assert job is not None
    if insight_jobs.json_size(body) <= insight_jobs.RAW_BODY_MAX:
        assert (job.body, job.body_type) == (body, "html")
    else:
        assert (job.body, job.body_type) == ("Plain new text.", "text")


def test_only_received_mail_and_appointments_that_are_not_private_get_a_job() -> None:
    assert job_for(mail("x"), "sentitems", "E-1", None, own_domain="c.example") is None
    assert job_for(mail("x", sensitivity=2), "inbox", "E-1", None, own_domain="c.example") is None
    ev = EventRecord(id="AAMkE", subject="Review", body="Great!", body_type="text",
                     organizer=Address("Dana@Fabrikam.example", "Dana"))
    job = job_for(ev, "calendar", "A-1", Association(organization_id="O-1"), own_domain="Contoso.example")
    assert job is not None and job.kind == "appointment" and job.organizer == "dana@fabrikam.example"
    assert job.own_domain == "contoso.example" and job.association.organization_id == "O-1"
    assert job_for(EventRecord(id="AAMkP", sensitivity="private"), "calendar", "A-2", None, own_domain="c.example") \
        is None


def test_a_dead_letter_keeps_the_ids_and_not_the_text() -> None:
    job = InsightJob(kind="email", graph_id="AAMk1", pega_id="E-1", subject="Secret deal", body="Secret body")
    [env] = pack("m1", [job])
    kept = insight_jobs.redact(env.dumps())
    assert "Secret" not in kept and "AAMk1" in kept and "E-1" in kept
    assert insight_jobs.redact("not json") == "(not an insights message; its text is not kept)"
