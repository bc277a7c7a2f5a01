"""The tables of a minutes file — Word tables (python-docx), Markdown tables, and a table pasted
as text (one cell a line, as the seed minutes have it) — as rows of known columns.

Columns are known by their header: Topic; Action (or Task); Owner(s), Lead, Who, By whom,
Responsible; Due, Deadline, By when, Target date; Status; Date completed, Completed. A table
is an actions table when it has an Action column; one that has an Owner or Due column but no
Action column is an error (its actions would be lost silently); any other table (attendees,
returns) is not about actions and is passed over. Tables and rows are counted from 1 as Word
shows them, the header row being row 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.domain.errors import UsageError
from bot.listen import dates

# (column, its headers), the first that fits wins: "Action owner" is an owner, not an action
COLUMNS = (
    ("owner", r"(?:action\s+)?(?:owner|lead|lead officer|lead person)s?(?:\s*\(s\))?|who|"
              r"by whom|responsib\w*(?: person| officer)?|assigned to|action(?:ed)? by"),
    ("completed", r"(?:date\s+)?(?:completed|completion|done|closed)(?:\s+(?:date|on))?|"
                  r"date done"),
    ("due", r"(?:date\s+)?due(?:\s+(?:date|by))?|deadline|by when|target(?: date)?|when|"
            r"timescales?|timeframe"),
    ("status", r"(?:status|progress|rag|update)(?:\s+(?:status|progress|update))*"),
    ("action", r"(?:agreed\s+)?actions?(?:\s+(?:agreed|required|points?|arising|decisions?))?|"
               r"tasks?|what"),
    ("topic", r"topic|item|subject|agenda item|heading|theme|area"),
)


@dataclass(frozen=True)
class Row:
    """One row: its cells by column, and where it is."""

    cells: dict[str, str]
    line: int  # its row number (Word), or its first line (text)
    place: str  # "table 1, row 3 (starting 'Share the audit tool…')"

    def get(self, column: str) -> str:
        return self.cells.get(column, "")


@dataclass(frozen=True)
class Table:
    """An actions table: its columns' headers as written, and its rows (header row left out)."""

    number: int
    headers: dict[str, str]  # column -> its header as written: "due" -> "Due date"
    rows: tuple[Row, ...]

    def header(self, column: str) -> str:
        return self.headers.get(column, column.capitalize())


def columns(header: list[str]) -> dict[int, str]:
    """Which known column each header cell is (by position); unknown ones are left out."""
    found: dict[int, str] = {}
    for i, text in enumerate(header):
        words = " ".join(re.sub(r"[^\w()/ ]", " ", text.lower()).split()).replace("/", " ")
        for name, pattern in COLUMNS:
            if name not in found.values() and re.fullmatch(pattern, words):
                found[i] = name
                break
    return found


def start(text: str) -> str:
    """The start of a paragraph or cell, to find it by: 'Share the audit tool…'."""
    text = " ".join(text.split())
    if len(text) > 30:  # about 30 characters, cut between words
        cut = text[:31].rsplit(" ", 1)[0] if " " in text[:31] else text[:30]
        text = cut.rstrip(" ,;:") + "…"
    return repr(text)


def build(number: int, rows: list[tuple[int, list[str]]], *, lines: bool = False) -> Table | None:
    """An actions table from raw rows ``(row number or line, cells)``: None when it is not
    one; UsageError when it looks like one with no Action column."""
    h = next((i for i, (_, cells) in enumerate(rows[:2])
              if "action" in columns(cells).values()), None)
    if h is None:
        known = [columns(header) for _, header in rows[:2]]
        if any({"owner", "due"} & set(k.values()) and len(k) >= 2 for k in known):
            cells = next(header for (_, header), k in zip(rows, known, strict=False) if k)
            raise UsageError(f"table {number} has no Action column (its header: "
                             f"{', '.join(c for c in cells if c)}); name the column that holds "
                             "the actions 'Action'")
        return None
    header = rows[h][1]
    found = columns(header)
    out = []
    for index, (n, cells) in enumerate(rows[h + 1:], start=h + 2):
        texts = [c.strip() for c in cells]
        filled = [c for c in texts if c]
        if not filled or texts == [c.strip() for c in header] or (
                len(filled) > 1 and len(set(filled)) == 1):  # empty, repeated header, merged
            continue
        where = f"table {number}, row {index} (starting {start(filled[0])})"
        out.append(Row({name: texts[i] for i, name in found.items() if i < len(texts)},
                       n if lines else index, where + (f", line {n}" if lines else "")))
    return Table(number, {name: header[i].strip() for i, name in found.items()}, tuple(out))


def docx_tables(path: Path) -> tuple[list[tuple[int, str]], list[Table]]:
    """A Word document's paragraphs (numbered from 1) and its actions tables."""
    import zipfile

    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    from bot.listen.papers import ZIP_MEMBERS, ZIP_UNPACKED

    try:
        with zipfile.ZipFile(path) as z:  # a zip bomb is refused before python-docx opens it
            infos = z.infolist()
            if len(infos) > ZIP_MEMBERS or sum(i.file_size for i in infos) > ZIP_UNPACKED:
                raise UsageError(f"{path} unpacks to more than a Word document can; open it "
                                 "in Word and save it again as .docx")
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, PackageNotFoundError, OSError) as exc:
        raise UsageError(f"{path} is not a Word document (.docx): {exc}; open it in Word and "
                         "save it as .docx") from None
    paragraphs = [(n, p.text) for n, p in enumerate(document.paragraphs, 1)]
    tables = []
    for number, t in enumerate(document.tables, 1):
        try:
            rows = [(n, [c.text for c in row.cells]) for n, row in enumerate(t.rows, 1)]
        except (IndexError, ValueError) as exc:  # a damaged grid python-docx cannot walk
            raise UsageError(f"table {number} cannot be read ({exc}); open the file in Word "
                             "and save it again") from None
        table = build(number, rows)
        if table is not None:
            tables.append(table)
    return paragraphs, tables


def markdown_tables(lines: list[tuple[int, str]]) -> list[Table]:
    raw: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
    for n, line in lines:
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                current.append((n, cells))
        elif current:
            raw.append(current)
            current = []
    if current:
        raw.append(current)
    built = [build(number, rows, lines=True) for number, rows in enumerate(raw, 1)]
    return [t for t in built if t is not None]


def text_table(lines: list[tuple[int, str]]) -> list[Table]:
    """A table pasted as text, one cell a line: a header ("Topic", "Action", maybe "Owner",
    "Due", "Status", "Date completed", a line each), then its rows. Copied from Word, each
    cell's first line starts with a tab (an empty cell is a tab alone) and rows follow in
    order, so the cells are read by position; otherwise (or when a Due, Status or Date
    completed cell read so is not one) they are told apart by what they say."""
    at = _header_at(lines)
    if at is None:
        return []
    first, header = at
    order = [columns([h])[0] for h in header]
    tabbed = all(line.startswith("\t") for _, line in lines[first - len(order):first])
    rows = _by_position(lines[first:], order) if tabbed else None
    if rows is None:
        rows = _by_content(lines[first:], order)
    table = build(1, [(0, header)] + [(n, [cells.get(name, "") for name in order])
                                      for n, cells in rows], lines=True)
    return [table] if table is not None else []


Cells = list[tuple[int, dict[str, str]]]  # (first line, cell by column) per row


def _by_position(lines: list[tuple[int, str]], order: list[str]) -> Cells | None:
    """Rows read cell by cell: a line starting with a tab is the next cell, a line right
    under it adds to it, a blank line is nothing; a line after a blank that is not a cell ends
    the table. None when a Due, Status or Date completed cell is not one."""
    cells: list[tuple[int, str]] = []
    blank = False
    for n, line in lines:
        if line.startswith("\t"):
            cells.append((n, line.strip()))
        elif line.strip() and cells and not blank:
            cells[-1] = (cells[-1][0], f"{cells[-1][1]} {line.strip()}".strip())
        elif line.strip():
            break
        blank = not line.strip()
    rows: Cells = []
    for i in range(0, len(cells), len(order)):
        chunk = cells[i:i + len(order)]
        row = {name: text for name, (_, text) in zip(order, chunk, strict=False) if text}
        if any(row.get(name) and not _value_slot(row[name], [name], {})
               for name in ("due", "status", "completed")):
            return None
        if row:
            rows.append((chunk[0][0], row))
    return rows


def _by_content(lines: list[tuple[int, str]], order: list[str]) -> Cells:
    """Rows read by what their lines say: a topic, its action, then values and names."""
    body = [(n, line.strip()) for n, line in lines if line.strip()]
    rows: Cells = []
    for i, (n, line) in enumerate(body):
        row = rows[-1][1] if rows else None
        following = body[i + 1][1] if i + 1 < len(body) else ""
        after = body[i + 2][1] if i + 2 < len(body) else ""
        if row is not None and "action" not in row:
            row["action"] = line
        elif row is not None and (slot := _value_slot(line, order, row)):
            row[slot] = line
        elif row is not None and "owner" in order and "owner" not in row and len(row) <= 2 \
                and _names(line) and (not following or _value_slot(following, order, row)
                                      or _action_like(after)):
            row["owner"] = line  # names, then a value or the next row (a topic, an action)
        elif "topic" in order and not _action_like(line):
            rows.append((n, {"topic": line}))
        else:
            rows.append((n, {"action": line}))
    return rows


def _header_at(lines: list[tuple[int, str]]) -> tuple[int, list[str]] | None:
    """Where a text table's rows start, and its header cells as written."""
    for i, (_, line) in enumerate(lines):
        if not re.fullmatch(r"\s*(topic|action)\s*", line, re.IGNORECASE):
            continue
        header: list[str] = []
        j = i
        while j < len(lines) and lines[j][1].strip() and len(lines[j][1].split()) <= 4:
            name = columns([lines[j][1]]).get(0)
            if name is None or name in [columns([h])[0] for h in header]:
                break
            header.append(lines[j][1].strip())
            j += 1
        if "action" in [columns([h])[0] for h in header] and len(header) >= 2:
            return j, header
    return None


_PROBE = dates.Anchor(date(2000, 1, 1), date(2000, 1, 2))  # only to see if a line is a date


def _value_slot(line: str, order: list[str], row: dict[str, str]) -> str | None:
    """The free Due, Status or Date completed cell that ``line`` fits, if any."""
    said = dates.status(line, _PROBE)
    if said is not None and "status" in order and "status" not in row:
        return "status"
    try:
        is_date = dates.cell(line, _PROBE) is not None or line.lower() in dates.NO_DATE
    except dates.DateError:
        return None
    free = [name for name in order if name in ("due", "completed") and name not in row]
    return free[0] if is_date and free else None


def _names(line: str) -> bool:
    """Whether ``line`` reads as people's names: "Kim", "Jo Whitfield / Tom Hughes", "JW"."""
    word = r"(?:[A-Z][\w'’-]*|[A-Z]{2,4})"
    name = rf"{word}(?:\s+{word}){{0,3}}(?:\s*\([^)]*\))?"
    return bool(re.fullmatch(rf"{name}(?:\s*(?:,|&|/|\band\b)\s*{name})*", line.strip()))


def _action_like(line: str) -> bool:
    return bool(re.search(r"\s(will|to)\s", line, re.IGNORECASE)) or len(line.split()) > 8


PDF_PAGES = 300  # minutes of more pages are not minutes
PDF_TEXT = 2 * 1024 * 1024  # characters of text read from a PDF, at most


def pdf_lines(path: Path) -> list[tuple[str, str]]:
    """A PDF's text, line by line, each with its page ("page 2"). A PDF is untrusted input:
    one that is encrypted, damaged, too long, or that pypdf cannot read is refused with the
    reason, naming the file."""
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise UsageError(f"{path} is a PDF with a password; send it without one, or as "
                             ".docx")
        if len(reader.pages) > PDF_PAGES:
            raise UsageError(f"{path} has {len(reader.pages)} pages, more than minutes have "
                             f"({PDF_PAGES}); send the minutes alone")
        out: list[tuple[str, str]] = []
        size = 0
        for number, page in enumerate(reader.pages, 1):
            text = page.extract_text() or ""
            size += len(text)
            if size > PDF_TEXT:
                raise UsageError(f"{path} holds more text than minutes do; send the minutes "
                                 "alone")
            out += [(f"page {number}", line) for line in text.splitlines()]
    except UsageError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError,
            AttributeError, IndexError, ZeroDivisionError) as exc:
        raise UsageError(f"{path} is not a PDF clerk can read ({type(exc).__name__}: {exc}); "
                         "send it as .docx") from None
    if not any(text.strip() for _, text in out):
        raise UsageError(f"{path} is a PDF without text (a scan?); send the minutes as .docx")
    return out
