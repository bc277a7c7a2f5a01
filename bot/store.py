"""The state store: the ledger and the facts clerk writes. No business rules live here.

SQLAlchemy Core; SQLite in WAL mode by default, any SQLAlchemy URL (PostgreSQL) by setting.
Every write happens inside :meth:`Store.atomic`. Ledger rows are never deleted: the ledger
is the audit log. Instants are stored as naive UTC and returned aware.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.invites import Held
from bot.model import Action, Nudge, Revision


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

migrations_table = sa.Table(
    "migrations", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

meta = sa.Table(
    "meta", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# States: planned → sending → sent | retry | failed | parked; skipped_late; held; withdrawn
# (no longer desired before it went: a member removed, a revision superseded).
ledger = sa.Table(
    "ledger", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(500), nullable=False, unique=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("meeting_id", sa.String(100), nullable=False),
    sa.Column("rule_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("recipient_name", sa.String(300), nullable=False, default=""),
    sa.Column("revision", sa.Integer, nullable=True),
    sa.Column("sequence", sa.Integer, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("send_at", UTCDateTime, nullable=False),
    sa.Column("latest_at", UTCDateTime, nullable=False),
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("message_id", sa.String(300), nullable=True),
    sa.Column("transport", sa.String(30), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("first_failed_at", UTCDateTime, nullable=True),  # 0002_delivery_failures
    sa.Column("notified_at", UTCDateTime, nullable=True),  # 0002_delivery_failures
    sa.Column("claimed_by", sa.String(200), nullable=True),  # 0006_claims: host:pid
    sa.Column("claimed_at", UTCDateTime, nullable=True),  # 0006_claims: the wall clock
    sa.Index("ix_ledger_state_send", "state", "send_at"),
    sa.Index("ix_ledger_group_meeting", "group_id", "meeting_id", "rule_id"),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(500), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)

invite_revisions = sa.Table(
    "invite_revisions", metadata,
    sa.Column("group_id", sa.String(100), primary_key=True),
    sa.Column("meeting_id", sa.String(100), primary_key=True),
    sa.Column("rev", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

submissions = sa.Table(
    "submissions", metadata,
    sa.Column("group_id", sa.String(100), primary_key=True),
    sa.Column("meeting_id", sa.String(100), primary_key=True),
    sa.Column("rule_id", sa.String(100), primary_key=True),
    sa.Column("organisation", sa.String(300), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),  # submitted | nil
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("source", sa.Text, nullable=False, default=""),
)

rsvps = sa.Table(
    "rsvps", metadata,
    sa.Column("group_id", sa.String(100), primary_key=True),
    sa.Column("unit", sa.String(100), primary_key=True),  # a meeting, or a series
    sa.Column("rid", sa.String(40), primary_key=True),  # a series' meeting, or ""
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("partstat", sa.String(20), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

bounces = sa.Table(
    "bounces", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("diagnostic", sa.Text, nullable=False, default=""),
    sa.Column("permanent", sa.Boolean, nullable=False),
    sa.Column("message_id", sa.String(300), nullable=True),
)

inbox = sa.Table(  # every message clerk read, and what it made of it
    "inbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(300), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("sender", sa.String(320), nullable=False, default=""),
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("handled", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)

actions = sa.Table(
    "actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False, index=True),
    sa.Column("meeting_id", sa.String(100), nullable=False, default=""),
    sa.Column("topic", sa.Text, nullable=False, default=""),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("owners", sa.Text, nullable=False),  # JSON list of emails, or ["*"]
    sa.Column("due", sa.Date, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # open | done | dropped
    sa.Column("completed", sa.Date, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("source", sa.Text, nullable=False, default=""),
)

action_history = sa.Table(
    "action_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("who", sa.String(320), nullable=False),
    sa.Column("what", sa.Text, nullable=False),
    sa.Column("via", sa.Text, nullable=False, default=""),
)

proposals = sa.Table(  # "AGENDA: <item>" from a member's reply
    "proposals", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("meeting_id", sa.String(100), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("item", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

nudges = sa.Table(  # "remind the group in 6-9 months": a subject for a future agenda
    "nudges", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False, index=True),
    sa.Column("meeting_id", sa.String(100), nullable=False, default=""),  # where it was agreed
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("window_start", sa.Date, nullable=False),
    sa.Column("window_end", sa.Date, nullable=False),
    sa.Column("source", sa.Text, nullable=False, default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

ACTIVE = ("planned", "held", "retry", "withdrawn")  # rows the planner may still change
REVIVABLE = ("skipped_late",)  # ... and these, when an edit makes them timely again
DELIVERED = ("sending", "sent")


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


CLAIMANT = f"{socket.gethostname()}:{os.getpid()}"


def _alive(claimant: str | None, claimed_at: datetime | None, lease: timedelta) -> bool:
    """Whether the process that claimed a row may still be sending it."""
    if not claimant or claimed_at is None:
        return False
    host, _, pid = claimant.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False  # this very process: nothing of ours is in flight between ticks
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return datetime.now(UTC) - claimed_at < lease


class Store:
    """The database behind clerk. Open with a URL; :meth:`migrate` brings the schema up."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def migrate(self) -> list[str]:
        from bot.migrations import apply

        return apply(self)

    # --- facts the planner reads -------------------------------------------------------

    def facts_version(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.name == "facts")).scalar()
        return int(value or 0)

    def bump_facts(self, conn: Connection) -> None:
        """Record that a fact the planner reads has changed (forces a re-plan)."""
        updated = conn.execute(meta.update().where(meta.c.name == "facts").values(
            value=sa.cast(sa.cast(meta.c.value, sa.Integer) + 1, sa.Text))).rowcount
        if not updated:
            conn.execute(meta.insert().values(name="facts", value="1"))

    def snapshot(self) -> Any:
        from bot.state import State, Undelivered

        with self.engine.connect() as conn:
            keys: dict[str, str] = {}
            recorded: set[tuple[str, str, str]] = set()
            delivered: set[tuple[str, str, int]] = set()
            held: dict[tuple[str, str], dict[str, Held]] = {}
            first: dict[tuple[str, str, str, int], datetime] = {}
            rows = conn.execute(sa.select(
                ledger.c.key, ledger.c.state, ledger.c.group_id, ledger.c.meeting_id,
                ledger.c.rule_id, ledger.c.revision, ledger.c.sequence, ledger.c.kind,
                ledger.c.recipient, ledger.c.recipient_name, ledger.c.created_at))
            for key, state, g, m, r, rev, seq, kind, email, name, planned_at in rows:
                keys[key] = state
                recorded.add((g, m, r))
                if seq is None:
                    continue
                first[(g, m, email, seq)] = planned_at
                if state in DELIVERED:
                    if kind != "cancellation":
                        delivered.add((g, m, rev))
                    mine = held.setdefault((g, m), {})
                    if email not in mine or mine[email].sequence < seq:
                        method = "CANCEL" if kind == "cancellation" else "REQUEST"
                        mine[email] = Held(seq, method, rev, name,
                                           partial=kind == "occurrence_cancellation")
            revisions: dict[tuple[str, str], tuple[Revision, ...]] = {}
            created: dict[tuple[str, str, int], datetime] = {}
            for row in conn.execute(sa.select(invite_revisions).order_by(
                    invite_revisions.c.rev)):
                revisions[(row.group_id, row.meeting_id)] = (
                    *revisions.get((row.group_id, row.meeting_id), ()),
                    Revision(row.rev, row.digest, json.loads(row.fields)))
                created[(row.group_id, row.meeting_id, row.rev)] = row.created_at
            submitted = {(r.group_id, r.meeting_id, r.rule_id, r.organisation): r.status
                         for r in conn.execute(sa.select(submissions))}
            answers: dict[tuple[str, str, str], dict[str, tuple[str, str]]] = {}
            for r in conn.execute(sa.select(rsvps)):
                answers.setdefault((r.group_id, r.unit, r.rid), {})[r.email] = (r.partstat,
                                                                             r.comment)
        undelivered = {g: tuple(Undelivered(r.key, r.recipient, r.subject, r.state,
                                            r.last_error or "", r.updated_at) for r in rows)
                       for g, rows in self.undelivered().items()}
        return State(keys=keys, rules_recorded=frozenset(recorded), revisions=revisions,
                     delivered=frozenset(delivered), submitted=submitted,
                     revision_created=created, held=held, first_planned=first,
                     undelivered=undelivered, rsvps=answers, actions=tuple(self.actions()),
                     nudges=tuple(Nudge(r.id, r.group_id, r.meeting_id, r.text,
                                        r.window_start, r.window_end, r.source)
                                  for r in self.nudges()),
                     proposals=tuple(self.proposals()))

    def record_revision(self, conn: Connection, group: str, meeting: str, revision: Revision,
                        replaces: bool, restart: bool, now: datetime) -> None:
        values: dict[str, Any] = {"digest": revision.digest, "fields": json.dumps(revision.fields,
                                                                  sort_keys=True)}
        where = sa.and_(invite_revisions.c.group_id == group,
                        invite_revisions.c.meeting_id == meeting,
                        invite_revisions.c.rev == revision.rev)
        if replaces:
            if restart:  # an update edited again: its settle window starts over
                values["created_at"] = now
            conn.execute(invite_revisions.update().where(where).values(**values))
        else:
            conn.execute(invite_revisions.insert().values(
                group_id=group, meeting_id=meeting, rev=revision.rev, created_at=now, **values))

    def mark_submitted(self, group: str, meeting: str, rule: str, organisation: str,
                       status: str, now: datetime, source: str = "") -> None:
        with self.atomic() as conn:
            conn.execute(submissions.delete().where(
                (submissions.c.group_id == group) & (submissions.c.meeting_id == meeting)
                & (submissions.c.rule_id == rule)
                & (submissions.c.organisation == organisation)))
            conn.execute(submissions.insert().values(
                group_id=group, meeting_id=meeting, rule_id=rule, organisation=organisation,
                status=status, at=now, source=source))
            self.bump_facts(conn)

    # --- the ledger --------------------------------------------------------------------

    def active_rows(self, conn: Connection) -> dict[str, Any]:
        cols = [ledger.c.key, ledger.c.state, ledger.c.send_at, ledger.c.latest_at,
                ledger.c.subject, ledger.c.reason, ledger.c.recipient_name]
        rows = conn.execute(sa.select(*cols).where(ledger.c.state.in_(ACTIVE + REVIVABLE)))
        return {r.key: r for r in rows}

    def insert_rows(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ledger rows; a key already there (another worker's) is left as it is."""
        if rows:
            conn.execute(self._insert_if_absent(), list(rows))
            conn.execute(events.insert(), [
                {"key": r["key"], "at": r["created_at"], "state": r["state"],
                 "detail": r["reason"]} for r in rows])

    def _insert_if_absent(self) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(ledger).on_conflict_do_nothing(index_elements=["key"])
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(ledger).on_conflict_do_nothing(index_elements=["key"])
        return ledger.insert()

    def update_row(self, conn: Connection, key: str, now: datetime, detail: str = "",
                   **values: Any) -> None:
        conn.execute(ledger.update().where(ledger.c.key == key).values(updated_at=now,
                                                                        **values))
        if "state" in values:
            conn.execute(events.insert().values(key=key, at=now, state=values["state"],
                                                detail=detail))

    def due_keys(self, now: datetime, limit: int = 1000) -> list[Any]:
        """Rows whose send time has come, oldest first (an index range scan)."""
        with self.engine.connect() as conn:
            q = sa.select(ledger.c.key, ledger.c.state, ledger.c.latest_at,
                          ledger.c.next_attempt_at, ledger.c.attempts).where(
                ledger.c.state.in_(("planned", "retry")), ledger.c.send_at <= now,
            ).order_by(ledger.c.send_at, ledger.c.key).limit(limit)
            return [r for r in conn.execute(q)
                    if r.state != "retry" or r.next_attempt_at is None
                    or r.next_attempt_at <= now]

    def claim(self, key: str, now: datetime, message_id: str, transport: str) -> bool:
        """Move one row to ``sending``; False when another worker got it first. The claim
        names this process (host:pid) and the wall-clock time, so another process can tell a
        row in flight from one left behind by a crash."""
        with self.atomic() as conn:
            got = conn.execute(ledger.update().where(
                ledger.c.key == key, ledger.c.state.in_(("planned", "retry"))).values(
                state="sending", updated_at=now, attempts=ledger.c.attempts + 1,
                message_id=message_id, transport=transport, claimed_by=CLAIMANT,
                claimed_at=datetime.now(UTC))).rowcount
            if got:
                conn.execute(events.insert().values(key=key, at=now, state="sending",
                                                    detail=""))
            return bool(got)

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
                for k in rows:
                    self.update_row(conn, k, now, detail, state=to_state, **values)
                moved += rows
        return moved

    def mark_notified(self, conn: Connection, keys: Sequence[str], now: datetime) -> None:
        if keys:
            conn.execute(ledger.update().where(ledger.c.key.in_(list(keys)))
                         .values(notified_at=now))
            self.bump_facts(conn)

    def undelivered(self) -> dict[str, list[Any]]:
        """Per group, the failed and parked messages the admin has not been told about."""
        q = sa.select(ledger).where(ledger.c.state.in_(("failed", "parked")),
                                    ledger.c.notified_at.is_(None), ledger.c.kind != "notice"
                                    ).order_by(ledger.c.updated_at, ledger.c.key)
        out: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                out.setdefault(row.group_id, []).append(row)
        return out

    # --- what the mailbox tells ---------------------------------------------------------

    def secret(self) -> bytes:
        """The key of the reference tokens in subjects (made once, kept in the store)."""
        with self.atomic() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.name == "token_secret")
                                 ).scalar()
            if value is None:
                import secrets

                value = secrets.token_hex(32)
                conn.execute(meta.insert().values(name="token_secret", value=value))
        return bytes.fromhex(value)

    def snapshot_held(self, group: str, unit: str) -> dict[str, int]:
        """The last SEQUENCE sent to each person for a meeting or series."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(ledger.c.recipient, sa.func.max(ledger.c.sequence))
                                .where(ledger.c.group_id == group, ledger.c.meeting_id == unit,
                                       ledger.c.sequence.is_not(None),
                                       ledger.c.state.in_(DELIVERED))
                                .group_by(ledger.c.recipient))
            return {email: seq for email, seq in rows}

    def by_message_ids(self, ids: Sequence[str]) -> Any:
        """The ledger row of the first of ``ids`` clerk sent, or None."""
        if not ids:
            return None
        with self.engine.connect() as conn:
            rows = {r.message_id: r for r in conn.execute(
                sa.select(ledger).where(ledger.c.message_id.in_(list(ids))))}
        return next((rows[i] for i in ids if i in rows), None)

    def sent_to(self, email: str, kinds: Sequence[str]) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(ledger).where(
                ledger.c.recipient == email, ledger.c.kind.in_(list(kinds)),
                ledger.c.state == "sent")))

    def record_rsvp(self, group: str, unit: str, rid: str, email: str, partstat: str,
                    comment: str, sequence: int, now: datetime) -> None:
        rid, partstat = rid[:40], partstat[:20]
        where = ((rsvps.c.group_id == group) & (rsvps.c.unit == unit) & (rsvps.c.rid == rid)
                 & (rsvps.c.email == email))
        with self.atomic() as conn:
            conn.execute(rsvps.delete().where(where))
            conn.execute(rsvps.insert().values(group_id=group, unit=unit, rid=rid, email=email,
                                               partstat=partstat, comment=comment,
                                               sequence=sequence, at=now))
            self.bump_facts(conn)

    def record_bounce(self, email: str, status: str, diagnostic: str, permanent: bool,
                      message_id: str | None, now: datetime) -> Any:
        """Flag ``email`` as bouncing; a permanent bounce of a message clerk sent marks that
        message failed, so the admin hears of it in the next digest. Returns its row."""
        row = self.by_message_ids([message_id]) if message_id else None
        with self.atomic() as conn:
            conn.execute(bounces.insert().values(
                email=email[:320], at=now, status=status[:20], diagnostic=diagnostic[:2000],
                permanent=permanent, message_id=(message_id or "")[:300] or None))
            if row is not None and permanent and row.state in ("sent", "sending"):
                self.update_row(conn, row.key, now, f"bounced: {status} {diagnostic}",
                                state="failed", last_error=f"bounced: {status} {diagnostic}",
                                notified_at=None)
            self.bump_facts(conn)
        return row

    def log_inbox(self, message_id: str | None, sender: str, subject: str, kind: str,
                  handled: bool, detail: str, now: datetime) -> None:
        with self.atomic() as conn:
            conn.execute(inbox.insert().values(  # header text is the sender's: cut to fit
                message_id=(message_id or "")[:300] or None, at=now, sender=sender[:320],
                subject=subject[:500], kind=kind, handled=handled, detail=detail[:2000]))

    def inbox_log(self, handled: bool | None = None) -> list[Any]:
        q = sa.select(inbox).order_by(inbox.c.id)
        if handled is not None:
            q = q.where(inbox.c.handled == handled)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def bouncing(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(bounces).order_by(bounces.c.id)))

    # --- the action log -----------------------------------------------------------------

    def add_action(self, values: dict[str, Any], who: str, via: str, now: datetime) -> int:
        with self.atomic() as conn:
            inserted = conn.execute(actions.insert().values(
                **{"status": "open", **values, "owners": json.dumps(list(values["owners"]))},
                created_at=now)).inserted_primary_key
            assert inserted is not None
            new_id = inserted[0]
            conn.execute(action_history.insert().values(action_id=new_id, at=now, who=who,
                                                        what="added", via=via))
            self.bump_facts(conn)
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
            self.bump_facts(conn)
        return ids

    def add_nudge(self, values: dict[str, Any], now: datetime) -> int:
        with self.atomic() as conn:
            inserted = conn.execute(nudges.insert().values(**values, created_at=now)
                                    ).inserted_primary_key
            assert inserted is not None
            self.bump_facts(conn)
        return int(inserted[0])

    def propose(self, group: str, meeting: str, email: str, item: str, now: datetime) -> None:
        with self.atomic() as conn:
            conn.execute(proposals.insert().values(group_id=group, meeting_id=meeting,
                                                   email=email, item=item, at=now))
            self.bump_facts(conn)

    def proposals(self) -> list[tuple[str, str, str, str]]:
        with self.engine.connect() as conn:
            return [(r.group_id, r.meeting_id, r.email, r.item) for r in conn.execute(
                sa.select(proposals).order_by(proposals.c.id))]

    def import_actions(self, rows: Sequence[dict[str, Any]], who: str, via: str,
                       now: datetime) -> tuple[int, int]:
        """New actions and updates from a CSV, all or nothing: (added, updated)."""
        added = updated = 0
        with self.atomic() as conn:
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
                    conn.execute(actions.update().where(actions.c.id == row["id"])
                                 .values(**values))
                    action_id, what = row["id"], "updated from a spreadsheet"
                    updated += 1
                conn.execute(action_history.insert().values(action_id=action_id, at=now,
                                                            who=who, what=what, via=via))
            self.bump_facts(conn)
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
            self.bump_facts(conn)

    def actions(self, group: str | None = None) -> list[Action]:
        q = sa.select(actions).order_by(actions.c.id)
        if group:
            q = q.where(actions.c.group_id == group)
        with self.engine.connect() as conn:
            return [Action(id=r.id, group=r.group_id, meeting=r.meeting_id, topic=r.topic,
                           text=r.text, owners=tuple(json.loads(r.owners)), due=r.due,
                           status=r.status, completed=r.completed, created=r.created_at)
                    for r in conn.execute(q)]

    def action_history(self, action_id: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(action_history).where(
                action_history.c.action_id == action_id).order_by(action_history.c.id)))

    def in_doubt(self, lease: timedelta = timedelta(minutes=15)) -> list[Any]:
        """Rows left in ``sending`` by a process that is gone: one of this host whose pid no
        longer runs, or one claimed longer than ``lease`` ago (wall clock) elsewhere. A row
        another live process is sending right now is not in doubt."""
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(ledger).where(ledger.c.state == "sending")))
        return [r for r in rows if not _alive(r.claimed_by, r.claimed_at, lease)]

    def row(self, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(ledger).where(ledger.c.key == key)).first()

    def rows(self, *, group: str | None = None, states: Sequence[str] | None = None,
             since: datetime | None = None, until: datetime | None = None) -> list[Any]:
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
            return list(conn.execute(q.order_by(ledger.c.send_at, ledger.c.key)))

    def history(self, key: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(events).where(events.c.key == key)
                                     .order_by(events.c.id)))

    def counts(self, group: str | None = None) -> dict[str, int]:
        q = sa.select(ledger.c.state, sa.func.count()).group_by(ledger.c.state)
        if group:
            q = q.where(ledger.c.group_id == group)
        with self.engine.connect() as conn:
            return {state: n for state, n in conn.execute(q)}

    def dispose(self) -> None:
        self.engine.dispose()
