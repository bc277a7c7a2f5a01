"""Domain values: groups, members, meetings, rules and the messages clerk wants to send.

Plain frozen dataclasses, no I/O. Times are aware datetimes; local wall times are computed
in the group's zone and stored as instants in UTC.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain.errors import Problem

KINDS = ("invitation", "request", "chaser", "pack", "minutes_due")
# member: invited, asked, chased; lead: the one asked for their organisation; chair: copied
# and asked to approve; admin: invited, never asked as a lead (admin mail goes to [admin]);
# guest: owns actions and is chased for them, never invited or asked
ROLES = ("member", "lead", "chair", "admin", "guest")


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str  # always lower case: the stable id of a member

    @property
    def address(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True, slots=True)
class Member(Person):
    organisation: str = ""
    role: str = "member"
    line: int = 0  # line in the roster file, for messages about this member

    @property
    def row(self) -> str:
        """A digest of this member's roster row: a hard bounce holds until the row changes."""
        text = "\0".join((self.name, self.email, self.organisation, self.role))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Meeting:
    id: str
    title: str
    start: datetime  # aware, in the group's zone
    duration: timedelta
    location: str
    link: str
    description: str
    items: tuple[str, ...]
    cancelled: bool = False
    series: str | None = None  # the series it is an occurrence of
    recurrence_id: datetime | None = None  # an occurrence's original start (RFC 5545)

    @property
    def end(self) -> datetime:
        # an exact duration: zoned arithmetic would follow the wall clock over a DST change
        return (self.start.astimezone(UTC) + self.duration).astimezone(self.start.tzinfo)


@dataclass(frozen=True)
class Series:
    """Meetings on a repeating rule with one UID. ``master`` holds the rule's times and
    details (its ``start`` is the first occurrence); ``occurrences`` are the meetings as they
    are, moves and cancellations applied."""

    id: str
    master: Meeting
    repeat: str  # the RRULE value, e.g. "FREQ=MONTHLY;INTERVAL=3;COUNT=4"
    occurrences: tuple[Meeting, ...]
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    """One action from a meeting: who owes what by when. Kept in the state store."""

    id: int
    group: str
    meeting: str  # the meeting that made it ("" if none)
    topic: str
    text: str
    owners: tuple[str, ...]  # member emails; ("*",) = all members
    due: date
    status: str  # open | done | dropped
    completed: date | None
    created: datetime
    assigned: datetime | None = None  # when its owners last changed (None: at ``created``)

    @property
    def ref(self) -> str:
        return f"#{self.id}"


@dataclass(frozen=True, slots=True)
class Nudge:
    """"Remind the group in 6–9 months": a subject to come back to, within a window."""

    id: int
    group: str
    meeting: str  # the meeting that asked for it ("" if added by hand)
    text: str
    start: date
    end: date
    source: str = ""


@dataclass(frozen=True)
class ChaseLadder:
    """How owners are chased (``[actions]`` in group.toml)."""

    first: timedelta = timedelta(days=7)  # after the action is recorded
    before_due: timedelta = timedelta(days=3)
    overdue_every: timedelta = timedelta(days=7)
    max_chasers: int = 3  # then chasing stops and the admin's weekly summary lists it
    summary_day: str = "monday"  # the chair's and the admin's weekly summaries
    # no chasers from (month, day) to (month, day), a year's end included
    quiet: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (((12, 24), (1, 1)),)
    due: Offset | None = None  # default due date, from the next meeting's start
    at: tuple[int, int] = (9, 0)


@dataclass(frozen=True)
class DeskPolicy:
    """The admin's desk by mail (``[desk]`` in group.toml, bot/engine/desk.py)."""

    commands_from: str = "admin"  # admin | admin and chair: whose commands by mail count
    pack_preview: timedelta | None = timedelta(days=2)  # before the pack; None: no preview
    pack_approval: str = "optional"  # optional: it goes unless held | required: not unless
    digest_day: str | None = "monday"  # the admin's weekly digest; None: none


@dataclass(frozen=True)
class Offset:
    """A time relative to a meeting's start: "-28d", "+10d", "-2w", "-90m", "-3h".

    Day and week offsets move the calendar date and then take the rule's time of day;
    hour and minute offsets are exact.
    """

    text: str
    amount: int
    unit: str  # "m", "h", "d" or "w"


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    send: Offset
    at: tuple[int, int] = (9, 0)  # local time of day for day/week offsets
    latest: Offset | None = None
    deadline: Offset | None = None
    to: str = "members"  # members | leads | admin | chair
    chases: str | None = None  # for kind chaser: the request rule it chases
    questions: tuple[str, ...] = ()
    template: str = ""  # defaults to the kind
    approve: bool = False  # rows wait in "held" until `clerk approve`


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    zone: str
    go_live: datetime
    organiser: Person
    admin: Person
    website: str
    joining_instructions: str
    members: tuple[Member, ...]
    meetings: tuple[Meeting, ...]
    rules: tuple[Rule, ...]
    folder: Path
    standing_items: tuple[str, ...] = ()
    settle: timedelta = timedelta(minutes=10)  # updates wait this long after the last edit
    series: tuple[Series, ...] = ()  # their occurrences are in ``meetings`` too
    wording_updates: bool = False  # a reworded description also sends an update
    ladder: ChaseLadder = field(default_factory=ChaseLadder)
    window: Any = None  # bot.windows.Window: when mail may go (None: any time)
    minutes: Mapping[str, Path] = field(default_factory=dict)  # meeting id -> minutes file
    minutes_approval: str = "admin"  # admin | chair | none: who releases held minutes
    guard: float = 0.2  # an edit cancelling or inviting more than this share is held
    desk: DeskPolicy = field(default_factory=DeskPolicy)
    # changes whenever a file of the group's folder changes ("": not loaded from files);
    # the planner keeps a group's part of the plan while it stays the same
    fingerprint: str = ""

    @property
    def chair(self) -> Member | None:
        return next((m for m in self.members if m.role == "chair"), None)

    def commanders(self) -> tuple[str, ...]:
        """Whose commands by mail count (authenticated): the admin's, and the chair's where
        the group allows it."""
        chair = self.chair if self.desk.commands_from == "admin and chair" else None
        return (self.admin.email, *((chair.email,) if chair is not None else ()))

    # worked out once per loaded group (a frozen group's members never change; planning
    # asks for them for each meeting and rule)
    @functools.cached_property
    def attendees(self) -> tuple[Member, ...]:
        """Who is invited to the meetings and gets their mail: everyone but guests."""
        return tuple(m for m in self.members if m.role != "guest")

    @functools.cached_property
    def _leads(self) -> tuple[Member, ...]:
        chosen: dict[str, Member] = {}
        for m in self.members:
            if m.role in ("admin", "guest"):
                continue
            current = chosen.get(m.organisation)
            if current is None or (m.role == "lead" and current.role != "lead"):
                chosen[m.organisation] = m
        return tuple(chosen.values())

    def leads(self) -> tuple[Member, ...]:
        """One member per organisation: its marked lead, else its first member listed (never
        the admin or a guest: they answer for no organisation)."""
        return self._leads


@dataclass(frozen=True)
class Settings:
    """Install-wide settings (``clerk.toml`` in the config folder)."""

    state: str = "sqlite:///state/clerk.sqlite"
    transport: str = "outbox"
    transport_options: dict[str, Any] = field(default_factory=dict)
    interval: int = 60  # seconds between the worker's ticks
    pause: float = 0.0  # seconds between two messages (rate limit)
    retry_base: int = 60  # seconds before the first retry; doubles each time
    retry_cap: int = 3600
    park_after: timedelta = timedelta(hours=24)  # failing this long: parked, admin told
    mailbox: str = ""  # where replies are read ("imap"); empty: clerk does not listen
    mailbox_options: dict[str, Any] = field(default_factory=dict)
    rsvp_every: timedelta = timedelta(minutes=15)  # exchange, graph: answers read this often
    papers: str = "papers"  # where attachments of answers are saved
    max_attachment: int = 10 * 1024 * 1024
    zip_papers_above: int = 5 * 1024 * 1024  # the pack's papers go as one zip above this
    # what clerk reads of a message, and keeps (bot/engine/papers.py)
    quarantine: str = "quarantine"  # attachments kept back from the packs, for the admin
    max_message: int = 25 * 1024 * 1024  # a larger message is not fetched, nor read
    max_parts: int = 100  # MIME parts in one message, counted before it is parsed
    max_attachments: int = 10  # papers kept from one message; the rest are not
    max_meeting_papers: int = 50 * 1024 * 1024  # one meeting's papers together
    # the state store shared by several workers (bot/engine/store.py, claims.py)
    lock_timeout: float = 10.0  # seconds a statement may wait for a lock held elsewhere
    statement_timeout: float = 60.0  # PostgreSQL: seconds a statement may run (0: no limit)
    lease: timedelta = timedelta(minutes=15)  # another host's claim is trusted this long


@dataclass(frozen=True)
class Config:
    folder: Path
    settings: Settings
    groups: tuple[Group, ...]
    fingerprint: str  # changes whenever any file clerk read changes
    warnings: tuple[Problem, ...] = ()

    def group(self, group_id: str) -> Group:
        return self.by_id[group_id]

    @functools.cached_property
    def by_id(self) -> Mapping[str, Group]:
        """The groups by id (the first of an id), looked up once: a send asks for its
        group, and an install has thousands."""
        found: dict[str, Group] = {}
        for g in self.groups:
            found.setdefault(g.id, g)
        return found


@dataclass(frozen=True)
class Revision:
    """One revision of a meeting's invite: SEQUENCE = rev (RFC 5546 3.2.2)."""

    rev: int
    digest: str
    fields: dict[str, str]


@dataclass(slots=True)
class Desired:
    """A message the planner wants sent: one recipient, one idempotency key. Never changed
    once made (``dataclasses.replace`` makes another); not frozen only because a first start
    makes millions of them, and a frozen dataclass is made three times slower."""

    key: str
    group: str
    meeting: str
    rule: str
    kind: str
    recipient: Person
    send_at: datetime  # UTC
    latest: datetime  # UTC; after this it is recorded skipped_late, not sent
    subject: str
    reason: str
    template: str
    context: dict[str, Any]
    revision: int | None = None  # invitations: the content revision
    sequence: int | None = None  # invitations and cancellations: the iCalendar SEQUENCE
    initial: str = "planned"  # planned | held | skipped_late
    cc: tuple[Person, ...] = ()  # copied
    in_reply_to: str = ""  # the Message-ID this answers (a reply to someone who wrote)
    hold: bool = False  # held now, even if recorded planned earlier (the admin's HOLD)

    def digest_fields(self) -> tuple[Any, ...]:
        return (self.send_at, self.latest, self.subject, self.reason, self.recipient.name)
