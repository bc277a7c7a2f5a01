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
from bot.domain.model import Group, Meeting, Nudge, Person
from bot.listen import import_plan, minutes, owners


def run(obj: Ctx, path: str, meeting: str, group_id: str | None, yes: bool,
        as_json: bool) -> None:
    from bot.engine import action_log

    config = obj.config()
    group = _meeting_group(config, meeting, group_id)
    store = obj.store(config)
    now = obj.now(config)
    agreed = next(m for m in group.meetings if m.id == meeting)
    found = minutes.read_minutes(Path(path), import_plan.anchor(group, meeting))
    plan = import_plan.plan_import(group, meeting, found.items,
                                   default=action_log.default_due(group, agreed.start),
                                   seen=store.sources(),
                                   choose=None if yes or as_json else picker(group))
    following = sorted((m for m in group.meetings if m.start > agreed.start
                        and not m.cancelled), key=lambda m: m.start)
    proposed = [p for p in minutes.next_agenda(Path(path))
                if following and (group.id, following[0].id, f"minutes:{meeting}", p)
                not in set(store.proposals())]
    for item in proposed:
        store.propose(group.id, following[0].id, f"minutes:{meeting}", item, now)
    ids = store.import_minutes(plan.actions, plan.nudges, os.environ.get("USER", "admin"),
                               f"minutes {Path(path).name}", now)
    # what was recorded, as data: the --json contract, and what is printed
    names = {p.email: p.name for p in owners.people(group)}
    imported: list[dict[str, Any]] = [{
        "id": new_id, "place": p.item.place, "topic": p.item.topic, "text": p.item.text,
        "owners": list(p.owners.emails),
        "owner_names": ["all members" if e == owners.ALL else names.get(e, e)
                        for e in p.owners.emails],
        "due": p.row["due"], "due_source": p.item.due_source if p.item.due else None,
        "due_why": p.due_why, "status": p.row["status"], "completed": p.row["completed"]}
        for new_id, p in zip(ids, plan.planned, strict=True)]
    landings = [landing(group, Nudge(0, group.id, meeting, str(n["text"]),
                                     _day(n["window_start"]), _day(n["window_end"])))
                for n in plan.nudges]
    unresolved = [unsettled(item, found_owners) for item, found_owners in plan.unresolved]
    left_out = [{"place": i.place, "line": i.line, "text": i.text} for i in found.left_out]
    out = {"actions": ids, "nudges": len(plan.nudges), "already": plan.already,
           "notes": plan.notes, "unresolved": unresolved, "next_agenda": proposed,
           "imported": imported, "nudge_meetings": landings, "left_out": left_out}
    if as_json:
        _json(out)
    else:
        say(out, plan, f"{group.id}/{meeting}", following[0].id if following else "")


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


def unsettled(item: minutes.Item, found: owners.Match) -> dict[str, Any]:
    """An action whose owners are not all settled, as data: each unsettled name is a
    question with its numbered candidates (a later answer may be one, several, or all)."""
    questions = [{"name": o.name, "candidates": [{"name": p.name, "email": p.email}
                                                 for p in o.candidates]}
                 for o in found.unsettled]
    asked = []
    for o in found.unsettled:
        who = ", ".join(f"{p.name} <{p.email}>" for p in o.candidates)
        asked.append("no owner is named" if not o.name else f"who is {o.name!r}? " + (
            f"could be {who}" if who else "nobody on the roster fits"))
    words = "; ".join(asked)
    return {"line": item.line, "place": item.place, "owner": item.owner_text,
            "text": item.text, "candidates": [p.email for p in found.candidates],
            "matched": list(found.emails), "questions": questions, "question": words}


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


def landing(group: Group, nudge: Nudge) -> dict[str, Any]:
    """The meeting a nudge lands on, as data and in words."""
    from bot.plan.context import in_window, nudge_meeting

    target = nudge_meeting(group, nudge)
    inside = target is not None and in_window(nudge, target)
    window = f"{_long(nudge.start)} and {_long(nudge.end)}"
    if target is None:
        said = (f"no meeting falls between {window}, and none is set after it; the chair is "
                "told when the window opens")
    elif inside:
        said = f"on the agenda of the meeting on {_on(_local(group, target))}"
    else:
        said = (f"no meeting falls between {window}; it goes on the agenda of the meeting "
                f"on {_on(_local(group, target))}, the nearest")
    return {"text": nudge.text, "window_start": nudge.start.isoformat(),
            "window_end": nudge.end.isoformat(), "meeting": target.id if target else None,
            "meeting_start": target.start.isoformat() if target else None,
            "inside": inside, "said": said}


def _local(group: Group, meeting: Meeting) -> date:
    from bot.domain import timeutil

    return meeting.start.astimezone(timeutil.zone(group.zone)).date()


def _day(value: object) -> date:
    assert isinstance(value, date)
    return value


def _long(day: date) -> str:
    """17 December 2023."""
    return f"{day.day} {day:%B %Y}"


def _on(day: date) -> str:
    """Thursday 14 December 2023."""
    return f"{day:%A} {_long(day)}"


def _words(value: object) -> str:
    """A due or done date as the admin reads it: Wed 31 March 2027."""
    day = value if isinstance(value, date) else date.fromisoformat(str(value))
    return f"{day:%a} {day.day} {day:%B %Y}"
