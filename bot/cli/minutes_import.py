"""`clerk minutes import`: read a minutes file, settle its owners (asking the admin when run
interactively), record its actions and nudges, and say what was recorded and why — each
action with its owners and due date (and where that date came from), each nudge with the
meeting it lands on, and everything left for the admin with its place in the file."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any

import click

from bot.cli.common import Ctx, _json, _meeting_group
from bot.domain.model import Group, Person
from bot.engine import minutes_in
from bot.listen import import_plan, minutes, owners
from bot.listen.commands import parse_picks


def run(obj: Ctx, path: str, meeting: str, group_id: str | None, yes: bool,
        as_json: bool) -> None:
    config = obj.config()
    group = _meeting_group(config, meeting, group_id)
    done = minutes_in.record(group, obj.store(config), Path(path), meeting, obj.now(config),
                             who=os.environ.get("USER", "admin"),
                             choose=None if yes or as_json else picker(group))
    if as_json:
        _json(done.out)
    else:
        say(done.out, done.plan, f"{group.id}/{meeting}", done.next_meeting)


def say(out: dict[str, Any], plan: import_plan.Import, where: str, next_meeting: str) -> None:
    """What an import recorded and left, for the admin to read."""
    click.echo(f"imported {len(out['actions'])} action(s) and {out['nudges']} nudge(s) for "
               f"{where}" + (f"; {out['already']} already imported" if out["already"] else ""))
    for a in out["imported"]:
        click.echo(f"  #{a['id']} {', '.join(a['owner_names'])}: {a['text']}")
        done = {"done": f"; done {_words(a['completed'])}" if a["completed"] else "; done",
                "dropped": "; dropped"}.get(a["status"], "; open")
        click.echo(f"     due {_words(a['due'])} ({a['due_why']}){done}")
        click.echo(f"     from {a['place']}")
    for n in out["nudge_meetings"]:
        click.echo(f"  nudge: {n['text']} — {n['said']}")
    for item in out["next_agenda"]:
        click.echo(f"  for the agenda of {next_meeting}: {item}")
    places: dict[str, list[str]] = {}
    for place, note in plan.matched:  # one line per match, however often it was made
        places.setdefault(note, []).append(place.split(" (")[0])
    for note, found in places.items():
        click.echo(f"  matched {note}: {_places(found)}")
    for remark in plan.remarks:
        click.echo(f"  note: {remark}")
    for u in out["unresolved"]:
        click.echo(f"  NOT imported, {u['place']}: {u['question']} — add it with "
                   "`clerk actions add`")
    for left in out["left_out"]:
        click.echo(f"  not in the actions table, so not imported: {left['place']}: "
                   f"{left['text']}")


def _places(where: list[str]) -> str:
    """"table 1, row 2", "table 1, row 3" → "table 1, rows 2, 3"."""
    rows = [re.fullmatch(r"(table \d+), row (\d+)", w) for w in where]
    if len(where) > 1 and all(rows) and len({m.group(1) for m in rows if m}) == 1:
        return f"{where[0].split(',')[0]}, rows {', '.join(m.group(2) for m in rows if m)}"
    return "; ".join(where)


def picker(group: Group) -> import_plan.Choose:
    """Ask the admin who an unsettled owner is: one number, several ("1,3" or "1 3"), "a"
    for all the candidates when several are offered, or 0 to leave the action out."""
    everyone = owners.people(group)

    def choose(item: minutes.Item, owner: owners.Owner) -> list[Person]:
        options = list(owner.candidates) or everyone
        several = len(owner.candidates) > 1
        who = f"who is {owner.name!r}?" if owner.name else "no owner is named: who is it?"
        click.echo(f"{item.place}: {who} ({item.text})")
        for n, p in enumerate(options, 1):
            click.echo(f"  {n}. {p.name} <{p.email}>")
        if several:
            click.echo(f"  a. {'both' if len(options) == 2 else 'all of them'}")
        while True:
            answer = click.prompt("number(s), like 1,3" + (", a for all" if several else "")
                                  + ", 0 to skip", default="0", show_default=False)
            picked = parse_picks(answer, len(options), every=several)
            if picked is not None:
                return [options[i] for i in picked]
            click.echo(f"  {answer!r}: give numbers from 1 to {len(options)}"
                       + (", a" if several else "") + " or 0")

    return choose


def _words(value: object) -> str:
    """A due or done date as the admin reads it: Wed 31 March 2027."""
    from bot.domain.timeutil import day_text

    return day_text(value if isinstance(value, date) else date.fromisoformat(str(value)))
