"""The facts of the admin's desk by mail (bot/engine/desk.py): the minutes she mails, the
questions their import leaves for her, and her decisions on a meeting's pack and minutes. A
mixin of :class:`bot.engine.store.Store`, like bot/engine/facts.py: every write is atomic and
bumps the facts version, so the planner plans again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.engine.facts import Part
from bot.engine.schema import decisions, mailed_minutes, questions


class DeskFacts(Part):
    """Minutes she mailed, their questions, her decisions."""

    # --- minutes by mail ---------------------------------------------------------------------

    def add_mailed_minutes(self, values: dict[str, Any],
                           asked: Sequence[dict[str, Any]]) -> int:
        """Record minutes she mailed and the questions their import leaves (``asked``: each
        ``n``, ``text``, ``choices`` and ``pending``), in one transaction."""
        with self.atomic() as conn:
            inserted = conn.execute(mailed_minutes.insert().values(**values)
                                    ).inserted_primary_key
            assert inserted is not None
            minutes_id = int(inserted[0])
            for q in asked:
                conn.execute(questions.insert().values(
                    group_id=values["group_id"], meeting_id=values["meeting_id"],
                    minutes_id=minutes_id, n=q["n"], text=q["text"],
                    choices=json.dumps(q["choices"]), pending=json.dumps(q["pending"],
                                                                         default=str)))
            self.bump_facts(conn, values["group_id"])
        return minutes_id

    def mailed_minutes(self, group: str | None = None) -> list[Any]:
        """Every minutes file mailed, oldest first."""
        q = sa.select(mailed_minutes).order_by(mailed_minutes.c.id)
        if group is not None:
            q = q.where(mailed_minutes.c.group_id == group)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def questions(self, minutes_id: int | None = None, *, group: str | None = None,
                  open_only: bool = False) -> list[Any]:
        q = sa.select(questions).order_by(questions.c.minutes_id, questions.c.n)
        if minutes_id is not None:
            q = q.where(questions.c.minutes_id == minutes_id)
        if group is not None:
            q = q.where(questions.c.group_id == group)
        if open_only:
            q = q.where(questions.c.answer.is_(None))
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def answer_question(self, question_id: int, answer: str, who: str, now: datetime,
                        conn: Connection) -> bool:
        """Record the answer, in the caller's transaction; False when it was answered
        already (nothing is applied twice)."""
        done = conn.execute(questions.update().where(
            (questions.c.id == question_id) & questions.c.answer.is_(None)).values(
            answer=answer[:2000], answered_by=who[:320], answered_at=now))
        return bool(done.rowcount)

    # --- decisions ---------------------------------------------------------------------------

    def decide(self, group: str, meeting: str, subject: str, decision: str, version: str,
               who: str, via: str, now: datetime, conn: Connection | None = None) -> None:
        values = dict(group_id=group, meeting_id=meeting, subject=subject,
                      decision=decision, version=version[:64], who=who[:320], via=via[:400],
                      at=now)
        if conn is not None:
            conn.execute(decisions.insert().values(**values))
            self.bump_facts(conn, group)
            return
        with self.atomic() as c:
            c.execute(decisions.insert().values(**values))
            self.bump_facts(c, group)

    def decisions(self, group: str | None = None) -> list[Any]:
        q = sa.select(decisions).order_by(decisions.c.id)
        if group is not None:
            q = q.where(decisions.c.group_id == group)
        with self.engine.connect() as conn:
            return list(conn.execute(q))
