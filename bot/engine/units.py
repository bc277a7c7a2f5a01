"""The worker's plan, kept unit by unit: what each unit — a group, or the owners' digests
across groups (:data:`ACTIONS`) — was last planned from, until when that plan holds, and, for
sending, the messages due when each unit was planned and those of the last few units planned
again to send one.

A group's weekly part (its action summaries and the admin's weekly digest) is a unit of its
own (:func:`weekly`), planned from the same snapshot as its group: the week turning plans
those again, not the group's meetings. A unit is planned again only when its files changed
(``Group.fingerprint``), its facts changed (the store notes which groups each change
touches: ``fact_changes``), what it reads of the owners' schedule changed
(:meth:`bot.plan.actions.Chased.views`), or its time came (``valid_until``). Planning streams
unit by unit into the ledger (bot/engine/executor.py), so memory holds one batch of groups'
facts and messages at a time, never the install's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.model import Action, Desired
from bot.engine.schema import ACTIONS, key_range, ledger
from bot.plan import planner
from bot.plan.guard import Trip
from bot.plan.planner import GroupPlan

KEEP = 4  # the units planned again for sending whose messages are kept
KEEP_DUE = 20_000  # the messages due at their planning kept for sending, at most
BATCH = 5  # the groups planned from one snapshot


@dataclass(frozen=True)
class Planned:
    """What a unit was last planned from, and until when that plan holds."""

    fingerprint: str  # its group's files then ("" for the owners' digests)
    seen: int  # the facts version its snapshot was taken at (or its own revisions made)
    valid_until: datetime | None
    view: tuple[object, ...] = ()  # what it read of the owners' schedule
    held: tuple[Trip, ...] = ()  # what the guard held of it (its weekly part withholds it)


WEEKLY = "/weekly"  # a group's weekly part is the unit of its id and this


def weekly(group: str) -> str:
    """The unit of ``group``'s weekly part (:func:`bot.plan.planner.weekly_plan`)."""
    return group + WEEKLY


def group_of(unit: str) -> str:
    """The group a unit plans for (:data:`ACTIONS` for the owners' digests)."""
    return unit.removesuffix(WEEKLY)


def units_of(groups: Iterable[str]) -> list[str]:
    """The units of these groups: each group's meetings and notices, and its weekly part."""
    return [u for g in groups for u in (g, weekly(g))]


DIGESTS = key_range(f"{ACTIONS}/")  # their rows


_WEEK = sa.and_(ledger.c.meeting_id == "-", ledger.c.rule_id.in_(planner.WEEKLY))


def unit_ranges(units: Iterable[str]) -> list[tuple[str, Any]]:
    """The ledger rows of ``units`` — a group's (less its weekly part's, and less the
    owners' digests, which a row carries as their first owner's group), a group's weekly
    part's, and with :data:`ACTIONS` among them, the owners' digests (keyed ``-/…``) — by
    the keys they lie under, in the keys' order: each group's ``<group>/`` (a unit is its
    keys', :func:`unit_of`) with what picks the weekly part's rows (under ``<group>/-/``),
    or the others', when only one of its units is asked; the owners' digests' ``-/``. A
    range is read by the key's index, a row once (bot/engine/store.py)."""
    asked = set(units)
    groups = {u for u in asked if u != ACTIONS and group_of(u) == u}
    weeks = {group_of(u) for u in asked if group_of(u) != u}
    found: list[tuple[str, Any]] = [
        (f"{g}/", None) if g in weeks else (f"{g}/", sa.not_(_WEEK)) for g in groups]
    # a weekly part alone: the few keys under its notices' (``<group>/-/``), not its group's
    found += [(f"{g}/-/", _WEEK) for g in weeks - groups]
    if ACTIONS in asked:
        found.append((f"{ACTIONS}/", None))
    return sorted(found, key=lambda r: r[0])


def group_rows(ids: Any) -> Any:
    """The ledger rows of the groups ``ids`` (a list, or an expanding parameter): both
    their units', less the owners' digests."""
    return sa.and_(ledger.c.group_id.in_(ids), sa.not_(DIGESTS))


def unit_of(key: str) -> str:
    """The unit a ledger key belongs to: its group's, its group's weekly part (keyed
    ``<group>/-/<rule>/…`` with a rule of :data:`bot.plan.planner.WEEKLY`), or the owners'
    digests (``-/…``)."""
    group, _, rest = key.partition("/")
    meeting, _, rest = rest.partition("/")
    if meeting == "-" and group != ACTIONS and rest.partition("/")[0] in planner.WEEKLY:
        return weekly(group)
    return group


class Units:
    """The worker's record of its plan, unit by unit (see the module's docstring)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.planned: dict[str, Planned] = {}
        self.version = -1  # the facts version last looked at
        self.every = 0  # the version of the last change every group reads
        self.fingerprint: str | None = None  # the config's, as last planned
        self.settings: object = None  # clerk.toml's, as last planned
        self.log: list[Action] | None = None  # the action log, as last read
        self.log_seen = -1  # the facts version it was read at
        self.recheck = False  # the log changed during a planning: compare the views again
        self.others: set[str] | None = None  # groups in the ledger, not in the config
        self.until: datetime | None = None  # the earliest valid_until of all units
        self.at: datetime | None = None  # the ``now`` of the last planning
        self.passes = 0  # how many times anything was planned again
        self._keep = keep
        # unit -> its messages by key: all of the units planned again for sending, ...
        self._recent: OrderedDict[str, dict[str, Desired]] = OrderedDict()
        # ... and those due when each unit was last planned
        self._due: OrderedDict[str, dict[str, Desired]] = OrderedDict()
        self._due_count = 0

    def stale(self, now: datetime, groups: Iterable[str]) -> set[str]:
        """Of the units of ``groups`` (and the owners' digests), those never planned or
        whose time came."""
        return {u for u in (*units_of(groups), ACTIONS) if (p := self.planned.get(u)) is None
                or (p.valid_until is not None and now >= p.valid_until)}

    def done(self, unit: str, part: GroupPlan, planned: Planned, now: datetime) -> None:
        """``unit`` was planned (``part``) and recorded; its messages due now are kept (they
        are sent next), up to :data:`KEEP_DUE` of all units' — those planned first, as the
        rows are sent in order. A unit among the last few planned again for sending is
        kept whole, as it is now planned (its messages come due one by one: a group's week
        of mail is sent without planning it again for each)."""
        self.planned[unit] = planned
        self._drop_due(unit)
        if unit in self._recent:  # planned again for sending lately: kept whole again
            self._recent[unit] = {d.key: d for d in part.messages}
            return
        due = {d.key: d for d in part.messages if d.send_at <= now}
        if due and self._due_count + len(due) <= KEEP_DUE:
            self._due[unit] = due
            self._due_count += len(due)

    def begin(self) -> None:
        """A planning pass begins: the messages kept as due at the last are let go (most were
        sent; any other is planned again when its row is due)."""
        self._due.clear()
        self._due_count = 0

    def _drop_due(self, unit: str) -> None:
        self._due_count -= len(self._due.pop(unit, {}))

    def forget(self, unit: str) -> None:
        """A group gone from the config: its rows were withdrawn."""
        self.planned.pop(unit, None)
        self._recent.pop(unit, None)
        self._drop_due(unit)

    def settle(self, now: datetime) -> None:
        """After a planning pass: the earliest instant time alone changes a unit's plan."""
        times = [p.valid_until for p in self.planned.values() if p.valid_until is not None]
        self.until = min(times) if times else None
        self.at = now
        self.passes += 1

    def remember(self, unit: str, part: GroupPlan) -> None:
        """``unit`` planned again (for sending): all its messages are kept a while."""
        self._drop_due(unit)
        self._recent[unit] = {d.key: d for d in part.messages}
        self._recent.move_to_end(unit)
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)

    def kept(self, unit: str, key: str) -> tuple[bool, Desired | None]:
        """Whether the unit's plan is in hand to tell, and the message of ``key`` in it."""
        due = self._due.get(unit)
        if due is not None and key in due:
            return True, due[key]
        found = self._recent.get(unit)
        if found is None:
            return False, None
        self._recent.move_to_end(unit)
        return True, found.get(key)
