"""Text of Office files: OOXML (DOCX/DOCM, PPTX, XLSX — transitional and Strict) and Outlook .msg.

OOXML: every text part of the package is read with lxml's streaming parser, matching elements by
*local name* so Strict OOXML (purl.oclc.org namespaces) reads like transitional. A library that
walks only body paragraphs (python-docx) misses text boxes, headers/footers, footnotes, endnotes
and comments; here each of those parts is read. Tracked deletions (``w:delText``) are left out,
and the VML fallback copy of a text box (``mc:Fallback``) is skipped so its text is not doubled.
The zip directory is checked for bombs before any entry is inflated (``check_zip``), and the XML
parser resolves no entities and fetches nothing.

.msg (OLE compound file, MS-OXMSG): subject and body are MAPI property streams
(``__substg1.0_<tag><type>``) read with ``olefile`` (BSD-2-Clause). Plain-text body first, else the
HTML body; embedded attachments are not opened (like attached .eml).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator

from shared.insights.models import SkipReason

_MiB = 1024 * 1024
_ZIP_KINDS = (("word/document.xml", "docx"), ("ppt/presentation.xml", "pptx"), ("xl/workbook.xml", "xlsx"))


def ooxml_kind(names: set[str]) -> str | None:
    for marker, kind in _ZIP_KINDS:
        if marker in names:
            return kind
    return None


def _natural(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _parts(kind: str, names: list[str]) -> list[str]:
    """The package parts that hold text, in reading order."""

    def pick(pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return sorted((n for n in names if rx.fullmatch(n)), key=_natural)

    if kind == "docx":
        return (pick(r"word/document\d*\.xml") + pick(r"word/header\d*\.xml") + pick(r"word/footer\d*\.xml")
                + pick(r"word/footnotes\.xml") + pick(r"word/endnotes\.xml") + pick(r"word/comments\.xml"))  # fmt: skip
    if kind == "pptx":
        return (pick(r"ppt/slides/slide\d+\.xml") + pick(r"ppt/notesSlides/notesSlide\d+\.xml")
                + pick(r"ppt/comments/comment\d*\.xml") + pick(r"ppt/comments/modernComment[^/]*\.xml")
                + pick(r"ppt/slideMasters/slideMaster\d+\.xml"))  # fmt: skip
    if kind == "xlsx":
        return pick(r"xl/workbook\.xml") + pick(r"xl/sharedStrings\.xml") + pick(r"xl/worksheets/sheet\d+\.xml") + pick(
            r"xl/comments\d*\.xml"
        )
    return []


# element local names: text carriers, paragraph-like containers, and subtrees to skip
_TEXT = frozenset({"t", "instrText"})  # w:t, a:t, x:t (instrText: field codes are not text → excluded below)
_BREAK = frozenset({"tab", "br", "cr"})
_PARA = frozenset({"p", "si", "text", "oddHeader", "oddFooter", "evenHeader", "evenFooter",
                   "firstHeader", "firstFooter", "sheet", "c"})  # fmt: skip
_SKIP = frozenset({"Fallback", "delText", "instrText", "rPh", "extLst"})  # VML copies, deletions, field codes, phonetic runs
_MASTER_BOILERPLATE = re.compile(r"^(?:click\s+to\s+edit\s+master\b.*|(?:second|third|fourth|fifth)\s+level|‹#›|<#>)$", re.I)
_HEADER_CODES = re.compile(r"&(?:\"[^\"]*\"|[LCRPNDTFAZGBIUSEXY]|K[0-9A-Fa-f]{6}|\d+)")


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _xml_paragraphs(data: bytes, part: str, check: Callable[[], None]) -> Iterator[str]:
    """Paragraph texts of one XML part, streamed (constant memory per element)."""
    from lxml import etree

    skip_depth = 0
    stack: list[list[str]] = []
    attr_text: list[str] = []
    rows: list[list[str]] = []  # Word/PowerPoint table rows being read: cells joined with " | "
    cells: list[list[str]] = []
    context = etree.iterparse(io.BytesIO(data), events=("start", "end"), resolve_entities=False,
                              no_network=True, huge_tree=False, remove_comments=True, remove_pis=True)  # fmt: skip
    n = 0
    for event, el in context:
        name = _local(el.tag)
        if event == "start":
            if skip_depth or name in _SKIP:
                skip_depth += 1
                continue
            if name == "tr":
                rows.append([])
            elif name == "tc" and rows:
                cells.append([])
            if name in _PARA:
                stack.append([])
            if name == "sheet" and part.endswith("workbook.xml") and el.get("name"):
                attr_text.append(el.get("name") or "")
            continue
        # end
        if skip_depth:
            skip_depth -= 1
            el.clear()
            continue
        if name in _TEXT and stack:
            stack[-1].append(el.text or "")
        elif name in _BREAK and stack:
            stack[-1].append("\t" if name == "tab" else "\n")
        elif name == "v" and stack and part.startswith("xl/worksheets/") and el.getparent() is not None:
            parent = el.getparent()
            if parent is not None and parent.get("t") not in ("s",):  # shared strings come from sharedStrings.xml
                stack[-1].append(el.text or "")
        elif name in ("oddHeader", "oddFooter", "evenHeader", "evenFooter", "firstHeader", "firstFooter") and stack:
            stack[-1].append(_HEADER_CODES.sub(" ", el.text or ""))
        if name == "tc" and cells and rows:
            rows[-1].append(" ".join(t for t in cells.pop() if t))
        elif name == "tr" and rows:
            row = " | ".join(c for c in rows.pop() if c)
            if row:
                yield row
        if name in _PARA and stack:
            text = "".join(stack.pop()).strip()
            if text and not _MASTER_BOILERPLATE.match(text):
                if stack and name == "c":
                    stack[-1].append(text + " ")  # a cell's text joins its row
                elif cells and not stack:
                    cells[-1].append(text)  # a paragraph inside a table cell
                else:
                    yield text
        el.clear()
        n += 1
        if n % 2000 == 0:
            check()
    yield from attr_text


class ZipEntryBomb(Exception):
    """A part we are about to inflate declares a compression ratio over the limit."""


def _read_entry(zf: zipfile.ZipFile, name: str, limit: int, max_ratio: float = 100.0) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError("entry too large")
    # the ratio matters only for what we inflate: a highly compressible embedded object we never read is harmless
    if info.file_size > _MiB and info.file_size > max_ratio * max(info.compress_size, 1):
        raise ZipEntryBomb(f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 in {name.rsplit('/', 1)[-1]}")
    with zf.open(info) as fh:
        return fh.read(limit + 1)[:limit]


def ooxml_text(data: bytes, kind: str, *, max_chars: int, max_entry_bytes: int, check: Callable[[], None],
               add: Callable[[str], bool], html: Callable[[bytes], str], max_ratio: float = 100.0) -> None:  # fmt: skip
    """Feed every paragraph of the package's text parts to ``add`` (which returns False when full)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        for part in _parts(kind, names):
            check()
            try:
                xml = _read_entry(zf, part, max_entry_bytes, max_ratio)
            except (KeyError, ValueError):
                continue
            for text in _xml_paragraphs(xml, part, check):
                if not add(text):
                    return
        if kind == "docx":
            # altChunk: content imported from an embedded HTML/MHT/text part
            for name in names:
                low = name.lower()
                if low.startswith("word/") and low.endswith((".htm", ".html", ".mht", ".mhtml", ".xhtml")):
                    check()
                    try:
                        if not add(html(_read_entry(zf, name, max_entry_bytes, max_ratio))):
                            return
                    except (KeyError, ValueError):
                        continue


# --- Outlook .msg -------------------------------------------------------------------------------
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class OleKindError(Exception):
    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def ole_kind(data: bytes) -> str:
    """msg | ooxml-encrypted | doc | xls | ppt | ole (other compound files)."""
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception:
        return "ole"
    try:
        streams = {"/".join(p) for p in ole.listdir(streams=True, storages=True)}
    finally:
        ole.close()
    if "EncryptedPackage" in streams:
        return "ooxml-encrypted"
    if any(s.startswith("__substg1.0_") for s in streams) or "__properties_version1.0" in streams:
        return "msg"
    if "WordDocument" in streams:
        return "doc"
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    if "PowerPoint Document" in streams:
        return "ppt"
    return "ole"


def _decode_prop(raw: bytes, ptype: str) -> str:
    if ptype == "001F":
        return raw.decode("utf-16-le", errors="replace").rstrip("\x00")
    for enc in ("utf-8", "cp1252"):
        try:
            return raw.decode(enc).rstrip("\x00")
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1").rstrip("\x00")


def msg_parts(data: bytes, max_bytes: int) -> tuple[str, str, str]:
    """(subject, plain body, html body) of an Outlook .msg; top-level properties only."""
    import olefile

    ole = olefile.OleFileIO(io.BytesIO(data))
    try:
        top = {p[0]: p for p in ole.listdir(streams=True, storages=False) if len(p) == 1}

        def prop(tag: str, types: tuple[str, ...]) -> tuple[bytes, str] | None:
            for t in types:
                name = f"__substg1.0_{tag}{t}"
                if name in top:
                    size = ole.get_size(name)
                    if size > max_bytes:
                        raise OleKindError(SkipReason.TOO_LARGE, "message body larger than the limit")
                    with ole.openstream(name) as fh:
                        return fh.read(max_bytes), t
            return None

        subject = prop("0037", ("001F", "001E"))
        body = prop("1000", ("001F", "001E"))
        html = prop("1013", ("0102", "001F", "001E"))
        subj = _decode_prop(*subject) if subject else ""
        text = _decode_prop(*body) if body else ""
        html_text = ""
        if html:
            raw, t = html
            html_text = _decode_prop(raw, t) if t != "0102" else _decode_html_bytes(raw)
        return subj, text, html_text
    finally:
        ole.close()


_META = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)


def _decode_html_bytes(raw: bytes) -> str:
    m = _META.search(raw[:4096])
    for enc in ([m.group(1).decode("ascii")] if m else []) + ["utf-8", "cp1252"]:
        try:
            return raw.decode(enc)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1")
