"""Attachment text extraction with limits that actually hold.

Time limit design: the parse runs in a separate worker process that the caller kills when the
budget is spent. A cooperative check (between pages or paragraphs) cannot interrupt pypdf or lxml
while they are inside one object, and a thread cannot be killed at all, so only a process gives a
hard bound. The worker is long-lived (one fork per worker, reused for every attachment) and is
replaced after a kill, so the steady-state cost is one pipe round trip per attachment. The worker
also runs under an address-space limit (RLIMIT_AS) so a decompression bomb that slips past the
pre-checks ends as a MemoryError in the worker, not as an out-of-memory kill of the Functions host.

``isolation="inline"`` runs the same parsers in-process with cooperative checks only (used where
processes are unavailable and in property tests); its time limit is best-effort.

Nothing here raises into the sync: every failure is an ``ExtractedText`` with a ``SkipReason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from shared.insights.attachment_parsers import (
    PARSERS,
    Budget,
    ExtractionLimits,
    Parsed,
    Skip,
    parse_html,
    parse_text,
)
from shared.insights.models import AttachmentInput, ExtractedText, SkipReason

log = logging.getLogger(__name__)

__all__ = ["AttachmentExtractor", "ExtractionLimits", "detect_kind", "extract_attachment"]

_EXT_KIND = {
    ".pdf": "pdf", ".docx": "docx", ".docm": "docx", ".dotx": "docx", ".pptx": "pptx", ".pptm": "pptx",
    ".xlsx": "xlsx", ".xlsm": "xlsx", ".eml": "eml", ".htm": "html", ".html": "html",
    ".txt": "text", ".csv": "text", ".md": "text", ".log": "text", ".json": "text", ".xml": "text",
    ".ics": "text", ".vcf": "text", ".msg": "msg", ".rtf": "other:rtf", ".doc": "other:doc",
    ".xls": "other:xls", ".ppt": "other:ppt", ".dat": "other:dat",
}  # fmt: skip
_CTYPE_KIND = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "message/rfc822": "eml",
    "text/html": "html",
    "application/vnd.ms-outlook": "msg",
    "application/ms-tnef": "other:tnef",
    "application/rtf": "other:rtf",
}
_SNIFF_BYTES = 4096
_RFC822_HEADER = re.compile(
    rb"^(?:received|return-path|from|to|subject|date|message-id|mime-version|delivered-to|x-[\w-]+|reply-to"
    rb"|content-type|dkim-signature|arc-[\w-]+|authentication-results|sender|cc|thread-[\w-]+)\s*:",
    re.IGNORECASE,
)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|div|p|table)\b", re.IGNORECASE | re.DOTALL)


def sniff_kind(head: bytes, data: bytes | None = None) -> str | None:
    """The kind the content itself declares (magic bytes, container layout), or None when it does not."""
    h = head[:_SNIFF_BYTES]
    if h.startswith(b"\xef\xbb\xbf"):
        h = h[3:]
    if b"%PDF-" in h[:1024]:  # lenient: some writers put junk before the header; readers accept it
        return "pdf"
    if h.startswith(b"PK\x03\x04") and data is not None:
        import zipfile

        from shared.insights.office_parsers import ooxml_kind

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return ooxml_kind(set(zf.namelist())) or "other:zip"
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            return None  # a damaged zip: the name decides, the parser says why it cannot read it
    if h.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") and data is not None:
        from shared.insights.office_parsers import ole_kind

        found = ole_kind(data)
        if found == "ole":  # not a compound file olefile can list: the name decides, the parser states why
            return None
        return {"msg": "msg", "ooxml-encrypted": "docx"}.get(found, "other:" + found)
    if h.startswith(b"{\\rtf"):
        return "other:rtf"
    if h.startswith(b"\x78\x9f\x3e\x22"):
        return "other:tnef"
    if h.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "other:image"
    stripped = h.lstrip()
    if stripped[:15].upper().startswith(b"BEGIN:VCALENDAR") or stripped[:11].upper().startswith(b"BEGIN:VCARD"):
        return "text"
    if _HTML_START.match(stripped):
        return "html"
    first_lines = stripped.split(b"\n", 3)[:3]
    if first_lines and sum(1 for line in first_lines if _RFC822_HEADER.match(line)) >= 2:
        return "eml"
    return None


def detect_kind(name: str, content_type: str, head: bytes, data: bytes | None = None) -> str:
    """pdf | docx | pptx | xlsx | eml | html | text | msg | other:<what>. The content decides first
    (a .msg named .eml is a .msg), then the extension, then the declared content type."""
    sniffed = sniff_kind(head, data)
    if sniffed is not None:
        return sniffed
    ext = os.path.splitext(name.lower())[1]
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ext in _EXT_KIND:
        return _EXT_KIND[ext]
    if ctype in _CTYPE_KIND:
        return _CTYPE_KIND[ctype]
    if ctype.startswith("text/"):
        return "text"
    return "other:" + (ext.lstrip(".") or ctype or "unknown")


_UNSUPPORTED = {
    "rtf": "RTF documents",
    "tnef": "Exchange TNEF (winmail.dat); Graph returns the item's attachments separately",
    "doc": "legacy binary Word documents (.doc)",
    "xls": "legacy binary Excel workbooks (.xls)",
    "ppt": "legacy binary PowerPoint files (.ppt)",
    "image": "images (no OCR)",
    "zip": "zip archives (not opened)",
    "ole": "this OLE compound file",
}


def _charset(content_type: str) -> str | None:
    for piece in (content_type or "").split(";")[1:]:
        k, _, v = piece.partition("=")
        if k.strip().lower() == "charset":
            return v.strip().strip("\"'") or None
    return None


def extract_core(name: str, kind: str, data: bytes, content_type: str, limits: ExtractionLimits,
                 seconds: float) -> ExtractedText:  # fmt: skip
    """Parse in the current process. Never raises (except BaseException like KeyboardInterrupt)."""
    budget = Budget(seconds)
    try:
        parsed: Parsed
        if kind == "text":
            parsed = parse_text(data, limits, budget, _charset(content_type))
        elif kind == "html":
            parsed = parse_html(data, limits, budget, _charset(content_type))
        else:
            parsed = PARSERS[kind](data, limits, budget)
        budget.check()
    except Skip as s:
        return ExtractedText(name, kind, skipped=s.reason, detail=s.detail)
    except MemoryError:
        return ExtractedText(name, kind, skipped=SkipReason.MEMORY, detail="memory limit reached while parsing")
    except RecursionError:
        return ExtractedText(name, kind, skipped=SkipReason.TOO_DEEP, detail="structure nested too deeply")
    except Exception as exc:  # any library error on hostile input is "corrupt", never a sync failure
        return ExtractedText(name, kind, skipped=SkipReason.CORRUPT, detail=f"unreadable {kind} ({type(exc).__name__})")
    if not parsed.text.strip():
        return ExtractedText(name, kind, skipped=SkipReason.EMPTY, detail="no extractable text")
    return ExtractedText(name, kind, text=parsed.text, truncated=parsed.truncated)


def _precheck(att: AttachmentInput, limits: ExtractionLimits) -> tuple[str, ExtractedText | None]:
    try:
        kind = detect_kind(att.name, att.content_type, att.content[:_SNIFF_BYTES],
                           att.content if len(att.content) <= limits.max_bytes else None)  # fmt: skip
    except Exception:  # sniffing hostile bytes must not fail the item: let the name decide
        kind = detect_kind(att.name, att.content_type, b"")
    if kind.startswith("other:"):
        what = _UNSUPPORTED.get(kind[6:], kind[6:])
        return kind, ExtractedText(att.name, kind, skipped=SkipReason.UNSUPPORTED_TYPE, detail=f"no text extractor for {what}")
    if att.is_inline and att.content_type.lower().startswith("image/"):
        return kind, ExtractedText(att.name, kind, skipped=SkipReason.UNSUPPORTED_TYPE, detail="inline image")
    if len(att.content) > limits.max_bytes:
        return kind, ExtractedText(
            att.name, kind, skipped=SkipReason.TOO_LARGE,
            detail=f"{len(att.content)} bytes (limit {limits.max_bytes})",
        )  # fmt: skip
    if not att.content:
        return kind, ExtractedText(att.name, kind, skipped=SkipReason.EMPTY, detail="empty attachment")
    return kind, None


# --- worker process -----------------------------------------------------------------------------
def _worker_main(conn: multiprocessing.connection.Connection, memory_limit: int | None) -> None:
    """Loop: receive a job, parse, send the result. Runs in the child process."""
    if memory_limit and sys.platform.startswith("linux"):
        import resource

        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    sys.setrecursionlimit(5000)
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    # import the parsers' libraries before saying ready, so their import time is never charged to an attachment
    with contextlib.suppress(ImportError):
        import lxml.etree  # noqa: F401
        import olefile  # noqa: F401
        import pypdf  # noqa: F401
    try:
        conn.send(_READY)
    except OSError:
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:  # the job itself does not fit under the address-space cap
            with contextlib.suppress(OSError, MemoryError):
                conn.send(_MEMORY_SENTINEL)
            return
        if job is None:
            return
        name, kind, data, content_type, limits, seconds = job
        result = extract_core(name, kind, data, content_type, limits, seconds)
        try:
            conn.send(result)
        except (OSError, MemoryError):
            return


_MEMORY_SENTINEL = "memory-limit"
_READY = "ready"
_STARTUP_TIMEOUT = 30.0


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    # forkserver: children fork from a clean single-threaded server, not from the (threaded) host.
    # Preloading the parsers there makes every (re)start after a kill a cheap fork. Only takes
    # effect if the server is not running yet; harmless for other users of forkserver.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["shared.insights.attachment_parsers", "shared.insights.attachments",
                                "shared.insights.office_parsers", "pypdf", "lxml.etree", "olefile"])
    return ctx


class _Worker:
    def __init__(self, limits: ExtractionLimits) -> None:
        ctx = _context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, limits.memory_limit_bytes), daemon=True)
        self.proc.start()
        child.close()
        # process start-up (fork from the server, imports) is not part of any attachment's time budget
        if not self.conn.poll(_STARTUP_TIMEOUT) or self.conn.recv() != _READY:
            self.kill()
            raise RuntimeError("extraction worker did not start")

    def run(self, name: str, kind: str, data: bytes, content_type: str, limits: ExtractionLimits) -> ExtractedText:
        started = time.monotonic()
        try:
            # the worker stops itself cooperatively a little before the hard deadline
            self.conn.send((name, kind, data, content_type, limits, limits.timeout_seconds * 0.9))
        except (OSError, ValueError):
            memory = self._memory_sentinel_waiting()
            self.kill()
            if memory:
                return ExtractedText(name, kind, skipped=SkipReason.MEMORY, detail="attachment exceeds the worker memory limit")
            return ExtractedText(name, kind, skipped=SkipReason.WORKER_FAILED, detail="worker pipe failed")
        remaining = limits.timeout_seconds - (time.monotonic() - started)
        if not self.conn.poll(max(remaining, 0.0)):
            self.kill()
            return ExtractedText(name, kind, skipped=SkipReason.TIMEOUT,
                                 detail=f"parsing took longer than {limits.timeout_seconds:g}s (worker killed)")  # fmt: skip
        try:
            result = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(0.5)
            code = self.proc.exitcode
            self.kill()
            reason = SkipReason.MEMORY if code in (-9, 137) else SkipReason.WORKER_FAILED
            return ExtractedText(name, kind, skipped=reason, detail=f"worker exited with code {code}")
        if result == _MEMORY_SENTINEL:
            self.kill()
            return ExtractedText(name, kind, skipped=SkipReason.MEMORY, detail="attachment exceeds the worker memory limit")
        if not isinstance(result, ExtractedText):
            self.kill()
            return ExtractedText(name, kind, skipped=SkipReason.WORKER_FAILED, detail="unexpected worker reply")
        return result

    def _memory_sentinel_waiting(self) -> bool:
        try:
            return bool(self.conn.poll(0.5)) and self.conn.recv() == _MEMORY_SENTINEL
        except (EOFError, OSError):
            return False

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(2)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.proc.join(1)
        self.kill()


class AttachmentExtractor:
    """Extracts attachment text under ``limits``; reuse one instance per host process.

    Thread-safe and usable from async code (``await extractor.extract(att)``). ``max_workers``
    bounds concurrent parses (each in its own worker process).
    """

    def __init__(self, limits: ExtractionLimits | None = None, *, max_workers: int = 1) -> None:
        self.limits = limits or ExtractionLimits()
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_workers)
        self._process_ok = self.limits.isolation == "process"

    def extract_sync(self, att: AttachmentInput) -> ExtractedText:
        kind, early = _precheck(att, self.limits)
        if early is not None:
            return early
        if not self._process_ok:
            return extract_core(att.name, kind, att.content, att.content_type, self.limits, self.limits.timeout_seconds)
        with self._slots:
            worker = self._take()
            if worker is None:
                return extract_core(att.name, kind, att.content, att.content_type, self.limits, self.limits.timeout_seconds)
            try:
                result = worker.run(att.name, kind, att.content, att.content_type, self.limits)
            except (OSError, BrokenPipeError, ValueError):
                worker.kill()
                return ExtractedText(att.name, kind, skipped=SkipReason.WORKER_FAILED, detail="worker pipe failed")
            if worker.alive:
                with self._lock:
                    self._idle.append(worker)
            return result

    async def extract(self, att: AttachmentInput) -> ExtractedText:
        return await asyncio.to_thread(self.extract_sync, att)

    async def extract_many(self, atts: Iterable[AttachmentInput]) -> list[ExtractedText]:
        return list(await asyncio.gather(*(self.extract(a) for a in atts)))

    def _take(self) -> _Worker | None:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive:
                    return w
        try:
            return _Worker(self.limits)
        except (OSError, RuntimeError, ValueError, EOFError) as exc:
            log.warning("insights: cannot start extraction worker (%s); parsing inline", type(exc).__name__)
            self._process_ok = False
            return None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for w in idle:
            w.stop()

    def __enter__(self) -> AttachmentExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def extract_attachment(att: AttachmentInput, *, limits: ExtractionLimits | None = None) -> ExtractedText:
    """One-off extraction (starts and stops a worker); prefer a shared AttachmentExtractor in a host."""
    with AttachmentExtractor(limits) as ex:
        return ex.extract_sync(att)
