"""The executor's planning: the plan made and recorded unit by unit (bot/engine/units.py),
only the units that changed, each batch of groups from a snapshot of those groups alone and
written into the ledger before the next is made. A part of
:class:`bot.engine.executor.Executor`."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.model import Action, Config, Desired
from bot.engine import snapshot
from bot.engine.schema import ACTIONS, EVERY
from bot.engine.store import Store
from bot.engine.units import (
    BATCH,
    WEEKLY,
    Planned,
    Units,
    group_of,
    unit_of,
    unit_ranges,
    units_of,
    weekly,
)
from bot.plan import actions, notices, planner
from bot.plan.planner import GroupPlan
from bot.plan.state import State

log = logging.getLogger("clerk")

Counts = tuple[int, int, int]  # recorded, updated, withdrawn


# the columns of a new ledger row, and their values for a planned message (a tuple: a plan
# records millions at the first start)
ROW_COLUMNS = ("key", "group_id", "meeting_id", "rule_id", "kind", "recipient",
               "recipient_name", "revision", "sequence", "state", "first_state", "send_at",
               "latest_at", "subject", "reason", "attempts", "created_at", "updated_at")


def _row_values(d: Desired, now: datetime) -> tuple[Any, ...]:
    state = d.initial
    return (d.key, d.group, d.meeting, d.rule, d.kind, d.recipient.email, d.recipient.name,
            d.revision, d.sequence, state, state, d.send_at, d.latest, d.subject, d.reason, 0,
            now, now)


def _view(unit: str, chased: actions.Chased, views: Mapping[str, tuple[object, ...]],
          now: datetime) -> tuple[object, ...]:
    """What ``unit`` reads of the owners' schedule: a group's view of it, or a key of the
    owners' digests (an edit to a group none of them lists leaves it as it was)."""
    if unit == ACTIONS:
        return chased.digests_key(notices.chased_until(now))
    return views.get(group_of(unit), ())


class Planning:
    """Needs the executor's config and store."""

    config: Config
    store: Store
    batch: int
    _units: Units
    _noted: dict[str, str]  # group id -> its Group.fingerprint whose roster the store noted

    def current_plan(self, now: datetime) -> Counts | None:
        """Bring the ledger to the plan for ``now``: plan again the units that changed, or
        whose time came, and record them. The counts of what recording changed, or None
        when nothing needed planning (an idle tick: two look-ups)."""
        units, config = self._units, self.config
        version = self.store.facts_version()
        if (config.fingerprint == units.fingerprint and version == units.version
                and (units.until is None or now < units.until)):
            return None
        todo, gone, chased = self._stale(now, version)
        if not todo and not gone:
            return None  # the facts changed are those it planned from (its own, say)
        if chased is None:
            chased = actions.Chased(config.groups, self._action_log())
        units.begin()
        counts = [0, 0, 0]
        groups = [g.id for g in config.groups if g.id in todo or weekly(g.id) in todo]
        batches = [[u for u in units_of(groups[i:i + BATCH]) if u in todo]
                   for i in range(0, len(groups), BATCH)]
        for batch in (*batches, *([[ACTIONS]] if ACTIONS in todo else [])):
            done, chased = self._plan_units(batch, now, chased)
            for n, c in enumerate(done):
                counts[n] += c
        for group in gone:  # groups no longer in the config: their rows are withdrawn
            with self.store.atomic() as conn:
                counts[2] += self._diff(conn, units_of([group]), {}, now)[1]
            for unit in units_of([group]):
                units.forget(unit)
        units.settle(now)
        if counts[0]:
            log.info("planned %d new message(s)", counts[0])
        return counts[0], counts[1], counts[2]

    def _stale(self, now: datetime, version: int) -> tuple[set[str], set[str],
                                                            actions.Chased | None]:
        """The units to plan again, the groups gone from the config, and the owners'
        schedule of the action log as it is, when it was needed to tell. Whatever changes a
        group's files or facts plans both its units again; time, each alone."""
        units, config = self._units, self.config
        todo = units.stale(now, config.by_id)
        gone: set[str] = set()
        schedule_changed = False
        if config.fingerprint != units.fingerprint:
            edited = [g for g in config.groups if not g.fingerprint
                      or self._noted.get(g.id) != g.fingerprint]
            self.store.note_roster({g.id: {m.email: m.row for m in g.members}
                                    for g in edited}, now)
            self._noted = {g.id: g.fingerprint for g in config.groups}
            todo |= {u for g in config.groups for u in units_of([g.id])
                     if (p := units.planned.get(u)) is None
                     or not g.fingerprint or p.fingerprint != g.fingerprint}
            if units.others is None:  # the first look: what else is in the ledger
                units.others = self.store.group_ids() - config.by_id.keys()
                gone = set(units.others)
            gone |= {group_of(u) for u in units.planned
                     if u != ACTIONS and group_of(u) not in config.by_id}
            units.others = (units.others | gone) - config.by_id.keys()
            if config.settings != units.settings:  # clerk.toml: every group reads it
                todo |= {*units_of(config.by_id), ACTIONS}
                units.settings = config.settings
            units.fingerprint = config.fingerprint
            schedule_changed = True
        if version != units.version:
            changed = self.store.facts_changed(units.version)
            if changed.get(EVERY, 0) > units.every:
                units.every = changed[EVERY]
                todo |= {*units_of(config.by_id), ACTIONS}
            fresh = {u for g, v in changed.items()
                     for u in (units_of([g]) if g in config.by_id else [g] if g == ACTIONS else [])
                     if (p := units.planned.get(u)) is None or v > p.seen}
            todo |= fresh
            schedule_changed = schedule_changed or ACTIONS in fresh
            units.version = version
        chased = None
        if schedule_changed or units.recheck:
            units.recheck = False
            # which units read a different schedule now
            chased = actions.Chased(config.groups, self._action_log())
            views = chased.views(notices.chased_until(now))
            todo |= {u for u, p in units.planned.items()
                     if _view(u, chased, views, now) != p.view}
        todo |= {weekly(u) for u in todo if u in config.by_id}  # it reads what its group holds
        return todo, gone, chased

    def _action_log(self) -> list[Action]:
        """The action log, read again only when it changed (every change to it names
        :data:`ACTIONS`)."""
        units = self._units
        changed = self.store.facts_changed(units.log_seen).get(ACTIONS) \
            if units.log is not None else None
        if units.log is None or changed is not None:
            units.log_seen = self.store.facts_version()  # read before the log
            units.log = snapshot.actions(self.store)
        return units.log

    def _plan_units(self, batch: Sequence[str], now: datetime,
                    chased: actions.Chased) -> tuple[Counts, actions.Chased]:
        """Plan ``batch`` (units of a few groups, or the owners' digests) from a snapshot of
        those groups alone, and record it; the owners' schedules it was planned with (made
        again when the action log changed since ``chased`` was)."""
        units, config = self._units, self.config
        seen = self.store.facts_version()  # read before the snapshot, and the action log:
        log_ = self._action_log()
        if log_ is not chased.log:  # changed meanwhile (another process):
            chased = actions.Chased(config.groups, log_)
            units.recheck = True  # the groups planned before may read it otherwise now
        state = snapshot.state(self.store, dict.fromkeys(map(group_of, batch)),
                               others=units.others or (), actions_of=chased.log)
        parts: dict[str, GroupPlan] = {}
        for u in batch:  # a group before its weekly part, which reads what the guard held
            parts[u] = self._part(u, state, now, chased, parts)
        counts, clean, own = self.record_units(parts, state.keys, now, seen)
        views = chased.views(notices.chased_until(now))
        for u, part in parts.items():
            group = config.by_id.get(group_of(u))
            units.done(u, part, Planned(group.fingerprint if group else "",
                                        own if group_of(u) in clean else seen,
                                        part.valid_until, _view(u, chased, views, now),
                                        part.held), now)
        return counts, chased

    def _part(self, unit: str, state: State, now: datetime, chased: actions.Chased,
              planned: Mapping[str, GroupPlan]) -> GroupPlan:
        """``unit``'s plan; a weekly part's with what the guard holds of its group as
        ``planned`` (the units planned before it from the same snapshot) has it, or as its
        group was last planned."""
        if unit == ACTIONS:
            return planner.digests_plan(self.config, state, now, chased)
        group = self.config.by_id[group_of(unit)]
        if not unit.endswith(WEEKLY):
            return planner.group_plan(self.config, group, state, now, chased)
        own = planned.get(group.id)
        held = own.held if own is not None else \
            p.held if (p := self._units.planned.get(group.id)) is not None else ()
        return planner.weekly_plan(self.config, group, state, now, chased, held)

    def record_units(self, parts: Mapping[str, GroupPlan], existing: Mapping[str, str],
                     now: datetime, seen: int) -> tuple[Counts, set[str], int]:
        """Write these units' plans into the ledger: their revisions, new rows (``existing``
        holds the keys they were planned with; a key another worker recorded meanwhile is
        skipped), unsent rows changed, rows no longer wanted withdrawn. Returns the counts,
        the units whose revisions were recorded with no one else changing their facts
        since ``seen`` (their plan holds at the facts version that made, returned too; any
        other unit's, at ``seen``)."""
        wanted = {d.key: d for part in parts.values() for d in part.messages}
        with self.store.atomic() as conn:
            revised = sorted({r.group for part in parts.values() for r in part.revisions})
            self.store.record_revisions(conn, [
                (r.group, r.meeting, r.revision.rev, r.revision.digest, r.revision.fields,
                 r.replaces, r.restart) for part in parts.values() for r in part.revisions],
                now)
            own, clean = self.store.bump_facts(conn, *revised, since=seen) if revised \
                else (seen, set())
            updated, withdrawn = self._diff(conn, list(parts), wanted, now)
            recorded = 0
            new = (d for part in parts.values() for d in part.messages
                   if d.key not in existing)
            while batch := [_row_values(d, now) for d in itertools.islice(new, self.batch)]:
                # a batch at a time, less those another worker did
                recorded += self.store.insert_rows(conn, ROW_COLUMNS, batch)
        return (recorded, updated, withdrawn), clean, own

    def _diff(self, conn: Any, units: Sequence[str], wanted: Mapping[str, Desired],
              now: datetime) -> tuple[int, int]:
        """Bring the recorded rows of ``units`` to ``wanted``, each change only while the row
        is as read (another worker may be sending it): (updated, withdrawn)."""
        updated = withdrawn = 0
        for rows in self.store.active_rows(conn, unit_ranges(units), self.batch * 2):
            for row in rows:
                key = row.key
                d = wanted.get(key)
                was = (row.state,)
                if row.state == "skipped_late":
                    if d is None or d.latest <= now or d.initial == "skipped_late":
                        continue  # still too late: it stays as it was recorded
                    updated += self.store.update_row(
                        conn, key, now, "timely again after an edit", expect=was,
                        state=d.initial, send_at=d.send_at, latest_at=d.latest,
                        subject=d.subject, reason=d.reason)
                    continue
                if d is None:
                    if row.state != "withdrawn":
                        withdrawn += self.store.update_row(conn, key, now,
                                                           "no longer in the plan",
                                                           expect=was, state="withdrawn")
                    continue
                values: dict[str, Any] = {}
                if row.state == "withdrawn":
                    values["state"] = d.initial
                if d.hold and row.state in ("planned", "retry"):
                    values["state"] = "held"
                if (row.send_at, row.latest_at, row.subject, row.reason,
                        row.recipient_name) != d.digest_fields():
                    values.update(send_at=d.send_at, latest_at=d.latest,
                                  subject=d.subject, reason=d.reason,
                                  recipient_name=d.recipient.name)
                if values:
                    updated += self.store.update_row(conn, key, now, "plan changed",
                                                     expect=was, **values)
        return updated, withdrawn

    # --- the messages of the plan -----------------------------------------------------------

    def desired(self, key: str) -> Desired | None:
        """The message the plan wants for ledger row ``key`` (None: no longer planned): from
        the units kept, or its unit planned again, as of the last planning."""
        unit = unit_of(key)
        known, found = self._units.kept(unit, key)
        if not known:
            return next((d for d in self.unit_plan(unit).messages if d.key == key), None)
        return found

    def unit_plan(self, unit: str, now: datetime | None = None) -> GroupPlan:
        """``unit``'s plan at ``now`` (by default as of the last planning), from its facts
        as they are; kept for sending (nothing is recorded)."""
        at = now or self._units.at
        if at is None or (unit != ACTIONS and group_of(unit) not in self.config.by_id):
            return GroupPlan((), (), None)
        log_ = self._action_log()
        chased = actions.Chased(self.config.groups, log_)
        state = snapshot.state(self.store, [group_of(unit)], others=self._units.others or (),
                               actions_of=log_)
        part = self._part(unit, state, at, chased, {})
        self._units.remember(unit, part)
        return part

    def messages(self, now: datetime | None = None) -> Iterator[Desired]:
        """Every message of the plan, unit by unit (each planned again, as :meth:`desired`
        does): for looking through, not for keeping."""
        for unit in (*units_of(self.config.by_id), ACTIONS):
            yield from self.unit_plan(unit, now).messages
