"""The action log: chasing owners politely, a few times, and then telling the people who can
help — never flooding anyone.

The policy (``[actions]`` in group.toml, :class:`bot.domain.model.ChaseLadder`):

- Each open action has candidate chase days: ``first`` after it was recorded, ``before_due``
  before its due date, then every ``overdue_every`` while it is overdue. A day the group
  cannot be written to moves to the next one that can: not at a weekend or on a bank
  holiday (the send window), not on one of the group's meeting days, not in a quiet period
  (``quiet``; 24 December to 1 January by default).
- An owner gets at most one digest a week across all their actions and groups — unless an
  action falls due that week (its ``before_due`` day) — and each digest lists all their open
  actions whose chasing has begun, so two actions due on different days make one message.
- An action is chased at most ``max_chasers`` times (3); then chasing stops, and it goes to
  the admin's weekly summary ("stalled"). The chair is never copied on an owner's digest:
  the chair gets one weekly summary of the group's overdue actions instead
  (``summary_day``, Monday by default).
- An owner taken off the roster is no longer chased; the action goes to the admin's weekly
  summary, saying who left, for her to give it to someone else (``OWNER #n <name>`` by mail,
  ``clerk actions owner``), close or drop.
- An action for all members is owned by the chair and the admin for closing (only they can
  mark it done); each member is asked about it once, in their own next digest.

Owners answer by replying to a chaser: ``DONE``, ``NEW DATE <date>`` or ``UPDATE <text>``
(``#12`` names the action when the digest lists several) — accepted only from the action's
owner or the admin, and only when the subject's ``[#token]`` verifies (bot/engine/inbox.py).
The schedule is a pure function of the actions and the policy: the planner sends what falls
due now, and ``clerk plan --until`` shows what would follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.domain import timeutil, windows
from bot.domain.model import Action, Group, Member
from bot.render.templates import per_group

ALL = "*"
WEEK = timedelta(days=7)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Listed:
    """An action as one digest lists it."""

    group: Group
    action: Action
    number: int  # this is its n-th chaser (1, 2, …); 0 for an all-members action's one ask


@dataclass(frozen=True)
class Digest:
    """One owner's chaser for one day, across all their groups."""

    owner: Member
    day: date
    listed: tuple[Listed, ...]
    send_at: datetime
    latest: datetime

    @property
    def number(self) -> int:
        return max((x.number for x in self.listed), default=0)

    @property
    def last(self) -> bool:
        """Whether this is the last chaser for one of its actions."""
        return any(x.number >= x.group.ladder.max_chasers for x in self.listed)


@dataclass
class Schedule:
    """Every digest up to some day, and the actions whose chasing stopped (and when)."""

    digests: list[Digest] = field(default_factory=list)
    stalled: dict[int, date] = field(default_factory=dict)  # action id -> its last chaser
    # action id -> its owners no longer on the group's roster: not chased, for the admin
    gone: dict[int, tuple[str, ...]] = field(default_factory=dict)


def quiet_day(group: Group, day: date) -> bool:
    """Whether no chaser goes to the group's people on ``day``."""
    if group.window is not None and not windows.is_open_day(group.window, day):
        return True
    if any(m.start.date() == day for m in group.meetings if not m.cancelled):
        return True
    return any(_within(day, start, end) for start, end in group.ladder.quiet)


def _within(day: date, start: tuple[int, int], end: tuple[int, int]) -> bool:
    md = (day.month, day.day)
    return start <= md <= end if start <= end else md >= start or md <= end


def open_day(group: Group, day: date) -> date:
    """``day``, or the next day that is not quiet for the group (worked out once per loaded
    group and day: every schedule asks again)."""
    known = per_group(_OPEN_DAYS, id(group), group, dict)
    found = known.get(day)
    if found is None:
        found = day
        for _ in range(400):
            if not quiet_day(group, found):
                break
            found += timedelta(days=1)
        if len(known) < 4096:
            known[day] = found
    return found


_OPEN_DAYS: dict[Any, tuple[Group, dict[date, date]]] = {}


def _candidates(group: Group, a: Action, until: date) -> list[tuple[date, bool]]:
    """(day, due that week) of the days ``a`` may be chased, each moved off quiet days."""
    ladder = group.ladder
    tz = timeutil.zone(group.zone)
    since = (a.assigned or a.created).astimezone(tz).date()  # a new owner starts afresh
    first = since + ladder.first
    if ALL in a.owners:
        return [(open_day(group, first), False)]  # asked once
    days = [(first, False), (a.due - ladder.before_due, True)]
    overdue = a.due + ladder.overdue_every
    while overdue <= until:
        days.append((overdue, False))
        overdue += ladder.overdue_every
    start = max(group.go_live.astimezone(tz).date(), since)
    return sorted({(open_day(group, d), due) for d, due in days if d >= start})


def schedule(groups: Sequence[Group], actions: Iterable[Action], until: date) -> Schedule:
    """Every digest for the open ``actions`` up to ``until``, by the policy above."""
    by_id = {g.id: g for g in groups}
    owners: dict[str, tuple[Member, list[tuple[Group, Action]]]] = {}
    out = Schedule()
    for a in actions:
        group = by_id.get(a.group)
        if a.status != "open" or group is None:
            continue
        people = _people(group)
        # an all-members action is asked of the attendees (not guests, not the admin)
        for email in ([m.email for m in group.attendees] if ALL in a.owners else a.owners):
            if email in people:
                owners.setdefault(email, (people[email], []))[1].append((group, a))
            else:  # taken off the roster since: never chased, never silently
                out.gone[a.id] = (*out.gone.get(a.id, ()), email)
    for email in sorted(owners):
        owner, theirs = owners[email]
        digests, stalled = _owner_schedule(owner, theirs, until)
        out.digests += digests
        for action_id, day in stalled.items():  # an action of two owners: the later
            out.stalled[action_id] = max(day, out.stalled.get(action_id, day))
    out.digests.sort(key=lambda d: (d.send_at, d.owner.email))
    return out


def _owner_schedule(owner: Member, theirs: list[tuple[Group, Action]],
                    until: date) -> tuple[list[Digest], dict[int, date]]:
    """One owner's digests and stalled actions, worked out again only when their actions,
    their groups (as loaded) or ``until`` changed: a change to one group's actions or roster
    costs the schedules of its owners, not the install's."""
    sign = (until, owner, tuple((id(g), a) for g, a in theirs))
    known = _OWNERS.get(owner.email)
    if known is not None and known[0] == sign:
        return known[2], known[3]
    out = Schedule()
    _one_owner(owner, theirs, until, out)
    if len(_OWNERS) >= 100_000:
        _OWNERS.clear()
    # the groups are kept with it, so that their ids are not reused meanwhile
    _OWNERS[owner.email] = (sign, [g for g, _ in theirs], out.digests, out.stalled)
    return out.digests, out.stalled


_OWNERS: dict[str, tuple[Any, list[Group], list[Digest], dict[int, date]]] = {}


class Chased:
    """The owners' schedules a plan reads, each worked out once for the day it runs to: an
    owner's digests span their groups, so a schedule reads the whole action log."""

    def __init__(self, groups: Sequence[Group], log: Sequence[Action],
                 fixed: Schedule | None = None) -> None:
        self.groups, self.log = groups, log
        self._made: dict[date, Schedule] = {}
        self._views: dict[date, dict[str, tuple[tuple[int, str, tuple[str, ...]], ...]]] = {}
        self._keys: dict[date, tuple[int, int]] = {}
        self._fixed = fixed  # (templates' examples: this one, whatever the day)

    def until(self, day: date) -> Schedule:
        if self._fixed is not None:
            return self._fixed
        if day not in self._made:
            self._made[day] = schedule(self.groups, self.log, day)
        return self._made[day]

    def digests_key(self, day: date) -> tuple[int, int]:
        """A key of the owners' digests up to ``day`` that changes whenever one of them
        would — their owners, days, times, and each listed action with its group's files
        (``Group.fingerprint``) and its number — kept instead of the digests themselves
        (which hold their groups): an edit to a group none of them lists leaves it as it
        was."""
        if day not in self._keys:
            found = tuple(
                (d.owner, d.day, d.send_at, d.latest,
                 tuple((x.group.id, x.group.fingerprint or object(), x.action, x.number)
                       for x in d.listed))
                for d in self.until(day).digests)
            self._keys[day] = (len(found), hash(found))
        return self._keys[day]

    def views(self, day: date) -> dict[str, tuple[tuple[int, str, tuple[str, ...]], ...]]:
        """What each group's plan reads of the schedule up to ``day`` (a schedule to an
        earlier day is a part of it): for each of its open actions whose chasing stopped,
        when it was last chased, and which of its owners left."""
        if day not in self._views:
            made = self.until(day)
            out: dict[str, list[tuple[int, str, tuple[str, ...]]]] = {}
            for a in self.log:
                if a.status == "open" and (a.id in made.stalled or a.id in made.gone):
                    out.setdefault(a.group, []).append(
                        (a.id, str(made.stalled.get(a.id, "")), made.gone.get(a.id, ())))
            self._views[day] = {g: tuple(v) for g, v in out.items()}
        return self._views[day]


def _people(group: Group) -> dict[str, Member]:
    """Who can own an action in the group: its roster (guests too), and the admin (once per
    loaded group)."""
    return per_group(_PEOPLE, id(group), group, lambda: _roster_people(group))


_PEOPLE: dict[Any, tuple[Group, dict[str, Member]]] = {}


def _roster_people(group: Group) -> dict[str, Member]:
    people = {m.email: m for m in group.members}
    people.setdefault(group.admin.email, Member(name=group.admin.name,
                                                email=group.admin.email, role="admin"))
    return people


def _one_owner(owner: Member, theirs: list[tuple[Group, Action]], until: date,
               out: Schedule) -> None:
    candidates: dict[int, list[tuple[date, bool]]] = {
        a.id: _candidates(g, a, until) for g, a in theirs}
    kept: list[date] = []
    for day, due_week in sorted({c for cs in candidates.values() for c in cs}):
        if day > until:
            break
        if kept and day - kept[-1] < WEEK and not due_week:
            continue  # one digest a week, unless something falls due this week
        if kept and day == kept[-1]:
            continue
        kept.append(day)
    counts: dict[int, int] = {}
    for day in kept:
        listed = []
        for group, a in theirs:
            if not candidates[a.id] or candidates[a.id][0][0] > day:
                continue  # its chasing has not begun
            if ALL in a.owners:
                if counts.get(a.id):
                    continue  # asked once
                counts[a.id] = 1
                listed.append(Listed(group, a, 0))
                continue
            n = counts.get(a.id, 0) + 1
            if n > group.ladder.max_chasers:
                continue
            counts[a.id] = n
            if n == group.ladder.max_chasers:
                out.stalled[a.id] = max(day, out.stalled.get(a.id, day))
            listed.append(Listed(group, a, n))
        if listed:
            home = min((x.group for x in listed), key=lambda g: g.id)
            tz = timeutil.zone(home.zone)
            send_at = datetime.combine(day, time(*home.ladder.at), tzinfo=tz)
            latest = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            out.digests.append(Digest(owner, day, tuple(listed), send_at.astimezone(UTC),
                                      latest.astimezone(UTC)))


def summary_days(group: Group, start: date, until: date) -> list[date]:
    """The group's weekly summary days from ``start`` to ``until`` (quiet ones skipped)."""
    weekday = DAYS.index(group.ladder.summary_day)
    day = start + timedelta(days=(weekday - start.weekday()) % 7)
    out = []
    while day <= until:
        if not quiet_day(group, day):
            out.append(day)
        day += WEEK
    return out


def digest_key(email: str, day: date) -> str:
    """One key per person per day, whichever groups the digest covers (so a digest is not
    sent again when the set of its groups changes during the day)."""
    return f"-/-/actions/{email}/{day.isoformat()}"


def name(group: Group, email: str) -> str:
    """A member's or the admin's name, else the address."""
    names = {m.email: m.name for m in group.members} | {group.admin.email: group.admin.name}
    return names.get(email, email)


def owner_names(group: Group, owners: Sequence[str]) -> str:
    """Who ``owners`` (an action's) are, by name ("all members" for an action of all
    members)."""
    if ALL in owners:
        return "all members"
    return ", ".join(name(group, e) for e in owners)


def listed_context(x: Listed, today: date, meetings: dict[str, Any]) -> dict[str, Any]:
    """One action as a chaser or a summary shows it."""
    a = x.action
    return {"ref": a.ref, "id": a.id, "topic": a.topic, "text": a.text, "due": a.due,
            "overdue": a.due < today, "meeting": meetings.get(a.meeting), "group": x.group.name,
            "all_members": ALL in a.owners, "number": x.number,
            "last": x.number >= x.group.ladder.max_chasers}
