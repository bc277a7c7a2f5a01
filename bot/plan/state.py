"""The facts the planner reads: a snapshot of the state store, taken by bot/engine/store.py."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from bot.domain.model import (
    Action,
    Nudge,
    Revision,
)
from bot.plan.invites import Held

T = TypeVar("T")


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
    # a snapshot of some groups (bot/engine/snapshot.py): who the messages of the groups in
    # the ledger but no longer in the config went to (None: the snapshot is of every group)
    other_recipients: Mapping[str, frozenset[str]] | None = None
    # what the planner looks up per group, indexed on first use (once per snapshot): a
    # lookup costs the group's facts, not the install's (bench/plan_scale.py)
    _index: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                   compare=False)

    def _grouped(self, name: str, items: Iterable[T], group_of: Callable[[T], str],
                 group: str) -> tuple[T, ...]:
        index: dict[str, tuple[T, ...]] | None = self._index.get(name)
        if index is None:
            found: dict[str, list[T]] = {}
            for item in items:
                found.setdefault(group_of(item), []).append(item)
            index = self._index[name] = {g: tuple(v) for g, v in found.items()}
        return index.get(group, ())

    def group_keys(self, group: str) -> Mapping[str, str]:
        """The ledger keys of ``group``'s own messages (``<group>/…``) and their states."""
        index: dict[str, dict[str, str]] | None = self._index.get("keys")
        if index is None:
            index = {}
            for key, st in self.keys.items():
                index.setdefault(key.partition("/")[0], {})[key] = st
            self._index["keys"] = index
        return index.get(group, {})

    def shared(self, owner: object, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, made once per snapshot for ``owner`` (a loaded group) and ``key``, and
        shared by every message that shows it (a meeting's context is the same in each of
        its messages): the plan's memory grows with meetings, not with their recipients.
        Shared values are read, never changed."""
        memo: dict[tuple[int, Hashable], tuple[object, Any]] = self._index.setdefault(
            "shared", {})
        found = memo.get((id(owner), key))
        if found is None or found[0] is not owner:  # the owner kept: its id is not reused
            found = memo[(id(owner), key)] = (owner, make())
        value: T = found[1]
        return value

    def recipients_by_group(self) -> Mapping[str, Collection[str]]:
        """Per group id in the ledger, who its meetings' messages went to (or would); of a
        snapshot of some groups, per group no longer in the config."""
        if self.other_recipients is not None:
            return self.other_recipients
        found: dict[str, set[str]] | None = self._index.get("recipients")
        if found is None:
            found = self._index["recipients"] = {}
            for key in self.keys:
                parts = key.split("/")
                if len(parts) > 3 and parts[1] != "-":
                    found.setdefault(parts[0], set()).add(parts[3])
        return found

    def group_actions(self, group: str) -> tuple[Action, ...]:
        return self._grouped("actions", self.actions, lambda a: a.group, group)

    def group_nudges(self, group: str) -> tuple[Nudge, ...]:
        return self._grouped("nudges", self.nudges, lambda n: n.group, group)

    def group_proposals(self, group: str) -> tuple[tuple[str, str, str, str], ...]:
        return self._grouped("proposals", self.proposals, lambda p: p[0], group)

    def group_decisions(self, group: str) -> tuple[Decision, ...]:
        return self._grouped("decisions", self.decisions, lambda d: d.group, group)

    def group_mailed_minutes(self, group: str) -> tuple[MailedMinutes, ...]:
        return self._grouped("mailed", self.mailed_minutes, lambda x: x.group, group)

    def group_replies(self, group: str) -> tuple[OwedReply, ...]:
        return self._grouped("replies", self.replies, lambda r: r.group, group)

    def group_submitted(self, group: str) -> tuple[tuple[tuple[str, str, str, str], str], ...]:
        """((group, meeting, request rule, organisation), status) of ``group``."""
        return self._grouped("submitted", self.submitted.items(), lambda kv: kv[0][0], group)

    def group_first_planned(self, group: str) -> tuple[tuple[str, str, datetime], ...]:
        """(group, email, when) of each invite message of ``group`` clerk planned."""
        return self._grouped("first_planned", (
            (g, e, at) for (g, _u, e, _s), at in self.first_planned.items()),
            lambda x: x[0], group)
