"""iCalendar (RFC 5545) invitations for iTIP (RFC 5546) REQUEST and CANCEL.

Why this module writes its own VTIMEZONE
----------------------------------------
A DTSTART with ``TZID=Europe/London`` is only as good as the VTIMEZONE that
defines the TZID (RFC 5545 section 3.6.5); a receiving client may ignore its
own tz database and believe the calendar object instead.  icalendar's
``Calendar.add_missing_timezones()`` (``Timezone.from_tzinfo``) emits one
observance per offset pair with a long comma-separated RDATE list.  ical.js
(Thunderbird) and vobject misread those lists -- a January meeting in London
was shown one hour off -- and Outlook only understands RRULE-style zones with
one STANDARD and one DAYLIGHT observance (MS-STANOICAL 2.2.47).  So
:func:`compact_vtimezone` writes exactly that shape: one STANDARD and one
DAYLIGHT observance, each with ``RRULE:FREQ=YEARLY;BYMONTH=m;BYDAY=nSU``
(RFC 5545 section 3.3.10), derived from zoneinfo's actual transitions and
verified against them for every requested year.  A zone whose rules changed
within the span cannot be written this way, so that is a ``ValueError``
rather than a silently wrong invite.

:func:`invite_calendar` builds the iTIP object: METHOD (RFC 5546 section
3.2.2 REQUEST, 3.2.5 CANCEL), UID/SEQUENCE/DTSTAMP (RFC 5546 section 2.1.4,
RFC 5545 sections 3.8.4.7, 3.8.7.4, 3.8.7.2), ORGANIZER and ATTENDEE with CN
(RFC 5545 sections 3.8.4.3, 3.8.4.1, 3.2.2).  icalendar's ``to_ical`` does the
CRLF line endings and 75-octet folding (RFC 5545 section 3.1) and RFC 6868
parameter escaping; display names are still cleaned of CR/LF and double quotes
because many clients do not decode RFC 6868 (``^n``, ``^'``).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import (
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
    vRecur,
)
from icalendar.parser import Contentline, Parameters, _foldline

PRODID = "-//clerk//clerk//EN"
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_EPOCH_YEAR = 1970


@dataclass(frozen=True)
class _Transition:
    """One offset change; ``local`` is the wall time in the *old* offset,
    which is how RFC 5545 section 3.6.5 defines an observance's DTSTART."""

    at: datetime  # UTC instant of the change
    local: datetime  # naive, = at + offset_from
    offset_from: timedelta
    offset_to: timedelta
    name: str


@dataclass(frozen=True)
class _Rule:
    """Yearly rule "the ``nth`` ``weekday`` of ``month`` at ``time``" (-1: last)."""

    month: int
    weekday: int  # Monday == 0
    nth: int
    time: timedelta  # since local midnight
    offset_from: timedelta
    offset_to: timedelta
    name: str

    def local(self, year: int) -> datetime | None:
        first_weekday, days = calendar.monthrange(year, self.month)
        if self.nth > 0:
            day = 1 + (self.weekday - first_weekday) % 7 + 7 * (self.nth - 1)
            if day > days:
                return None  # e.g. no 5th Sunday this year
        else:
            day = days - (calendar.weekday(year, self.month, days) - self.weekday) % 7
        return datetime(year, self.month, day) + self.time

    def transition(self, year: int) -> _Transition | None:
        local = self.local(year)
        if local is None:
            return None
        at = (local - self.offset_from).replace(tzinfo=UTC)
        return _Transition(at, local, self.offset_from, self.offset_to, self.name)

    def rrule(self) -> dict[str, str | int]:
        byday = f"{self.nth}{_WEEKDAYS[self.weekday]}"  # RFC 5545 3.3.10
        return {"FREQ": "YEARLY", "BYMONTH": self.month, "BYDAY": byday}


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _transitions(tz: ZoneInfo, year: int) -> list[_Transition]:
    """zoneinfo's offset changes in a (UTC) year: scan day by day, then bisect
    each changing day down to the second."""
    found: list[_Transition] = []
    low = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while low < end:
        high = min(low + _DAY, end)
        before = _offset(tz, low)
        if _offset(tz, high) != before:
            lo, hi = low, high  # invariant: lo has the old offset, hi does not
            while hi - lo > _SECOND:
                mid = (lo + (hi - lo) // 2).replace(microsecond=0)
                lo, hi = (mid, hi) if _offset(tz, mid) == before else (lo, mid)
            local = (hi + before).replace(tzinfo=None)
            name = hi.astimezone(tz).tzname() or tz.key
            found.append(_Transition(hi, local, before, _offset(tz, hi), name))
        low = high
    return found


def _rule_for(tz: ZoneInfo, changes: dict[int, _Transition]) -> _Rule:
    """The nth/last-weekday rule that reproduces ``changes`` (year -> transition)."""
    years = sorted(changes)
    first = changes[years[0]].local
    base = _Rule(
        first.month,
        first.weekday(),
        (first.day - 1) // 7 + 1,
        first - datetime(first.year, first.month, first.day),
        changes[years[0]].offset_from,
        changes[years[0]].offset_to,
        changes[years[0]].name,
    )
    # "last" first: when both fit (2027-03-28 is the 4th and the last Sunday)
    # it is the likelier rule; the look-ahead below settles it.
    rules = [
        rule
        for rule in (replace(base, nth=-1), base)
        if all(rule.transition(year) == changes[year] for year in years)
    ]
    if not rules:
        raise ValueError(
            f"{tz.key}: the changes {[str(changes[y].local) for y in years]} do not "
            "follow one 'nth/last weekday of the month' rule with the same time, "
            "offsets and name; the zone's rules changed within the span (or follow "
            "a pattern an RRULE-style VTIMEZONE cannot express)"
        )
    if len(rules) > 1:
        ahead = [_transitions(tz, y) for y in range(years[-1] + 1, years[-1] + 8)]
        rules.sort(key=lambda r: -sum(r.transition(t[0].at.year) in t for t in ahead if t))
    return rules[0]


def _observance(
    kind: type[TimezoneStandard | TimezoneDaylight],
    onset: _Transition,
    rule: _Rule | None = None,
) -> TimezoneStandard | TimezoneDaylight:
    sub = kind()
    sub.add("DTSTART", onset.local)
    sub.add("TZOFFSETFROM", onset.offset_from)
    sub.add("TZOFFSETTO", onset.offset_to)
    sub.add("TZNAME", onset.name)
    if rule is not None:
        sub.add("RRULE", rule.rrule())
    return sub


def _onset_year(first_year: int) -> int:
    """The year of each observance's DTSTART: 1970, as in the zones that
    Thunderbird and libical ship, or the year before the span if earlier.

    It must precede the span so that early dates of the first year (summer
    time in the southern hemisphere) fall after an onset: RFC 5545 does not
    say what applies before the first one.  And vobject compares a VTIMEZONE
    with UTC over 2000-2020; one that starts later looks like UTC there (for
    London) and is silently replaced by pytz's zone of the same name.
    """
    return min(_EPOCH_YEAR, first_year - 1)


def compact_vtimezone(zone: str, years: Iterable[int]) -> Timezone:
    """See :func:`_compact_vtimezone`; cached, because deriving the rules scans zoneinfo
    (the result is shared: do not modify it)."""
    return _compact_vtimezone(zone, tuple(sorted(set(years))))


@lru_cache(maxsize=256)
def _compact_vtimezone(zone: str, years: tuple[int, ...]) -> Timezone:
    """An RRULE-style VTIMEZONE (TZID = ``zone``) valid for every year in ``years``.

    Exactly one STANDARD and one DAYLIGHT observance with yearly RRULEs, or a
    single STANDARD without RRULE for a zone with no DST in the span.  Raises
    ``ValueError`` if the zone's rules changed within the span.  See the module
    docstring for why icalendar's ``add_missing_timezones()`` is not used.
    """
    wanted = sorted(set(years))
    if not wanted:
        raise ValueError("compact_vtimezone needs at least one year")
    tz = ZoneInfo(zone)
    by_year = {year: _transitions(tz, year) for year in wanted}
    vtimezone = Timezone()
    vtimezone.add("TZID", zone)

    if not any(by_year.values()):
        jan1 = [datetime(year, 1, 1, tzinfo=UTC).astimezone(tz) for year in wanted]
        if len({(dt.utcoffset(), dt.tzname()) for dt in jan1}) != 1:
            raise ValueError(f"{zone}: offset changed within {wanted[0]}-{wanted[-1]}")
        offset, name = jan1[0].utcoffset() or timedelta(0), jan1[0].tzname() or zone
        jan = datetime(_onset_year(wanted[0]), 1, 1)
        since = _Transition(jan.replace(tzinfo=UTC), jan, offset, offset, name)
        vtimezone.add_component(_observance(TimezoneStandard, since))
        return vtimezone

    standard: dict[int, _Transition] = {}
    daylight: dict[int, _Transition] = {}
    for year, changes in by_year.items():
        match changes:
            case [there, back] if (there.offset_from, there.offset_to) == (
                back.offset_to,
                back.offset_from,
            ):
                # The larger offset is DAYLIGHT (also for Dublin, whose tzdata
                # models winter as negative DST).
                ordered = sorted((there, back), key=lambda t: t.offset_to)
                standard[year], daylight[year] = ordered
            case _:
                raise ValueError(
                    f"{zone}: {len(changes)} offset change(s) in {year}, not one "
                    "pair of yearly DST changes; the zone's rules changed within "
                    "the span, which a compact VTIMEZONE cannot express"
                )
    for kind, observed in ((TimezoneStandard, standard), (TimezoneDaylight, daylight)):
        rule = _rule_for(tz, observed)
        year = _onset_year(wanted[0])
        while (onset := rule.transition(year)) is None:  # no 5th Sunday that year
            year -= 1
        vtimezone.add_component(_observance(kind, onset, rule))
    return vtimezone


def _display_name(name: str) -> str:
    """A CN value safe for clients without RFC 6868: no CR/LF, no DQUOTE."""
    return " ".join(name.replace('"', "'").split())


def _mailto(email: str) -> str:
    address = email.strip()
    if not address or any(ch.isspace() or not ch.isprintable() for ch in address):
        raise ValueError(f"invalid e-mail address {email!r}")
    return f"mailto:{address}"


def _in_zone(name: str, value: datetime, tz: tzinfo) -> datetime:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(tz)


@dataclass(frozen=True)
class EventSpec:
    """One VEVENT of an iTIP message: a single meeting, a series master (``rrule``, with
    ``exdates`` for occurrences taken out) or an override (``recurrence_id``)."""

    start: datetime
    end: datetime
    summary: str
    location: str | None = None
    description: str | None = None
    url: str | None = None
    recurrence_id: datetime | None = None
    rrule: str | None = None  # RFC 5545 3.3.10, e.g. "FREQ=MONTHLY;INTERVAL=3;COUNT=4"
    exdates: Sequence[datetime] = ()
    status: str = "CONFIRMED"


def invite_calendar(
    *,
    method: str,
    uid: str,
    sequence: int,
    dtstamp: datetime,
    start: datetime,
    end: datetime,
    zone: str,
    summary: str,
    location: str | None,
    description: str | None,
    url: str | None,
    organiser_name: str,
    organiser_email: str,
    attendees: Sequence[tuple[str, str]],
    status: str = "CONFIRMED",
    recurrence_id: datetime | None = None,
) -> bytes:
    """One VCALENDAR with METHOD, a compact VTIMEZONE and one VEVENT (see :func:`itip`)."""
    event = EventSpec(start=start, end=end, summary=summary, location=location,
                      description=description, url=url, recurrence_id=recurrence_id,
                      status=status)
    return itip(method=method, uid=uid, sequence=sequence, dtstamp=dtstamp, zone=zone,
                organiser_name=organiser_name, organiser_email=organiser_email,
                attendees=attendees, events=[event])


def itip(
    *,
    method: str,
    uid: str,
    sequence: int,
    dtstamp: datetime,
    zone: str,
    organiser_name: str,
    organiser_email: str,
    attendees: Sequence[tuple[str, str]],
    events: Sequence[EventSpec],
    zone_years: Iterable[int] = (),
) -> bytes:
    """One VCALENDAR with METHOD, a compact VTIMEZONE and the given VEVENTs, as bytes.

    ``method`` is ``"REQUEST"`` or ``"CANCEL"`` (RFC 5546 sections 3.2.2, 3.2.5); for
    CANCEL the STATUS is CANCELLED and attendees carry no PARTSTAT/RSVP. Every VEVENT shares
    the UID and SEQUENCE (RFC 5546 2.1.4). Aware datetimes are written with ``TZID=zone``;
    DTSTAMP in UTC. The VTIMEZONE covers every year an event touches and ``zone_years``
    (a series' whole span).
    """
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, got {method!r}")
    if sequence < 0:
        raise ValueError("sequence must be >= 0")
    if not events:
        raise ValueError("an iTIP message needs at least one VEVENT")
    tz = ZoneInfo(zone)
    years = set(zone_years)
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("METHOD", method)
    built = []
    for spec in events:
        event, touched = _event(spec, method, uid, sequence, dtstamp, tz)
        years |= touched
        organizer = vCalAddress(_mailto(organiser_email))
        organizer.params["CN"] = _display_name(organiser_name)
        event.add("ORGANIZER", organizer)
        for name, email in attendees:
            event.add("ATTENDEE", _attendee(name, email, method))
        built.append(event)
    cal.add_component(compact_vtimezone(zone, range(min(years), max(years) + 1)))
    for event in built:
        cal.add_component(event)
    ical: bytes = cal.to_ical()  # CRLF, folded at 75 octets (RFC 5545 3.1)
    return ical


def _attendee(name: str, email: str, method: str) -> vCalAddress:
    attendee = vCalAddress(_mailto(email))
    attendee.params["CN"] = _display_name(name)
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    if method == "REQUEST":
        attendee.params["PARTSTAT"] = "NEEDS-ACTION"
        attendee.params["RSVP"] = "TRUE"
    return attendee


def _attendee_line(name: str, email: str, method: str) -> bytes:
    """The ATTENDEE content line (folded, CRLF) exactly as :func:`itip` writes it: icalendar
    writes the parameters that are the same for every attendee once (:func:`_attendee_rest`)
    and each attendee's CN; the whole line when that cannot be done."""
    rest = _attendee_rest(method)
    if rest is None:
        line = _attendee_contentline(name, email, method)
    else:
        line = f"ATTENDEE;{_cn(name)}{rest}:{_mailto(email)}"
    return fold(line).encode() + b"\r\n"


def _attendee_contentline(name: str, email: str, method: str) -> str:
    """The ATTENDEE line, unfolded, through the icalendar call a component makes for it."""
    attendee = _attendee(name, email, method)
    return str(Contentline.from_parts("ATTENDEE", attendee.params, attendee))


def _cn(name: str) -> str:
    return str(Parameters({"CN": _display_name(name)}).to_ical().decode())


@lru_cache(maxsize=8)
def _attendee_rest(method: str) -> str | None:
    """What follows the CN parameter in every ATTENDEE line for ``method`` (the parameters
    sorted after it), or None when the line is not CN first and the address last."""
    name, email = _PLACEHOLDER
    line = _attendee_contentline(name, email, method)
    head, tail = f"ATTENDEE;{_cn(name)}", f":{_mailto(email)}"
    if not (line.startswith(head) and line.endswith(tail)):
        return None
    return line[len(head):-len(tail)]


def fold(line: str) -> str:
    """``line`` folded as icalendar folds it (RFC 5545 3.1: at 75 octets, and never just
    after a backslash or caret, which would split an escape) — the same string, for ASCII
    lines in a fraction of the time: slices instead of a loop over characters."""
    if len(line) < _FOLD or not line.isascii():
        return _foldline(line) if len(line.encode()) >= _FOLD else line
    chunks, start, end = [], 0, len(line)
    while end - start >= _FOLD:  # a chunk holds _FOLD - 1 characters
        cut = start + _FOLD - 1
        if line[cut - 1] in "\\^":  # the escape character starts the next chunk
            cut -= 1
        chunks.append(line[start:cut])
        start = cut
    chunks.append(line[start:])
    return "\r\n ".join(chunks)


_FOLD = 75  # octets, as icalendar folds


_PLACEHOLDER = ("clerk attendee", "attendee@clerk.invalid")


def itip_for(**kwargs: Any) -> Callable[[tuple[str, str]], bytes]:
    """:func:`itip` for one attendee at a time: (name, email) → the calendar. A meeting's
    invitations differ only in their ATTENDEE line, so the calendar is written once (with a
    placeholder attendee) and each attendee's line put in its place: the same bytes, for a
    fraction of the cost."""
    method = kwargs["method"]
    calendar = itip(attendees=[_PLACEHOLDER], **kwargs)
    line = _attendee_line(*_PLACEHOLDER, method)
    if calendar.count(line) != len(kwargs["events"]):  # cannot tell where it goes
        return lambda attendee: itip(attendees=[attendee], **kwargs)
    return lambda attendee: calendar.replace(line, _attendee_line(*attendee, method))


def _event(spec: EventSpec, method: str, uid: str, sequence: int, dtstamp: datetime,
           tz: ZoneInfo) -> tuple[Event, set[int]]:
    if spec.status not in ("TENTATIVE", "CONFIRMED", "CANCELLED"):  # RFC 5545 3.8.1.11
        raise ValueError(f"invalid VEVENT status {spec.status!r}")
    local_start, local_end = _in_zone("start", spec.start, tz), _in_zone("end", spec.end, tz)
    if local_end <= local_start:
        raise ValueError("end must be after start")
    rid = spec.recurrence_id and _in_zone("recurrence_id", spec.recurrence_id, tz)
    exdates = [_in_zone("exdate", d, tz) for d in spec.exdates]
    years = {dt.year for dt in (local_start, local_end, rid, *exdates) if dt is not None}
    event = Event()
    event.add("UID", uid)
    event.add("DTSTAMP", _in_zone("dtstamp", dtstamp, UTC))
    event.add("SEQUENCE", sequence)
    event.add("DTSTART", local_start)
    event.add("DTEND", local_end)
    if rid is not None:
        event.add("RECURRENCE-ID", rid)
    if spec.rrule:
        event.add("RRULE", vRecur.from_ical(spec.rrule))
    for exdate in exdates:
        event.add("EXDATE", exdate)
    event.add("SUMMARY", spec.summary)
    if spec.location or spec.url:
        event.add("LOCATION", spec.location or spec.url)
    if spec.description:
        event.add("DESCRIPTION", spec.description)
    if spec.url:
        event.add("URL", spec.url)
    event.add("STATUS", "CANCELLED" if method == "CANCEL" else spec.status)
    return event, years
