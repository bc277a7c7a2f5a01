"""The agenda pack: a Word agenda, the returns register for the email body, and the papers.

Pure functions of plain dicts: no database, no config. Output is deterministic, so the same
agenda gives the same bytes (python-docx stamps ZIP members with the clock; they are
rewritten with a fixed time). Tables give dates as day/month/year, which is what the
minutes importer (``bot.minutes``) reads back from a "Date completed" column.
"""

from __future__ import annotations

import functools
import html
import io
import mimetypes
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import PurePosixPath
from typing import Any, TypedDict, cast

from docx import Document as new_document
from docx.document import Document
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.pkgwriter import PackageWriter
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import RGBColor

from bot.domain import timeutil


class Apology(TypedDict):
    name: str
    organisation: str
    reason: str


class ActionRow(TypedDict):
    topic: str
    text: str
    owner: str
    status: str  # open | done | dropped
    due: date | None
    completed: date | None


class ItemRow(TypedDict):
    text: str
    note: str  # "proposed by Kim Osei", "agreed at the meeting of 15 June 2023", or ""


class ReturnRow(TypedDict):
    organisation: str
    status: str  # submitted | nil | outstanding
    at: date | None


@dataclass(frozen=True)
class Agenda:
    group_name: str
    title: str
    start: datetime  # aware
    end: datetime  # aware
    zone: str  # IANA name: the times are shown in it
    location: str = ""
    link: str = ""
    apologies: Sequence[Apology] = ()
    no_answer: Sequence[str] = ()
    actions: Sequence[ActionRow] = ()
    items: Sequence[ItemRow] = ()
    returns: Sequence[ReturnRow] = ()
    papers: Sequence[str] = ()


Section = Callable[[Document], None]  # writes what follows a section's heading

RETURN_STATUSES = {"submitted": "Submitted", "nil": "Nil return", "nil return": "Nil return",
                   "outstanding": "Outstanding"}
ACTION_ORDER = ("open", "done", "dropped")
ACTION_COLUMNS = ("Topic", "Action", "Owner", "Status", "Date completed")
RETURN_COLUMNS = ("Organisation", "Status", "Date")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP entry can hold
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# --- the Word agenda ------------------------------------------------------------------------


def agenda_docx(agenda: Agenda) -> bytes:
    """The agenda as a .docx: headings in Word's heading styles (a navigable outline),
    the action tracker and the returns register as tables; the same bytes whenever it is
    built (every member of the package at ZIP_TIME)."""
    return _zip(_members(document_of(agenda)))


def document_of(agenda: Agenda) -> Document:
    """The agenda as a python-docx document (:func:`agenda_docx`)."""
    doc = new_document()
    _styled(doc, _text(agenda.group_name), "Title")
    _styled(doc, _text(agenda.title), "Subtitle")
    doc.add_paragraph(_text(when(agenda.start, agenda.end, agenda.zone)))
    if agenda.location:
        doc.add_paragraph(_text(f"Where: {agenda.location}"))
    if agenda.link:
        _link_line(doc, "Join online: ", agenda.link)
    _styled(doc, "Agenda", "Heading 1")
    for number, (heading, body) in enumerate(_sections(agenda), 1):
        _styled(doc, _text(f"{number}. {' '.join(heading.split())}"), "Heading 2")
        if body:
            body(doc)
    _styled(doc, "Returns", "Heading 1")
    _table(doc, RETURN_COLUMNS, register_rows(agenda.returns), empty="No returns recorded.")
    _styled(doc, "Papers", "Heading 1")
    _bullets(doc, agenda.papers, empty="No papers.")
    _properties(doc, agenda)
    return doc


def when(start: datetime, end: datetime, zone: str) -> str:
    """"Thursday 14 January 2027, 14:00–16:00 (Europe/London)" — both days when it ends
    on another day."""
    if start.utcoffset() is None or end.utcoffset() is None:
        raise ValueError("the meeting's start and end must be aware datetimes")
    tz = timeutil.zone(zone)
    s, e = start.astimezone(tz), end.astimezone(tz)
    if s.date() == e.date():
        return f"{_longdate(s)}, {s:%H:%M}–{e:%H:%M} ({zone})"
    return f"{_longdate(s)}, {s:%H:%M} – {_longdate(e)}, {e:%H:%M} ({zone})"


def _longdate(value: datetime) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def _sections(agenda: Agenda) -> list[tuple[str, Section | None]]:
    """(heading, what follows it) in agenda order; an item's note (who proposed it, the
    meeting that agreed a nudge) goes under it in italics."""
    tracker = partial(_table, header=ACTION_COLUMNS, rows=action_rows(agenda.actions),
                      empty="No actions from previous meetings.")
    return [("Introductions and apologies",
             partial(_apologies, apologies=agenda.apologies, no_answer=agenda.no_answer)),
            ("Matters arising", tracker),
            *((i["text"], partial(_note, note=i.get("note", ""))) for i in agenda.items),
            ("Any other business", None), ("Items for the next agenda", None)]


def _note(doc: Document, note: str) -> None:
    if note.strip():
        doc.add_paragraph().add_run(_text(note.strip())).italic = True


def _apologies(doc: Document, apologies: Sequence[Apology], no_answer: Sequence[str]) -> None:
    doc.add_paragraph("Apologies received:" if apologies else "No apologies received so far.")
    _bullets(doc, [_apology(a) for a in apologies])
    if no_answer:
        doc.add_paragraph("Not yet answered:")
        _bullets(doc, no_answer)


def _apology(a: Apology) -> str:
    who = f"{a['name']} ({a['organisation']})" if a.get("organisation") else a["name"]
    return f"{who}: {a['reason']}" if a.get("reason") else who


def action_rows(actions: Iterable[ActionRow]) -> list[tuple[str, str, str, str, str]]:
    """The tracker's rows under ACTION_COLUMNS, in order."""
    return [(a["topic"], a["text"], a.get("owner", ""), _action_status(a),
             _dmy(a.get("completed"))) for a in sort_actions(actions)]


def sort_actions(actions: Iterable[ActionRow]) -> list[ActionRow]:
    """Open first, then done, then dropped (then anything else); each by due date."""
    def key(a: ActionRow) -> tuple[int, bool, date, str, str]:
        status = a["status"].strip().lower()
        rank = ACTION_ORDER.index(status) if status in ACTION_ORDER else len(ACTION_ORDER)
        due = a.get("due")
        return rank, due is None, due or date.min, a["topic"].casefold(), a["text"]
    return sorted(actions, key=key)


def _action_status(a: ActionRow) -> str:
    label = a["status"].strip().capitalize()
    due = a.get("due")
    return f"{label} (due {_dmy(due)})" if label == "Open" and due else label


def _bullets(doc: Document, lines: Sequence[str], empty: str = "") -> None:
    if not lines and empty:
        doc.add_paragraph(empty)
    for line in lines:
        _styled(doc, _text(line), "List Bullet")


def _table(doc: Document, header: Sequence[str], rows: Sequence[Sequence[str]],
           empty: str) -> None:
    if not rows:
        doc.add_paragraph(empty)
        return
    # every row made at once (python-docx adding rows one by one sets each cell's width
    # anew: most of an agenda's cost), then each cell's text as one run
    table = doc.add_table(rows=1 + len(rows), cols=len(header))
    table._tbl.tblStyle_val = _style_id("Table Grid")
    for cell, name in zip(table.rows[0].cells, header, strict=True):
        cell.paragraphs[0].add_run(name).bold = True
    repeat = OxmlElement("w:tblHeader")  # the header row repeats on each page
    table.rows[0]._tr.get_or_add_trPr().append(repeat)
    for tr, row in zip(table._tbl.tr_lst[1:], rows, strict=True):
        for tc, value in zip(tr.tc_lst, row, strict=True):
            tc.p_lst[0].add_r().text = _text(value)


def _styled(doc: Document, text: str, style: str) -> None:
    """A paragraph in one of the template's styles, set by its id: python-docx's setting by
    name walks every style of the document each time (most of an agenda's cost)."""
    doc.add_paragraph(text)._p.style = _style_id(style)


@functools.cache
def _style_ids() -> dict[str, str]:
    return {s.name: s.style_id for s in new_document().styles if s.name}


def _style_id(name: str) -> str:
    """The id of a style of python-docx's default template, by its name."""
    return _style_ids()[name]


def _link_line(doc: Document, label: str, url: str) -> None:
    """A paragraph ending in a clickable hyperlink (python-docx has no API for one)."""
    paragraph = doc.add_paragraph(label)
    run = paragraph.add_run(_text(url))
    run.underline = True
    run.font.color.rgb = RGBColor(0x05, 0x63, 0xC1)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), paragraph.part.relate_to(url, RT.HYPERLINK, is_external=True))
    run._r.addprevious(link)
    link.append(run._r)


def _properties(doc: Document, agenda: Agenda) -> None:
    """Core properties from the agenda alone: python-docx writes them as given (UTC)."""
    props = doc.core_properties
    stamp = agenda.start.astimezone(UTC).replace(tzinfo=None)
    props.title = _text(f"{agenda.title}: agenda")
    props.subject = _text(agenda.group_name)
    props.author = props.last_modified_by = "clerk"
    props.comments = ""
    props.revision = 1
    props.created = props.modified = props.last_printed = stamp


def _text(value: str) -> str:
    """Text Word can store: XML 1.0 has no place for most control characters."""
    return _NOT_XML.sub("", value)


def _members(doc: Document) -> list[tuple[str, bytes]]:
    """The document's package as ``Document.save`` writes it, member by member — by
    python-docx's own writer's steps, so that the members are zipped once, each at
    ZIP_TIME (its ``save`` stamps them with the time of day)."""
    package = doc.part.package
    members: list[tuple[str, bytes]] = []

    class Collect:  # what the writer's steps ask of a zip file
        def write(self, uri: PackURI, blob: bytes) -> None:
            members.append((uri.membername, blob))

    parts, writer = package.parts, cast(Any, Collect())
    for part in parts:
        part.before_marshal()
    PackageWriter._write_content_types_stream(writer, parts)
    PackageWriter._write_pkg_rels(writer, package.rels)
    PackageWriter._write_parts(writer, parts)
    return members


def _zip(members: Iterable[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, wherever it runs: the bytes must not vary
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


# --- the returns register for the email body ------------------------------------------------


def register_rows(returns: Iterable[ReturnRow]) -> list[tuple[str, str, str]]:
    """(organisation, status label, date) by organisation; ValueError on an unknown status."""
    rows = []
    for r in returns:
        status = " ".join(r["status"].replace("_", " ").split()).lower()
        if status not in RETURN_STATUSES:
            raise ValueError(f"{r['organisation']}: return status {r['status']!r} is not "
                             "submitted, nil or outstanding")
        rows.append((r["organisation"], RETURN_STATUSES[status], _dmy(r.get("at"))))
    return sorted(rows, key=lambda row: (row[0].casefold(), row))


def returns_register_html(returns: Iterable[ReturnRow]) -> str:
    """An HTML table (inline styles: mail clients drop <style>); "" when there are none.
    Escaped here: put it in a template with ``|safe``."""
    rows = register_rows(returns)
    if not rows:
        return ""
    cell = 'style="text-align: left; padding: 2px 16px 2px 0; border-bottom: 1px solid #ccc"'
    head = "".join(f"<th {cell}>{html.escape(c)}</th>" for c in RETURN_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in row)
                   + "</tr>\n" for row in rows)
    return (f'<table style="border-collapse: collapse">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}</tbody>\n</table>\n")


def returns_register_text(returns: Iterable[ReturnRow]) -> str:
    """A plain-text table in columns; "" when there are none."""
    rows = [tuple(" ".join(v.split()) for v in row) for row in register_rows(returns)]
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in (RETURN_COLUMNS, *rows)) for i in range(3)]
    table = [RETURN_COLUMNS, tuple("-" * w for w in widths), *rows]
    return "".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in table)


def _dmy(value: date | None) -> str:
    return f"{value.day:02d}/{value.month:02d}/{value.year}" if value else ""


# --- the papers as attachments --------------------------------------------------------------


_MIME = mimetypes.MimeTypes()  # Python's own table, not the host's: the same on every machine
_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."
for _ext, _type in {".docx": _OOXML + "wordprocessingml.document", ".odt": _ODF + "text",
                    ".xlsx": _OOXML + "spreadsheetml.sheet", ".ods": _ODF + "spreadsheet",
                    ".pptx": _OOXML + "presentationml.presentation", ".odp": _ODF + "presentation",
                    ".rtf": "application/rtf", ".md": "text/markdown"}.items():
    _MIME.add_type(_type, _ext)


def mime_type(name: str) -> str:
    """By extension; application/octet-stream when unknown or compressed (.gz)."""
    kind, encoding = _MIME.guess_type(name, strict=False)
    return kind if kind and not encoding else "application/octet-stream"


def bundle_papers(papers: Sequence[tuple[str, bytes]],
                  zip_above: int) -> list[tuple[str, str, bytes]]:
    """(filename, mime type, data) per paper, in the given order; one papers.zip (names
    sorted, fixed timestamps) instead when their total size is above ``zip_above`` bytes.
    Names lose any folder; a repeated name gets a number: "a.pdf", "a (2).pdf"."""
    named = list(zip(unique_names([n for n, _ in papers]), [d for _, d in papers],
                     strict=True))
    if not named or sum(len(d) for _, d in named) <= zip_above:
        return [(n, mime_type(n), d) for n, d in named]
    ordered = sorted(named, key=lambda nd: (nd[0].casefold(), nd[0]))
    return [("papers.zip", "application/zip", _zip(ordered))]


def unique_names(names: Sequence[str]) -> list[str]:
    """Each name made safe and distinct (ignoring case, as Windows does). A name given
    once keeps it; a repeat takes the first free "stem (n).ext"."""
    safe = [_safe_name(n) for n in names]
    taken = {n.casefold() for n in safe}
    seen: set[str] = set()
    out = []
    for name in safe:
        if name.casefold() in seen:
            path = PurePosixPath(name)
            n = 2
            while (candidate := f"{path.stem} ({n}){path.suffix}").casefold() in taken:
                n += 1
            name = candidate
            taken.add(name.casefold())
        seen.add(name.casefold())
        out.append(name)
    return out


def _safe_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    return base if base.strip(".") else "paper"
