"""Dates as minutes state them, read relative to the meeting the minutes are of — never to the
wall clock.

In an action's text: "by 31 March 2027", "by 31 March" (the next 31 March after the meeting),
"by 12/02/2027" (UK day/month), "by the next meeting", "before the next meeting" (the day
before it), "by end of April", "end of April 2027", "within two weeks". In a table cell the same
without the "by": "31/03/2027", "Next meeting", "End of April". In a Status cell: "Done
12/02/2027", "Complete", "Open (due 01/12/2026)", "Dropped".
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
MONTHS |= {name.lower(): n for n, name in enumerate(calendar.month_abbr) if name}
MONTHS["sept"] = 9
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}

_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\b\.?"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?,?\s+)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_BY = r"(?P<by>by|before|no later than|not later than|until|ahead of|prior to|for|at|on)"
_NUMBER = r"(?P<n>\d{1,3}|" + "|".join(NUMBERS) + r")"
# the forms, each as a cell says it; a sentence puts _BY (or "within") in front
_FORMS = {
    "next": r"(?:the\s+)?next\s+(?:group\s+|network\s+)?meeting",
    "end": r"(?:the\s+)?end\s+of\s+(?:(?P<this>(?:the|this)\s+month)|(?P<nextm>next\s+month)"
           r"|(?P<tyear>(?:the|this)\s+year)|" + _MONTH + _YEAR + r")",
    "words": _WEEKDAY + r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + _YEAR,
    "slash": r"(?P<d>\d{1,2})/(?P<m>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?(?![/\d]|\.\d)",
    "dots": r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4}|\d{2})(?![/\d]|\.\d)",
    "iso": r"(?P<iso>\d{4}-\d{2}-\d{2})",
    "month": r"(?:the\s+)?" + _MONTH + r"(?:\s+(?P<year>\d{4}))?\s+(?:group\s+|network\s+)?"
             r"meeting",  # "the April meeting"
    # these two carry their own lead word
    "within": r"within\s+(?:the\s+next\s+)?" + _NUMBER + r"\s+(?P<unit>days?|weeks?|months?)",
    "in": r"in\s+(?:the\s+next\s+)?" + _NUMBER + r"\s+(?P<unit>days?|weeks?)\b"
          r"(?:['’]s?\s+time)?",
}
_OWN_LEAD = ("within", "in")
NO_DATE = {"", "-", "–", "—", "n/a", "na", "tbc", "tba", "asap", "ongoing", "none",
           "as soon as possible", "to be confirmed", "?"}  # a date cell that gives no date


@dataclass(frozen=True)
class Anchor:
    """The meeting the minutes are of, and the one after it: what stated dates count from."""

    day: date
    next_meeting: date | None = None
    later: tuple[date, ...] = ()  # the days of all the meetings after it ("the April meeting")


@dataclass(frozen=True)
class Status:
    """What a Status cell says."""

    state: str  # open | done | dropped
    completed: date | None = None  # "Done 12/02/2027"
    due: date | None = None  # "Open (due 01/12/2026)"
    problem: str = ""  # words that looked like a date and were not one


class DateError(ValueError):
    """A date that cannot be: 31/02/2027, or "by the next meeting" when none is set."""


def stated(text: str, anchor: Anchor | None) -> tuple[date, str] | None:
    """The first due date ``text`` (an action) states, and the words that state it ("by 31
    March"); None when it states none. DateError when the words name an impossible date."""
    found: list[tuple[int, re.Match[str], str]] = []
    for form, pattern in _FORMS.items():
        if form in _OWN_LEAD:
            regex = r"\b" + pattern
        elif form == "end":  # "end of April" needs no "by"
            regex = r"\b(?:" + _BY + r"\s+)?" + pattern
        else:
            regex = r"\b" + _BY + r"\s+" + pattern
        for m in re.finditer(regex, text, re.IGNORECASE):
            by = (m.groupdict().get("by") or "").lower()
            if by in ("for", "at") and form not in ("next", "end", "month"):
                continue  # "at 2.30", "for 3 weeks": not a deadline
            found.append((m.start(), m, form))
    if not found:
        return None
    _, m, form = min(found, key=lambda f: f[0])
    by = (m.groupdict().get("by") or "").lower()
    return _resolve(form, m, anchor, before=by in ("before", "ahead of", "prior to")), \
        m.group(0).strip().rstrip(".,")


def cell(text: str, anchor: Anchor | None) -> date | None:
    """The date a table cell (Due, Date completed) gives: None when it is empty or says no date
    ("TBC", "ongoing"); DateError when it says something that is not a date."""
    value = " ".join(text.split()).strip().rstrip(".")
    if value.lower() in NO_DATE:
        return None
    lead = re.match(r"(?:due\s+)?(?:(by|on)|(before|ahead of|prior to))\s+", value,
                    re.IGNORECASE)
    rest = value[lead.end():] if lead else value
    for form, pattern in _FORMS.items():
        m = re.fullmatch(pattern, rest, re.IGNORECASE)
        if m:
            return _resolve(form, m, anchor, before=bool(lead and lead.group(2)))
    raise DateError(f"{text.strip()!r} is not a date (write it like 31/03/2027, 31 March "
                    "2027 or 'next meeting')")


def status(text: str, anchor: Anchor | None) -> Status | None:
    """What a Status cell says, or None when it is nothing clerk knows ("Amber", "see
    notes")."""
    value = " ".join(text.split()).strip().rstrip(".")
    if not value:
        return Status("open")
    if m := re.match(r"(?:done|complete[d]?|closed|finished|achieved|actioned)\b"
                     r"[\s:,;–—-]*(?:on\s+)?\(?(?P<rest>[^)]*)\)?$", value, re.IGNORECASE):
        rest = m.group("rest").strip()
        try:
            return Status("done", completed=cell(rest, anchor) if rest else None)
        except DateError as exc:
            return Status("done", problem=str(exc))
    if re.match(r"(?:dropped|cancell?ed|withdrawn|superseded|no longer (?:required|needed))"
                r"\b", value, re.IGNORECASE):
        return Status("dropped")
    if re.match(r"(?:open|ongoing|in progress|not (?:yet )?started|outstanding|pending|"
                r"carried (?:forward|over)|on track|under ?way|awaiting)\b", value,
                re.IGNORECASE):
        due = re.search(r"\bdue\s+([^)]+)\)?$", value, re.IGNORECASE)
        try:
            return Status("open", due=cell(due.group(1), anchor) if due else None)
        except DateError as exc:
            return Status("open", problem=str(exc))
    return None


def _resolve(form: str, m: re.Match[str], anchor: Anchor | None, *, before: bool) -> date:
    g = m.groupdict()
    words = m.group(0).strip()
    if form == "iso":
        return _date(words, *(int(p) for p in g["iso"].split("-")))
    year = g.get("year") or g.get("y")
    if anchor is None and not year:  # everything else counts from the meeting
        raise DateError(f"{words!r} needs the date of the meeting")
    if form == "next":
        assert anchor is not None
        if anchor.next_meeting is None:
            raise DateError(f"{words!r}: no meeting after this one is set in group.toml")
        return anchor.next_meeting - timedelta(days=1 if before else 0)
    if form == "month":
        assert anchor is not None
        month = MONTHS[g["month"].lower()]
        found = [d for d in anchor.later or (anchor.next_meeting,) if d is not None
                 and d.month == month and (not year or d.year == int(year))]
        if not found:
            raise DateError(f"{words!r}: no meeting in {calendar.month_name[month]} is set "
                            "after this one in group.toml")
        return found[0] - timedelta(days=1 if before else 0)
    if form in _OWN_LEAD:
        assert anchor is not None
        n = int(g["n"]) if g["n"].isdigit() else NUMBERS[g["n"].lower()]
        unit = g["unit"].lower()
        if unit.startswith("month"):
            return add_months(anchor.day, n)
        return anchor.day + timedelta(days=n * (7 if unit.startswith("week") else 1))
    if form == "end":
        if g["tyear"]:
            assert anchor is not None
            return date(anchor.day.year, 12, 31)
        if g["this"] or g["nextm"]:
            assert anchor is not None
            first = add_months(anchor.day.replace(day=1), 1 if g["nextm"] else 0)
            month, number = first.month, first.year
        else:
            month = MONTHS[g["month"].lower()]
            number = int(year) if year else _next_year(_day(anchor), month)
        return date(number, month, calendar.monthrange(number, month)[1])
    if form == "words":
        day, month = int(g["day"]), MONTHS[g["month"].lower()]
    else:
        day, month = int(g["d"]), int(g["m"])
    if year:
        return _date(words, int(year) + (2000 if len(year) == 2 else 0), month, day)
    _date(words, 2028, month, day)  # a leap year: is the day itself possible?
    return _next(_day(anchor), month, day)


def _day(anchor: Anchor | None) -> date:
    assert anchor is not None
    return anchor.day


def _date(words: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise DateError(f"{words.strip()!r} is not a date") from None


def _next(after: date, month: int, day: int) -> date:
    """The first ``day`` ``month`` after ``after`` (29 February: the next leap year's)."""
    year = after.year
    while True:
        try:
            found = date(year, month, day)
        except ValueError:
            found = None
        if found is not None and found > after:
            return found
        year += 1


def _next_year(after: date, month: int) -> int:
    """The year of the first end of ``month`` after ``after``."""
    last = calendar.monthrange(after.year, month)[1]
    return after.year if date(after.year, month, last) > after else after.year + 1


def add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
