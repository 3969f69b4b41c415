"""Format parsers for attachments: bytes → text under explicit limits.

These run inside the isolated worker process (see :mod:`shared.insights.attachments`), or inline
when isolation is switched off. Each checks its budget cooperatively between pages/paragraphs/parts
so that the usual case ends cleanly; the worker's hard kill is what bounds a parser stuck inside a
library call. Bomb checks happen *before* a library gets the bytes (zip directory, MIME boundary
count), because after that we no longer control memory.
"""

from __future__ import annotations

import email
import email.policy
import io
import logging
import re
import time
import zipfile
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Literal

from shared.insights.html_text import html_to_text, normalise_whitespace
from shared.insights.models import SkipReason

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """Per-attachment limits. Defaults suit a sync worker: small, fast, and never fatal."""

    max_bytes: int = 10 * _MiB
    timeout_seconds: float = 5.0
    max_chars: int = 100_000
    max_pdf_pages: int = 50
    max_pdf_nesting: int = 100  # arrays/dictionaries; real documents stay below ~10
    max_pdf_objects: int = 200_000  # xref entries: a PDF declaring more is treated as a bomb
    max_zip_entries: int = 2_000
    max_zip_uncompressed_bytes: int = 100 * _MiB
    max_zip_ratio: float = 100.0  # per entry, for entries over 1 MiB uncompressed
    max_mime_parts: int = 200
    max_mime_depth: int = 10
    memory_limit_bytes: int | None = 1024 * _MiB  # address-space cap of the worker (Linux); None = no cap
    isolation: Literal["process", "inline"] = "process"  # process: hard time/memory limits; inline: cooperative only
    max_attachments_per_item: int = 10  # further attachments of one email/appointment are skipped (ITEM_LIMIT)
    item_budget_seconds: float = 15.0  # total extraction time per item; once spent, the rest is skipped


class Skip(Exception):
    """Raised by a parser to skip an attachment with a typed reason."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise Skip(SkipReason.TIMEOUT, f"parsing took longer than {self.seconds:g}s")

    def expired(self, share: float = 1.0) -> bool:
        """True once ``share`` of the budget is spent (parsers that can stop between units keep what they have)."""
        return time.monotonic() > self.deadline - self.seconds * (1.0 - share)


@dataclass(slots=True)
class Parsed:
    text: str
    truncated: bool = False


class _Collector:
    def __init__(self, max_chars: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.max_chars = max_chars
        self.truncated = False

    def add(self, s: str) -> bool:
        """Append; False once the cap is reached (callers stop reading)."""
        if not s:
            return True
        room = self.max_chars - self.size
        if len(s) > room:
            s = s[:room]
            self.truncated = True
        self.parts.append(s)
        self.size += len(s)
        return not self.truncated

    def result(self, sep: str = "\n") -> Parsed:
        return Parsed(normalise_whitespace(sep.join(self.parts)), self.truncated)


# --- text & HTML --------------------------------------------------------------------------------
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for cs in (charset, "utf-8"):
        if not cs:
            continue
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", errors="replace")


def parse_text(data: bytes, limits: ExtractionLimits, budget: Budget, charset: str | None = None) -> Parsed:
    raw = data[: limits.max_chars * 4]
    text = decode_bytes(raw, charset)
    truncated = len(data) > len(raw) or len(text) > limits.max_chars
    return Parsed(normalise_whitespace(text[: limits.max_chars]), truncated)


def parse_html(data: bytes, limits: ExtractionLimits, budget: Budget, charset: str | None = None) -> Parsed:
    if charset is None:
        m = _META_CHARSET.search(data[:4096])
        charset = m.group(1).decode("ascii") if m else None
    text, truncated = html_to_text(decode_bytes(data, charset), max_chars=limits.max_chars)
    return Parsed(text, truncated)


# --- PDF ----------------------------------------------------------------------------------------
_PDF_TOKEN = re.compile(rb"endstream|stream\r?\n|\[|\]|<<|>>")


def pdf_nesting_depth(data: bytes, limit: int) -> int:
    """Deepest array/dictionary nesting in the file's uncompressed syntax (stream data skipped).

    Returns as soon as ``limit`` is exceeded. Objects inside compressed object streams are not
    seen here; pypdf's own nesting guard covers those.
    """
    depth = best = 0
    pos = 0
    search = _PDF_TOKEN.search
    while True:
        m = search(data, pos)
        if m is None:
            return best
        tok = m.group(0)
        pos = m.end()
        if tok.startswith(b"stream"):
            end = data.find(b"endstream", pos)
            if end < 0:
                return best
            pos = end + 9
        elif tok in (b"[", b"<<"):
            depth += 1
            if depth > best:
                best = depth
                if best > limit:
                    return best
        elif tok in (b"]", b">>"):
            depth = max(0, depth - 1)


def parse_pdf(data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed files log per object
    depth = pdf_nesting_depth(data, limits.max_pdf_nesting)
    if depth > limits.max_pdf_nesting:
        raise Skip(SkipReason.TOO_DEEP, f"PDF objects nested deeper than {limits.max_pdf_nesting}")
    budget.check()
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")  # owner-password-only PDFs open with the empty user password
            except Exception as exc:
                raise Skip(SkipReason.ENCRYPTED, f"encrypted PDF ({type(exc).__name__})") from exc
            if not ok:
                raise Skip(SkipReason.ENCRYPTED, "encrypted PDF (password required)")
        xref_size = sum(len(v) for v in reader.xref.values()) if hasattr(reader, "xref") else 0
        if xref_size > limits.max_pdf_objects:
            raise Skip(SkipReason.BOMB, f"PDF declares {xref_size} objects (limit {limits.max_pdf_objects})")
        budget.check()
        n_pages = len(reader.pages)
        out = _Collector(limits.max_chars)
        failed = 0
        stopped_early = False
        for i in range(min(n_pages, limits.max_pdf_pages)):
            if budget.expired(0.8) and out.parts:  # keep the pages read so far rather than lose them all
                stopped_early = True
                break
            budget.check()
            try:  # lenient: a broken content stream on one page must not lose the others
                page_text = reader.pages[i].extract_text() or ""
            except (RecursionError, MemoryError, Skip):
                raise
            except Exception:
                failed += 1
                continue
            if not out.add(page_text):
                break
        parsed = out.result()
        if failed and not parsed.text.strip():
            raise Skip(SkipReason.CORRUPT, f"no readable page ({failed} of {min(n_pages, limits.max_pdf_pages)} failed)")
        parsed.truncated = parsed.truncated or n_pages > limits.max_pdf_pages or failed > 0 or stopped_early
        return parsed
    except Skip:
        raise
    except RecursionError as exc:
        raise Skip(SkipReason.TOO_DEEP, "PDF object structure nested too deeply") from exc
    except FileNotDecryptedError as exc:
        raise Skip(SkipReason.ENCRYPTED, "encrypted PDF") from exc
    except PdfReadError as exc:
        raise Skip(SkipReason.CORRUPT, f"unreadable PDF ({type(exc).__name__})") from exc


# --- DOCX ---------------------------------------------------------------------------------------
def check_zip(data: bytes, limits: ExtractionLimits) -> set[str]:
    """Reject zip bombs from the central directory alone, before any entry is inflated; the entry names.

    The declared sizes are trustworthy bounds: Python's zipfile never inflates an entry past its
    declared ``file_size`` (a lying header ends in a CRC error, not in unbounded output).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Skip(SkipReason.CORRUPT, f"not a readable zip container ({type(exc).__name__})") from exc
    if len(infos) > limits.max_zip_entries:
        raise Skip(SkipReason.BOMB, f"{len(infos)} zip entries (limit {limits.max_zip_entries})")
    total = sum(i.file_size for i in infos)
    if total > limits.max_zip_uncompressed_bytes:
        raise Skip(SkipReason.BOMB, f"{total} bytes uncompressed (limit {limits.max_zip_uncompressed_bytes})")
    # the per-entry ratio is checked when an entry is about to be inflated (office_parsers._read_entry):
    # an embedded object we never read may compress 130:1 in a perfectly ordinary document
    return {i.filename for i in infos}


_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_OOXML_NAMES = {"docx": "Word document", "pptx": "PowerPoint presentation", "xlsx": "Excel workbook"}


def _parse_ooxml(expected: str, data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    from shared.insights.office_parsers import ZipEntryBomb, ooxml_kind, ooxml_text

    if data.startswith(_OLE_MAGIC):
        # password-protected OOXML is an OLE compound file holding an "EncryptedPackage" stream
        if _ENCRYPTED_PACKAGE in data:
            raise Skip(SkipReason.ENCRYPTED, f"password-protected {_OOXML_NAMES.get(expected, 'Office file')}")
        raise Skip(SkipReason.UNSUPPORTED_TYPE, "legacy binary Office file (.doc/.xls/.ppt) is not supported")
    names = check_zip(data, limits)
    kind = ooxml_kind(names)
    if kind is None:
        raise Skip(SkipReason.CORRUPT, "zip holds no Office document part (word/document.xml, ppt/presentation.xml, xl/workbook.xml)")
    budget.check()
    out = _Collector(limits.max_chars)
    try:
        ooxml_text(
            data, kind, max_chars=limits.max_chars, max_entry_bytes=min(limits.max_zip_uncompressed_bytes, 64 * _MiB),
            check=budget.check, add=out.add,
            html=lambda b: html_to_text(decode_bytes(b), max_chars=limits.max_chars)[0], max_ratio=limits.max_zip_ratio,
        )  # fmt: skip
    except Skip:
        raise
    except ZipEntryBomb as exc:
        raise Skip(SkipReason.BOMB, f"{exc} (limit {limits.max_zip_ratio:g})") from exc
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, SyntaxError) as exc:  # lxml XMLSyntaxError is a SyntaxError
        if out.parts:  # a damaged later part: keep what was read
            parsed = out.result()
            parsed.truncated = True
            return parsed
        raise Skip(SkipReason.CORRUPT, f"unreadable {kind.upper()} ({type(exc).__name__})") from exc
    return out.result()


def parse_docx(data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    return _parse_ooxml("docx", data, limits, budget)


def parse_pptx(data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    return _parse_ooxml("pptx", data, limits, budget)


def parse_xlsx(data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    return _parse_ooxml("xlsx", data, limits, budget)


def parse_msg(data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    """Subject and new text of an Outlook .msg; its own attachments are not opened."""
    from shared.insights.email_text import strip_quoted_and_signature
    from shared.insights.office_parsers import OleKindError, msg_parts

    try:
        subject, plain, html = msg_parts(data, limits.max_chars * 4)
    except OleKindError as exc:
        raise Skip(exc.reason, exc.detail) from exc
    budget.check()
    body = plain if plain.strip() else html_to_text(html, strip_quotes=True, max_chars=limits.max_chars)[0]
    text = strip_quoted_and_signature(body[: limits.max_chars * 4])
    full = (subject + "\n\n" + text).strip() if subject else text
    return Parsed(full[: limits.max_chars], len(full) > limits.max_chars)


# --- EML ----------------------------------------------------------------------------------------
_BOUNDARY_PARAM = re.compile(rb"boundary\s*=", re.IGNORECASE)


def parse_eml(data: bytes, limits: ExtractionLimits, budget: Budget) -> Parsed:
    """Subject and new text of an attached message (RFC 5322). Its own attachments are not opened."""
    from shared.insights.email_text import strip_quoted_and_signature

    if len(_BOUNDARY_PARAM.findall(data)) > limits.max_mime_parts:
        raise Skip(SkipReason.BOMB, f"more than {limits.max_mime_parts} multipart boundaries")
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except RecursionError as exc:
        raise Skip(SkipReason.TOO_DEEP, "MIME structure nested too deeply") from exc
    budget.check()
    if not msg.keys():
        raise Skip(SkipReason.CORRUPT, "no RFC 5322 headers")
    plain: list[str] = []
    html: list[str] = []
    count = 0

    def walk(part: Message, depth: int) -> None:
        nonlocal count
        count += 1
        if depth > limits.max_mime_depth:
            raise Skip(SkipReason.TOO_DEEP, f"MIME nesting deeper than {limits.max_mime_depth}")
        if count > limits.max_mime_parts:
            raise Skip(SkipReason.BOMB, f"more than {limits.max_mime_parts} MIME parts")
        budget.check()
        if part.is_multipart():
            payload = part.get_payload()
            for sub in payload if isinstance(payload, list) else []:
                if isinstance(sub, Message):
                    walk(sub, depth + 1)
            return
        if part.get_content_disposition() == "attachment":
            return
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            return
        try:
            decoded = part.get_payload(decode=True)
        except Exception:  # a malformed transfer encoding: skip just this part
            return
        body = decoded if isinstance(decoded, bytes) else b""
        charset = part.get_content_charset()
        (plain if ctype == "text/plain" else html).append(decode_bytes(body[: limits.max_chars * 4], charset))

    try:
        walk(msg, 0)
    except RecursionError as exc:
        raise Skip(SkipReason.TOO_DEEP, "MIME structure nested too deeply") from exc
    if plain:
        body_text = "\n\n".join(plain)
    else:
        body_text = "\n\n".join(html_to_text(h, strip_quotes=True, max_chars=limits.max_chars)[0] for h in html)
    subject = str(msg.get("subject", "") or "") if isinstance(msg, EmailMessage) else ""
    text = strip_quoted_and_signature(body_text[: limits.max_chars * 4])
    full = (subject + "\n\n" + text).strip() if subject else text
    return Parsed(full[: limits.max_chars], len(full) > limits.max_chars)


PARSERS = {
    "pdf": parse_pdf,
    "docx": parse_docx,
    "pptx": parse_pptx,
    "xlsx": parse_xlsx,
    "eml": parse_eml,
    "msg": parse_msg,
}
