"""The admin's commands by mail: one a line, in the new text of her message (what is above the
quoted original, bot/listen/answers.py), case-insensitive, forgiving of bullets, quoting marks,
trailing punctuation, greetings and signatures.

    APPROVE            circulate what this message is about (the minutes, the pack)
    HOLD               keep it back
    Q1 3               answer question 1 with its third choice (also "Q1: 3", "q1 = 1, 2",
                       "Q1 both", "Q1 Joanna Whitfield")
    DUE #4 31 May      move action 4's due date
    DROP #5            drop action 5
    DONE #5            close action 5
    OWNER #5 Jo        give action 5 to someone else on the roster (also "GIVE #5 TO Jo")
    ADD <item>         add an item to the agenda of the meeting (and preview the pack again)
    STATUS             the group's status, by return
    HELP               this list

A line is a command only when the whole line reads as one: "Approved by the board on..." or
"Hold on, one question" is prose, not APPROVE or HOLD, and "Status: Secretariat" in a signature
is not STATUS. A short line in capitals that is no command ("APROVE", "PUBLISH") is reported
as unknown. Scanning stops at a sign-off below the commands ("Kind regards", "Thanks", "Sent from
my ...").

This module only reads: what a command does is bot/engine/desk.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["APPROVE", "HOLD", "ANSWER", "DUE", "DROP", "DONE", "OWNER", "ADD", "STATUS",
               "HELP"]

HELP = """\
APPROVE          circulate what this message is about (the minutes, the agenda pack)
HOLD             keep it back until you APPROVE
Q1 3             answer question 1 with its choice 3 (or "Q1 both", "Q1 Joanna Whitfield")
DUE #4 31 May    give action 4 a new due date
DONE #4          close action 4
DROP #5          drop action 5
OWNER #5 Jo      give action 5 to someone else on the roster, who is chased from now
ADD <item>       add an item to the next meeting's agenda (you get a new preview of the pack)
STATUS           the group's status by return: attendance, returns, actions, what waits for you
HELP             this list

One command a line, at the top of your message; clerk reads nothing below your sign-off."""


@dataclass(frozen=True)
class Command:
    verb: Verb
    line: str  # as she wrote it, for the confirmation
    number: int | None = None  # Q<n>, #<n>
    argument: str = ""  # the answer of Qn, the date of DUE, the item of ADD, APPROVE's object
    problem: str = ""  # set when the line reads as this command but cannot be done as written


@dataclass(frozen=True)
class Commands:
    commands: tuple[Command, ...]
    unknown: tuple[str, ...]  # lines in capitals that are no command


_BULLET = re.compile(r"^[\s>*•·\-–—]*(?:\d{1,2}[.)]\s+)?")
_TAIL = re.compile(r"[\s.!;,]+$")
_OBJECT = r"(?:\s+(?:the\s+)?(?P<what>minutes|pack|agenda(?:\s+pack)?|it|them|all))?"
_FORMS: tuple[tuple[Verb, str], ...] = (
    ("APPROVE", r"(?:approve[d]?|approval\s+given)" + _OBJECT + r"(?:\s+please)?"),
    ("HOLD", r"(?:hold|keep\s+(?:it|them)\s+back)" + _OBJECT + r"(?:\s+please)?"),
    ("ANSWER", r"q\s*(?P<n>\d{1,3})\s*[:=.)\-–]?\s*(?P<arg>\S.*)"),
    ("DUE", r"(?:due|new\s+date)\s*#?\s*(?P<n>\d{1,9})\s*[:=,\-–]?\s*(?P<arg>\S.*)?"),
    ("DROP", r"(?:drop|cancel)\s*#\s*(?P<n>\d{1,9})|(?:drop|cancel)\s+(?:action\s+)?"
             r"(?P<n2>\d{1,9})"),
    ("DONE", r"(?:done|close)\s*#\s*(?P<n>\d{1,9})|(?:done|close)\s+(?:action\s+)?"
             r"(?P<n2>\d{1,9})"),
    ("OWNER", r"(?:owner\s*#?|(?:re)?assign\s*#|give\s*#)\s*(?P<n>\d{1,9})\s*(?:to\b)?"
              r"\s*[:=,\-–]?\s*(?P<arg>\S.*)?"),
    ("ADD", r"(?:add|agenda)\s*(?::|\s+(?:item|agenda\s+item)\s*:?)?\s+(?P<arg>\S.*)"),
    ("STATUS", r"status(?:\s+please)?|send\s+(?:me\s+)?(?:the\s+)?status"),
    ("HELP", r"help|commands|\?"),
)
_PATTERNS = tuple((verb, re.compile(pattern, re.IGNORECASE)) for verb, pattern in _FORMS)
_SIGN_OFF = re.compile(
    r"^(?:--\s*|_{3,}|(?:kind(?:est)?|best|warm(?:est)?|many)?\s*(?:regards|wishes|thanks)\b.*"
    r"|thanks?(?:\s+you)?\b.*|cheers\b.*|best\b,?|sent from my\b.*|get outlook for\b.*"
    r"|sincerely\b.*|yours\b.*)$", re.IGNORECASE)
_CAPITALS = re.compile(r"^[A-Z][A-Z]{2,}(?:\s+\S+){0,4}$")
_GREETING = re.compile(r"^(?:hi|hello|dear|morning|good\s+\w+)\b", re.IGNORECASE)


def parse(text: str) -> Commands:
    """The commands in ``text`` (the new text of a message), in order."""
    found: list[Command] = []
    unknown: list[str] = []
    for raw in text.splitlines():
        line = _TAIL.sub("", _BULLET.sub("", raw)).strip()
        if not line:
            continue
        command = _command(line)
        if command is None and _SIGN_OFF.match(line):
            if found:  # a sign-off after her commands: the rest is her signature
                break
            continue  # "Thanks!" above them is not one

        if command is not None:
            found.append(command)
        elif _CAPITALS.match(line) and not _GREETING.match(line):
            unknown.append(line)
    return Commands(tuple(found), tuple(unknown))


def _command(line: str) -> Command | None:
    for verb, pattern in _PATTERNS:
        m = pattern.fullmatch(line)
        if m is None:
            continue
        groups = m.groupdict()
        number = groups.get("n") or groups.get("n2")
        argument = (groups.get("arg") or groups.get("what") or "").strip()
        if verb in ("DUE", "OWNER") and not argument:
            example = "31 May" if verb == "DUE" else "Jo Whitfield"
            what = "a date" if verb == "DUE" else "who (a name or an email)"
            return Command(verb, line, int(number) if number else None,
                           problem=f"{verb} needs {what} after the action's number, e.g. "
                                   f"\"{verb} #{number} {example}\"")
        if verb == "ADD":
            argument = argument.strip("\"'“”‘’ ")
        return Command(verb, line, int(number) if number else None, argument)
    return None


def parse_picks(answer: str, count: int, *, every: bool) -> list[int] | None:
    """The indexes (from 0) an answer picks: "2", "1,3", "1 3", "a" (when ``every``); [] for
    "0" or nothing; None when it is not an answer."""
    words = [w for w in re.split(r"[\s,;]+", answer.strip().lower()) if w]
    if not words or words == ["0"]:
        return []
    if every and words in (["a"], ["all"], ["both"]):
        return list(range(count))
    if not all(w.isdigit() and 1 <= int(w) <= count for w in words):
        return None
    return list(dict.fromkeys(int(w) - 1 for w in words))
