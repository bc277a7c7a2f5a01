"""The compact VTIMEZONE that clerk's invitations carry (bot/render/ical.py writes the
invitations).

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
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

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
