"""Small but well-formed files of each type a paper may be, and of some it may not, for the
tests of what clerk keeps (tests/unit/test_papers.py, tests/unit/test_pack.py)."""

from __future__ import annotations

import io
import zipfile

import docx

OOXML = "application/vnd.openxmlformats-officedocument."


def pdf(text: str = "numbers") -> bytes:
    body = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    return (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
            b"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
            b"4 0 obj << /Length " + str(len(body)).encode() + b" >> stream\n" + body
            + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def word(text: str = "Our return", padding: int = 0) -> bytes:
    """A real .docx (python-docx), ``padding`` characters longer."""
    document = docx.Document()
    document.add_paragraph(text)
    if padding:
        document.add_paragraph("".join(chr(0x4E00 + i % 2000) for i in range(padding)))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zipped(members: dict[str, bytes | str], *, stored: bool = False) -> bytes:
    out = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in members.items():
            # a fixed time, not the clock's: the same members make the same bytes, whenever
            z.writestr(zipfile.ZipInfo(name, date_time=(2027, 1, 4, 9, 0, 0)), data,
                       compress_type=method)
    return out.getvalue()


def _content_types(main: str, part: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="xml" ContentType="application'
            f'/xml"/><Override PartName="/{part}" ContentType="{OOXML}{main}"/></Types>')


def workbook(padding: int = 0) -> bytes:
    """The parts of an .xlsx that say what it is (a workbook), ``padding`` bytes larger."""
    return zipped({"[Content_Types].xml": _content_types("spreadsheetml.sheet.main+xml",
                                                         "xl/workbook.xml"),
                   "xl/workbook.xml": "<workbook/>" + " " * padding}, stored=True)


def slides() -> bytes:
    return zipped({"[Content_Types].xml": _content_types(
        "presentationml.presentation.main+xml", "ppt/presentation.xml"),
        "ppt/presentation.xml": "<presentation/>"})


def opendocument(kind: str = "text", **more: bytes | str) -> bytes:
    return zipped({"mimetype": f"application/vnd.oasis.opendocument.{kind}",
                   "content.xml": "<office:document-content/>", **more}, stored=True)


def ole2(stream: str = "WordDocument") -> bytes:
    """A compound file (Office 97-2003, or an installer) whose directory, in the sector after
    the header, holds the root entry and one stream named ``stream``."""

    def entry(name: str, kind: int) -> bytes:
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        return (encoded.ljust(64, b"\x00") + len(encoded).to_bytes(2, "little")
                + bytes([kind]) + b"\x00" * 61)

    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    directory = entry("Root Entry", 5) + entry(stream, 2) + b"\x00" * 256
    return header + directory + b"\x00" * 512


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 48 + \
    b"This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 64
HTML = b"<!DOCTYPE html><html><body><script>location='https://evil.example'</script>"
SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>'
       b"alert(document.cookie)</script></svg>")


def text_pdf(lines: list[str], per_page: int = 45) -> bytes:
    """A well-formed PDF (cross-reference table, a Helvetica font) showing ``lines``, as a
    word processor's "Save as PDF" would: what minutes mailed as PDF look like to a reader."""
    pages = [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    for i, page in enumerate(pages):
        shown = "".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T* "
            for line in page)
        body = f"BT /F1 11 Tf 14 TL 56 780 Td {shown}ET".encode("cp1252", "replace")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources "
                       f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length " + str(len(body)).encode() + b" >>\nstream\n" + body
                       + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, obj in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer << /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
              .encode())
    return out.getvalue()
