"""Time: offsets, zones and the local times people write in config.

Aware datetimes only; instants are stored in UTC. The clock is always passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.model import Offset

_OFFSET = re.compile(r"^\s*([+-]?)(\d+)\s*([mhdw])\s*$")
_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")


def parse_offset(text: str) -> Offset:
    """Parse "-28d", "+10d", "-2w", "-3h", "-90m" (sign defaults to +)."""
    m = _OFFSET.match(text)
    if not m:
        raise ValueError(f"{text!r} is not an offset; write it like -28d, +10d, -2w, -3h or -90m")
    sign = -1 if m.group(1) == "-" else 1
    return Offset(text=text.strip(), amount=sign * int(m.group(2)), unit=m.group(3))


def parse_duration(text: str) -> timedelta:
    """Parse "2h", "90m", "1h30m" into a positive duration."""
    m = _DURATION.match(text)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(f"{text!r} is not a duration; write it like 2h, 90m or 1h30m")
    value = timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))
    if value <= timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration")
    return value


def format_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    h, m = divmod(minutes, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m or not h else "")


def day_text(day: date) -> str:
    """A date as people read it in clerk's messages and output: "Tue 3 March 2027"."""
    return f"{day:%a} {day.day} {day:%B %Y}"


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ValueError with a hint when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/London"
        ) from None


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """Attach ``tz`` to a wall time, refusing times that do not exist or happen twice.

    Spring forward skips an hour (01:30 on the last Sunday of March does not exist in
    London); fall back repeats one. Either would put a meeting at a time nobody meant.
    """
    aware = naive.replace(tzinfo=tz, fold=0)
    roundtrip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if roundtrip != naive:
        raise ValueError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks go forward then); "
            "choose another time"
        )
    if aware.utcoffset() != naive.replace(tzinfo=tz, fold=1).utcoffset():
        raise ValueError(
            f"{naive:%Y-%m-%d %H:%M} happens twice in {tz.key} (the clocks go back then); "
            "choose another time"
        )
    return aware


def apply_offset(start: datetime, offset: Offset, at: tuple[int, int]) -> datetime:
    """The instant ``offset`` from ``start`` (aware, in the group's zone), as UTC."""
    tz = start.tzinfo
    assert tz is not None
    if offset.unit in "dw":
        days = offset.amount * (7 if offset.unit == "w" else 1)
        day = start.date() + timedelta(days=days)
        naive = datetime.combine(day, time(*at))
        local = naive.replace(tzinfo=tz)
        # a wall time in the spring-forward gap moves on by the gap, like a clock would
        local = local.astimezone(UTC).astimezone(tz)
        return local.astimezone(UTC)
    minutes = offset.amount * (60 if offset.unit == "h" else 1)
    # in UTC: adding to a zoned datetime would follow the wall clock across a clock change
    return start.astimezone(UTC) + timedelta(minutes=minutes)


def parse_instant(text: str, tz: ZoneInfo | None = None) -> datetime:
    """An ISO 8601 instant or date from the command line, as aware UTC.

    A value without an offset is read in ``tz`` (the first group's zone) or UTC.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or time; write it like 2027-03-11 or "
            "2027-03-11T09:00+00:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz or UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The worker's clock: the real one, or a rehearsal's that starts at ``start`` and then
    runs at the real pace (``clerk --now TIME run``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.offset = start - utcnow() if start is not None else timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset
