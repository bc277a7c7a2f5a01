"""Named schema migrations, applied in order and recorded in the ``migrations`` table.

Add a migration by appending a function to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.engine import schema as s


def _add_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    """Add to ``table`` those of ``columns`` (name → SQL type) it lacks: a store made by an
    older clerk lacks them, a new one was made with them (0001_initial)."""
    there = {c["name"] for c in sa.inspect(conn).get_columns(table)}
    for name, kind in columns.items():
        if name not in there:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


def _initial(conn: Connection) -> None:
    # a new store gets today's tables; later migrations then find nothing to add
    for table in (s.meta, s.ledger, s.events, s.invite_revisions, s.submissions, s.rsvps,
                  s.bounces, s.inbox, s.actions, s.action_history, s.nudges, s.proposals,
                  s.calendar_items, s.roster, s.quarantine):
        table.create(conn, checkfirst=True)


def _delivery_failures(conn: Connection) -> None:
    """When a row first failed (it is parked after ``park_after``) and when the admin was
    told about it."""
    _add_columns(conn, "ledger", {"first_failed_at": "TIMESTAMP", "notified_at": "TIMESTAMP"})


def _listening(conn: Connection) -> None:
    """What the mailbox tells clerk: RSVPs, bounces, and a log of every message read."""
    for table in (s.rsvps, s.bounces, s.inbox):
        table.create(conn, checkfirst=True)
    indexes = {i["name"] for i in sa.inspect(conn).get_indexes("ledger")}
    if "ix_ledger_message_id" not in indexes:
        conn.execute(sa.text("CREATE INDEX ix_ledger_message_id ON ledger (message_id)"))


def _actions(conn: Connection) -> None:
    """The action log: what each meeting asked of whom, and every change to it."""
    for table in (s.actions, s.action_history):
        table.create(conn, checkfirst=True)


def _nudges(conn: Connection) -> None:
    """Long-horizon nudges: subjects the group asked to come back to within a window."""
    s.nudges.create(conn, checkfirst=True)
    s.proposals.create(conn, checkfirst=True)


def _claims(conn: Connection) -> None:
    """Who claimed a row in ``sending``, and when by the wall clock: a row another live
    process is sending is not in doubt."""
    _add_columns(conn, "ledger", {"claimed_by": "VARCHAR(200)", "claimed_at": "TIMESTAMP"})


def _calendar_items(conn: Connection) -> None:
    """The calendar items a server holds for a meeting (transports exchange and graph)."""
    s.calendar_items.create(conn, checkfirst=True)


def _trust(conn: Connection) -> None:
    """Listening you can trust: the start an RSVP answered (a moved meeting's earlier answers
    are stale), the roster row a bounce was for (not mailed again until it changes), and
    an index to find a message read before (a second delivery is not applied twice)."""
    _add_columns(conn, "rsvps", {"for_start": "VARCHAR(40)"})
    _add_columns(conn, "bounces", {"row": "VARCHAR(64)"})
    if "ix_inbox_message_id" not in {i["name"] for i in sa.inspect(conn).get_indexes("inbox")}:
        conn.execute(sa.text("CREATE INDEX ix_inbox_message_id ON inbox (message_id)"))


def _roster(conn: Connection) -> None:
    """When each roster row last changed: a newcomer, a changed address and a removal wait
    for the settle window from their own last edit."""
    s.roster.create(conn, checkfirst=True)


def _quarantine(conn: Connection) -> None:
    """Attachments kept back from the agenda packs (not an allowed type, or over a limit),
    with the reason, for the admin."""
    s.quarantine.create(conn, checkfirst=True)


def _replies(conn: Connection) -> None:
    """Answers clerk owes the people who wrote to it: "which action did you mean?", and the
    confirmations of what it did."""
    s.replies.create(conn, checkfirst=True)


def _desk(conn: Connection) -> None:
    """The admin's desk by mail: minutes she mails, the questions their import leaves for
    her, her decisions on packs and minutes, and what each answer clerk owes is about."""
    for table in (s.mailed_minutes, s.questions, s.decisions):
        table.create(conn, checkfirst=True)
    _add_columns(conn, "replies", {"about": "VARCHAR(100) NOT NULL DEFAULT ''"})


def _once(conn: Connection) -> None:
    """Answers owed and attachments kept back are recorded once each, though two workers
    read the same message at once: a digest of what each is, unique."""
    for table in ("replies", "quarantine"):
        _add_columns(conn, table, {"digest": "VARCHAR(64)"})
        if f"ux_{table}_digest" not in {i["name"] for i in sa.inspect(conn).get_indexes(table)}:
            conn.execute(sa.text(f"CREATE UNIQUE INDEX ux_{table}_digest ON {table} (digest)"))


def _leases(conn: Connection) -> None:
    """A claim's lease: until when the worker that claimed a row may keep it in ``sending``
    before another host takes it as in doubt (one on the claimant's host can tell sooner)."""
    _add_columns(conn, "ledger", {"lease_until": "TIMESTAMP"})


def _assigned(conn: Connection) -> None:
    """When an action's owners were last changed (the new owner's chasing starts then)."""
    _add_columns(conn, "actions", {"assigned_at": "TIMESTAMP"})


def _fact_changes(conn: Connection) -> None:
    """Which units' facts changed at which facts version: a worker plans again only those."""
    s.fact_changes.create(conn, checkfirst=True)


def _first_state(conn: Connection) -> None:
    """A row's history begins with the row itself (its first state and reason), not with an
    event of its own: recording a plan writes one row a message, not two."""
    _add_columns(conn, "ledger", {"first_state": "VARCHAR(20)", "first_reason": "TEXT"})


def _key_order(conn: Connection) -> None:
    """Ledger keys ordered by code point on PostgreSQL too (its collation "C"), as on
    SQLite: a unit's rows are read as the range of keys under its group's (a database's
    default collation may sort ``/`` and ``0`` otherwise, or ignore punctuation)."""
    if conn.dialect.name != "postgresql":
        return
    found = conn.execute(sa.text(
        "SELECT collation_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'ledger' AND column_name = 'key'")).scalar()
    if found != "C":
        conn.execute(sa.text('ALTER TABLE ledger ALTER COLUMN key TYPE VARCHAR(500) COLLATE "C"'))


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_initial", _initial),
    ("0002_delivery_failures", _delivery_failures),
    ("0003_listening", _listening),
    ("0004_actions", _actions),
    ("0005_nudges", _nudges),
    ("0006_claims", _claims),
    ("0007_calendar_items", _calendar_items),
    ("0008_trust", _trust),
    ("0009_roster", _roster),
    ("0010_quarantine", _quarantine),
    ("0011_replies", _replies),
    ("0012_desk", _desk),
    ("0013_once", _once),
    ("0014_leases", _leases),
    ("0015_assigned", _assigned),
    ("0016_fact_changes", _fact_changes),
    ("0017_first_state", _first_state),
    ("0018_key_order", _key_order),
]


def pending(conn: Connection) -> list[str]:
    """The migrations not yet recorded (reads only: a store already up to date is never
    locked, nor written, to find out)."""
    if not sa.inspect(conn).has_table(s.migrations_table.name):
        return [name for name, _ in MIGRATIONS]
    done = set(conn.execute(sa.select(s.migrations_table.c.name)).scalars())
    return [name for name, _ in MIGRATIONS if name not in done]


def apply(conn: Connection) -> list[str]:
    """Apply every migration not yet recorded, in the transaction ``conn`` is in; return the
    names applied. The caller holds the store's migration lock (``Store.migrate``): two
    first starts at once must not both create the tables."""
    applied: list[str] = []
    s.migrations_table.create(conn, checkfirst=True)
    done = set(conn.execute(sa.select(s.migrations_table.c.name)).scalars())
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(conn)
        conn.execute(s.migrations_table.insert().values(name=name,
                                                        applied_at=datetime.now(UTC)))
        applied.append(name)
    return applied
