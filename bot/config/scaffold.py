"""``clerk init``: a new group folder of its own — its name, admin, chair, organiser mailbox,
zone and first meetings — with a commented group.toml and a roster holding the chair.

Nothing of the shipped example's people or places is copied: the rules (invitation, request
for information, chaser, agenda pack, minutes reminder) are the example's, as a start."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import parseaddr
from pathlib import Path

from bot.domain import timeutil
from bot.domain.errors import Problem, UsageError
from bot.domain.options import _email, _id


@dataclass(frozen=True)
class NewGroup:
    """What ``clerk init`` asks for."""

    name: str
    group_id: str
    admin: tuple[str, str]  # (name, email)
    chair: tuple[str, str]
    organiser: str  # the mailbox clerk sends from
    zone: str
    first: datetime  # the first meeting, local (naive) time in ``zone``
    count: int  # meetings written
    every: int  # months between them
    go_live: date


def group_id_of(folder: Path) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", folder.resolve().name.lower()).strip("-")


def person(text: str, what: str) -> tuple[str, str]:
    """ "Kim Osei <kim.osei@example.org>" (or just the address) → (name, email)."""
    name, address = parseaddr(text)
    try:
        email = _email(address or text)
    except ValueError:
        raise UsageError(f"{what} {text!r}: write it like \"Kim Osei <kim@example.org>\"") \
            from None
    return (name.strip() or email.split("@")[0], email)


def check(folder: Path, new: NewGroup) -> None:
    """Every problem with what was given at once, as a UsageError."""
    problems = []
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        problems.append(Problem(str(folder), "exists and is not empty",
                                hint="choose a new folder"))
    try:
        _id(new.group_id)
    except ValueError as exc:
        problems.append(Problem(str(folder), str(exc), key="--id",
                                hint="give --id, e.g. --id qa-leads"))
    if not new.name.strip():
        problems.append(Problem(str(folder), "the group needs a name", key="--name"))
    try:
        _email(new.organiser)
    except ValueError as exc:
        problems.append(Problem(str(folder), str(exc), key="--organiser",
                                hint="the mailbox clerk sends from, e.g. network@example.org"))
    try:
        tz = timeutil.zone(new.zone)
        timeutil.localize(new.first, tz)
    except ValueError as exc:
        problems.append(Problem(str(folder), str(exc), key="--zone/--first-meeting"))
    if not 1 <= new.count <= 24 or not 1 <= new.every <= 12:
        problems.append(Problem(str(folder), "--meetings must be 1-24 and --every 1-12 months",
                                key="--meetings/--every"))
    if new.first.date() < new.go_live:
        problems.append(Problem(str(folder), f"the first meeting ({new.first:%Y-%m-%d}) is "
                                "before today", key="--first-meeting",
                                hint="give the next meeting's date and time"))
    if problems:
        raise UsageError(f"cannot create {folder}", problems)


def _add_months(when: datetime, months: int) -> datetime:
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    return when.replace(year=year, month=month,
                        day=min(when.day, calendar.monthrange(year, month)[1]))


def meetings(new: NewGroup) -> list[datetime]:
    return [_add_months(new.first, new.every * n) for n in range(new.count)]


def _q(text: str) -> str:
    """A TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def group_toml(new: NewGroup) -> str:
    blocks = "\n".join(f'[[meeting]]\nid = "{m:%Y-%m-%d}"\nstart = {m:%Y-%m-%dT%H:%M:00}\n'
                       for m in meetings(new))
    return f"""\
# clerk group settings; every option is listed in docs/configuration.md.
# Times are local to `zone`; offsets are counted from each meeting's start:
#   "-28d" = 28 days before (at the rule's `at` time of day), "+10d" = 10 days after,
#   "-3h" / "-90m" = exactly that long before.

[group]
id = {_q(new.group_id)}  # stable: never change it once mail has gone out
name = {_q(new.name)}
zone = {_q(new.zone)}
go_live = {new.go_live:%Y-%m-%d}                # nothing dated before this day is ever sent
# website = "https://…"              # sent with the minutes
# joining_instructions = \"\"\"How to join the website, for members who are new.\"\"\"
standing_items = []                 # agenda items of every meeting, e.g. ["Apologies"]

[organiser]                         # the mailbox clerk sends from; replies come here
name = {_q(new.name)}
email = {_q(new.organiser)}

[admin]                             # told when minutes are due and when something fails
name = {_q(new.admin[0])}
email = {_q(new.admin[1])}

[meetings]                          # defaults for every [[meeting]]
title = {_q(new.name + " meeting")}
duration = "2h"
location = "Online"
# link = "https://…"                # the online meeting's join link

# Each meeting keeps its id for life; move it by changing `start`, call it off with
# `cancelled = true`; add the next ones as they are fixed.
{blocks}
# The message rules. kind: invitation | request | chaser | pack | minutes_due.
[[rule]]
id = "invitation"
kind = "invitation"
send = "-90d"                       # before go-live? then on go-live day

[[rule]]
id = "rfi"
kind = "request"
send = "-28d"
deadline = "-10d"                   # replies wanted by 17:00 that day
to = "leads"                        # one lead per organisation (role = lead, else the first)
questions = [
  "Is there anything your organisation would like to raise at the meeting?",
]

[[rule]]
id = "rfi-chaser"
kind = "chaser"
chases = "rfi"                      # goes only to organisations that have not replied
send = "-14d"

[[rule]]
id = "pack"
kind = "pack"
send = "-7d"

[[rule]]
id = "minutes-due"
kind = "minutes_due"
send = "+10d"
"""


def _csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value


def roster_csv(new: NewGroup, organisation: str) -> str:
    return ("name,email,organisation,role\n"
            f"{_csv(new.chair[0])},{new.chair[1]},{_csv(organisation)},chair\n")


def init_group(folder: Path, new: NewGroup) -> list[Path]:
    """Write the group's folder; returns the files written."""
    check(folder, new)
    folder.mkdir(parents=True, exist_ok=True)
    organisation = new.chair[1].split("@")[1]
    files = {"group.toml": group_toml(new), "roster.csv": roster_csv(new, organisation)}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in files]
