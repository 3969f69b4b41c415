"""Attachment extraction from real generated files, and bombs rejected within their limits.

No stopwatch assertions: the typed reason is what each test is about. The module's worker gets a
generous hard timeout so a loaded machine cannot turn a good parse into a TIMEOUT; the one test of
the hard timeout sets its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.insights import AttachmentExtractor, AttachmentInput, ExtractionLimits, SkipReason, extract_attachment
from shared.insights.attachments import detect_kind
from tests.insights.files import (
    make_deep_pdf,
    make_docx,
    make_docx_ratio_bomb,
    make_eml,
    make_nested_eml,
    make_pdf,
    make_pdf_flate_bomb,
    make_zip_many_entries,
)


@pytest.fixture(scope="module")
def extractor() -> Iterator[AttachmentExtractor]:
    """One worker process for the module, as a sync host would keep one."""
    with AttachmentExtractor(ExtractionLimits(timeout_seconds=60.0)) as ex:
        yield ex


def att(name: str, data: bytes, ctype: str = "application/octet-stream") -> AttachmentInput:
    return AttachmentInput(name=name, content=data, content_type=ctype)


# --- real files ---------------------------------------------------------------------------------
def test_pdf_text_from_every_page(extractor: AttachmentExtractor) -> None:
    pdf = make_pdf([["We are unhappy with the delay (again)."], ["Second page: please call me."]])
    r = extractor.extract_sync(att("complaint.pdf", pdf, "application/pdf"))
    assert r.ok and r.kind == "pdf"
    assert "We are unhappy with the delay (again)." in r.text
    assert "Second page: please call me." in r.text


def test_pdf_page_cap_marks_truncated() -> None:
    pdf = make_pdf([[f"page {i}"] for i in range(5)])
    r = extract_attachment(att("p.pdf", pdf), limits=ExtractionLimits(max_pdf_pages=2, isolation="inline"))
    assert r.ok and r.truncated
    assert "page 1" in r.text and "page 2" not in r.text


def test_encrypted_pdf_skipped_with_reason(extractor: AttachmentExtractor) -> None:
    r = extractor.extract_sync(att("secret.pdf", make_pdf([["confidential"]], password="s3cret")))
    assert r.skipped is SkipReason.ENCRYPTED
    assert "confidential" not in r.detail


def test_owner_password_only_pdf_is_read(extractor: AttachmentExtractor) -> None:
    r = extractor.extract_sync(att("restricted.pdf", make_pdf([["Readable but not editable."]], password="")))
    assert r.ok and "Readable but not editable." in r.text


def test_password_protected_and_legacy_word_files(extractor: AttachmentExtractor) -> None:
    # OOXML with a password is an OLE compound file holding an "EncryptedPackage" stream (synthetic stand-in)
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500
    r = extractor.extract_sync(att("locked.docx", ole + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 100))
    assert r.skipped is SkipReason.ENCRYPTED
    assert extractor.extract_sync(att("old.docx", ole)).skipped is SkipReason.UNSUPPORTED_TYPE
    assert extractor.extract_sync(att("old.doc", ole)).skipped is SkipReason.UNSUPPORTED_TYPE


def test_docx_paragraphs_and_tables(extractor: AttachmentExtractor) -> None:
    docx = make_docx(["Request for quotation", "We need pricing for 200 seats."], [["Item", "Qty"], ["Licence", "200"]])
    r = extractor.extract_sync(att("rfq.docx", docx))
    assert r.ok and r.kind == "docx"
    assert "We need pricing for 200 seats." in r.text and "Licence | 200" in r.text


def test_text_html_and_charset(extractor: AttachmentExtractor) -> None:
    r = extractor.extract_sync(att("notes.txt", "Grüße aus Köln".encode("latin-1"), "text/plain; charset=iso-8859-1"))
    assert r.ok and r.text == "Grüße aus Köln"
    r = extractor.extract_sync(att("page.html", b"<html><body><h1>Offer</h1><p>Price &euro; 100</p></body></html>", "text/html"))
    assert r.ok and "Offer" in r.text and "Price € 100" in r.text


def test_eml_subject_and_new_text(extractor: AttachmentExtractor) -> None:
    eml = make_eml(
        "Escalation: outage",
        "The portal has been down all day.\n\nOn Mon, Sam wrote:\n> all good here\n",
        html="<p>The portal has been down all day.</p>",
        attachment=b"\x00\x01binary",
    )
    r = extractor.extract_sync(att("fwd.eml", eml, "message/rfc822"))
    assert r.ok and r.kind == "eml"
    assert r.text.startswith("Escalation: outage")
    assert "down all day" in r.text and "all good here" not in r.text


def test_broken_msg_is_corrupt_with_a_clear_reason(extractor: AttachmentExtractor) -> None:
    """.msg is read since issue 15 (tests/insights/test_issue15.py); a damaged one says why it is skipped."""
    r = extractor.extract_sync(att("mail.msg", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100))
    assert r.skipped is SkipReason.CORRUPT and r.kind == "msg" and r.detail


def test_unknown_type_and_empty(extractor: AttachmentExtractor) -> None:
    assert extractor.extract_sync(att("photo.jpg", b"\xff\xd8\xff", "image/jpeg")).skipped is SkipReason.UNSUPPORTED_TYPE
    assert extractor.extract_sync(att("empty.txt", b"")).skipped is SkipReason.EMPTY
    assert extractor.extract_sync(att("blank.pdf", make_pdf([[]]))).skipped is SkipReason.EMPTY


def test_kind_detection_prefers_pdf_magic() -> None:
    assert detect_kind("invoice.bin", "application/octet-stream", b"%PDF-1.7") == "pdf"
    assert detect_kind("x", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK") == "docx"
    assert detect_kind("x.csv", "", b"a,b") == "text"
    assert detect_kind("x.zip", "application/zip", b"PK") == "other:zip"


def test_worker_is_reused_between_attachments(extractor: AttachmentExtractor) -> None:
    extractor.extract_sync(att("a.txt", b"one"))
    pid = extractor._idle[-1].proc.pid
    extractor.extract_sync(att("b.txt", b"two"))
    assert extractor._idle[-1].proc.pid == pid


# --- limits and bombs ---------------------------------------------------------------------------
def test_oversized_attachment_rejected_before_parsing(extractor: AttachmentExtractor) -> None:
    limits = ExtractionLimits(max_bytes=1024)
    with AttachmentExtractor(limits) as small:
        r = small.extract_sync(att("huge.pdf", b"%PDF-1.4\n" + b"0" * 4096))
    assert r.skipped is SkipReason.TOO_LARGE and "4105 bytes" in r.detail


def test_docx_zip_bomb_rejected_from_the_directory(extractor: AttachmentExtractor) -> None:
    bomb = make_docx_ratio_bomb(20)
    assert len(bomb) < 100_000  # ~20 MiB inflated from a few KiB
    r = extractor.extract_sync(att("bomb.docx", bomb))
    assert r.skipped is SkipReason.BOMB and "ratio" in r.detail


def test_docx_with_too_many_entries_is_a_bomb(extractor: AttachmentExtractor) -> None:
    r = extractor.extract_sync(att("many.docx", make_zip_many_entries(2500)))
    assert r.skipped is SkipReason.BOMB and "entries" in r.detail


def test_docx_total_uncompressed_limit() -> None:
    docx = make_docx(["x" * 5000])
    r = extract_attachment(att("a.docx", docx), limits=ExtractionLimits(max_zip_uncompressed_bytes=10_000, isolation="inline"))
    assert r.skipped is SkipReason.BOMB and "uncompressed" in r.detail


def test_deeply_nested_pdf_rejected(extractor: AttachmentExtractor) -> None:
    r = extractor.extract_sync(att("deep.pdf", make_deep_pdf(100_000)))
    assert r.skipped is SkipReason.TOO_DEEP


def test_pdf_stream_decompression_bomb_is_bounded(extractor: AttachmentExtractor) -> None:
    bomb = make_pdf_flate_bomb(100)
    assert len(bomb) < 1_000_000  # 100 MiB inflated from a few hundred KiB
    r = extractor.extract_sync(att("bomb.pdf", bomb))
    # pypdf caps inflation (75 MB); the worker's address-space cap and hard timeout back it up
    assert r.skipped in {SkipReason.EMPTY, SkipReason.BOMB, SkipReason.MEMORY, SkipReason.TIMEOUT}, r.detail


def test_deeply_nested_eml_rejected(extractor: AttachmentExtractor) -> None:
    r = extractor.extract_sync(att("deep.eml", make_nested_eml(40)))
    assert r.skipped is SkipReason.TOO_DEEP
    r = extractor.extract_sync(att("bomb.eml", make_nested_eml(5000)))
    assert r.skipped is SkipReason.BOMB
    r = extractor.extract_sync(att("fine.eml", make_nested_eml(3)))
    assert r.ok and "hello from the bottom" in r.text


@pytest.mark.timeout(120)  # a hang guard, not a stopwatch: the recursive reader never returned
def test_deeply_nested_html_is_read(extractor: AttachmentExtractor) -> None:
    html = b"<div>" * 100_000 + b"buried sentence" + b"</div>" * 100_000
    r = extractor.extract_sync(att("deep.html", html, "text/html"))
    assert r.ok and r.text == "buried sentence"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("corrupt.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"),
        ("truncated.pdf", make_pdf([["hello"]])[:300]),
        ("corrupt.docx", b"PK\x03\x04" + b"\x00" * 200),
        ("notzip.docx", b"this is not a zip"),
        ("garbage.eml", b"\x00\x01\x02\x03"),
    ],
)
def test_corrupt_files_skipped_not_raised(extractor: AttachmentExtractor, name: str, data: bytes) -> None:
    r = extractor.extract_sync(att(name, data))
    assert r.skipped in {SkipReason.CORRUPT, SkipReason.EMPTY}, (r.skipped, r.detail)


def test_hard_timeout_kills_a_parse_that_does_not_cooperate() -> None:
    # html_to_text has no budget checks inside: only the worker kill can stop it at 0.3 s
    big = b"<p>" + b"<b>word</b> " * 1_500_000 + b"</p>"
    limits = ExtractionLimits(timeout_seconds=0.3, max_bytes=50 * 1024 * 1024, max_chars=50_000_000)
    with AttachmentExtractor(limits) as ex:
        ex.extract_sync(att("warm.txt", b"start the worker"))
        r = ex.extract_sync(att("slow.html", big, "text/html"))
        assert r.skipped is SkipReason.TIMEOUT, r.detail
        # the killed worker is replaced transparently
        assert ex.extract_sync(att("after.txt", b"still works")).text == "still works"


def test_cooperative_timeout_inline() -> None:
    pdf = make_pdf([[f"line {i} " * 10 for i in range(40)]] * 30)
    r = extract_attachment(att("long.pdf", pdf), limits=ExtractionLimits(timeout_seconds=0.001, isolation="inline"))
    assert r.skipped is SkipReason.TIMEOUT


def test_memory_limit_turns_allocation_into_a_skip() -> None:
    # a 'text' attachment is decoded in the worker; with a tiny address-space cap decoding fails
    limits = ExtractionLimits(memory_limit_bytes=64 * 1024 * 1024, max_chars=40_000_000, max_bytes=40 * 1024 * 1024)
    with AttachmentExtractor(limits) as ex:
        r = ex.extract_sync(att("big.txt", b"a" * (30 * 1024 * 1024)))
    assert r.skipped is SkipReason.MEMORY, r.detail


async def test_concurrent_extraction_with_two_workers() -> None:
    docs = [att(f"d{i}.docx", make_docx([f"Document number {i}."])) for i in range(6)]
    with AttachmentExtractor(ExtractionLimits(), max_workers=2) as ex:
        results = await ex.extract_many(docs)
        assert [r.text for r in results] == [f"Document number {i}." for i in range(6)]
        assert 1 <= len(ex._idle) <= 2


def test_arbitrary_bytes_through_the_real_worker(extractor: AttachmentExtractor) -> None:
    """A few hostile inputs end-to-end through the isolated worker (the property test covers many inline)."""
    import random

    rng = random.Random(7)
    for prefix in (b"%PDF-1.7\n", b"PK\x03\x04", b"From: x\r\n", b"<html>"):
        for name in ("x.pdf", "x.docx", "x.eml", "x.html"):
            blob = prefix + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000)))
            r = extractor.extract_sync(att(name, blob))
            assert r.ok or isinstance(r.skipped, SkipReason)
    assert extractor.extract_sync(att("ok.txt", b"worker still alive")).text == "worker still alive"
