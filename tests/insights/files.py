"""Real small files for extraction tests, generated with the same libraries people use to write them."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def make_pdf(pages: list[list[str]], *, password: str | None = None) -> bytes:
    """A PDF with real text-showing operators (Helvetica), one list of lines per page."""
    w = PdfWriter()
    for lines in pages:
        page = w.add_blank_page(width=612, height=792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): w._add_object(font)})}
        )
        ops = ["BT /F1 12 Tf 72 720 Td 14 TL"]
        for line in lines:
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({esc}) Tj T*")
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = w._add_object(stream)
    if password is not None:
        # password "" = owner-password-only (opens for reading, restricts editing)
        w.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def make_deep_pdf(depth: int) -> bytes:
    """A syntactically valid PDF whose page resources hold an array nested ``depth`` levels."""
    nested = b"[" * depth + b"1" + b"]" * depth
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /X " + nested + b" >> >>",
        b"<< /Length 0 >>\nstream\n\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def make_pdf_flate_bomb(inflated_mb: int = 100) -> bytes:
    """A one-page PDF whose content stream inflates ~1000:1 to ``inflated_mb`` MiB of drawing operators."""
    import zlib

    comp = zlib.compressobj(6)
    chunk = b"0 0 m " * 100_000
    parts = [comp.compress(chunk) for _ in range(inflated_mb * 1024 * 1024 // len(chunk))]
    parts.append(comp.flush())
    data = b"".join(parts)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, val in enumerate(row):
                t.cell(r, c).text = val
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_docx_ratio_bomb(uncompressed_mb: int = 20) -> bytes:
    """A DOCX-shaped zip whose document.xml inflates ~1000:1 (a zip bomb in miniature)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b" " * (uncompressed_mb * 1024 * 1024))
    return buf.getvalue()


def make_zip_many_entries(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("word/document.xml", "<w:document/>")
        for i in range(n):
            zf.writestr(f"word/media/x{i}.bin", b"")
    return buf.getvalue()


def make_eml(subject: str, text: str, *, html: str | None = None, attachment: bytes | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = "Dana Whitfield <dana@fabrikam.example>"
    m["To"] = "alex@contoso.example"
    m["Subject"] = subject
    m.set_content(text)
    if html is not None:
        m.add_alternative(html, subtype="html")
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="x.bin")
    return m.as_bytes()


def make_nested_eml(depth: int) -> bytes:
    """A message whose multipart/mixed parts nest ``depth`` levels deep (hand-built MIME)."""
    head = [b"From: a@b.example\r\nTo: c@d.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"]
    tail: list[bytes] = []
    for i in range(depth):
        b = f"b{i}".encode()
        head.append(b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n")
        tail.insert(0, b"\r\n--" + b + b"--\r\n")
    head.append(b"Content-Type: text/plain\r\n\r\nhello from the bottom\r\n")
    return b"".join(head) + b"".join(tail)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def ooxml_docx_with_all_parts() -> bytes:
    """A minimal hand-built DOCX with text in every part Word uses: body, a text box (with its VML
    fallback copy, as Word writes it), header, footer, footnote, comment, and a tracked deletion."""
    ns = (f'xmlns:w="{_W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
          'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"')  # fmt: skip
    box = ("<w:r><mc:AlternateContent><mc:Choice Requires=\"wps\"><w:drawing><wps:txbx><w:txbxContent>"
           "<w:p><w:r><w:t>BOXTEXT</w:t></w:r></w:p></w:txbxContent></wps:txbx></w:drawing></mc:Choice>"
           "<mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>BOXTEXT</w:t></w:r></w:p></w:txbxContent>"
           "</w:pict></mc:Fallback></mc:AlternateContent></w:r>")  # fmt: skip
    document = (f'<?xml version="1.0" encoding="UTF-8"?><w:document {ns}><w:body>'
                f"<w:p><w:r><w:t>BODYTEXT</w:t></w:r><w:del><w:r><w:delText>DELETEDTEXT</w:delText></w:r></w:del></w:p>"
                f"<w:p>{box}</w:p></w:body></w:document>")  # fmt: skip

    def part(root: str, text: str, child: str = "") -> str:
        inner = f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"
        if child:
            inner = f'<w:{child} w:id="1">{inner}</w:{child}>'
        return f'<?xml version="1.0" encoding="UTF-8"?><w:{root} xmlns:w="{_W}">{inner}</w:{root}>'

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("word/document.xml", document)
        z.writestr("word/header1.xml", part("hdr", "HEADERTEXT"))
        z.writestr("word/footer1.xml", part("ftr", "FOOTERTEXT"))
        z.writestr("word/footnotes.xml", part("footnotes", "FOOTNOTETEXT", "footnote"))
        z.writestr("word/comments.xml", part("comments", "COMMENTTEXT", "comment"))
    return buf.getvalue()
