"""Reading minutes: the actions and the "remind the group in N–M months" nudges they record.

Minutes come as Word documents (.docx, read with python-docx), Markdown or plain text. An
actions table (Topic / Action / Date completed) is the minutes' own summary, so it is used when
there is one; otherwise each "Action: <name> will …" line is an action. Owners are matched to
the roster leniently — "Kim" for "Kimesha", an en dash for a hyphen in a surname, a letter
out of place — and every match that is not exact is reported, never guessed silently.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bot.domain.errors import UsageError
from bot.domain.model import Group, Person

ALL_WORDS = ("all members", "subgroup", "sub-group", "group members", "attendees", "everyone",
             "all attendees")
_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_NUDGE = re.compile(r"remind the group in (\d+)\s*(?:-|–|to)\s*(\d+)\s*months?\s*(?:to\s+)?(.*)",
                    re.IGNORECASE)
_OWNER = re.compile(r"^(.+?)\s+(?:will|to)\s+(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One action (or nudge) as the minutes state it."""

    topic: str
    text: str  # "Kim Osbourne will review the meeting invites …"
    owner_text: str  # "Kim Osbourne"
    line: int  # where it is in the file (a table row counts as its first line)
    completed: date | None = None
    nudge: tuple[int, int] | None = None  # the window in months: (6, 9)
    subject: str = ""  # a nudge's subject: "see how local authorities triangulate feedback"

    @property
    def key(self) -> str:
        return hashlib.sha256(_norm(self.text).encode()).hexdigest()[:16]


@dataclass
class Match:
    emails: tuple[str, ...] = ()  # ("*",) for all members
    note: str = ""  # how a not-exact match was made
    candidates: list[Person] = field(default_factory=list)  # ambiguous: who it may be


def read(path: Path) -> list[Item]:
    """The actions and nudges in a minutes file; UsageError when it cannot be read."""
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".docx":
        lines, tables = _docx(path)
    elif suffix in (".md", ".markdown", ".txt", ".text", ""):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not UTF-8 text; save it as UTF-8, or as .docx") from None
        lines = list(enumerate(text.splitlines(), 1))
        tables = _markdown_tables(lines) if suffix in (".md", ".markdown") else []
    else:
        raise UsageError(f"{path}: minutes must be .docx, .md or .txt, not {suffix}")
    items = _from_tables(tables) or _from_text_table(lines) or _from_action_lines(lines)
    if not items:
        raise UsageError(f"{path}: no actions found (no actions table, no 'Action:' lines); "
                         "nothing was imported")
    return items


def next_agenda(path: Path) -> list[str]:
    """The minutes' "Items for the next agenda": the lines under that heading, up to the
    actions or the next heading."""
    if path.suffix.lower() == ".docx":
        lines = [text for _, text in _docx(path)[0]]
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
            re.search(r"any other business|aob|date of next", line, re.I))
        if inside and (heading or re.match(r"(actions?\b|topic\b)", line, re.I)
                       or line.startswith("|")):
            break
        if inside and line:
            items.append(re.sub(r"^(\d+[.)]|[-*•])\s*", "", line).rstrip("."))
    return items


def _docx(path: Path) -> tuple[list[tuple[int, str]], list[list[tuple[int, list[str]]]]]:
    import zipfile

    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, PackageNotFoundError) as exc:
        raise UsageError(f"{path} is not a Word document (.docx): {exc}; open it in Word and "
                         "save it as .docx") from None
    lines = [(n, p.text) for n, p in enumerate(document.paragraphs, 1)]
    tables = [[(n, [c.text.strip() for c in row.cells]) for n, row in enumerate(t.rows, 1)]
              for t in document.tables]
    return lines, tables


def _markdown_tables(lines: list[tuple[int, str]]) -> list[list[tuple[int, list[str]]]]:
    tables: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
    for n, line in lines:
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                current.append((n, cells))
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _from_tables(tables: list[list[tuple[int, list[str]]]]) -> list[Item]:
    """Rows of a table whose header names an Action column (Topic, Date completed optional)."""
    for table in tables:
        header = [c.lower() for c in table[0][1]] if table else []
        if not any(c.startswith("action") for c in header):
            continue
        col = {name: next((i for i, c in enumerate(header) if c.startswith(name)), None)
               for name in ("topic", "action")}
        col["date"] = next((i for i, c in enumerate(header) if "complet" in c), None)
        items = []
        for n, cells in table[1:]:
            topic, action, done = (_cell(cells, col[name]) for name in ("topic", "action",
                                                                          "date"))
            if action:
                items.append(_item(topic, action, n, done))
        return items
    return []


def _cell(cells: list[str], i: int | None) -> str:
    return cells[i].strip() if i is not None and i < len(cells) else ""


def _from_text_table(lines: list[tuple[int, str]]) -> list[Item]:
    """A table pasted as text: a "Topic / Action / Date completed" header, then per row a
    topic line, an action line ("<name> will …") and maybe a date line."""
    start = next((i for i, (_, line) in enumerate(lines)
                  if re.fullmatch(r"\s*topic\s*", line, re.I)
                  and any(re.fullmatch(r"\s*action\s*", x, re.I) for _, x in lines[i:i + 3])),
                 None)
    if start is None:
        return []
    items: list[Item] = []
    topic, topic_line = "", 0
    for n, raw in lines[start + 1:]:
        line = raw.strip()
        if not line or re.fullmatch(r"(action|date completed)", line, re.I):
            continue
        if _DATE.match(line) and items:
            items[-1] = _item(items[-1].topic, items[-1].text, items[-1].line, line)
        elif _OWNER.match(line) and topic:
            items.append(_item(topic, line, topic_line))
            topic = ""
        else:
            topic, topic_line = line, n
    return items


def _from_action_lines(lines: list[tuple[int, str]]) -> list[Item]:
    return [_item("", m.group(1), n) for n, line in lines
            if (m := re.match(r"\s*action\s*:\s*(.+)$", line, re.I))]


def _item(topic: str, text: str, line: int, completed: str = "") -> Item:
    text = " ".join(text.split())
    owner = m.group(1) if (m := _OWNER.match(text)) else ""
    done = None
    if d := _DATE.match(completed.strip()):
        try:
            done = date(int(d.group(3)), int(d.group(2)), int(d.group(1)))
        except ValueError:
            raise UsageError(f"line {line}: {completed!r} is not a date (day/month/year)") \
                from None
    nudge, subject = None, ""
    if n := _NUDGE.search(text):
        nudge = (int(n.group(1)), int(n.group(2)))
        subject = n.group(3).strip().rstrip(".").replace("’", "'")
    return Item(topic=topic, text=text, owner_text=owner, line=line, completed=done,
                nudge=nudge, subject=subject)


# --- matching owners to the roster --------------------------------------------------------


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[‐‑‒–—―]", "-", text.lower())
    return " ".join(re.sub(r"[^a-z0-9\- ]", " ", text).split())


def match(owner_text: str, group: Group) -> Match:
    """Who ``owner_text`` names: a member (or the admin), all members, or candidates. An
    organisation in brackets — "Douglas Sinclair (East Sussex)" — settles a tie, and one that
    differs from the roster's is reported."""
    hint = ""
    if m := re.match(r"^(.*?)\s*\(([^)]*)\)\s*$", owner_text):
        owner_text, hint = m.group(1), m.group(2)
    found = _match_name(owner_text, group)
    if hint and found.candidates:
        narrowed = [p for p in found.candidates
                    if _norm(getattr(p, "organisation", "")) == _norm(hint)]
        if len(narrowed) == 1:
            found = Match((narrowed[0].email,), f"{owner_text!r} ({hint}) → "
                          f"{narrowed[0].name} <{narrowed[0].email}>")
    if hint and len(found.emails) == 1:
        person = next((p for p in group.members if p.email == found.emails[0]), None)
        if person is not None and _norm(person.organisation) != _norm(hint):
            found.note = (found.note or f"{owner_text!r} → {person.name}") + \
                f"; the minutes say {hint}, the roster {person.organisation}"
    return found


def _match_name(owner_text: str, group: Group) -> Match:
    wanted = _norm(owner_text)
    if not wanted:
        return Match()
    if any(w in wanted for w in ALL_WORDS):
        return Match(("*",), f"{owner_text!r} → all members")
    people: list[Person] = [*group.members, group.admin]
    exact = [p for p in people if _norm(p.name) == wanted]
    if len(exact) == 1:
        return Match((exact[0].email,))
    first, *_, last = wanted.split() if " " in wanted else (wanted, wanted)
    found = []
    for p in people:
        name = _norm(p.name).split()
        if len(name) < 2:
            continue
        p_first, p_last = name[0], name[-1]
        same_last = p_last == last or difflib.SequenceMatcher(None, p_last, last).ratio() >= 0.85
        same_first = p_first == first or p_first.startswith(first) or first.startswith(p_first)
        if same_last and same_first:
            found.append(p)
    unique = {p.email: p for p in found}
    if len(unique) == 1:
        (person,) = unique.values()
        return Match((person.email,), f"{owner_text!r} → {person.name} <{person.email}>")
    return Match(candidates=list(unique.values()))


def nudge_window(meeting_day: date, months: tuple[int, int]) -> tuple[date, date]:
    return _add_months(meeting_day, months[0]), _add_months(meeting_day, months[1])


def _add_months(day: date, months: int) -> date:
    import calendar

    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def meeting_day(group: Group, meeting: str) -> date:
    found = next((m for m in group.meetings if m.id == meeting), None)
    if found is None:
        raise UsageError(f"no meeting {meeting!r} in {group.id}; `clerk status` lists them")
    return found.start.date()



@dataclass
class Import:
    """What importing a minutes file would record, and what the admin must settle."""

    actions: list[dict[str, object]] = field(default_factory=list)
    nudges: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # name matches that were not exact
    unresolved: list[tuple[Item, Match]] = field(default_factory=list)
    already: int = 0  # items imported before (same minutes, same meeting)


def plan_import(group: Group, meeting: str, items: list[Item], *, due: date,
                seen: set[str], choose: object = None) -> Import:
    """Match owners and build the rows; ``seen`` holds the sources already imported, and
    ``choose(item, match)`` (interactive use) may settle an ambiguous or unknown owner."""
    out = Import()
    day = meeting_day(group, meeting)
    for item in items:
        source = f"minutes:{group.id}:{meeting}:{item.key}"
        if source in seen:
            out.already += 1
            continue
        if item.nudge is not None:
            start, end = nudge_window(day, item.nudge)
            out.nudges.append({"group_id": group.id, "meeting_id": meeting,
                               "text": item.subject or item.text, "window_start": start,
                               "window_end": end, "source": source})
            continue
        found = match(item.owner_text, group)
        if not found.emails and callable(choose):
            found = choose(item, found)
        if not found.emails:
            out.unresolved.append((item, found))
            continue
        if found.note:
            out.notes.append(f"line {item.line}: {found.note}")
        out.actions.append({
            "group_id": group.id, "meeting_id": meeting, "topic": item.topic,
            "text": item.text, "owners": found.emails,
            "due": item.completed or due, "source": source,
            "status": "done" if item.completed else "open", "completed": item.completed})
    return out
