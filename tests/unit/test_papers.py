"""What a paper is, by its content alone, and the name it is kept under (bot/listen/papers.py):
the allow-list, zip bombs, and names cut by bytes to a filesystem's limit."""

from __future__ import annotations

import io
import zipfile

import pytest

from bot.listen import papers
from bot.listen.papers import ZIP_MEMBERS, fit, paper_name, sniff
from tests import paper_files as files

ALLOWED = [
    (files.pdf(), "pdf"),
    (files.word(), "docx"),
    (files.workbook(), "xlsx"),
    (files.slides(), "pptx"),
    (files.opendocument("text"), "odt"),
    (files.opendocument("spreadsheet"), "ods"),
    (files.opendocument("presentation"), "odp"),
    (files.ole2("WordDocument"), "doc"),
    (files.ole2("Workbook"), "xls"),
    (files.ole2("Book"), "xls"),
    (files.ole2("PowerPoint Document"), "ppt"),
    (files.PNG, "png"),
    (files.JPEG, "jpg"),
    (files.GIF, "gif"),
    (b"Organisation,Cases\nKent,12\n", "txt"),
    ("Ünïcödé notes, tabs\tand a form feed\f\r\n".encode(), "txt"),
    ("\ufeffUTF-8 with a BOM".encode(), "txt"),
    ("Notes in UTF-16 with its BOM".encode("utf-16"), "txt"),
]


@pytest.mark.parametrize(("data", "ext"), ALLOWED, ids=[e for _, e in ALLOWED])
def test_allowed_types_are_told_by_content(data: bytes, ext: str) -> None:
    found = sniff(data, "whatever.exe")  # the name never decides
    assert found.allowed and found.ext == ext, found.what


def test_text_is_csv_when_named_so() -> None:
    assert sniff(b"a,b\n1,2\n", "numbers.CSV").ext == "csv"
    assert sniff(b"a,b\n1,2\n", "numbers.bat").ext == "txt"


REFUSED = [
    (files.EXE, "Windows program"),
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "Linux program"),
    (b"#!/bin/sh\nrm -rf ~\n", "script"),
    (files.HTML, "markup"),
    (b"  \n<html><body>hello</body></html>", "markup"),
    (files.SVG, "markup"),
    (b"Quarterly figures\n<script>alert(1)</script>\n", "markup"),
    (b"{\\rtf1\\ansi{\\object\\objemb}}", "RTF"),
    (b"%!PS-Adobe-3.0\n", "PostScript"),
    (files.zipped({"report.pdf": files.pdf(), "setup.exe": files.EXE}), "ZIP archive"),
    (files.zipped({"[Content_Types].xml": "<Types/>"}), "ZIP archive"),
    (files.zipped({"[Content_Types].xml": "application/vnd.ms-word.document.macroEnabled"
                   ".main+xml", "word/document.xml": "<w/>",
                   "word/vbaProject.bin": b"\x00"}), "macro-enabled"),
    (files.opendocument("text", **{"Basic/Standard/Module1.xml": "<script/>"}), "macros"),
    (files.opendocument("graphics"), "ZIP archive"),
    (files.ole2("\x05SummaryInformation"), "OLE2"),  # an .msi or .msg: no Office stream
    (b"PK\x03\x04 not really a zip", "damaged"),
    (b"text\x00with a NUL", "unknown"),
    (b"\xff\xfe\x00", "unknown"),  # a BOM, then half a character
    (b"\xc3\x28 invalid UTF-8", "unknown"),
    (b"Rar!\x1a\x07\x00", "RAR"),
    (b"", "empty"),
    (b"From: a@example.org\nTo: b@example.org\nSubject: hi\nMIME-Version: 1.0\n"
     b"Content-Type: multipart/mixed; boundary=x\n\n--x\n", "e-mail message"),
]


@pytest.mark.parametrize(("data", "why"), REFUSED, ids=[w for _, w in REFUSED])
def test_everything_else_is_refused_with_a_reason(data: bytes, why: str) -> None:
    found = sniff(data, "agenda.pdf")  # however it is named
    assert not found.allowed and not found.ext
    assert why.lower() in found.what.lower(), found.what


def test_a_zip_bomb_is_refused_from_its_declared_sizes_without_unpacking_it() -> None:
    out = io.BytesIO()  # 300 MiB of zeros: about 300 KB compressed
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", files._content_types(
            "wordprocessingml.document.main+xml", "word/document.xml"))
        with z.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b"\x00" * (1024 * 1024)
            for _ in range(300):
                member.write(chunk)
    bomb = out.getvalue()
    assert len(bomb) < 2 * 1024 * 1024
    found = sniff(bomb, "numbers.docx")
    assert not found.allowed and "zip bomb" in found.what and "unpacks to 314,57" in found.what


def test_a_zip_of_too_many_members_is_refused_before_zipfile_reads_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    many = files.zipped({f"word/{n}.xml": "" for n in range(ZIP_MEMBERS + 1)}
                        | {"[Content_Types].xml": "wordprocessingml.document.main+xml"})

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile opened a zip whose directory is too large")

    monkeypatch.setattr(papers.zipfile, "ZipFile", never)
    found = sniff(many, "x.docx")
    assert not found.allowed and f"{ZIP_MEMBERS + 2} members" in found.what


@pytest.mark.parametrize(("name", "kind", "kept"), [
    ("Updated agenda.pdf.exe", papers.PDF, "Updated agenda.pdf"),
    ("report.exe", papers.PDF, "report.pdf"),
    ("exe", papers.PDF, "exe.pdf"),
    ("agenda.pdf.exe.scr", papers.PDF, "agenda.pdf"),
    ("minutes v1.2", papers.PDF, "minutes v1.2.pdf"),
    ("minutes.draft", papers.DOCX, "minutes.draft.docx"),
    ("numbers.xlsx", papers.XLSX, "numbers.xlsx"),
    ("photo.JPEG", papers.JPEG, "photo.JPEG"),
    ("photo.png", papers.JPEG, "photo.jpg"),
    ("figures.csv", papers.CSV, "figures.csv"),
    ("notes.docx", papers.TEXT, "notes.txt"),
    ("page.html", papers.TEXT, "page.txt"),
])
def test_a_kept_paper_is_named_with_its_types_extension(name: str, kind: papers.Sniffed,
                                                        kept: str) -> None:
    assert paper_name(name, kind) == kept


CJK = "会議資料" * 29  # 116 characters, 348 bytes of UTF-8
EMOJI = "📎" * 75  # 300 bytes


@pytest.mark.parametrize("stem", [CJK, EMOJI], ids=["cjk", "emoji"])
def test_a_name_is_cut_by_bytes_keeping_whole_characters_and_its_extension(stem: str) -> None:
    cut = fit(f"{stem}.pdf", 200)
    assert cut.endswith(".pdf") and len(cut.encode()) <= 200
    assert stem.startswith(cut.removesuffix(".pdf"))  # whole characters, from the start
    assert len(cut.encode()) > 200 - 4  # as much as fits
    assert fit("short.pdf", 200) == "short.pdf"
    assert fit(f"{stem}.pdf", 3) == ""  # not even the extension: the caller falls back
