"""A group's folder: ``group.toml`` (settings, meetings, message rules), ``roster.csv`` and
its minutes files."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bot.config.files import (
    GROUP_FILE,
    MINUTES_FOLDER,
    MINUTES_TYPES,
    ROSTER_COLUMNS,
    ROSTER_FILE,
    read_toml,
)
from bot.config.meetings import DEFAULTS_OPTIONS, parse_meetings, parse_series
from bot.domain import timeutil, windows
from bot.domain.errors import Problem
from bot.domain.model import (
    KINDS,
    ROLES,
    ChaseLadder,
    DeskPolicy,
    Group,
    Member,
    Person,
    Rule,
)
from bot.domain.options import (
    _EMAIL,
    REQUIRED,
    Option,
    Reader,
    _bool,
    _choice,
    _date,
    _days,
    _duration,
    _email,
    _id,
    _int,
    _offset,
    _str,
    _strings,
    _time_of_day,
)
from bot.plan.actions import DAYS


def _share(v: Any) -> float:
    """ "20%" or 0.2: a share of the members, from 0 to 1."""
    text = v.strip() if isinstance(v, str) else v
    try:
        share = float(text[:-1]) / 100 if isinstance(text, str) and text.endswith("%") \
            else float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{v!r} is not a share; write it like \"20%\"") from None
    if isinstance(v, bool) or not 0 <= share <= 1:
        raise ValueError(f"{v!r} is not a share from 0% to 100%")
    return share


def _count(v: Any) -> int:
    n = _int(v)
    if n < 1:
        raise ValueError(f"{v!r}: give a whole number from 1 up")
    return n


def _weekday(v: Any) -> str:
    text = _str(v).strip().lower()
    found = [d for d in DAYS if text and d.startswith(text[:3])]
    if len(text) < 3 or len(found) != 1:
        raise ValueError(f"{v!r} is not a day of the week; write it like \"Monday\"")
    return found[0]


def _off_or_weekday(v: Any) -> str | None:
    return None if _str(v).strip().lower() in ("off", "none", "") else _weekday(v)


def _off_or_duration(v: Any) -> timedelta | None:
    return None if _str(v).strip().lower() in ("off", "none", "0", "") else _duration(v)


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _quiet(v: Any) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
    """["24 Dec to 1 Jan", …] as ((month, day), (month, day)) pairs."""
    def day(text: str) -> tuple[int, int]:
        m = re.fullmatch(r"\s*(\d{1,2})\s+([A-Za-z]{3})[A-Za-z]*\s*", text)
        if not m or m.group(2).lower() not in _MONTHS:
            raise ValueError(f"{text.strip()!r} is not a day of the year; write it like 24 Dec")
        month, d = _MONTHS.index(m.group(2).lower()) + 1, int(m.group(1))
        try:
            date(2028, month, d)  # a leap year: 29 Feb is a day
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a day of the year") from None
        return month, d

    out = []
    for period in _strings(v):
        start, sep, end = period.partition(" to ")
        if not sep:
            raise ValueError(f"{period!r}: write a period like \"24 Dec to 1 Jan\"")
        out.append((day(start), day(end)))
    return tuple(out)


def _settle(v: Any) -> timedelta:
    return timedelta(0) if _str(v).strip() in ("0", "0m", "0h") else _duration(v)


GROUP_OPTIONS = {
    "id": Option(REQUIRED, _id, "stable id of the group; never change it once mail has gone"),
    "name": Option(REQUIRED, _str, "the group's name, as members know it"),
    "zone": Option("Europe/London", _str, "IANA time zone of the meetings"),
    "go_live": Option(REQUIRED, _date, "nothing dated before this day is ever sent"),
    "website": Option("", _str, "the group's website, sent with the minutes"),
    "joining_instructions": Option("", _str, "how to join the website"),
    "standing_items": Option((), _strings, "agenda items of every meeting"),
    "settle": Option(timedelta(minutes=10), _settle,
                     "updates and cancellations wait this long after the last edit"),
    "wording_updates": Option(False, _bool, "true: a reworded description sends an update"),
    "minutes_approval": Option("admin", _choice("admin", "chair", "none"),
                               "who approves minutes before they go: admin (clerk approve), "
                               "chair (by replying APPROVE, or clerk approve) or none"),
    "send_window": Option("Mon-Fri 08:00-18:00", _str,
                          "when mail may go, in the group's zone; empty: any time"),
    "guard": Option(0.2, _share, "an edit that would cancel or invite more than this share "
                    "of the members at once (e.g. \"20%\") is held for `clerk approve "
                    "--guard`; \"100%\": never"),
    "bank_holidays": Option("GB-ENG", _str, "no mail on these bank holidays (country-region "
                            "code of the holidays package, e.g. GB-ENG, GB-SCT, IE); empty: "
                            "none"),
}
PERSON_OPTIONS = {
    "name": Option(REQUIRED, _str, "display name"),
    "email": Option(REQUIRED, _email, "email address"),
}
RULE_OPTIONS = {
    "id": Option(REQUIRED, _id, "stable id of the rule"),
    "kind": Option(REQUIRED, _choice(*KINDS), "what the message is"),
    "send": Option(REQUIRED, _offset, "when, from the meeting's start: -28d, +10d, -3h"),
    "at": Option((9, 0), _time_of_day, "time of day for day offsets, like 09:00"),
    "latest": Option(None, _offset, "send no later than this, from the meeting's start"),
    "deadline": Option(None, _offset, "the reply deadline (requests), from the meeting's start"),
    "to": Option(None, _choice("members", "leads", "admin", "chair"), "who receives it"),
    "chases": Option(None, _id, "chasers: the id of the request rule they chase"),
    "questions": Option((), _strings, "requests: the questions asked"),
    "template": Option("", _str, "template name; defaults to the kind"),
    "approve": Option(False, _bool, "true: hold each message until `clerk approve`"),
}
ACTIONS_OPTIONS = {
    "first": Option(timedelta(days=7), _days, "first chaser, this long after an action is "
                    "recorded"),
    "before_due": Option(timedelta(days=3), _days, "a chaser this long before the due date"),
    "overdue_every": Option(timedelta(days=7), _days, "then one this often while overdue"),
    "max_chasers": Option(3, _count, "at most this many chasers an action; then chasing "
                          "stops and the admin's weekly summary lists it"),
    "summary_day": Option("monday", _weekday, "the day of the chair's weekly summary of "
                          "overdue actions and the admin's of stalled ones"),
    "quiet": Option((((12, 24), (1, 1)),), _quiet, "no chasers in these periods, like "
                    "[\"24 Dec to 1 Jan\", \"1 Aug to 31 Aug\"] (nor on meeting days)"),
    "copy_chair_after": Option(None, _int, "no longer used: the chair gets a weekly summary "
                               "instead of copies"),
    "due": Option(None, _offset, "default due date, from the next meeting's start (-7d)"),
    "at": Option((9, 0), _time_of_day, "time of day chasers go"),
}
DESK_OPTIONS = {
    "commands_from": Option("admin", _choice("admin", "admin and chair"),
                            "whose commands by mail clerk takes (authenticated senders only)"),
    "pack_preview": Option(timedelta(days=2), _off_or_duration,
                           "the admin gets a preview of the agenda pack this long before it "
                           "goes (\"off\": none)"),
    "pack_approval": Option("optional", _choice("optional", "required"),
                            "optional: the pack goes at its time unless she HOLDs it; "
                            "required: not until she APPROVEs it"),
    "digest_day": Option("monday", _off_or_weekday,
                         "the day of the admin's weekly digest (\"off\": none)"),
}
DEFAULT_AUDIENCE = {
    "invitation": "members",
    "request": "leads",
    "chaser": "leads",
    "pack": "members",
    "minutes_due": "admin",
}


def load_roster(path: Path, problems: list[Problem]) -> list[Member]:
    """Read ``roster.csv``: the columns name, email, organisation, role; one member a row."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    except FileNotFoundError:
        problems.append(Problem(str(path), "missing", hint="list the members as CSV with "
                                "columns name,email,organisation,role"))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot read: {exc}",
                                hint="save it from Excel as 'CSV UTF-8'"))
        return []
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        problems.append(Problem(str(path), "empty", hint="the first line must be "
                                "name,email,organisation,role"))
        return []
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ROSTER_COLUMNS if c not in header]
    extra = [c for c in header if c not in ROSTER_COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(repr(c) for c in extra)}")
        problems.append(Problem(str(path), "; ".join(parts), line=1,
                                hint="the first line must be name,email,organisation,role"))
        return []
    members: list[Member] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(Problem(str(path), f"has {len(row)} values, expected "
                                    f"{len(header)}", line=n, hint="check for a stray comma; "
                                    "quote values that contain commas"))
            continue
        values = {h: cell.strip() for h, cell in zip(header, row, strict=True)}
        bad = False
        email = values["email"].lower()
        if not _EMAIL.fullmatch(email):
            problems.append(Problem(str(path), f"{values['email']!r} is not an email address",
                                    line=n, key="email"))
            bad = True
        elif email in seen:
            problems.append(Problem(str(path), f"{email} is listed twice (first on line "
                                    f"{seen[email]})", line=n, key="email",
                                    hint="keep one row per member"))
            bad = True
        if not values["name"]:
            problems.append(Problem(str(path), "name is empty", line=n, key="name"))
            bad = True
        if any(c in values["name"] for c in "\r\n"):
            problems.append(Problem(str(path), "name has a line break", line=n, key="name"))
            bad = True
        role = values["role"].lower() or "member"
        if role not in ROLES:
            problems.append(Problem(str(path), f"role {values['role']!r} is not one of "
                                    f"{', '.join(ROLES)}", line=n, key="role"))
            bad = True
        if not bad:
            seen[email] = n
            members.append(Member(name=values["name"], email=email,
                                  organisation=values["organisation"], role=role, line=n))
    chairs = [m for m in members if m.role == "chair"]
    if len(chairs) > 1:
        problems.append(Problem(str(path), "more than one chair (lines "
                                f"{', '.join(str(m.line) for m in chairs)})", key="role"))
    return members


def load_group(folder: Path, problems: list[Problem]) -> Group | None:
    path = folder / GROUP_FILE
    read = read_toml(path, problems)
    roster = load_roster(folder / ROSTER_FILE, problems)
    if read is None:
        return None
    data, text = read
    r = Reader(path, text)
    known_tables = ("group", "organiser", "admin", "meetings", "meeting", "series", "rule",
                    "actions", "desk")
    for name in data:
        if name not in known_tables:
            r.problem(name, "unknown section", hint=f"sections: {', '.join(known_tables)}")
    g = r.section(data.get("group", {}), GROUP_OPTIONS, "group", table="group")
    organiser = r.section(data.get("organiser", {}), PERSON_OPTIONS, "organiser",
                          table="organiser")
    admin = r.section(data.get("admin", {}), PERSON_OPTIONS, "admin", table="admin")
    defaults = r.section(data.get("meetings", {}), DEFAULTS_OPTIONS, "meetings",
                         table="meetings")
    tz = None
    if "zone" in g:
        try:
            tz = timeutil.zone(g["zone"])
        except ValueError as exc:
            r.problem("group.zone", str(exc), table="group", name="zone")
    meetings = parse_meetings(r, data.get("meeting", []), defaults, tz, g)
    series = parse_series(r, data.get("series", []), defaults, tz, g,
                          {m.id for m in meetings})
    meetings = sorted([*meetings, *(o for s in series for o in s.occurrences)],
                      key=lambda m: m.start)
    rules = _rules(r, data.get("rule", []))
    window = None
    if "send_window" in g and "bank_holidays" in g and g["send_window"].strip():
        try:
            window = windows.parse(g["send_window"], g["bank_holidays"].strip())
        except ValueError as exc:
            key = "bank_holidays" if "calendar" in str(exc) else "send_window"
            r.problem(f"group.{key}", str(exc), table="group", name=key)
    ladder = r.section(data.get("actions", {}), ACTIONS_OPTIONS, "actions", table="actions")
    if ladder.get("copy_chair_after") is not None:
        r.problem("actions.copy_chair_after", "no longer used: the chair gets one weekly "
                  "summary of the group's overdue actions instead of copies", table="actions",
                  name="copy_chair_after", warning=True, hint="remove the line")
    desk = r.section(data.get("desk", {}), DESK_OPTIONS, "desk", table="desk")
    problems.extend(r.problems)
    if (r.problems and any(not p.warning for p in r.problems)) or tz is None:
        return None
    return Group(
        id=g["id"], name=g["name"], zone=g["zone"],
        go_live=datetime.combine(g["go_live"], time(0, 0), tzinfo=tz),
        organiser=Person(organiser["name"], organiser["email"]),
        admin=Person(admin["name"], admin["email"]),
        website=g["website"], joining_instructions=g["joining_instructions"],
        members=tuple(roster), meetings=tuple(meetings), rules=tuple(rules), folder=folder,
        standing_items=g["standing_items"], settle=g["settle"], series=tuple(series),
        guard=g["guard"],
        wording_updates=g["wording_updates"],
        ladder=ChaseLadder(**{k: v for k, v in ladder.items() if k != "copy_chair_after"}),
        window=window,
        minutes=_minutes_files(folder, {m.id for m in meetings}, problems),
        minutes_approval=g["minutes_approval"],
        desk=DeskPolicy(**desk),
    )


def _rules(r: Reader, raw: Any) -> list[Rule]:
    if not isinstance(raw, list):
        r.problem("rule", "must be a list of [[rule]] tables")
        return []
    out: list[Rule] = []
    for i, item in enumerate(raw):
        v = r.section(item, RULE_OPTIONS, f"rule[{i}]", table="rule", index=i)
        if "id" not in v or "kind" not in v or "send" not in v:
            continue
        key = f"rule[{i}]"
        if v["kind"] == "chaser" and not v["chases"]:
            r.problem(f"{key}.chases", "a chaser must name the request it chases",
                      table="rule", index=i, hint='chases = "<id of a request rule>"')
        if v["deadline"] is not None and v["deadline"].amount >= 0:
            r.problem(f"{key}.deadline", f"the deadline {v['deadline'].text} is not before the "
                      "meeting", table="rule", index=i, name="deadline",
                      hint='count it back from the meeting, like deadline = "-10d"')
        if v["kind"] == "request" and not v["questions"]:
            r.problem(f"{key}.questions", "a request must ask at least one question",
                      table="rule", index=i, name="questions")
        out.append(Rule(
            id=v["id"], kind=v["kind"], send=v["send"], at=v["at"], latest=v["latest"],
            deadline=v["deadline"], to=v["to"] or DEFAULT_AUDIENCE[v["kind"]],
            chases=v["chases"], questions=v["questions"], template=v["template"] or v["kind"],
            approve=v["approve"],
        ))
    by_id = {rule.id: rule for rule in out}
    for i, rule in enumerate(out):
        if len([x for x in out if x.id == rule.id]) > 1:
            r.problem(f"rule[{i}].id", f"{rule.id!r} is used twice", table="rule", index=i,
                      name="id")
        if rule.kind == "invitation" and any(x.kind == "invitation" for x in out[:i]):
            r.problem(f"rule[{i}].kind", "a second invitation rule: a meeting has one "
                      "invitation (its updates and cancellations follow by themselves)",
                      table="rule", index=i, name="kind",
                      hint="keep one [[rule]] with kind = \"invitation\"; a reminder is a "
                      "pack or a request")
        if rule.chases and (rule.chases not in by_id or by_id[rule.chases].kind != "request"):
            r.problem(f"rule[{i}].chases", f"{rule.chases!r} is not a request rule",
                      table="rule", index=i, name="chases")
    return out


def _minutes_files(folder: Path, meetings: set[str], problems: list[Problem]) -> dict[str, Path]:
    """``<group>/minutes/<meeting id>.<ext>``: the minutes to circulate for that meeting."""
    found: dict[str, Path] = {}
    where = folder / MINUTES_FOLDER
    for path in sorted(where.iterdir()) if where.is_dir() else []:
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.stem not in meetings or path.suffix.lower() not in MINUTES_TYPES:
            problems.append(Problem(str(path), "not the minutes of a meeting of this group",
                                    hint="name it <meeting id>.docx (or .pdf, .md, .txt)",
                                    warning=True))
            continue
        found[path.stem] = path
    return found
