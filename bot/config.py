"""Configuration: the install's settings and each group's settings, roster and meetings.

Layout of the config folder (``--config``, ``CLERK_CONFIG``, default ``./config``)::

    clerk.toml            install settings (optional; embedded defaults otherwise)
    <group>/group.toml    one folder per group: its settings, meetings and message rules
    <group>/roster.csv    name,email,organisation,role
    <group>/templates/    optional overrides of the default templates

Every option is declared once below (default, check, help). Loading reports *every* problem at
once, each with its file and line (or key), and raises :class:`ConfigError`; nothing is sent
from a config with problems.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bot import timeutil
from bot.errors import ConfigError, Problem
from bot.model import KINDS, ROLES, Config, Group, Meeting, Member, Person, Rule, Settings

SETTINGS_FILE = "clerk.toml"
GROUP_FILE = "group.toml"
ROSTER_FILE = "roster.csv"
ROSTER_COLUMNS = ("name", "email", "organisation", "role")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Option:
    """One option: where it lives, its default (``...`` = required), its check, its help."""

    default: Any
    convert: Callable[[Any], Any]
    help: str


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be text in quotes")
    return v


def _id(v: Any) -> str:
    v = _str(v)
    if not _ID.match(v):
        raise ValueError(f"{v!r} is not an id: use lower-case letters, digits, '-', '_' or '.'")
    return v


def _email(v: Any) -> str:
    v = _str(v).strip()
    if not _EMAIL.match(v):
        raise ValueError(f"{v!r} is not an email address")
    return v.lower()


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("must be a whole number, 0 or more")
    return v


def _float(v: Any) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
        raise ValueError("must be a number, 0 or more")
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a list of texts, like ["one", "two"]')
    return tuple(v)


def _date(v: Any) -> date:
    if isinstance(v, datetime) or not isinstance(v, date):
        raise ValueError("must be a date like 2027-01-04 (no quotes)")
    return v


def _local_datetime(v: Any) -> datetime:
    if not isinstance(v, datetime) or v.tzinfo is not None:
        raise ValueError(
            "must be a local date and time like 2027-01-14T14:00:00 (no quotes, no offset: "
            "it is read in the group's zone)"
        )
    return v


def _time_of_day(v: Any) -> tuple[int, int]:
    if isinstance(v, time):
        return (v.hour, v.minute)
    m = re.match(r"^(\d{1,2}):(\d{2})$", _str(v))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{v!r} is not a time of day like 09:00")
    return (int(m.group(1)), int(m.group(2)))


def _duration(v: Any) -> timedelta:
    return timeutil.parse_duration(_str(v))


def _settle(v: Any) -> timedelta:
    return timedelta(0) if _str(v).strip() in ("0", "0m", "0h") else _duration(v)


def _offset(v: Any) -> Any:
    return timeutil.parse_offset(_str(v))


def _choice(*allowed: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        v = _str(v)
        if v not in allowed:
            raise ValueError(f"{v!r} is not one of: {', '.join(allowed)}")
        return v

    return convert


REQUIRED = ...

SETTINGS_OPTIONS = {
    "state": Option(Settings.state, _str, "SQLAlchemy URL of the state store"),
    "transport": Option(Settings.transport, _str, "how mail leaves: outbox (a Maildir)"),
    "interval": Option(Settings.interval, _int, "seconds between the worker's ticks"),
    "pause": Option(Settings.pause, _float, "seconds to wait between two messages"),
    "retry_base": Option(Settings.retry_base, _int, "seconds before the first retry"),
    "retry_cap": Option(Settings.retry_cap, _int, "longest wait between retries, seconds"),
}

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
}
PERSON_OPTIONS = {
    "name": Option(REQUIRED, _str, "display name"),
    "email": Option(REQUIRED, _email, "email address"),
}
DEFAULTS_OPTIONS = {
    "title": Option("", _str, "meeting title; defaults to the group's name"),
    "duration": Option(timedelta(hours=2), _duration, "length of a meeting, like 2h or 90m"),
    "location": Option("", _str, "where the meeting is"),
    "link": Option("", _str, "online meeting link"),
    "description": Option("", _str, "text of the invitation"),
}
MEETING_OPTIONS = {
    "id": Option(REQUIRED, _id, "stable id of the meeting; keep it when the date moves"),
    "start": Option(REQUIRED, _local_datetime, "local start, like 2027-01-14T14:00:00"),
    "title": Option(None, _str, "overrides [meetings] title"),
    "duration": Option(None, _duration, "overrides [meetings] duration"),
    "location": Option(None, _str, "overrides [meetings] location"),
    "link": Option(None, _str, "overrides [meetings] link"),
    "description": Option(None, _str, "overrides [meetings] description"),
    "items": Option((), _strings, "agenda items of this meeting only"),
    "cancelled": Option(False, _bool, "true: the meeting is off"),
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
DEFAULT_AUDIENCE = {
    "invitation": "members",
    "request": "leads",
    "chaser": "leads",
    "pack": "members",
    "minutes_due": "admin",
}


class _Reader:
    """Collects problems for one file while its values are converted."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.problems: list[Problem] = []

    def line_of(self, table: str | None, index: int, key: str | None) -> int | None:
        """Best-effort line of ``key`` in the ``index``-th ``[table]``/``[[table]]``."""
        start, seen = 0, -1
        if table is not None:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
            for n, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if seen == index:
                        start = n
                        break
            else:
                return None
            if key is None:
                return start + 1
        pattern = re.compile(rf"^\s*{re.escape(key or '')}\s*=")
        for n in range(start + (1 if table else 0), len(self.lines)):
            if table is None and self.lines[n].lstrip().startswith("["):
                break
            if n > start and table is not None and self.lines[n].lstrip().startswith("["):
                break
            if pattern.match(self.lines[n]):
                return n + 1
        return start + 1 if table else None

    def problem(
        self, key: str, message: str, *, table: str | None = None, index: int = 0,
        name: str | None = None, hint: str | None = None, warning: bool = False,
    ) -> None:
        line = self.line_of(table, index, name)
        self.problems.append(
            Problem(str(self.path), message, line=line, key=key, hint=hint, warning=warning)
        )

    def section(
        self, data: Any, options: dict[str, Option], where: str, *, table: str | None = None,
        index: int = 0,
    ) -> dict[str, Any]:
        """Convert one table by its declared options; unknown keys are problems too."""
        out: dict[str, Any] = {}
        if not isinstance(data, dict):
            self.problem(where, "must be a table", table=table, index=index)
            return {name: o.default for name, o in options.items() if o.default is not REQUIRED}
        for name in data:
            if name not in options:
                known = ", ".join(options)
                self.problem(f"{where}.{name}" if where else name, "unknown option",
                             table=table, index=index, name=name, hint=f"known options: {known}")
        for name, option in options.items():
            key = f"{where}.{name}" if where else name
            if name not in data:
                if option.default is REQUIRED:
                    self.problem(key, "is required", table=table, index=index,
                                 hint=option.help)
                else:
                    out[name] = option.default
                continue
            try:
                out[name] = option.convert(data[name])
            except ValueError as exc:
                self.problem(key, str(exc), table=table, index=index, name=name)
        return out


def _read_toml(path: Path, problems: list[Problem]) -> tuple[dict[str, Any], str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot read: {exc}"))
        return None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        problems.append(Problem(str(path), f"not valid TOML: {message}", line=line,
                                hint="see https://toml.io for the syntax"))
        return None


def load_settings(folder: Path, problems: list[Problem]) -> Settings:
    path = folder / SETTINGS_FILE
    if not path.exists():
        return Settings()
    read = _read_toml(path, problems)
    if read is None:
        return Settings()
    data, text = read
    r = _Reader(path, text)
    clerk = r.section(data.get("clerk", {}), SETTINGS_OPTIONS, "clerk", table="clerk")
    for name in data:
        if name not in ("clerk", "transport"):
            r.problem(name, "unknown section", hint="sections: [clerk], [transport]")
    transport = data.get("transport", {})
    if not isinstance(transport, dict):
        r.problem("transport", "must be a table")
        transport = {}
    problems.extend(r.problems)
    return Settings(
        state=clerk["state"], transport=clerk["transport"], transport_options=dict(transport),
        interval=max(1, clerk["interval"]), pause=clerk["pause"],
        retry_base=clerk["retry_base"], retry_cap=clerk["retry_cap"],
    )


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
        if not _EMAIL.match(email):
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
    read = _read_toml(path, problems)
    roster = load_roster(folder / ROSTER_FILE, problems)
    if read is None:
        return None
    data, text = read
    r = _Reader(path, text)
    known_tables = ("group", "organiser", "admin", "meetings", "meeting", "rule")
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
    meetings = _meetings(r, data.get("meeting", []), defaults, tz, g)
    rules = _rules(r, data.get("rule", []))
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
        standing_items=g["standing_items"], settle=g["settle"],
    )


def _meetings(r: _Reader, raw: Any, defaults: dict[str, Any], tz: Any,
              g: dict[str, Any]) -> list[Meeting]:
    if not isinstance(raw, list):
        r.problem("meeting", "must be a list of [[meeting]] tables")
        return []
    out: list[Meeting] = []
    ids: set[str] = set()
    for i, item in enumerate(raw):
        m = r.section(item, MEETING_OPTIONS, f"meeting[{i}]", table="meeting", index=i)
        if "id" in m:
            if m["id"] in ids:
                r.problem(f"meeting[{i}].id", f"{m['id']!r} is used twice", table="meeting",
                          index=i, name="id", hint="each meeting needs its own id")
            ids.add(m["id"])
        if "start" not in m or "id" not in m or tz is None:
            continue
        try:
            start = timeutil.localize(m["start"], tz)
        except ValueError as exc:
            r.problem(f"meeting[{i}].start", str(exc), table="meeting", index=i, name="start")
            continue

        def pick(name: str, m: dict[str, Any] = m) -> Any:
            return m[name] if m.get(name) is not None else defaults.get(name)

        out.append(Meeting(
            id=m["id"], title=pick("title") or g.get("name", ""), start=start,
            duration=pick("duration"), location=pick("location"), link=pick("link"),
            description=pick("description"),
            items=tuple(g.get("standing_items", ())) + tuple(m["items"]),
            cancelled=m["cancelled"],
        ))
    out.sort(key=lambda mt: mt.start)
    return out


def _rules(r: _Reader, raw: Any) -> list[Rule]:
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
        if rule.chases and (rule.chases not in by_id or by_id[rule.chases].kind != "request"):
            r.problem(f"rule[{i}].chases", f"{rule.chases!r} is not a request rule",
                      table="rule", index=i, name="chases")
    return out


def _timing_warnings(group: Group) -> list[Problem]:
    """Rules that can never send in time: their send time falls after their latest time."""
    from bot.planner import latest_time

    reader = _Reader(group.folder / GROUP_FILE,
                     (group.folder / GROUP_FILE).read_text(encoding="utf-8"))
    for i, rule in enumerate(group.rules):
        late = []
        for m in group.meetings:
            send = timeutil.apply_offset(m.start, rule.send, rule.at)
            if send > latest_time(group, m, rule, send):
                late.append(m.id)
        if late:
            reader.problem(f"rule[{i}].send", f"rule {rule.id!r} would send after its latest "
                           f"time (deadline or meeting) for {', '.join(late)}; those messages "
                           "are recorded skipped_late", table="rule", index=i, name="send",
                           hint="send earlier, or set `latest`", warning=True)
    return reader.problems


def group_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / GROUP_FILE).is_file())


def files_read(folder: Path) -> list[Path]:
    """Every file the config is made of, for change detection."""
    files = [folder / SETTINGS_FILE]
    for g in group_folders(folder):
        files += [g / GROUP_FILE, g / ROSTER_FILE]
        if (g / "templates").is_dir():
            files += sorted(p for p in (g / "templates").rglob("*") if p.is_file())
    return [f for f in files if f.exists()]


def stat_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detection for the worker: names, sizes and mtimes of the config files."""
    signature = []
    for p in files_read(folder):
        try:
            st = p.stat()
        except OSError:
            continue  # removed since it was listed: the next look sees the change
        signature.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(signature)


def load(folder: Path) -> Config:
    """Load and check everything under ``folder``; raise ConfigError listing every problem."""
    problems: list[Problem] = []
    if not folder.is_dir():
        raise ConfigError(f"config folder {folder} does not exist", [Problem(
            str(folder), "not a folder", hint="pass --config DIR or set CLERK_CONFIG, or "
            "create one with `clerk init DIR`")])
    settings = load_settings(folder, problems)
    groups: list[Group] = []
    folders = group_folders(folder)
    if not folders:
        problems.append(Problem(str(folder), f"no group folders (each holds a {GROUP_FILE})",
                                hint="create one with `clerk init`"))
    for gf in folders:
        group = load_group(gf, problems)
        if group is not None:
            groups.append(group)
    seen: dict[str, Path] = {}
    for group in groups:
        if group.id in seen:
            problems.append(Problem(str(group.folder / GROUP_FILE), f"group id {group.id!r} "
                                    f"is also used by {seen[group.id]}", key="group.id"))
        seen[group.id] = group.folder
    digest = hashlib.sha256()
    for f in files_read(folder):
        digest.update(str(f).encode() + b"\0" + f.read_bytes())
    config = Config(folder=folder, settings=settings, groups=tuple(groups),
                    fingerprint=digest.hexdigest())
    # templates are checked for every group that could be built, so one run lists
    # template problems beside roster and settings problems
    from bot.render.templates import check_templates

    problems += check_templates(config)
    for group in groups:
        problems += _timing_warnings(group)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ConfigError(f"{len(errors)} problem(s) in {folder}; nothing was sent", problems)
    return replace(config, warnings=tuple(problems))
