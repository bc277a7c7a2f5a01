"""The tables of the state store, declared once (SQLAlchemy Core). Instants are stored as
naive UTC and returned aware. Schema changes are named migrations (bot/engine/migrations.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


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

# 0016: the facts version (meta "facts") at which the facts of a unit last changed: a group
# id, "*" (a fact of every group: bounces, the config's problems) or "-" (the action log,
# whose owners' digests span groups). The worker plans again only the units changed.
EVERY = "*"  # the unit of a fact every group's plan reads
ACTIONS = "-"  # the unit of the action log's owners' digests (their keys start "-/")
fact_changes = sa.Table(
    "fact_changes", metadata,
    sa.Column("unit", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

# States: planned → sending → sent | retry | failed | parked; skipped_late; held; withdrawn
# (no longer desired before it went: a member removed, a revision superseded).
ledger = sa.Table(
    "ledger", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # keys ordered by code point, as SQLite's are (their ranges: key_range): on PostgreSQL,
    # whose default collation may order them otherwise, "C" (0018_key_order)
    sa.Column("key", sa.String(500).with_variant(sa.String(500, collation="C"), "postgresql"),
              nullable=False, unique=True),
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
    # 0006_claims: who claimed it (bot/engine/claims.py) and when, by the wall clock;
    # 0014_leases: until when it may keep it, unless its host can tell it is gone
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    # 0017_first_state: the row's history begins with the row itself — its first state, at
    # created_at, for the reason it was planned (first_reason: the reason then, set by the
    # first update that writes ``reason``, changed or not; NULL before, while the first reason
    # is ``reason``); its later changes are its events. NULL on a row recorded before 0017,
    # whose first event says so.
    sa.Column("first_state", sa.String(20), nullable=True),
    sa.Column("first_reason", sa.Text, nullable=True),
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
    sa.Column("for_start", sa.String(40), nullable=True),  # 0008: the start it answered
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
    sa.Column("row", sa.String(64), nullable=True),  # 0008: the roster row when it bounced
)

roster = sa.Table(  # 0009: each roster row as clerk last saw it, and when it changed
    "roster", metadata,
    sa.Column("group_id", sa.String(100), primary_key=True),
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("row", sa.String(64), nullable=False),  # Member.row; "" once removed
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

inbox = sa.Table(  # every message clerk read, and what it made of it
    "inbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(300), nullable=True, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("sender", sa.String(320), nullable=False, default=""),
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("handled", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)

replies = sa.Table(  # 0011: answers clerk owes someone who wrote to it (one message each)
    "replies", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(300), nullable=False, default=""),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("in_reply_to", sa.String(300), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    # 0013: what it is (group, email, the message answered, subject, body), hashed: owed
    # once though two workers read that message at once; NULL when it answers no Message-ID
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Index("ux_replies_digest", "digest", unique=True),
    # 0012: what it answers, for the admin's desk: "minutes:<id>" (the summary of mailed
    # minutes), "status", "help", "pack:<meeting>"; "" for anything else
    sa.Column("about", sa.String(100), nullable=False, server_default=""),
)

mailed_minutes = sa.Table(  # 0012: minutes the admin sent by mail, kept in the papers folder
    "mailed_minutes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("meeting_id", sa.String(100), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("name", sa.String(300), nullable=False),  # as she sent it, made safe
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the file
    sa.Column("sender", sa.String(320), nullable=False),
    sa.Column("message_id", sa.String(300), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
)

questions = sa.Table(  # 0012: what an import by mail could not settle, for the admin to answer
    "questions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("meeting_id", sa.String(100), nullable=False),
    sa.Column("minutes_id", sa.Integer, nullable=False),  # the mailed minutes it is about
    sa.Column("n", sa.Integer, nullable=False),  # Q<n>, counted within those minutes
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("choices", sa.Text, nullable=False),  # JSON: [[label, [emails]], ...]
    sa.Column("pending", sa.Text, nullable=False),  # JSON: the action row waiting for it
    sa.Column("answer", sa.Text, nullable=True),
    sa.Column("answered_by", sa.String(320), nullable=True),
    sa.Column("answered_at", UTCDateTime, nullable=True),
)

decisions = sa.Table(  # 0012: the admin's APPROVE and HOLD of a meeting's pack or minutes
    "decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("meeting_id", sa.String(100), nullable=False),
    sa.Column("subject", sa.String(20), nullable=False),  # pack | minutes
    sa.Column("decision", sa.String(20), nullable=False),  # approved | held
    # what was decided on: the minutes file's sha256, the pack preview's digest
    sa.Column("version", sa.String(64), nullable=False, default=""),
    sa.Column("who", sa.String(320), nullable=False),
    sa.Column("via", sa.String(400), nullable=False, default=""),
    sa.Column("at", UTCDateTime, nullable=False),
)

quarantine = sa.Table(  # 0010: attachments kept back from the packs, and why
    "quarantine", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(100), nullable=False),
    sa.Column("meeting_id", sa.String(100), nullable=False),
    sa.Column("organisation", sa.String(300), nullable=False, default=""),
    sa.Column("sender", sa.String(320), nullable=False, default=""),
    sa.Column("message_id", sa.String(300), nullable=True),
    sa.Column("name", sa.Text, nullable=False),  # as sent, made safe
    sa.Column("path", sa.Text, nullable=True),  # where it is kept; NULL: not kept
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("notified_at", UTCDateTime, nullable=True),  # in an admin's digest
    # 0013: which attachment of which message it is, hashed: kept back once though two
    # workers read that message at once; NULL when the message had no Message-ID
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Index("ux_quarantine_digest", "digest", unique=True),
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
    sa.Column("assigned_at", UTCDateTime, nullable=True),  # owners last changed (NULL: never)
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

calendar_items = sa.Table(  # meetings a server owns (transports exchange, graph): its items
    "calendar_items", metadata,
    sa.Column("transport", sa.String(40), primary_key=True),
    sa.Column("group_id", sa.String(100), primary_key=True),
    sa.Column("unit", sa.String(100), primary_key=True),  # a meeting, or a series
    sa.Column("part", sa.Integer, primary_key=True),  # 0: the first item; n: newcomers
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("change_key", sa.Text, nullable=False, default=""),
    sa.Column("attendees", sa.Text, nullable=False),  # JSON [[name, email], ...]
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

ACTIVE = ("planned", "held", "retry", "withdrawn")  # rows the planner may still change
REVIVABLE = ("skipped_late",)  # ... and these, when an edit makes them timely again
DELIVERED = ("sending", "sent")


def key_range(prefix: str, after: Any = None) -> Any:
    """The ledger keys under ``prefix`` (which ends in ``/``: the next character, ``0``,
    bounds it), or those of them after ``after``. By code point, as the key's collation
    orders them (SQLite's BINARY; on PostgreSQL, "C": migration 0018_key_order)."""
    return sa.and_(ledger.c.key > (prefix if after is None else after),
                   ledger.c.key < prefix[:-1] + "0")
