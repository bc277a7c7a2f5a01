"""The agenda pack's renderers: the Word agenda (outline, tables, escaping, byte-identical
renders), the returns register for the email body, and the papers as attachments or a zip."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import docx
import pytest

from bot.listen import minutes
from bot.render.agenda import (
    ZIP_TIME,
    Agenda,
    ReturnRow,
    agenda_docx,
    bundle_papers,
    document_of,
    mime_type,
    returns_register_html,
    returns_register_text,
    unique_names,
    when,
)

AGENDA = Agenda(
    group_name="South East QA Leads",
    title="QA Leads meeting",
    start=datetime(2027, 1, 14, 14, 0, tzinfo=UTC),
    end=datetime(2027, 1, 14, 16, 0, tzinfo=UTC),
    zone="Europe/London",
    location="Room 2, County Hall",
    link="https://meet.example/qa?id=1&x=2",
    apologies=[{"name": "Kim Osei", "organisation": "Brighton & Hove", "reason": "on leave"},
               {"name": "Ann Lee", "organisation": "Kent", "reason": ""}],
    no_answer=["Sam Patel", "Jo Brown"],
    actions=[
        {"topic": "Invites", "text": "Kim Osei will review the invites", "owner": "Kim Osei",
         "status": "done", "due": date(2026, 11, 1), "completed": date(2026, 11, 20)},
        {"topic": "Audit", "text": "Ann Lee will share the audit", "owner": "Ann Lee",
         "status": "open", "due": date(2027, 2, 1), "completed": None},
        {"topic": "Budget", "text": "Sam Patel will cost < £5k options", "owner": "Sam Patel",
         "status": "open", "due": date(2026, 12, 1), "completed": None},
        {"topic": "Old", "text": "Jo Brown will archive", "owner": "Jo Brown",
         "status": "done", "due": date(2026, 10, 1), "completed": date(2026, 10, 2)},
    ],
    items=[{"text": "Data returns", "note": ""},
           {"text": "Peer review  of audits", "note": "proposed by Ann Lee (Kent)"},
           {"text": "See how authorities triangulate feedback",
            "note": "agreed at the meeting of 15 June 2026"}],
    returns=[{"organisation": "Kent", "status": "outstanding", "at": None},
             {"organisation": "Brighton & Hove", "status": "submitted", "at": date(2027, 1, 4)},
             {"organisation": "Surrey", "status": "nil", "at": date(2027, 1, 6)}],
    papers=["agenda notes.pdf", "audit.xlsx"],
)


def _open(data: bytes) -> docx.document.Document:
    return docx.Document(io.BytesIO(data))


def _rows(table: docx.table.Table) -> list[list[str]]:
    return [[c.text for c in row.cells] for row in table.rows]


# --- the Word agenda ------------------------------------------------------------------------


def test_outline_is_word_headings_in_agenda_order() -> None:
    doc = _open(agenda_docx(AGENDA))
    outline = [(p.style.name, p.text) for p in doc.paragraphs
               if p.style is not None and str(p.style.name).startswith("Heading")]
    assert outline == [
        ("Heading 1", "Agenda"),
        ("Heading 2", "1. Introductions and apologies"),
        ("Heading 2", "2. Matters arising"),
        ("Heading 2", "3. Data returns"),
        ("Heading 2", "4. Peer review of audits"),
        ("Heading 2", "5. See how authorities triangulate feedback"),
        ("Heading 2", "6. Any other business"),
        ("Heading 2", "7. Items for the next agenda"),
        ("Heading 1", "Returns"),
        ("Heading 1", "Papers"),
    ]


def test_front_matter_names_group_meeting_time_place_and_link() -> None:
    doc = _open(agenda_docx(AGENDA))
    texts = [p.text for p in doc.paragraphs]
    assert [p.style.name for p in doc.paragraphs[:2] if p.style] == ["Title", "Subtitle"]
    assert texts[:5] == ["South East QA Leads", "QA Leads meeting",
                         "Thursday 14 January 2027, 14:00–16:00 (Europe/London)",
                         "Where: Room 2, County Hall",
                         "Join online: https://meet.example/qa?id=1&x=2"]
    assert doc.paragraphs[4].hyperlinks[0].address == "https://meet.example/qa?id=1&x=2"


def test_when_shows_local_time_and_both_days_across_midnight() -> None:
    summer = datetime(2027, 6, 10, 13, 0, tzinfo=UTC)  # 14:00 BST
    assert when(summer, summer.replace(hour=15), "Europe/London") \
        == "Thursday 10 June 2027, 14:00–16:00 (Europe/London)"
    late = datetime(2027, 6, 10, 22, 0, tzinfo=UTC)
    assert when(late, late.replace(day=11, hour=0), "Europe/London") \
        == "Thursday 10 June 2027, 23:00 – Friday 11 June 2027, 01:00 (Europe/London)"
    with pytest.raises(ValueError, match="aware"):
        when(datetime(2027, 6, 10, 14), datetime(2027, 6, 10, 16), "Europe/London")


def test_apologies_with_reasons_and_who_has_not_answered() -> None:
    texts = [p.text for p in _open(agenda_docx(AGENDA)).paragraphs]
    start = texts.index("1. Introductions and apologies")
    assert texts[start + 1:texts.index("2. Matters arising")] == [
        "Apologies received:", "Kim Osei (Brighton & Hove): on leave", "Ann Lee (Kent)",
        "Not yet answered:", "Sam Patel", "Jo Brown"]


def test_item_notes_say_who_proposed_and_where_a_nudge_was_agreed() -> None:
    texts = [p.text for p in _open(agenda_docx(AGENDA)).paragraphs]
    assert texts[texts.index("4. Peer review of audits") + 1] == "proposed by Ann Lee (Kent)"
    assert texts[texts.index("5. See how authorities triangulate feedback") + 1] \
        == "agreed at the meeting of 15 June 2026"
    assert texts[texts.index("3. Data returns") + 1] == "4. Peer review of audits"


def test_action_tracker_open_first_then_done_each_by_due_date() -> None:
    tracker, _ = _open(agenda_docx(AGENDA)).tables
    assert _rows(tracker) == [
        ["Topic", "Action", "Owner", "Status", "Date completed"],
        ["Budget", "Sam Patel will cost < £5k options", "Sam Patel", "Open (due 01/12/2026)",
         ""],
        ["Audit", "Ann Lee will share the audit", "Ann Lee", "Open (due 01/02/2027)", ""],
        ["Old", "Jo Brown will archive", "Jo Brown", "Done", "02/10/2026"],
        ["Invites", "Kim Osei will review the invites", "Kim Osei", "Done", "20/11/2026"],
    ]


def test_returns_register_and_papers() -> None:
    doc = _open(agenda_docx(AGENDA))
    assert _rows(doc.tables[1]) == [["Organisation", "Status", "Date"],
                                    ["Brighton & Hove", "Submitted", "04/01/2027"],
                                    ["Kent", "Outstanding", ""],
                                    ["Surrey", "Nil return", "06/01/2027"]]
    texts = [p.text for p in doc.paragraphs]
    assert texts[texts.index("Papers") + 1:] == ["agenda notes.pdf", "audit.xlsx"]


def test_empty_agenda_says_so() -> None:
    bare = Agenda(group_name="G", title="T", start=AGENDA.start, end=AGENDA.end,
                  zone="Europe/London")
    doc = _open(agenda_docx(bare))
    texts = [p.text for p in doc.paragraphs]
    assert doc.tables == []
    for line in ("No apologies received so far.", "No actions from previous meetings.",
                 "No returns recorded.", "No papers."):
        assert line in texts
    assert not any(t.startswith(("Where:", "Join online:", "Not yet answered")) for t in texts)


def test_markup_and_control_characters_are_stored_as_text() -> None:
    agenda = Agenda(group_name="A & B <Leads>", title="Q\x0b&A", start=AGENDA.start,
                    end=AGENDA.end, zone="Europe/London",
                    items=[{"text": "</w:t> & <b>", "note": "a\x00b"}])
    data = agenda_docx(agenda)
    texts = [p.text for p in _open(data).paragraphs]
    assert texts[:2] == ["A & B <Leads>", "Q&A"]
    assert "3. </w:t> & <b>" in texts and "ab" in texts
    body = zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml").decode()
    assert "A &amp; B &lt;Leads&gt;" in body


def test_renders_are_byte_identical_whatever_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    first = agenda_docx(AGENDA)
    later = time.time() + 400 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert agenda_docx(AGENDA) == first
    package = zipfile.ZipFile(io.BytesIO(first))
    assert package.namelist()[0] == "[Content_Types].xml"
    assert {i.date_time for i in package.infolist()} == {ZIP_TIME}
    props = _open(first).core_properties
    assert props.created == props.modified == props.last_printed == AGENDA.start
    assert props.author == "clerk"


def test_the_package_holds_what_python_docx_would_save() -> None:
    # the members are written by python-docx's own writer's steps (bot/render/agenda.py
    # _members): the same names, order and contents as Document.save, the time aside
    saved = io.BytesIO()
    document_of(AGENDA).save(saved)
    with zipfile.ZipFile(saved) as z:
        expected = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(io.BytesIO(agenda_docx(AGENDA))) as z:
        assert [(i.filename, z.read(i)) for i in z.infolist()] == expected
        assert {(i.compress_type, i.date_time) for i in z.infolist()} == {
            (zipfile.ZIP_DEFLATED, ZIP_TIME)}


def test_the_minutes_importer_reads_the_tracker_back(tmp_path: Path) -> None:
    path = tmp_path / "agenda.docx"
    path.write_bytes(agenda_docx(AGENDA))
    items = minutes.read(path)
    assert [(i.topic, i.owner_text, i.completed) for i in items] == [
        ("Budget", "Sam Patel", None), ("Audit", "Ann Lee", None),
        ("Old", "Jo Brown", date(2026, 10, 2)), ("Invites", "Kim Osei", date(2026, 11, 20))]


# --- the returns register for the email body ------------------------------------------------


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] in ("td", "th"):
            self.rows[-1][-1] += data


def test_html_register_is_well_formed_and_escaped() -> None:
    script: ReturnRow = {"organisation": "<script>", "status": "Nil_Return", "at": None}
    returns = [*AGENDA.returns, script]
    markup = returns_register_html(returns)
    parser = _Cells()
    parser.feed(markup)
    parser.close()
    assert parser.open == []
    assert parser.rows == [["Organisation", "Status", "Date"],
                           ["<script>", "Nil return", ""],
                           ["Brighton & Hove", "Submitted", "04/01/2027"],
                           ["Kent", "Outstanding", ""],
                           ["Surrey", "Nil return", "06/01/2027"]]
    assert "Brighton &amp; Hove" in markup and "&lt;script&gt;" in markup
    assert "<script>" not in markup


def test_text_register_lines_up() -> None:
    assert returns_register_text(AGENDA.returns) == (
        "Organisation     Status       Date\n"
        "---------------  -----------  ----------\n"
        "Brighton & Hove  Submitted    04/01/2027\n"
        "Kent             Outstanding\n"
        "Surrey           Nil return   06/01/2027\n")


def test_no_returns_no_register_and_unknown_status_refused() -> None:
    assert returns_register_html([]) == returns_register_text([]) == ""
    with pytest.raises(ValueError, match=r"Kent.*'late'"):
        returns_register_text([{"organisation": "Kent", "status": "late", "at": None}])


# --- the papers -----------------------------------------------------------------------------


PAPERS = [("minutes.docx", b"m" * 300), ("Budget.pdf", b"b" * 300), ("audit.xlsx", b"a" * 300),
          ("notes", b"n" * 100)]


def test_papers_at_or_below_the_threshold_go_separately_in_order() -> None:
    assert bundle_papers(PAPERS, zip_above=1000) == [
        ("minutes.docx",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"m" * 300),
        ("Budget.pdf", "application/pdf", b"b" * 300),
        ("audit.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         b"a" * 300),
        ("notes", "application/octet-stream", b"n" * 100)]
    assert bundle_papers([], zip_above=0) == []


def test_papers_above_the_threshold_go_as_one_deterministic_zip(
        monkeypatch: pytest.MonkeyPatch) -> None:
    [(name, kind, data)] = bundle_papers(PAPERS, zip_above=999)
    assert (name, kind) == ("papers.zip", "application/zip")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert z.namelist() == ["audit.xlsx", "Budget.pdf", "minutes.docx", "notes"]
        assert {n: z.read(n) for n in z.namelist()} == dict(PAPERS)
        assert {(i.date_time, i.compress_type) for i in z.infolist()} \
            == {(ZIP_TIME, zipfile.ZIP_DEFLATED)}
    monkeypatch.setattr(time, "time", lambda: 4e9)
    assert bundle_papers(list(reversed(PAPERS)), zip_above=999)[0][2] == data


def test_duplicate_names_are_numbered_without_taking_a_given_name() -> None:
    papers = [(n, n.encode()) for n in ("a.pdf", "a.pdf", "A.PDF", "a (2).pdf", "b")]
    assert [n for n, _, _ in bundle_papers(papers, zip_above=10**6)] \
        == ["a.pdf", "a (3).pdf", "A (4).PDF", "a (2).pdf", "b"]
    [(_, _, data)] = bundle_papers(papers, zip_above=0)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("a (2).pdf") == b"a (2).pdf" and z.read("a (3).pdf") == b"a.pdf"


def test_names_lose_folders_and_control_characters() -> None:
    assert unique_names(["../../etc/passwd", "C:\\papers\\x.pdf", "", "..", "a\r\nb.txt"]) \
        == ["passwd", "x.pdf", "paper", "paper (2)", "ab.txt"]


@pytest.mark.parametrize(("name", "kind"), [
    ("a.PDF", "application/pdf"), ("a.pptx", "application/vnd.openxmlformats-officedocument"
                                   ".presentationml.presentation"),
    ("a.csv", "text/csv"), ("a.tar.gz", "application/octet-stream"),
    ("a.unknown", "application/octet-stream")])
def test_mime_types_by_extension(name: str, kind: str) -> None:
    assert mime_type(name) == kind
