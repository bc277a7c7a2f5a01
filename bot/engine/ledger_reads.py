"""Reading the ledger for people: its rows by key, group, state or time (streamed, for a ledger
of any size), a row's history, and the counts and batches ``clerk status`` shows — queries,
never a re-plan. A mixin of :class:`bot.engine.store.Store`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.engine.facts import Part
from bot.engine.schema import events, ledger


class LedgerReads(Part):
    """The ledger as people read it."""

    def row(self, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(ledger).where(ledger.c.key == key)).first()

    def rows_of(self, keys: Sequence[str]) -> dict[str, Any]:
        """The rows of ``keys`` (those there), by key: a few queries, not one a key."""
        found: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                found.update((r.key, r) for r in conn.execute(
                    _ROWS_OF, {"keys": keys[i:i + 500]}))
        return found


    def rows(self, *, group: str | None = None, states: Sequence[str] | None = None,
             since: datetime | None = None, until: datetime | None = None) -> list[Any]:
        return list(self.stream_rows(group=group, states=states, since=since, until=until))


    def stream_rows(self, *, group: str | None = None, states: Sequence[str] | None = None,
                    since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Any]:
        """The ledger's rows, by send time, fetched a few hundred at a time (PostgreSQL: a
        server-side cursor): a ledger of any size read in little memory (``clerk log``)."""
        q = sa.select(ledger)
        if group:
            q = q.where(ledger.c.group_id == group)
        if states:
            q = q.where(ledger.c.state.in_(states))
        if since:
            q = q.where(ledger.c.send_at >= since)
        if until:
            q = q.where(ledger.c.send_at < until)
        with self.engine.connect() as conn:
            yield from conn.execution_options(stream_results=True, yield_per=500).execute(
                q.order_by(ledger.c.send_at, ledger.c.key))


    def by_state(self, now: datetime, group: str | None = None) -> list[Any]:
        """The rows not withdrawn, counted by state, a ``planned`` row told apart by whether
        its send time is ``ahead`` and its latest time ``past`` at ``now`` (``clerk status``,
        without a re-plan)."""
        ahead = sa.case((ledger.c.send_at > now, True), else_=False).label("ahead")
        past = sa.case((ledger.c.latest_at < now, True), else_=False).label("past")
        q = sa.select(ledger.c.state, ahead, past, sa.func.count().label("n")).where(
            ledger.c.state != "withdrawn").group_by(ledger.c.state, ahead, past)
        if group:
            q = q.where(ledger.c.group_id == group)
        with self.engine.connect() as conn:
            return list(conn.execute(q))


    def next_batches(self, now: datetime, group: str | None = None,
                     limit: int = 5) -> list[Any]:
        """The first ``limit`` batches still to go — rows planned (and not past their latest
        time), to retry or held, by send time, group, meeting, rule, kind and state — with
        their number of messages (``clerk status``, without a re-plan)."""
        c = ledger.c
        columns = (c.send_at, c.group_id, c.meeting_id, c.rule_id, c.kind, c.state)
        q = sa.select(*columns, sa.func.count().label("n")).where(
            c.state.in_(("planned", "retry", "held")),
            sa.or_(c.state != "planned", c.latest_at >= now),
        ).group_by(*columns).order_by(*columns).limit(limit)
        if group:
            q = q.where(c.group_id == group)
        with self.engine.connect() as conn:
            return list(conn.execute(q))


    def history(self, key: str) -> list[Any]:
        """The row's history, oldest first (``at``, ``state``, ``detail``): the row as it was
        first recorded, then each change of its state (its events). A row recorded before
        migration 0017 has no first state: its first event is where its history begins."""
        first = sa.select(ledger.c.created_at.label("at"), ledger.c.first_state.label("state"),
                          sa.func.coalesce(ledger.c.first_reason, ledger.c.reason).label(
                              "detail"), sa.literal(0).label("n")).where(
            ledger.c.key == key, ledger.c.first_state.is_not(None))
        later = sa.select(events.c.at, events.c.state, events.c.detail,
                          events.c.id.label("n")).where(events.c.key == key)
        with self.engine.connect() as conn:
            return list(conn.execute(sa.union_all(first, later).order_by("n")))


    def counts(self, group: str | None = None) -> dict[str, int]:
        q = sa.select(ledger.c.state, sa.func.count()).group_by(ledger.c.state)
        if group:
            q = q.where(ledger.c.group_id == group)
        with self.engine.connect() as conn:
            return {state: n for state, n in conn.execute(q)}


_ROWS_OF = sa.select(ledger).where(ledger.c.key.in_(sa.bindparam("keys", expanding=True)))
