"""A series' RRULE (RFC 5545 3.3.10) as the recurrence pattern Exchange and Microsoft 365
keep: one shape both the ``exchange`` and the ``graph`` transports translate from.

Only what both services can hold is accepted: DAILY, WEEKLY (BYDAY), MONTHLY on a day of the
month or on the n-th weekday (BYDAY=2TH, BYDAY=-1FR, or BYDAY=TH;BYSETPOS=2), YEARLY the
same ways, with INTERVAL, and COUNT or UNTIL or neither. Anything else is a ``ValueError``
naming the part, so ``clerk check`` can say which series cannot go to the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

DAYS = {"MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday",
        "FR": "friday", "SA": "saturday", "SU": "sunday"}
INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
_BYDAY = re.compile(r"^([+-]?\d)?(MO|TU|WE|TH|FR|SA|SU)$")


@dataclass(frozen=True)
class Pattern:
    """Graph's ``patternedRecurrence`` in all but spelling (EWS has one element per type)."""

    type: str  # daily | weekly | absoluteMonthly | relativeMonthly | absoluteYearly
    #            | relativeYearly
    interval: int
    start: date
    days_of_week: tuple[str, ...] = ()  # weekly, relative*: "monday", …
    day_of_month: int = 0  # absolute*
    index: str = ""  # relative*: first | second | third | fourth | last
    month: int = 0  # *Yearly
    count: int = 0  # numbered range
    until: date | None = None  # endDate range; neither: no end


def pattern(rrule: str, start: datetime) -> Pattern:
    """The pattern of ``rrule`` for a series whose first meeting is at ``start`` (local)."""
    parts: dict[str, str] = {}
    for item in rrule.upper().split(";"):
        name, _, value = item.partition("=")
        if not value:
            raise ValueError(f"{item!r} is not NAME=VALUE")
        parts[name] = value
    freq = parts.pop("FREQ", "")
    interval = int(parts.pop("INTERVAL", "1"))
    count = int(parts.pop("COUNT", "0"))
    until_text = parts.pop("UNTIL", "")
    until = _date(until_text) if until_text else None
    byday = [d for d in parts.pop("BYDAY", "").split(",") if d]
    setpos = int(parts.pop("BYSETPOS", "0"))
    bymonthday = int(parts.pop("BYMONTHDAY", "0"))
    bymonth = int(parts.pop("BYMONTH", "0"))
    parts.pop("WKST", None)
    if parts:
        raise ValueError(f"{', '.join(sorted(parts))} cannot be kept by Exchange or "
                         "Microsoft 365; use FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, "
                         "BYSETPOS, COUNT or UNTIL")
    common: dict[str, Any] = {"interval": interval, "start": start.date(), "count": count,
                              "until": until}
    if freq == "DAILY" and not byday:
        return Pattern("daily", **common)
    if freq == "WEEKLY":
        days = tuple(DAYS[_day(d)[1]] for d in byday) or (DAYS[_weekday(start)],)
        return Pattern("weekly", days_of_week=days, **common)
    if freq in ("MONTHLY", "YEARLY"):
        kind = "Monthly" if freq == "MONTHLY" else "Yearly"
        month = (bymonth or start.month) if freq == "YEARLY" else 0
        if byday:
            if len(byday) != 1:
                raise ValueError("BYDAY with more than one day in a monthly or yearly rule "
                                 "cannot be kept by Exchange or Microsoft 365")
            nth, day = _day(byday[0])
            nth = nth or setpos or (start.day - 1) // 7 + 1
            if nth not in INDEX:
                raise ValueError(f"BYDAY {byday[0]}: only the 1st to 4th or the last weekday")
            return Pattern(f"relative{kind}", days_of_week=(DAYS[day],), index=INDEX[nth],
                           month=month, **common)
        return Pattern(f"absolute{kind}", day_of_month=bymonthday or start.day, month=month,
                       **common)
    raise ValueError(f"FREQ={freq or '?'} cannot be kept by Exchange or Microsoft 365")


def _day(text: str) -> tuple[int, str]:
    m = _BYDAY.match(text)
    if not m:
        raise ValueError(f"BYDAY {text!r} is not a weekday like MO or 2TH")
    return int(m.group(1) or 0), m.group(2)


def _weekday(value: datetime) -> str:
    return list(DAYS)[value.weekday()]


def _date(text: str) -> date:
    return datetime.strptime(text[:8], "%Y%m%d").date()
