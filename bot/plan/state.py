"""The facts the planner reads: a snapshot of the state store, taken by bot/engine/store.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.model import (
    Action,
    Nudge,
    Revision,
)
from bot.plan.invites import Held


@dataclass(frozen=True)
class Undelivered:
    """A message that failed or was parked (until sent again by ``clerk retry``)."""

    key: str
    recipient: str
    subject: str
    state: str
    error: str
    at: datetime
    notified: bool = False  # the admin was sent a notice of it


@dataclass(frozen=True)
class Quarantined:
    """An attachment kept back from the packs (bot/engine/papers.py), for the admin."""

    id: int
    group: str
    meeting: str
    organisation: str
    sender: str
    name: str  # the file's name as sent, made safe
    kept: bool  # False: not kept at all (over a limit)
    reason: str
    at: datetime
    reported: bool  # already told in a status report or the admin's digest


@dataclass(frozen=True)
class OwedReply:
    """An answer clerk owes someone who wrote to it (made once, sent once)."""

    id: int
    group: str
    email: str
    name: str
    subject: str
    body: str
    in_reply_to: str
    at: datetime
    about: str = ""  # for the admin's desk: "minutes:<id>", "status", "help", "pack:<meeting>"


@dataclass(frozen=True)
class MailedMinutes:
    """Minutes the admin sent by mail (bot/engine/desk.py), kept at ``path``."""

    id: int
    group: str
    meeting: str
    path: str
    name: str
    digest: str
    sender: str
    at: datetime


@dataclass(frozen=True)
class Question:
    """What an import by mail could not settle: "who is 'Jo'?", with numbered choices."""

    id: int
    group: str
    meeting: str
    minutes_id: int
    n: int
    text: str
    choices: tuple[tuple[str, tuple[str, ...]], ...]  # (label, the emails it stands for)
    answer: str | None


@dataclass(frozen=True)
class Decision:
    """The admin's APPROVE or HOLD of a meeting's pack or minutes."""

    group: str
    meeting: str
    subject: str  # pack | minutes
    decision: str  # approved | held
    version: str  # the minutes file's sha256; the pack preview's digest
    who: str
    at: datetime


@dataclass(frozen=True)
class State:
    """The facts the planner reads, as a snapshot taken by the store."""

    keys: Mapping[str, str] = field(default_factory=dict)  # ledger key -> ledger state
    rules_recorded: frozenset[tuple[str, str, str]] = frozenset()  # (group, meeting, rule)
    revisions: Mapping[tuple[str, str], tuple[Revision, ...]] = field(default_factory=dict)
    delivered: frozenset[tuple[str, str, int]] = frozenset()  # (group, meeting, rev) sent
    # (group, meeting, request rule, organisation) -> "submitted" | "nil"
    submitted: Mapping[tuple[str, str, str, str], str] = field(default_factory=dict)
    revision_created: Mapping[tuple[str, str, int], datetime] = field(default_factory=dict)
    held: Mapping[tuple[str, str], Mapping[str, Held]] = field(default_factory=dict)
    first_planned: Mapping[tuple[str, str, str, int], datetime] = field(default_factory=dict)
    # group -> its failed and parked messages, oldest first
    undelivered: Mapping[str, tuple[Undelivered, ...]] = field(default_factory=dict)
    # (group, meeting or series, original start or "") -> email -> (PARTSTAT, comment, the
    # start it was given for, UTC ISO, or "" when unknown)
    rsvps: Mapping[tuple[str, str, str], Mapping[str, tuple[str, str, str]]] = field(
        default_factory=dict)
    # email -> the roster rows (Member.row) it bounced for, permanently: not mailed while
    # the roster row is still one of these
    bounced: Mapping[str, frozenset[str]] = field(default_factory=dict)
    quarantined: tuple[Quarantined, ...] = ()  # oldest first
    # (group, email) -> when that roster row last appeared, changed or went: a newcomer or a
    # removal waits for the settle window from then (unknown: from now)
    roster_changed: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # the config the worker cannot load: (digest, since, the problems), or None
    config_problems: tuple[str, datetime, tuple[str, ...]] | None = None
    replies: tuple[OwedReply, ...] = ()
    actions: tuple[Action, ...] = ()  # all of them: open, done and dropped
    nudges: tuple[Nudge, ...] = ()
    proposals: tuple[tuple[str, str, str, str], ...] = ()  # (group, meeting, member, item)
    mailed_minutes: tuple[MailedMinutes, ...] = ()  # oldest first
    questions: tuple[Question, ...] = ()
    decisions: tuple[Decision, ...] = ()  # oldest first
