"""The action log, nudges and agenda proposals as the store keeps them: added by hand or from
minutes, changed by their owners and the admin, each change in the action's history. A mixin of
:class:`bot.engine.store.Store`, like bot/engine/facts.py: every write is atomic and bumps the
facts version, so the planner plans again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.engine.facts import Part
from bot.engine.schema import ACTIONS, action_history, actions, nudges, proposals


class ActionFacts(Part):
    """The action log, nudges and proposals."""

    def add_action(self, values: dict[str, Any], who: str, via: str, now: datetime) -> int:
        with self.atomic() as conn:
            inserted = conn.execute(actions.insert().values(
                **{"status": "open", **values, "owners": json.dumps(list(values["owners"]))},
                created_at=now)).inserted_primary_key
            assert inserted is not None
            new_id = inserted[0]
            conn.execute(action_history.insert().values(action_id=new_id, at=now, who=who,
                                                        what="added", via=via))
            self.bump_facts(conn, ACTIONS, values["group_id"])
        return int(new_id)

    def sources(self) -> set[str]:
        """The sources of every action and nudge (what minutes imports already made)."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(actions.c.source)).scalars()) | set(
                conn.execute(sa.select(nudges.c.source)).scalars())

    def import_minutes(self, rows: Sequence[dict[str, Any]], nudge_rows: Sequence[dict[str, Any]],
                       who: str, via: str, now: datetime) -> list[int]:
        """Record the actions and nudges of one minutes file, all or nothing."""
        ids: list[int] = []
        with self.atomic() as conn:
            for values in rows:
                inserted = conn.execute(actions.insert().values(
                    **{**values, "owners": json.dumps(list(values["owners"]))},
                    created_at=now)).inserted_primary_key
                assert inserted is not None
                ids.append(int(inserted[0]))
                conn.execute(action_history.insert().values(
                    action_id=ids[-1], at=now, who=who, what="added", via=via))
            if nudge_rows:
                conn.execute(nudges.insert(), [dict(n, created_at=now) for n in nudge_rows])
            self.bump_facts(conn, ACTIONS, *{v["group_id"] for v in (*rows, *nudge_rows)})
        return ids

    def add_nudge(self, values: dict[str, Any], now: datetime) -> int:
        with self.atomic() as conn:
            inserted = conn.execute(nudges.insert().values(**values, created_at=now)
                                    ).inserted_primary_key
            assert inserted is not None
            self.bump_facts(conn, values["group_id"])
        return int(inserted[0])

    def propose(self, group: str, meeting: str, email: str, item: str, now: datetime) -> None:
        with self.atomic() as conn:
            conn.execute(proposals.insert().values(group_id=group, meeting_id=meeting,
                                                   email=email, item=item, at=now))
            self.bump_facts(conn, group)

    def proposals(self) -> list[tuple[str, str, str, str]]:
        with self.engine.connect() as conn:
            return [(r.group_id, r.meeting_id, r.email, r.item) for r in conn.execute(
                sa.select(proposals).order_by(proposals.c.id))]

    def import_actions(self, rows: Sequence[dict[str, Any]], who: str, via: str,
                       now: datetime) -> tuple[int, int]:
        """New actions and updates from a CSV, all or nothing: (added, updated)."""
        added = updated = 0
        with self.atomic() as conn:
            changed = {ACTIONS}  # the groups of the actions before and after
            for row in rows:
                values = {k: v for k, v in row.items() if k != "id"}
                values["owners"] = json.dumps(list(values["owners"]))
                if row["id"] is None:
                    inserted = conn.execute(actions.insert().values(
                        **values, created_at=now, source=via)).inserted_primary_key
                    assert inserted is not None
                    action_id, what = int(inserted[0]), "added"
                    added += 1
                else:
                    changed |= _groups_of(conn, [row["id"]])
                    conn.execute(actions.update().where(actions.c.id == row["id"])
                                 .values(**values))
                    action_id, what = row["id"], "updated from a spreadsheet"
                    updated += 1
                conn.execute(action_history.insert().values(action_id=action_id, at=now,
                                                            who=who, what=what, via=via))
                if "group_id" in values:
                    changed.add(values["group_id"])
            self.bump_facts(conn, *changed)
        return added, updated

    def nudges(self, group: str | None = None) -> list[Any]:
        q = sa.select(nudges).order_by(nudges.c.id)
        if group:
            q = q.where(nudges.c.group_id == group)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def change_action(self, action_id: int, what: str, who: str, via: str, now: datetime,
                      **values: Any) -> None:
        with self.atomic() as conn:
            if values:
                conn.execute(actions.update().where(actions.c.id == action_id).values(**values))
            conn.execute(action_history.insert().values(action_id=action_id, at=now, who=who,
                                                        what=what, via=via))
            self.bump_facts(conn, ACTIONS, *_groups_of(conn, [action_id]))

    def action_rows(self, group: str | None = None) -> list[Any]:
        """The action log's rows (bot/engine/snapshot.py makes them :class:`Action` values)."""
        q = sa.select(actions).order_by(actions.c.id)
        if group:
            q = q.where(actions.c.group_id == group)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def action_history(self, action_id: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(action_history).where(
                action_history.c.action_id == action_id).order_by(action_history.c.id)))


def _groups_of(conn: Connection, ids: Sequence[int]) -> set[str]:
    """The groups of these actions."""
    return set(conn.execute(sa.select(actions.c.group_id).where(actions.c.id.in_(list(ids)))
                            ).scalars())
