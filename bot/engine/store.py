"""The state store: the ledger and the facts clerk writes. No business rules live here.

SQLAlchemy Core; SQLite in WAL mode by default, any SQLAlchemy URL (PostgreSQL) by setting.
Every write happens inside :meth:`Store.atomic`. Ledger rows are never deleted: the ledger
is the audit log. Instants are stored as naive UTC and returned aware.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.engine import claims, connect, prepared
from bot.engine.action_facts import ActionFacts
from bot.engine.conflicts import insert_new, upsert
from bot.engine.desk_facts import DeskFacts
from bot.engine.facts import META_VALUE, Facts
from bot.engine.ledger_reads import LedgerReads
from bot.engine.schema import (  # noqa: F401  (re-exported: the tables live in bot/engine/schema.py)
    ACTIONS,
    ACTIVE,
    DELIVERED,
    EVERY,
    REVIVABLE,
    UTCDateTime,
    action_history,
    actions,
    bounces,
    events,
    fact_changes,
    inbox,
    invite_revisions,
    key_range,
    ledger,
    meta,
    metadata,
    migrations_table,
    nudges,
    proposals,
    rsvps,
    submissions,
)

# The PostgreSQL advisory lock held while migrating (any number that is clerk's own).
MIGRATION_LOCK = int.from_bytes(b"clerk:mg", "big")
# a migration may wait longer for another's, and run longer, than a tick may (seconds)
MIGRATION_WAIT = 600



log = logging.getLogger("clerk")


class Store(Facts, DeskFacts, ActionFacts, LedgerReads):
    """The database behind clerk. Open with a URL; :meth:`migrate` brings the schema up."""

    def __init__(self, url: str, *, lease: timedelta = timedelta(minutes=15),
                 lock_timeout: float = 10.0, statement_timeout: float = 60.0) -> None:
        self.url = url
        # who this process is in the claims it makes (bot/engine/claims.py), and how long
        # another host waits before it takes a claim whose maker it cannot see as gone
        self.claimant, self.lease = str(claims.me()), lease
        self.timeouts = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
        self.engine: Engine = connect.engine(url, self.timeouts)
        self._held = threading.local()  # the connection a thread holds (held()), if any

    @contextmanager
    def atomic(self, conn: Connection | None = None) -> Iterator[Connection]:
        """One transaction; within ``conn``'s, when one is given. On the connection this
        thread holds (:meth:`held`) when it is free, else on one from the pool."""
        if conn is not None:
            yield conn
            return
        held: Connection | None = getattr(self._held, "conn", None)
        if held is not None and not held.in_transaction():
            try:
                with held.begin():
                    yield held
            except BaseException:
                # not used again: a failed COMMIT can leave SQLite in the transaction while
                # SQLAlchemy says it is over; closed, the pool's reset rolls it back
                self._held.conn = None
                held.close()
                raise
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def held(self) -> Iterator[None]:
        """Within it, this thread's transactions share one connection instead of taking one
        from the pool each time (a tick's sending: ≈ 100 µs a message). Between them it
        holds no transaction and no lock."""
        if getattr(self._held, "conn", None) is not None:  # already held: the outer one's
            yield
            return
        with self.engine.connect() as conn:
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; return their names. Several processes may
        start at once on a new store: one migrates, holding the store's migration lock (a
        PostgreSQL advisory lock; SQLite's write lock, taken at BEGIN IMMEDIATE), the others
        wait for it and then find nothing left to do. A store already up to date is only
        read."""
        from bot.engine.migrations import apply, pending

        with self.engine.connect() as conn:
            if not pending(conn):
                return []
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={MIGRATION_WAIT * 1000}")
                conn.commit()  # (SQLAlchemy began its transaction: nothing to commit)
            try:
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {MIGRATION_WAIT * 1000}")
                        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"),
                                     {"id": MIGRATION_LOCK})
                    elif sqlite:
                        # pysqlite begins a transaction only before a write, and runs DDL
                        # outside one: begun here, the tables are created inside it, one first
                        # start at a time
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                    return apply(conn)
            finally:
                if sqlite:
                    ms = int(self.timeouts["lock_timeout"] * 1000)
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={ms}")

    # --- facts the planner reads -------------------------------------------------------

    def facts_version(self) -> int:
        return int(self.meta_value("facts") or 0)

    def bump_facts(self, conn: Connection, *units: str,
                   since: int | None = None) -> tuple[int, set[str]]:
        """Record that facts the planner reads have changed: the facts version goes up, and
        each of ``units`` (group ids, :data:`EVERY` or :data:`ACTIONS`; :data:`EVERY` when
        none is named) is noted as changed at it, so only those are planned again. Returns
        the new version and, with ``since``, those of ``units`` nobody else changed after
        it (the version goes up first: other writers wait for this one from then on)."""
        upsert(conn, meta, {"name": "facts", "value": "1"}, ["name"],
               {"value": sa.cast(sa.cast(meta.c.value, sa.Integer) + 1, sa.Text)})
        version = int(conn.execute(META_VALUE, {"name": "facts"}).scalar_one())
        named = sorted(set(units) or {EVERY})
        clean: set[str] = set()
        if since is not None:
            later = set(conn.execute(sa.select(fact_changes.c.unit).where(
                fact_changes.c.unit.in_([*named, EVERY]), fact_changes.c.version > since))
                .scalars())
            clean = set() if EVERY in later else set(named) - later
        for unit in named:
            upsert(conn, fact_changes, {"unit": unit, "version": version}, ["unit"],
                   {"version": version})
        return version, clean

    def facts_changed(self, since: int) -> dict[str, int]:
        """The units whose facts changed after version ``since``, and at which version."""
        with self.engine.connect() as conn:
            return {u: v for u, v in conn.execute(_FACTS_CHANGED, {"since": since})}

    def record_revisions(self, conn: Connection, revisions: Sequence[Sequence[Any]],
                         now: datetime) -> None:
        """Record invitation revisions, each ``(group, meeting, rev, digest, fields, replaces,
        restart)``: a new one inserted (unless another worker recorded it at the same
        moment), or the one it ``replaces`` changed (``restart``: an update edited again,
        whose settle window starts over)."""
        new = []
        for group, meeting, rev, digest, fields, replaces, restart in revisions:
            values: dict[str, Any] = {"digest": digest,
                                      "fields": json.dumps(fields, sort_keys=True)}
            if not replaces:
                new.append({"group_id": group, "meeting_id": meeting, "rev": rev,
                            "created_at": now, **values})
                continue
            if restart:
                values["created_at"] = now
            conn.execute(invite_revisions.update().where(
                invite_revisions.c.group_id == group, invite_revisions.c.meeting_id == meeting,
                invite_revisions.c.rev == rev).values(**values))
        if new:  # one statement for a batch of groups' new revisions
            prepared.insert_rows(conn.dialect.name, tuple(sorted(new[0])), invite_revisions,
                                 ("group_id", "meeting_id", "rev")).many(conn, new)

    # --- the ledger --------------------------------------------------------------------

    def active_rows(self, conn: Connection, ranges: Sequence[tuple[str, Any]],
                    batch: int = 10_000) -> Iterator[list[Any]]:
        """The ledger rows of ``ranges`` (a few units' key ranges and the condition that
        picks their rows there: bot/engine/units.py ``unit_ranges``) a plan may still change
        (not sent, or revivable), ``batch`` at a time in the order of their keys, each page
        read from where the last ended by the key's index: the units' rows are never all in
        memory at once, each is read once, and the caller may update the rows of one batch
        before the next is read."""
        cols = [ledger.c.id, ledger.c.key, ledger.c.state, ledger.c.send_at,
                ledger.c.latest_at, ledger.c.subject, ledger.c.reason, ledger.c.recipient_name]
        for prefix, only in ranges:
            # the state through a function, so that the rows are found by the key's index
            # rather than through the state's
            q = sa.select(*cols).where(
                sa.func.coalesce(ledger.c.state, "").in_(ACTIVE + REVIVABLE),
                key_range(prefix, sa.bindparam("last")), *(() if only is None else (only,)),
            ).order_by(ledger.c.key).limit(batch)
            last = prefix
            while page := list(conn.execute(q, {"last": last})):
                yield page
                last = page[-1].key

    def group_ids(self) -> set[str]:
        """The groups that have rows in the ledger."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(ledger.c.group_id).distinct()).scalars())

    def insert_rows(self, conn: Connection, columns: tuple[str, ...],
                    rows: Sequence[Sequence[Any]]) -> int:
        """Insert ledger rows, each the values of ``columns`` in their order; a key already
        there (another worker's) is left as it is. Each row's history begins with the row
        itself (:meth:`history`): its ``first_state`` is the state it is inserted in.
        Returns how many were inserted."""
        return prepared.insert_rows(conn.dialect.name, columns).many(conn, rows,
                                                                       by_position=True)

    def update_row(self, conn: Connection, key: str, now: datetime, detail: str = "",
                   expect: Sequence[str] = (), **values: Any) -> bool:
        """Change the row ``key`` (and record a change of state in its history); with
        ``expect``, only while its state is one of those — another worker may have moved it
        since it was read. Whether it was changed."""
        if any(isinstance(v, sa.ClauseElement) for v in values.values()):
            q = ledger.update().where(ledger.c.key == key)
            if expect:
                q = q.where(ledger.c.state.in_(list(expect)))
            changed = conn.execute(q.values(updated_at=now, **values,
                                            **prepared.first_reason(values))).rowcount
        else:  # one statement per set of columns, built once: sending is mostly this
            changed = prepared.update_of(tuple(sorted(values)), len(expect))(conn, {
                "b_key": key, "b_updated_at": now, **{f"b_{k}": v for k, v in values.items()},
                **{f"b_expect{n}": state for n, state in enumerate(expect)}})
        if changed and "state" in values:
            prepared.ADD_EVENT(conn, {"key": key, "at": now, "state": values["state"],
                              "detail": detail})
        return bool(changed)

    def due_keys(self, now: datetime, limit: int = 1000) -> list[Any]:
        """Rows whose send time has come, oldest first (an index range scan)."""
        with self.engine.connect() as conn:
            return [r for r in conn.execute(_DUE, {"now": now, "limit": limit})
                    if r.state != "retry" or r.next_attempt_at is None
                    or r.next_attempt_at <= now]

    def pending(self, now: datetime) -> list[Any]:
        """Per group, what is still to go: the earliest time a row may go after ``now``
        (``ahead``: its send time, or its retry time), whether a row is already due but
        waiting (``waiting``: a send window shut, say) and the earliest latest time of any
        row still to go (``latest``). For stepping simulated time (bot/engine/simulate.py)."""
        with self.engine.connect() as conn:
            return list(conn.execute(_PENDING, {"now": now}))

    def claim(self, key: str, now: datetime, message_id: str, transport: str,
              conn: Connection | None = None) -> bool:
        """Move one row to ``sending``; False when another worker got it first. The claim
        names this process (:attr:`claimant`), the wall-clock time and the end of its lease,
        so another process can tell a row in flight from one left behind by a crash."""
        wall = datetime.now(UTC)
        with self.atomic(conn) as conn:
            got = prepared.CLAIM(conn, {"b_key": key, "b_now": now, "b_message_id": message_id,
                                "b_transport": transport, "b_by": self.claimant,
                                "b_at": wall, "b_until": wall + self.lease})
            if got:
                prepared.ADD_EVENT(conn, {"key": key, "at": now, "state": "sending", "detail": ""})
            return bool(got)

    def lock(self, name: str) -> bool:
        """Take the lock ``name`` (a meta row naming this process and the end of its lease);
        False while another process holds it that may be at work. One left by a process
        that is gone, or past its lease, is taken over."""
        wall = datetime.now(UTC)
        key, mine = f"lock:{name}", f"{self.claimant}@{(wall + self.lease).isoformat()}"
        with self.atomic() as conn:
            if insert_new(conn, meta, {"name": key, "value": mine}, ["name"]):
                return True
            held = conn.execute(sa.select(meta.c.value).where(meta.c.name == key)).scalar()
            if held is None:  # let go meanwhile: free for the next try
                return False
            holder, _, until = str(held).rpartition("@")
            if claims.at_work(holder, datetime.fromisoformat(until), wall, self.claimant):
                return False
            return bool(conn.execute(meta.update().where(
                meta.c.name == key, meta.c.value == held).values(value=mine)).rowcount)

    def unlock(self, name: str) -> None:
        with self.atomic() as conn:
            conn.execute(meta.delete().where(meta.c.name == f"lock:{name}",
                                             meta.c.value.startswith(f"{self.claimant}@")))

    @contextmanager
    def locked(self, name: str) -> Iterator[bool]:
        """``with store.locked(name) as got``: whether the lock was taken; let go after."""
        got = self.lock(name)
        try:
            yield got
        finally:
            if got:
                self.unlock(name)

    def set_state(self, keys: Sequence[str], from_states: Sequence[str], to_state: str,
                  now: datetime, detail: str, **values: Any) -> list[str]:
        """Move the rows whose key is in ``keys`` (or starts with an entry ending in "/")
        from one of ``from_states`` to ``to_state``; return the keys moved."""
        moved: list[str] = []
        with self.atomic() as conn:
            for key in keys:
                match = ledger.c.key.startswith(key, autoescape=True) if key.endswith("/") \
                    else ledger.c.key == key
                rows = conn.execute(sa.select(ledger.c.key).where(
                    match, ledger.c.state.in_(from_states))).scalars().all()
                moved += [k for k in rows if self.update_row(  # unless a worker claimed it
                    conn, k, now, detail, expect=from_states, state=to_state, **values)]
            if moved:  # what is held or undelivered is a fact of their groups' plans
                self.bump_facts(conn, *self.groups_of(conn, moved))
        return moved

    def mark_notified(self, conn: Connection, keys: Sequence[str], now: datetime) -> None:
        if keys:
            conn.execute(ledger.update().where(ledger.c.key.in_(list(keys)))
                         .values(notified_at=now))
            self.bump_facts(conn, *self.groups_of(conn, keys))

    def groups_of(self, conn: Connection, keys: Sequence[str]) -> set[str]:
        """The groups of these ledger rows (whose undelivered digest they are in)."""
        return set(conn.execute(sa.select(ledger.c.group_id).where(
            ledger.c.key.in_(list(keys)))).scalars())

    def in_doubt(self) -> list[Any]:
        """Rows left in ``sending`` by a process that is gone: one this host can tell has
        ended (bot/engine/claims.py), or one whose lease has run out. A row another process
        may be sending right now is not in doubt. Before settling one, :meth:`take_over`."""
        wall = datetime.now(UTC)
        with self.engine.connect() as conn:
            rows = list(conn.execute(_SENDING))
        return [r for r in rows if not claims.at_work(
            r.claimed_by, r.lease_until or (r.claimed_at and r.claimed_at + self.lease), wall,
            self.claimant)]

    def take_over(self, row: Any) -> bool:
        """Claim ``row``, found in doubt, for this process — unless another worker took it
        over (or settled it) since it was read: of several workers recovering one row, one
        does (only one UPDATE finds the row as it was)."""
        wall = datetime.now(UTC)
        with self.atomic() as conn:
            return bool(conn.execute(ledger.update().where(
                ledger.c.key == row.key, ledger.c.state == "sending",
                ledger.c.attempts == row.attempts,
                ledger.c.claimed_by.is_not_distinct_from(row.claimed_by),
            ).values(claimed_by=self.claimant, claimed_at=wall,
                     lease_until=wall + self.lease)).rowcount)

    def dispose(self) -> None:
        self.engine.dispose()


# The statements of the worker's every tick, built once (building one costs more than running
# it on a small store); their values are bound parameters.
_FACTS_CHANGED = sa.select(fact_changes.c.unit, fact_changes.c.version).where(
    fact_changes.c.version > sa.bindparam("since"))
_NOW: Any = sa.bindparam("now", type_=ledger.c.send_at.type)
_DUE = sa.select(
    ledger.c.key, ledger.c.state, ledger.c.latest_at, ledger.c.next_attempt_at,
    ledger.c.attempts, ledger.c.last_error, ledger.c.group_id, ledger.c.message_id).where(
    ledger.c.state.in_(("planned", "retry")), ledger.c.send_at <= _NOW,
).order_by(ledger.c.send_at, ledger.c.key).limit(sa.bindparam("limit", type_=sa.Integer))
_AT = sa.case((ledger.c.state == "retry",
               sa.func.coalesce(ledger.c.next_attempt_at, ledger.c.send_at)),
              else_=ledger.c.send_at)
_PENDING = sa.select(
    ledger.c.group_id,
    sa.func.min(sa.case((_AT > _NOW, _AT))).label("ahead"),
    sa.func.max(sa.case((_AT <= _NOW, 1), else_=0)).label("waiting"),
    sa.func.min(sa.case((ledger.c.latest_at >= _NOW, ledger.c.latest_at))).label("latest"),
).where(ledger.c.state.in_(("planned", "retry"))).group_by(ledger.c.group_id)
_SENDING = sa.select(ledger).where(ledger.c.state == "sending")
