"""Send windows: no mail outside a group's working hours, at weekends or on bank holidays.

A message due outside the window goes at its next opening; a reply deadline never falls on a
day the window is shut (it moves to the working day before, so members keep their lead time
before the meeting). Bank holidays come from the ``holidays`` package (England and Wales by
default: "GB-ENG"); each group can choose its own calendar or none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from bot.domain import timeutil

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    opens: time
    closes: time
    holidays: str  # "GB-ENG", "GB-SCT", "IE", … or "" for none

    def describe(self) -> str:
        return (f"{','.join(DAYS[d].title() for d in sorted(self.days))} "
                f"{self.opens:%H:%M}-{self.closes:%H:%M}"
                + (f", not on {self.holidays} bank holidays" if self.holidays else ""))


ALWAYS = Window(frozenset(range(7)), time(0, 0), time(23, 59, 59), "")


def parse(text: str, holidays: str) -> Window:
    """ "Mon-Fri 08:00-18:00" (days may also be listed: "Mon,Wed,Fri 09:00-17:00")."""
    m = re.fullmatch(r"\s*([A-Za-z,\-]+)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a send window; write it like Mon-Fri 08:00-18:00")
    days: set[int] = set()
    for part in m.group(1).lower().split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            raise ValueError(f"{part!r} is not a day or range of days like Mon-Fri")
        a, b = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        days |= set(range(a, b + 1)) if a <= b else set(range(a, 7)) | set(range(0, b + 1))
    opens, closes = (time.fromisoformat(t.zfill(5)) for t in (m.group(2), m.group(3)))
    if closes <= opens:
        raise ValueError(f"{text!r}: the window must close after it opens")
    if holidays:
        closed_days(holidays, 2027)  # an unknown calendar is an error now, not at send time
    return Window(frozenset(days), opens, closes, holidays)


@lru_cache(maxsize=64)
def closed_days(calendar: str, year: int) -> frozenset[date]:
    import holidays as bank

    country, _, subdiv = calendar.partition("-")
    try:
        found = bank.country_holidays(country, subdiv=subdiv or None, years=year)
    except (NotImplementedError, KeyError) as exc:
        raise ValueError(f"unknown bank holiday calendar {calendar!r} ({exc}); use a "
                         "country and region code like GB-ENG, GB-SCT or IE, or \"\"") from None
    return frozenset(found)


def is_open_day(window: Window, day: date) -> bool:
    return day.weekday() in window.days and (
        not window.holidays or day not in closed_days(window.holidays, day.year))


@lru_cache(maxsize=65536)
def next_opening(window: Window, zone: str, instant: datetime) -> datetime:
    """``instant`` itself if the window is open then, else when it next opens (UTC)."""
    if window == ALWAYS:
        return instant
    tz = timeutil.zone(zone)
    local = instant.astimezone(tz)
    day = local.date()
    for _ in range(400):
        if is_open_day(window, day):
            opens = datetime.combine(day, window.opens, tzinfo=tz)
            closes = datetime.combine(day, window.closes, tzinfo=tz)
            if local < opens:
                return opens.astimezone(UTC)
            if local < closes:
                return instant
        day += timedelta(days=1)
        local = datetime.combine(day, time(0), tzinfo=tz)
    raise ValueError(f"the send window {window.describe()} never opens")


def working_day_on_or_before(window: Window, day: date) -> date:
    """A deadline's day: ``day``, or the last open day before it."""
    for _ in range(400):
        if is_open_day(window, day):
            return day
        day -= timedelta(days=1)
    raise ValueError(f"the send window {window.describe()} never opens")
