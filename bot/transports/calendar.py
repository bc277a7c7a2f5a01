"""The calendar side of a transport: a server that owns meetings (``exchange``, ``graph``).

The contract (:class:`CalendarTransport`) and what passes through it: a tick's change to one
meeting (:class:`MeetingChange`), the items clerk keeps of it (:class:`Part`) and the
operations that carry it out (:class:`Op`). Which operations a change needs is decided in
bot/plan/calendar.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain.errors import TransportError
from bot.domain.model import Person
from bot.transports.base import Transport

INVITE_KINDS = ("invitation", "cancellation", "occurrence_cancellation")


RESPONSES = ("ACCEPTED", "TENTATIVE", "DECLINED")  # the PARTSTATs an RSVP records


@dataclass(frozen=True)
class Attendee:
    """One person's ledger row in a change: ``key`` is settled when the change is made."""

    key: str
    name: str
    email: str


@dataclass(frozen=True)
class Content:
    """What a calendar item says: the meeting (or series master with ``rrule`` and
    ``exdates``) first, then each moved meeting of a series (``recurrence_id`` set)."""

    subject: str
    html: str
    zone: str
    organiser: Person
    events: tuple[Any, ...]  # bot.render.ical.EventSpec

    @property
    def master(self) -> Any:
        return self.events[0]

    @property
    def overrides(self) -> tuple[Any, ...]:
        return self.events[1:]


@dataclass(frozen=True)
class MeetingChange:
    """A tick's due invitation rows for one meeting or series (``unit``)."""

    uid: str
    group: str
    unit: str
    revision: int
    content: Content
    cancelled: bool  # the whole meeting (or series) is cancelled
    invite: tuple[Attendee, ...] = ()  # should hold the meeting at ``revision``
    cancel: tuple[Attendee, ...] = ()  # taken off it
    scope: str = ""  # a series: "overrides" or "occurrences" when only those changed
    members: frozenset[str] | None = None  # who may stay on it (the roster); None: anyone

    @property
    def keys(self) -> list[str]:
        return [a.key for a in (*self.invite, *self.cancel)]


@dataclass(frozen=True)
class Part:
    """One calendar item of a meeting, as clerk last left it (or found it on the server)."""

    part: int
    item_id: str
    attendees: tuple[tuple[str, str], ...]  # (name, email)
    revision: int
    cancelled: bool = False
    change_key: str = ""  # Exchange's version stamp of the item

    @property
    def emails(self) -> frozenset[str]:
        return frozenset(e for _, e in self.attendees)


@dataclass(frozen=True)
class Op:
    """One calendar operation: make, update or cancel the item ``part``.

    ``attendees`` is who the item holds after it; ``removed`` who is taken off;
    ``content`` whether its times, place or words change."""

    action: str  # create | update | cancel
    part: int
    attendees: tuple[tuple[str, str], ...] = ()
    removed: tuple[str, ...] = ()
    content: bool = True


def after(parts: Sequence[Part], op: Op, item_id: str, revision: int,
          change_key: str = "") -> list[Part]:
    """The parts once ``op`` is done (``item_id`` of a created item)."""
    others = [p for p in parts if p.part != op.part]
    if op.action == "create":
        return [*others, Part(op.part, item_id, op.attendees, revision, change_key=change_key)]
    old = next(p for p in parts if p.part == op.part)
    if op.action == "cancel":
        return [*others, Part(old.part, old.item_id, old.attendees, old.revision, True,
                              change_key or old.change_key)]
    return [*others, Part(old.part, old.item_id, op.attendees,
                          revision if op.content else old.revision,
                          change_key=change_key or old.change_key)]


class HalfDone(TransportError):
    """A series was made or changed, but its cancelled or moved meetings were not all
    carried out: the item (``item_id``) is kept, a revision behind, so the next tick comes
    back to it (and, finding the revision on the server, does only what was left)."""

    def __init__(self, error: TransportError, item_id: str, change_key: str = "") -> None:
        super().__init__(str(error), retryable=error.retryable, retry_after=error.retry_after)
        self.item_id = item_id
        self.change_key = change_key


class Unanswered(TransportError):
    """Answers read for some events but not all (throttled): ``answers`` holds those read;
    the rest are read at the next tick."""

    def __init__(self, message: str, answers: Mapping[str, Mapping[str, str]],
                 retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)
        self.answers = answers


class CalendarTransport(Transport):
    """A transport whose server owns meetings (``exchange``, ``graph``).

    Subclasses implement :meth:`apply` (one operation), :meth:`find` (the items carrying a
    UID, for recovery) and :meth:`responses` (attendees' answers, in as few requests as the
    service allows); they may override :meth:`apply_all` to batch a change's operations.
    """

    calendar = True

    def apply(self, change: MeetingChange, op: Op, part: Part | None) -> tuple[str, str]:
        """Carry out ``op``; returns (item id, change key) of the item."""
        raise NotImplementedError

    def apply_all(self, change: MeetingChange, ops: Sequence[Op],
                  parts: Sequence[Part]) -> list[Part]:
        """Carry out ``ops`` in order; returns the parts after them. A failure part-way
        raises :class:`TransportError` with ``.parts`` set to what was done by then."""
        now = list(parts)
        for op in ops:
            current = next((p for p in now if p.part == op.part), None)
            try:
                item_id, change_key = self.apply(change, op, current)
            except HalfDone as half:  # kept a revision behind: the next tick finishes it
                half.parts = after(now, op, half.item_id, change.revision - 1, half.change_key)
                raise
            except TransportError as exc:
                exc.parts = now
                raise
            now = after(now, op, item_id, change.revision, change_key)
        return now

    def find(self, uid: str) -> list[Part]:
        """Every item in the organiser's calendar whose UID property is ``uid``."""
        raise NotImplementedError

    def responses(self, items: Sequence[str]) -> Mapping[str, Mapping[str, str]]:
        """item id → {attendee email → ACCEPTED | TENTATIVE | DECLINED} for answers given."""
        raise NotImplementedError


def is_calendar(transport: Transport) -> bool:
    return bool(getattr(transport, "calendar", False))
