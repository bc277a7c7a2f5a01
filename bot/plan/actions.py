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
from typing import Any

from bot.domain import timeutil
from bot.domain.model import Action, Group, Member

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


# --- CSV: the action log as a spreadsheet ---------------------------------------------------


