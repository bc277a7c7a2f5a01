"""Reading minutes: the actions and the "remind the group in N–M months" nudges they record.

Minutes come as Word documents (.docx, read with python-docx), Markdown or plain text. An
actions table — a Word or Markdown table, or one pasted as text — is the minutes' own summary,
so it is used when there is one: its columns are known by their headers (Topic, Action,
Owner(s)/Lead/Who, Due/Deadline/By when, Status, Date completed), an Owner column wins over a
name in the action's text, and an "Action:" line of the body that says the same thing fills in
what the row leaves out (its owner, a date it states). Without a table each "Action: <name>
will …" line is an action. Owners are matched by :mod:`bot.listen.owners`, stated dates read
by :mod:`bot.listen.dates` — relative to the meeting, never to the wall clock.

Every item knows its place as the admin can find it: "line 12" in a text file, "paragraph 40
(starting 'Action: Priya…')" in Word, "table 1, row 3 (starting 'Share the audit tool…')"
for a table row (tables and rows counted from 1, the header row being row 1, as Word shows).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from bot.domain.errors import UsageError
from bot.listen import dates
from bot.listen.dates import Anchor, DateError
from bot.listen.owners import ALL_WORDS, Match, Owner, match, norm, split
from bot.listen.tables import Table, docx_tables, markdown_tables, pdf_lines, start, text_table

__all__ = ["ALL_WORDS", "Anchor", "Item", "Match", "Minutes", "Owner", "match", "next_agenda",
           "nudge_window", "read", "read_minutes"]

_NUDGE = re.compile(r"(?:remind the group|revisit (?:this|it)|come back to (?:this|it))\s+in\s+"
                    r"(\d+|[a-z]+)\s*(?:(?:-|–|to)\s*(\d+|[a-z]+)\s*)?months?(?:'s?\s+time)?"
                    r"\s*(?:to\s+)?(.*)", re.IGNORECASE)
_OWNER = re.compile(r"^(.+?)\s+(?:will|to|are to|is to|agreed to)\s+(.*)$", re.IGNORECASE)
_ACTION_LINE = re.compile(r"^\s*(?:[-*•]\s*)?\**actions?(?:\s+points?)?\**\s*(?:\d+\s*)?"
                          r"(?::|[–—-]\s)\s*\**\s*(.+)$", re.IGNORECASE)  # not "Action-led"
_ACTIONS_HEAD = re.compile(r"^\s*\**actions?(?:\s+points?)?\**\s*:\s*\**\s*$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+(.+)$")
_NOT_AN_ACTION = re.compile(r"(none|n/?a|nil|no(ne)? (new )?actions?( agreed| arising)?"
                            r"|see (the )?(table|below|above|action log).*)\W*", re.IGNORECASE)
_LABEL = re.compile(r"\b(owners?|lead|who|due|deadline|by when|target date)\s*:\s*",
                    re.IGNORECASE)  # "… Owner: Kim. Due: 31/03/2027"


@dataclass(frozen=True)
class Item:
    """One action (or nudge) as the minutes state it."""

    topic: str
    text: str  # "Kim Osbourne will review the meeting invites …"
    owner_text: str  # the owner(s) as written: "Jo Whitfield and Tom Hughes"
    line: int  # its line (text), paragraph (Word) or row (a table row)
    completed: date | None = None
    nudge: tuple[int, int] | None = None  # the window in months: (6, 9)
    subject: str = ""  # a nudge's subject: "see how local authorities triangulate feedback"
    owners_text: tuple[str, ...] = ()  # each name: ("Jo Whitfield", "Tom Hughes")
    due: date | None = None  # the date the minutes give, if any
    due_source: str | None = None  # "stated: 'by 31 March'", "table column Due"; None: default
    place: str = ""  # "line 12", "table 1, row 3 (starting 'Share the audit tool…')"
    status: str = "open"  # open | done | dropped
    notes: tuple[str, ...] = ()  # what reading it noticed: a Due cell that is not a date

    @property
    def key(self) -> str:
        return hashlib.sha256(norm(self.text).encode()).hexdigest()[:16]


@dataclass
class Minutes:
    """What a minutes file holds: its items, and the body's "Action:" lines that the actions
    table does not list (not imported: the table is the summary; reported so none is lost)."""

    items: list[Item]
    left_out: list[Item] = field(default_factory=list)


def read(path: Path, anchor: Anchor | None = None) -> list[Item]:
    """The actions and nudges in a minutes file; UsageError when it cannot be read."""
    return read_minutes(path, anchor).items


def read_minutes(path: Path, anchor: Anchor | None = None) -> Minutes:
    """The actions and nudges in a minutes file, dates read relative to ``anchor`` (the
    meeting); UsageError, naming the file and the place, when it cannot be read."""
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is empty; nothing was imported")
    suffix = path.suffix.lower()
    if suffix not in (".docx", ".pdf", ".md", ".markdown", ".txt", ".text", ""):
        raise UsageError(f"{path}: minutes must be .docx, .pdf, .md or .txt, not {suffix}")
    try:
        body, tables = _parts(path, suffix)
        rows = [item for table in tables for item in _from_table(table, anchor)]
        said = _from_action_lines(body, anchor)
    except UsageError as exc:
        if exc.message.startswith(str(path)):
            raise
        raise UsageError(f"{path}: {exc.message}; nothing was imported") from None
    if not rows and not said:
        raise UsageError(f"{path}: no actions found (no actions table, no 'Action:' lines); "
                         "nothing was imported")
    if not rows:
        return Minutes(said)
    return _merge(rows, said)


def _parts(path: Path, suffix: str) -> tuple[list[tuple[int, str, str]], list[Table]]:
    """The body's lines (number, text, place) and the actions tables of a minutes file."""
    if suffix == ".docx":
        paragraphs, tables = docx_tables(path)
        return [(n, text, f"paragraph {n} (starting {start(text)})")
                for n, text in paragraphs], tables
    if suffix == ".pdf":
        numbered = list(enumerate(pdf_lines(path), 1))
        return [(n, text, f"{page}, line {n}") for n, (page, text) in numbered], \
            text_table([(n, text) for n, (_, text) in numbered])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; save it as UTF-8, or as .docx") from None
    lines = list(enumerate(text.splitlines(), 1))
    tables = markdown_tables(lines) if suffix in (".md", ".markdown") else []
    return [(n, line, f"line {n}") for n, line in lines], tables or text_table(lines)


def next_agenda(path: Path) -> list[str]:
    """The minutes' "Items for the next agenda": the lines under that heading, up to the
    actions or the next heading."""
    if path.suffix.lower() == ".docx":
        lines = [text for _, text in docx_tables(path)[0]]
    elif path.suffix.lower() == ".pdf":
        lines = [text for _, text in pdf_lines(path)]
    else:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    items: list[str] = []
    inside = False
    for raw in lines:
        line = raw.strip()
        if re.search(r"items for (the )?next (agenda|meeting)", line, re.I):
            inside = True
            continue
        heading = line.startswith("#") or (re.match(r"\d+\.\s+[A-Z][^.]*$", line) and \
            re.search(r"any other business|aob|date of next", line, re.I)) or re.match(
            r"(date|time|venue)\s+of\s+(the\s+)?next\b|next\s+meeting\s*:|(any other "
            r"business|aob)\b", line, re.I)
        if inside and (heading or re.match(r"(actions?\b|topic\b)", line, re.I)
                       or line.startswith("|")):
            break
        if inside and line:
            items.append(re.sub(r"^(\d+[.)]|[-*•])\s*", "", line).rstrip("."))
    return items


# --- one item from a table row or an "Action:" line -----------------------------------------


def _from_table(table: Table, anchor: Anchor | None) -> list[Item]:
    """The items of one actions table: a row per action (empty and section rows skipped)."""
    items = []
    for row in table.rows:
        action = " ".join(row.get("action").split())
        if not action or _NOT_AN_ACTION.fullmatch(action):
            continue
        notes: list[str] = []
        due, source = None, None
        if row.get("due"):
            try:
                due = dates.cell(row.get("due"), anchor)
                source = f"table column {table.header('due')}" if due else None
            except DateError as exc:
                notes.append(f"{row.place}: {table.header('due')} {exc}; the default is used")
        status, completed = "open", None
        if text := row.get("status"):
            said = dates.status(text, anchor)
            if said is None:
                notes.append(f"{row.place}: {table.header('status')} {text!r} is read as open")
            else:
                status, completed = said.state, said.completed
                if said.problem:
                    notes.append(f"{row.place}: {table.header('status')} {said.problem}")
                if said.due and due is None:
                    due, source = said.due, f"table column {table.header('status')}"
        if text := row.get("completed"):
            done = text.strip().lower() in ("done", "yes", "y", "✓", "✔", "x", "complete",
                                            "completed")
            try:
                when = None if done else dates.cell(text, anchor)
            except DateError as exc:
                raise UsageError(f"{row.place}: {table.header('completed')} {exc}") from None
            if done or when:
                status, completed = "done", when or completed
        owner = row.get("owner").strip()
        items.append(_item(row.get("topic"), action, row.line, row.place, anchor,
                           owner=owner or None, completed=completed, status=status,
                           due=due, due_source=source, notes=notes))
    return items


def _from_action_lines(body: list[tuple[int, str, str]], anchor: Anchor | None) -> list[Item]:
    """Each "Action: …" line, and each bullet under a line "Actions:" alone."""
    items = []
    under = False  # in the bullets under "Actions:"
    for n, line, place in body:
        m = _ACTION_LINE.match(line)
        bullet = _BULLET.match(line) if under else None
        text = m.group(1) if m else bullet.group(1) if bullet else ""
        under = bool(_ACTIONS_HEAD.match(line)) or (under and bullet is not None)
        if text and not _NOT_AN_ACTION.fullmatch(text.strip()):
            items.append(_item("", text, n, place, anchor))
    return items


def _item(topic: str, text: str, line: int, place: str, anchor: Anchor | None, *,
          owner: str | None = None, completed: date | None = None, status: str = "open",
          due: date | None = None, due_source: str | None = None,
          notes: list[str] | None = None) -> Item:
    text = " ".join(text.split())
    notes = list(notes or [])
    labels = _labels(text)  # "Update the ToR (owner: Kim, due: 31/03/2027)"
    if owner is None:
        owner = labels.get("owner") or (
            m.group(1) if (m := _OWNER.match(text)) and len(m.group(1)) <= 80 else "")
    if due is None:
        try:
            if said := labels.get("due"):
                if found_day := dates.cell(said, anchor):
                    due, due_source = found_day, f"stated: {said!r}"
            elif found := dates.stated(text, anchor):
                due, due_source = found[0], f"stated: {found[1]!r}"
        except DateError as exc:
            notes.append(f"{place}: {exc}; the default is used")
    nudge, subject = None, ""
    if n := _NUDGE.search(text):
        low, high = _months(n.group(1)), _months(n.group(2) or n.group(1))
        if low is not None and high is not None and low <= high:
            nudge = (low, high)
            subject = n.group(3).strip().rstrip(".").replace("’", "'")
    return Item(topic=" ".join(topic.split()), text=text, owner_text=owner.strip(), line=line,
                completed=completed, nudge=nudge, subject=subject,
                owners_text=tuple(split(owner)), due=due, due_source=due_source, place=place,
                status=status, notes=tuple(notes))


def _labels(text: str) -> dict[str, str]:
    """The owner and due date an action's text gives by name: "… Owner: Kim; Due: 31/03/2027"."""
    found: dict[str, str] = {}
    marks = list(_LABEL.finditer(text))
    for m, following in zip(marks, [*marks[1:], None][:len(marks)], strict=True):
        value = text[m.end():following.start() if following else len(text)]
        name = "due" if m.group(1).lower() in ("due", "deadline", "by when", "target date") \
            else "owner"
        found.setdefault(name, value.strip(" .;,)]–—-"))
    return found


def _months(word: str) -> int | None:
    return int(word) if word.isdigit() else dates.NUMBERS.get(word.lower())


# --- the body's "Action:" lines and the actions table ---------------------------------------

_STOP = {"the", "and", "for", "with", "will", "their", "them", "from", "this", "that", "are",
         "all", "into", "along", "after", "before", "next", "any", "our", "has", "have"}


def _merge(rows: list[Item], said: list[Item]) -> Minutes:
    """The table's rows, each completed from the body's "Action:" line that says the same
    (its owner when the row names none, a date it states when the row gives none); the lines
    no row says are left out (and reported)."""
    pairs = sorted(((score, r, s) for r, row in enumerate(rows) for s, line in enumerate(said)
                    if (score := _alike(row.text, line.text)) >= 0.6), reverse=True)
    partner: dict[int, int] = {}  # row -> the line that says the same
    for _, r, s in pairs:
        if r not in partner and s not in partner.values():
            partner[r] = s
    items = []
    for r, row in enumerate(rows):
        line = said[partner[r]] if r in partner else None
        if line is not None and not row.owner_text and line.owner_text:
            row = replace(row, owner_text=line.owner_text, owners_text=line.owners_text)
        if line is not None and row.due is None:
            row = replace(row, notes=row.notes + line.notes)
            if line.due is not None:
                row = replace(row, due=line.due, due_source=f"{line.due_source} at "
                                                            f"{line.place.split(' (')[0]}")
        items.append(row)
    return Minutes(items, [line for s, line in enumerate(said) if s not in partner.values()])


def _alike(a: str, b: str) -> float:
    """How much two wordings of an action share: their common words over the shorter's."""
    words = [{w.rstrip("s") for w in norm(t).split() if len(w) > 2 and w not in _STOP}
             for t in (a, b)]
    if not words[0] or not words[1]:
        return 0.0
    return len(words[0] & words[1]) / min(len(words[0]), len(words[1]))


# --- nudges ---------------------------------------------------------------------------------


def nudge_window(meeting_day: date, months: tuple[int, int]) -> tuple[date, date]:
    return dates.add_months(meeting_day, months[0]), dates.add_months(meeting_day, months[1])
