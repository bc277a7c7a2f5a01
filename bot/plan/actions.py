"""The action log: chasing owners politely, then firmly, until each action is done.

Each open action has a ladder of chase days (``[actions]`` in group.toml): ``first`` after it
was recorded, ``before_due`` before its due date, then every ``overdue_every`` while it is
overdue; from the ``copy_chair_after``-th chaser on, the chair is copied. On a chase day the
owner gets one digest of *all* their open actions in the group, so nobody gets two chasers on
one day. Done or dropped stops it at once: the digest is planned from the open actions only.
Actions owned by all members ride along in every digest but set no chase day of their own.

Owners answer by replying to a chaser: ``DONE``, ``NEW DATE 2027-05-01`` or ``UPDATE <text>``
(``#12`` names the action when the digest lists several) — accepted only from the action's
owner or the admin, and only when the subject's ``[#token]`` verifies (bot/engine/inbox.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from bot.domain import timeutil
from bot.domain.errors import UsageError
from bot.domain.model import Action, Group, Member

if TYPE_CHECKING:
    from bot.engine.store import Store

ALL = "*"


def chase_days(action: Action, group: Group, until: date) -> list[date]:
    """The ladder's days for ``action``, up to ``until``, oldest first."""
    ladder = group.ladder
    tz = timeutil.zone(group.zone)
    days = {action.created.astimezone(tz).date() + ladder.first,
            action.due - ladder.before_due}
    overdue = action.due + ladder.overdue_every
    while overdue <= until:
        days.add(overdue)
        overdue += ladder.overdue_every
    if group.window is not None:  # a chase day the window is shut moves to its next opening
        days = {_next_open_day(group, d) for d in days}
    return sorted(d for d in days if d <= until)


def _next_open_day(group: Group, day: date) -> date:
    from bot.domain import windows

    for _ in range(400):
        if windows.is_open_day(group.window, day):
            return day
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class Digest:
    """One owner's chaser for one day."""

    owner: Member
    day: date
    actions: tuple[Action, ...]  # all their open actions in the group
    number: int  # how many chase days (this one included) their oldest chased action had
    send_at: datetime
    latest: datetime


def digests(group: Group, open_actions: Iterable[Action], now: datetime,
            recorded: Iterable[str]) -> tuple[list[Digest], datetime | None]:
    """The digests due around ``now`` (yesterday, today, tomorrow, and any already in the
    ledger), and when the next one falls (the plan's horizon)."""
    tz = timeutil.zone(group.zone)
    today = now.astimezone(tz).date()
    mine = [a for a in open_actions if a.group == group.id]
    by_owner: dict[str, list[Action]] = {}
    for a in mine:
        for owner in a.owners:
            if owner != ALL:
                by_owner.setdefault(owner, []).append(a)
    shared = [a for a in mine if ALL in a.owners]
    seen = set(recorded)
    out: list[Digest] = []
    upcoming: list[datetime] = []
    ladder = group.ladder
    people = [*group.members]
    if group.admin.email not in {m.email for m in people}:  # the admin owns actions too
        people.append(Member(name=group.admin.name, email=group.admin.email, role="admin"))
    for member in people:
        own = by_owner.get(member.email, [])
        days: dict[date, int] = {}
        for a in own:
            ladder_days = chase_days(a, group, today + timedelta(days=400))
            for n, d in enumerate(ladder_days, 1):
                days[d] = max(days.get(d, 0), n)
        for day, number in sorted(days.items()):
            send_at = datetime.combine(day, time(*ladder.at), tzinfo=tz).astimezone(UTC)
            if send_at < group.go_live:
                continue  # nothing dated before go-live is ever sent
            latest = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            key = digest_key(member.email, day)
            if abs((day - today).days) <= 1 or key in seen:
                out.append(Digest(member, day, tuple(own + shared), number, send_at,
                                  latest.astimezone(UTC)))
            elif send_at > now:
                upcoming.append(send_at)
    return out, min(upcoming) if upcoming else None


def digest_key(email: str, day: date) -> str:
    """One key per person per day, whichever groups the digest covers (so a digest is not
    sent again when the set of its groups changes during the day)."""
    return f"-/-/actions/{email}/{day.isoformat()}"


def context(group: Group, digest: Digest, today: date) -> dict[str, Any]:
    return {
        "actions": [{"ref": a.ref, "id": a.id, "topic": a.topic, "text": a.text,
                     "due": a.due, "overdue": a.due < today, "meeting": a.meeting,
                     "all_members": ALL in a.owners} for a in digest.actions],
        "chaser_number": digest.number,
        "copy_chair": digest.number >= group.ladder.copy_chair_after,
    }


# --- what the admin (CLI) and the owners (replies) do ------------------------------------


def owners_of(group: Group, owners: Iterable[str]) -> tuple[str, ...]:
    """Validate owners (emails of members, or "all"); UsageError naming the unknown ones."""
    given = [o.strip().lower() for o in owners if o.strip()]
    if not given:
        raise UsageError("an action needs an owner: --owner EMAIL (or --owner all)")
    if any(o in ("all", ALL) for o in given):
        return (ALL,)
    emails = {m.email for m in group.members} | {group.admin.email}
    unknown = [o for o in given if o not in emails]
    if unknown:
        raise UsageError(f"not on the roster of {group.id}: {', '.join(unknown)}; add them to "
                         "roster.csv first, or check the spelling")
    return tuple(given)


def default_due(group: Group, now: datetime) -> date:
    """A set time before the next meeting (``[actions] due``), else four weeks from now."""
    ladder = group.ladder
    upcoming = [m for m in group.meetings if m.start > now and not m.cancelled]
    if ladder.due is not None and upcoming:
        when = timeutil.apply_offset(upcoming[0].start, ladder.due, ladder.at)
        return when.astimezone(timeutil.zone(group.zone)).date()
    return (now + timedelta(days=28)).astimezone(timeutil.zone(group.zone)).date()


def check_due(due: date, now: datetime, group: Group) -> date:
    if due < now.astimezone(timeutil.zone(group.zone)).date():
        raise UsageError(f"{due} is in the past; give a date from today on")
    return due


def find(store: Store, action_id: int) -> Action:
    found = next((a for a in store.actions() if a.id == action_id), None)
    if found is None:
        raise UsageError(f"no action #{action_id}; `clerk actions list` shows them")
    return found


def apply(store: Store, group: Group, action: Action, command: str, *, who: str, via: str,
          now: datetime, new_date: date | None = None, text: str = "") -> str:
    """DONE, NEW DATE, UPDATE or DROP on an action; returns what was done."""
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
    if command == "UPDATE" and text:
        store.change_action(action.id, f"UPDATE {text}", who, via, now)
        return f"{action.ref} updated"
    raise UsageError(f"cannot {command} {action.ref}")


# --- CSV: the action log as a spreadsheet ---------------------------------------------------

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
