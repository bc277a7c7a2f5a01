"""What a calendar item of the ``exchange`` transport says: its fields from a meeting (times
in the group's zone, the body, a series' rule as EWS's Recurrence), the revisions clerk's
properties hold, and for a series the cancelled and moved meetings the server does not show
yet, with their InstanceIndex."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.errors import TransportError
from bot.domain.recurrence import Pattern, pattern
from bot.transports.calendar import MeetingChange

log = logging.getLogger("clerk")


def _left(change: MeetingChange, master: Any, reset: bool,
          again: bool = False) -> tuple[list[Any], list[Any]]:
    """A series' cancelled meetings (original starts) and moved ones (EventSpecs) the
    server does not show yet (all of them after a ``reset``). The server shows a moved
    meeting's times, not its place: with new content (``again``) each moved one is sent
    again, unless the change is other meetings cancelled."""
    spec = change.content.master
    if not spec.rrule:
        return [], []
    done = set() if reset else {d.start for d in master.deleted_occurrences or ()}
    moved = {} if reset else {o.original_start: (o.start, o.end)
                              for o in master.modified_occurrences or ()}
    resend = again and change.scope != "occurrences"
    shifts = [o for o in change.content.overrides if o.recurrence_id is not None
              and (resend or moved.get(o.recurrence_id) != (o.start, o.end))]
    wanted = {o.recurrence_id for o in change.content.overrides} | set(spec.exdates)
    length = spec.end - spec.start
    zone = ZoneInfo(change.content.zone)
    usual = [datetime.fromtimestamp(at.timestamp(), tz=zone) for at, (start, end)
             in moved.items() if at not in wanted and (start, end) != (at, at + length)]
    shifts += [dataclasses.replace(spec, start=at, end=at + length, recurrence_id=at,
                                   rrule=None, exdates=())  # moved back to its usual time
               for at in usual]
    for at in done - set(spec.exdates):
        log.warning("exchange: the meeting of %s was cancelled on the server and cannot be "
                    "brought back there; add it as a [[meeting]] of its own", at.isoformat())
    return [x for x in spec.exdates if x not in done], shifts


def _done(change: MeetingChange) -> int:
    """The revision an item is complete at when its content is saved (``ClerkDone``): a
    series whose cancelled or moved meetings are still to be done says the previous one
    until they are (:meth:`ExchangeTransport._finish`), so a crash in between leaves it
    visibly unfinished, and the next tick does only what is left (``ClerkRevision`` says
    the content is saved already: nobody is mailed it twice)."""
    master = change.content.master
    pending = master.rrule and (master.exdates or change.content.overrides)
    return change.revision - 1 if pending else change.revision


def _completed(item: Any) -> int:
    """The revision an item found on the server is complete at."""
    done = item.clerk_done if item.clerk_done is not None else item.clerk_revision
    return int(done or 0)


def _tz(zone: str) -> Any:
    from exchangelib import EWSTimeZone

    return EWSTimeZone(zone)


def _when(value: datetime, tz: Any) -> Any:
    """An aware datetime as exchangelib's, in the group's zone (so Exchange keeps the zone:
    StartTimeZone, and a series recurs on the zone's wall clock)."""
    from exchangelib import EWSDateTime

    if not isinstance(value, EWSDateTime):
        value = EWSDateTime.from_datetime(value)
    return value.astimezone(tz)


def _attendee(name: str, email: str) -> Any:
    from exchangelib import Attendee, Mailbox

    return Attendee(mailbox=Mailbox(email_address=email, name=name or None),
                    response_type="Unknown")


def _content(change: MeetingChange) -> dict[str, Any]:
    """The item's fields clerk sets from the meeting (a series: its master and rule)."""
    from exchangelib import HTMLBody

    spec = change.content.master
    tz = _tz(change.content.zone)
    fields: dict[str, Any] = {"subject": change.content.subject, "start": _when(spec.start, tz),
                              "end": _when(spec.end, tz), "location": spec.location or None}
    if change.content.html:
        fields["body"] = HTMLBody(change.content.html)
    if spec.rrule:
        try:
            rule = pattern(spec.rrule, spec.start.astimezone(ZoneInfo(change.content.zone)))
            fields["recurrence"] = recurrence(rule)
        except ValueError as exc:
            raise TransportError(f"the series {change.uid} cannot be kept by Exchange: {exc}",
                                 retryable=False) from exc
    return fields


def _key(value: Any) -> Any:
    """A comparable form of a start, an end or a Recurrence (the server's and clerk's differ
    in spelling: weekday numbers or names, a date read back as a datetime)."""
    if value is None or not hasattr(value, "boundary"):
        return value

    def day(v: Any) -> Any:
        return v.date() if isinstance(v, datetime) else v

    bound = value.boundary
    return (type(value.pattern).__name__, str(value.pattern), type(bound).__name__,
            day(bound.start), getattr(bound, "number", None), day(getattr(bound, "end", None)))


def recurrence(rule: Pattern) -> Any:
    """bot.domain.recurrence's pattern as EWS's Recurrence (one element per pattern type; a
    numbered, end-dated or endless range)."""
    from exchangelib.fields import MONTHS
    from exchangelib.recurrence import (
        AbsoluteMonthlyPattern,
        AbsoluteYearlyPattern,
        DailyPattern,
        EndDatePattern,
        NoEndPattern,
        NumberedPattern,
        Recurrence,
        RelativeMonthlyPattern,
        RelativeYearlyPattern,
        WeeklyPattern,
    )

    days = [d.capitalize() for d in rule.days_of_week]
    week = rule.index.capitalize()
    month = MONTHS[rule.month - 1] if rule.month else ""
    if rule.type.endswith("Yearly") and rule.interval != 1:
        raise ValueError("Exchange repeats a yearly meeting every year only (INTERVAL=1)")
    shape: Any
    if rule.type == "daily":
        shape = DailyPattern(interval=rule.interval)
    elif rule.type == "weekly":
        shape = WeeklyPattern(interval=rule.interval, weekdays=days, first_day_of_week="Monday")
    elif rule.type == "absoluteMonthly":
        shape = AbsoluteMonthlyPattern(interval=rule.interval, day_of_month=rule.day_of_month)
    elif rule.type == "relativeMonthly":
        shape = RelativeMonthlyPattern(interval=rule.interval, weekday=days[0], week_number=week)
    elif rule.type == "absoluteYearly":
        shape = AbsoluteYearlyPattern(day_of_month=rule.day_of_month, month=month)
    elif rule.type == "relativeYearly":
        shape = RelativeYearlyPattern(weekday=days[0], week_number=week, month=month)
    else:
        raise ValueError(f"no EWS recurrence for {rule.type}")
    if rule.count:
        bound: Any = NumberedPattern(start=rule.start, number=rule.count)
    elif rule.until:
        bound = EndDatePattern(start=rule.start, end=rule.until)
    else:
        bound = NoEndPattern(start=rule.start)
    return Recurrence(pattern=shape, boundary=bound)


def _indexes(rrule: str, start: datetime, wanted: Sequence[datetime]) -> dict[datetime, int]:
    """EWS's InstanceIndex (from 1, counting the rule's meetings as first made, deleted ones
    too) of each original start in ``wanted``, found by expanding ``rrule`` from ``start``
    (aware, in the group's zone: dateutil steps on its wall clock). The rule's end plays no
    part in the numbering, so it is left out (an UNTIL may be a date or in UTC)."""
    from dateutil.rrule import rrulestr

    if not wanted:
        return {}
    steps = ";".join(p for p in rrule.split(";")
                     if p.split("=")[0].upper() not in ("UNTIL", "COUNT"))
    instants = {w.astimezone(UTC): w for w in wanted}
    last = max(instants)

    def before(when: datetime) -> bool:
        return when.astimezone(UTC) <= last

    out: dict[datetime, int] = {}
    for n, when in enumerate(itertools.takewhile(before, rrulestr(f"RRULE:{steps}",
                                                                    dtstart=start)), start=1):
        if when.astimezone(UTC) in instants:
            out[instants[when.astimezone(UTC)]] = n
    lost = [w for w in wanted if w not in out]
    if lost:
        raise TransportError(f"{lost[0].isoformat()} is not a meeting of the rule {rrule}",
                             retryable=False)
    return out
