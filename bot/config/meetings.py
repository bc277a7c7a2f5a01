"""Meetings from config: single meetings (``[[meeting]]``) and series (``[[series]]``).

A series has one UID for all its occurrences (RFC 5545 RRULE). Each occurrence also becomes a
:class:`Meeting` of its own (id ``<series>-<original date>``, its RECURRENCE-ID the original
start), so every other rule — requests, packs, reminders — treats it like any meeting.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from bot.domain import timeutil
from bot.domain.model import Meeting, Series
from bot.domain.options import (
    REQUIRED,
    Option,
    Reader,
    _bool,
    _date,
    _duration,
    _id,
    _local_datetime,
    _str,
    _strings,
)

DEFAULTS_OPTIONS = {
    "title": Option("", _str, "meeting title; defaults to the group's name"),
    "duration": Option(timedelta(hours=2), _duration, "length of a meeting, like 2h or 90m"),
    "location": Option("", _str, "where the meeting is"),
    "link": Option("", _str, "online meeting link"),
    "description": Option("", _str, "text of the invitation"),
}
MEETING_OPTIONS = {
    "id": Option(REQUIRED, _id, "stable id of the meeting; keep it when the date moves"),
    "start": Option(REQUIRED, _local_datetime, "local start, like 2027-01-14T14:00:00"),
    "title": Option(None, _str, "overrides [meetings] title"),
    "duration": Option(None, _duration, "overrides [meetings] duration"),
    "location": Option(None, _str, "overrides [meetings] location"),
    "link": Option(None, _str, "overrides [meetings] link"),
    "description": Option(None, _str, "overrides [meetings] description"),
    "items": Option((), _strings, "agenda items of this meeting only"),
    "cancelled": Option(False, _bool, "true: the meeting is off"),
}
def parse_meetings(r: Reader, raw: Any, defaults: dict[str, Any], tz: Any,
              g: dict[str, Any]) -> list[Meeting]:
    if not isinstance(raw, list):
        r.problem("meeting", "must be a list of [[meeting]] tables")
        return []
    out: list[Meeting] = []
    ids: set[str] = set()
    for i, item in enumerate(raw):
        m = r.section(item, MEETING_OPTIONS, f"meeting[{i}]", table="meeting", index=i)
        if "id" in m:
            if m["id"] in ids:
                r.problem(f"meeting[{i}].id", f"{m['id']!r} is used twice", table="meeting",
                          index=i, name="id", hint="each meeting needs its own id")
            ids.add(m["id"])
        if "start" not in m or "id" not in m or tz is None:
            continue
        try:
            start = timeutil.localize(m["start"], tz)
        except ValueError as exc:
            r.problem(f"meeting[{i}].start", str(exc), table="meeting", index=i, name="start")
            continue

        def pick(name: str, m: dict[str, Any] = m) -> Any:
            return m[name] if m.get(name) is not None else defaults.get(name)

        out.append(Meeting(
            id=m["id"], title=pick("title") or g.get("name", ""), start=start,
            duration=pick("duration"), location=pick("location"), link=pick("link"),
            description=pick("description"),
            items=tuple(g.get("standing_items", ())) + tuple(m["items"]),
            cancelled=m["cancelled"],
        ))
    out.sort(key=lambda mt: mt.start)
    return out



SERIES_OPTIONS = {
    "id": Option(REQUIRED, _id, "stable id of the series: one UID for all its meetings"),
    "start": Option(REQUIRED, _local_datetime, "local start of the first meeting"),
    "repeat": Option(REQUIRED, _str, "an RFC 5545 RRULE with COUNT or UNTIL, like "
                     "FREQ=MONTHLY;INTERVAL=3;COUNT=4"),
    "title": Option(None, _str, "overrides [meetings] title"),
    "duration": Option(None, _duration, "overrides [meetings] duration"),
    "location": Option(None, _str, "overrides [meetings] location"),
    "link": Option(None, _str, "overrides [meetings] link"),
    "description": Option(None, _str, "overrides [meetings] description"),
    "items": Option((), _strings, "agenda items of every meeting of the series"),
    "cancelled": Option(False, _bool, "true: the whole series is off"),
    "occurrence": Option((), lambda v: v, "[[series.occurrence]] changes to one meeting"),
}
OCCURRENCE_OPTIONS = {
    "date": Option(REQUIRED, _date, "the meeting's original date, like 2027-04-15"),
    "start": Option(None, _local_datetime, "its new local start (moved)"),
    "duration": Option(None, _duration, "its own length"),
    "location": Option(None, _str, "its own place"),
    "link": Option(None, _str, "its own link"),
    "items": Option((), _strings, "agenda items of this meeting only"),
    "cancelled": Option(False, _bool, "true: this meeting is off"),
}
MAX_OCCURRENCES = 200


def parse_series(r: Reader, raw: Any, defaults: dict[str, Any], tz: Any,
                 g: dict[str, Any], taken: set[str]) -> list[Series]:
    """Read ``[[series]]`` tables; ``taken`` holds the meeting ids already used."""
    if not isinstance(raw, list):
        r.problem("series", "must be a list of [[series]] tables")
        return []
    out: list[Series] = []
    seen_occurrences = 0
    for i, item in enumerate(raw):
        key = f"series[{i}]"
        v = r.section(item, SERIES_OPTIONS, key, table="series", index=i)
        if "id" in v:
            if v["id"] in taken:
                r.problem(f"{key}.id", f"{v['id']!r} is already used by a meeting or series",
                          table="series", index=i, name="id")
            taken.add(v["id"])
        if "start" not in v or "id" not in v or "repeat" not in v or tz is None:
            continue
        try:
            start = timeutil.localize(v["start"], tz)
            starts = _expand(v["start"], v["repeat"], tz)
        except ValueError as exc:
            r.problem(f"{key}.repeat", str(exc), table="series", index=i, name="repeat")
            continue

        def pick(name: str, v: dict[str, Any] = v) -> Any:
            return v[name] if v.get(name) is not None else defaults.get(name)

        master = Meeting(
            id=v["id"], title=pick("title") or g.get("name", ""), start=start,
            duration=pick("duration"), location=pick("location"), link=pick("link"),
            description=pick("description"),
            items=tuple(g.get("standing_items", ())) + tuple(v["items"]),
            cancelled=v["cancelled"], series=v["id"])
        changes: dict[date, dict[str, Any]] = {}
        for j, change in enumerate(v["occurrence"] if isinstance(v["occurrence"], list)
                                   else []):
            c = r.section(change, OCCURRENCE_OPTIONS, f"{key}.occurrence[{j}]",
                          table="series.occurrence", index=seen_occurrences + j)
            if "date" in c:
                if c["date"] not in {s.date() for s in starts}:
                    r.problem(f"{key}.occurrence[{j}].date", f"{c['date']} is not a date of "
                              "the series", table="series.occurrence",
                              index=seen_occurrences + j, name="date",
                              hint="use the meeting's original date, as the rule gives it")
                changes[c["date"]] = c
        seen_occurrences += len(v["occurrence"]) if isinstance(v["occurrence"], list) else 0
        occurrences = []
        for original in starts:
            c = changes.get(original.date(), {})
            moved = original
            if c.get("start") is not None:
                try:
                    moved = timeutil.localize(c["start"], tz)
                except ValueError as exc:
                    r.problem(f"{key}.occurrence.start", str(exc), table="series.occurrence",
                              name="start")
            occurrences.append(replace(
                master, id=f"{v['id']}-{original:%Y-%m-%d}", start=moved,
                duration=c.get("duration") or master.duration,
                location=c["location"] if c.get("location") is not None else master.location,
                link=c["link"] if c.get("link") is not None else master.link,
                items=master.items + tuple(c.get("items", ())),
                cancelled=master.cancelled or bool(c.get("cancelled")),
                recurrence_id=original))
        out.append(Series(id=v["id"], master=master, repeat=v["repeat"].strip().upper(),
                          occurrences=tuple(occurrences), cancelled=v["cancelled"]))
    return out


def _expand(first: datetime, repeat: str, tz: Any) -> list[datetime]:
    """The original starts of a series (aware), from its local first start and RRULE."""
    from dateutil.rrule import rrulestr

    text = repeat.strip().upper().removeprefix("RRULE:")
    if "COUNT=" not in text and "UNTIL=" not in text:
        raise ValueError(f"{repeat!r} never ends; add COUNT=n or UNTIL=yyyymmdd")
    try:
        rule = rrulestr(f"RRULE:{text}", dtstart=first)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{repeat!r} is not an RRULE ({exc}); write it like "
                         "FREQ=MONTHLY;INTERVAL=3;COUNT=4") from None
    starts = []
    for n, naive in enumerate(rule):
        if n >= MAX_OCCURRENCES:
            raise ValueError(f"{repeat!r} gives more than {MAX_OCCURRENCES} meetings")
        starts.append(timeutil.localize(naive, tz))
    if not starts:
        raise ValueError(f"{repeat!r} gives no meeting")
    return starts
