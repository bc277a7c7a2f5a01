"""The action log as it is kept: what the admin (the CLI, a CSV from Excel) and the owners
(their replies) do to it. The chasing itself is planned in bot/plan/actions.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from bot.domain import timeutil
from bot.domain.errors import UsageError
from bot.domain.model import Action, Group
from bot.engine import snapshot
from bot.engine.store import Store
from bot.listen.owners import match as match_owners
from bot.plan.actions import ALL, owner_names


def owners_of(group: Group, owners: Iterable[str]) -> tuple[str, ...]:
    """Who owes an action: each of ``owners`` an email on the roster, ``all``, or a name matched
    to the roster as a minutes import matches it ("Jo Whitfield", "Siobhan", "JW"). UsageError
    naming every owner it cannot settle, with whom a name may be."""
    given = [o.strip() for o in owners if o.strip()]
    if not given:
        raise UsageError("an action needs an owner: --owner EMAIL or NAME (or --owner all)")
    if any(o.lower() in ("all", ALL) for o in given):
        return (ALL,)
    emails = {m.email for m in group.members} | {group.admin.email}
    found: list[str] = []
    unknown: list[str] = []
    questions: list[str] = []
    for owner in given:
        if "@" in owner:
            (found if owner.lower() in emails else unknown).append(owner.lower())
            continue
        named = match_owners(owner, group)
        for one in named.unsettled:
            who = ", ".join(f"{p.name} <{p.email}>" for p in one.candidates)
            questions.append(
                f"who is {one.name!r}? it could be {who}: give the email or the full name"
                if len(one.candidates) > 1 else f"{one.name!r} is not on the roster of "
                f"{group.id}" + (f"; did you mean {who}?" if who else "; add them to "
                                 "roster.csv first, or check the spelling"))
        found += named.emails
    if unknown or questions:
        raise UsageError("; ".join(
            ([f"not on the roster of {group.id}: {', '.join(unknown)}; add them to roster.csv "
              "first, or check the spelling"] if unknown else []) + questions))
    return (ALL,) if ALL in found else tuple(dict.fromkeys(found))


def default_due(group: Group, since: datetime) -> tuple[date, str]:
    """The due date of an action that states none, and why: the group's ``[actions] due``
    offset from the next meeting after ``since``, when it is set and that meeting is there;
    else 28 days after ``since``. ``since`` is the start of the meeting that agreed the action
    (a minutes import, ``actions add --meeting``) or, for an action added by hand with no
    meeting, the admin's now (``clerk --now``) — never the wall clock deep inside."""
    ladder = group.ladder
    tz = timeutil.zone(group.zone)
    day = since.astimezone(tz).date()
    upcoming = [m for m in group.meetings if m.start > since and not m.cancelled]
    if ladder.due is not None and upcoming:
        following = min(upcoming, key=lambda m: m.start)
        when = timeutil.apply_offset(following.start, ladder.due, ladder.at)
        due = when.astimezone(tz).date()
        if due > day:
            meeting = following.start.astimezone(tz)
            n = abs(ladder.due.amount)
            unit = {"d": "day", "w": "week", "h": "hour", "m": "minute"}[ladder.due.unit]
            return due, (f"default: {n} {unit}{'s' if n != 1 else ''} "
                         f"{'before' if ladder.due.amount < 0 else 'after'} the next meeting, "
                         f"{timeutil.day_text(meeting.date())}")
    return day + timedelta(days=28), "default: 28 days after the " + (
        "meeting" if any(m.start == since for m in group.meetings) else "day it was added")


def check_due(due: date, now: datetime, group: Group) -> date:
    if due < now.astimezone(timeutil.zone(group.zone)).date():
        raise UsageError(f"{due} is in the past; give a date from today on")
    return due


def find(store: Store, action_id: int) -> Action:
    found = next((a for a in snapshot.actions(store) if a.id == action_id), None)
    if found is None:
        raise UsageError(f"no action #{action_id}; `clerk actions list` shows them")
    return found


def apply(store: Store, group: Group, action: Action, command: str, *, who: str, via: str,
          now: datetime, new_date: date | None = None, text: str = "",
          owners: tuple[str, ...] = ()) -> str:
    """DONE, NEW DATE, UPDATE, DROP or OWNER (``owners``, as :func:`owners_of` settles them)
    on an action; returns what was done. A new owner's chasing starts afresh from ``now``."""
    today = now.astimezone(timeutil.zone(group.zone)).date()
    if action.status != "open" and command != "UPDATE":
        return f"{action.ref} is already {action.status}"
    if command == "DONE":
        store.change_action(action.id, "DONE", who, via, now, status="done", completed=today)
        return f"{action.ref} done"
    if command == "DROP":
        store.change_action(action.id, "dropped", who, via, now, status="dropped")
        return f"{action.ref} dropped"
    if command == "NEW DATE" and new_date is not None:
        check_due(new_date, now, group)
        store.change_action(action.id, f"NEW DATE {new_date}", who, via, now, due=new_date)
        return f"{action.ref} now due {new_date}"
    if command == "OWNER" and owners:
        whose = owner_names(group, owners)
        if owners == action.owners:
            return f"{action.ref} is already owned by {whose}"
        store.change_action(action.id, f"OWNER {', '.join(owners)}", who, via, now,
                            owners=json.dumps(list(owners)), assigned_at=now)
        return f"{action.ref} is now owned by {whose}"
    if command == "UPDATE" and text:
        store.change_action(action.id, f"UPDATE {text}", who, via, now)
        return f"{action.ref} updated"
    raise UsageError(f"cannot {command} {action.ref}")


CSV_COLUMNS = ("id", "group", "meeting", "topic", "action", "owners", "due", "status",
               "completed")


def to_csv(found: Iterable[Action]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for a in found:
        writer.writerow([a.id, a.group, a.meeting, a.topic, a.text,
                         "all" if ALL in a.owners else "; ".join(a.owners), a.due.isoformat(),
                         a.status, a.completed.isoformat() if a.completed else ""])
    return out.getvalue()


def from_csv(text: str, where: str, groups: dict[str, Group],
             known: dict[int, Action], now: datetime) -> list[dict[str, Any]]:
    """Validate every row of an actions CSV; UsageError listing every bad row (by line) so
    that nothing is half-imported. Rows without an id are new actions; rows with one update
    that action. A row marked done with no completion date was completed ``now`` (in its
    group's zone)."""
    import csv
    import io

    from bot.domain.errors import Problem

    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or [c.strip().lower() for c in rows[0]] != list(CSV_COLUMNS):
        raise UsageError(f"{where}: the first line must be {','.join(CSV_COLUMNS)}")
    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(CSV_COLUMNS):
            problems.append(Problem(where, f"{len(row)} values, expected {len(CSV_COLUMNS)}",
                                    line=n))
            continue
        values = dict(zip(CSV_COLUMNS, (c.strip() for c in row), strict=True))
        try:
            out.append(_csv_row(values, groups, known, now))
        except (UsageError, ValueError) as exc:
            problems.append(Problem(where, getattr(exc, "message", str(exc)), line=n))
    if problems:
        raise UsageError(f"{len(problems)} bad row(s) in {where}; nothing was imported",
                         problems)
    return out


def _csv_row(v: dict[str, str], groups: dict[str, Group],
             known: dict[int, Action], now: datetime) -> dict[str, Any]:
    group = groups.get(v["group"])
    if group is None:
        raise UsageError(f"unknown group {v['group']!r}")
    if v["id"] and (not v["id"].isdigit() or int(v["id"]) not in known):
        raise UsageError(f"no action #{v['id']} to update")
    before = known.get(int(v["id"])) if v["id"] else None
    if before is not None and before.group != group.id:
        raise UsageError(f"#{before.id} is an action of {before.group}, not {group.id}")
    if before is not None and before.status != "open" and v["status"] == "open":
        raise UsageError(f"#{before.id} is {before.status} in clerk since; export again "
                         "to change it")
    if not v["action"]:
        raise UsageError("the action is empty")
    if v["status"] not in ("open", "done", "dropped"):
        raise UsageError(f"status {v['status']!r} is not open, done or dropped")
    if v["meeting"] and v["meeting"] not in {m.id for m in group.meetings}:
        raise UsageError(f"no meeting {v['meeting']!r} in {group.id}")
    try:
        due = date.fromisoformat(v["due"])
        completed = date.fromisoformat(v["completed"]) if v["completed"] else None
    except ValueError:
        raise UsageError("due and completed must be dates like 2027-05-01") from None
    if v["status"] == "done" and completed is None:
        completed = (before.completed if before and before.completed
                     else now.astimezone(timeutil.zone(group.zone)).date())
    return {"id": int(v["id"]) if v["id"] else None, "group_id": group.id,
            "meeting_id": v["meeting"], "topic": v["topic"], "text": v["action"],
            "owners": owners_of(group, v["owners"].split(";")), "due": due,
            "status": v["status"], "completed": completed}
