"""Meetings from config: single meetings (``[[meeting]]``) and series (``[[series]]``).

A series has one UID for all its occurrences (RFC 5545 RRULE). Each occurrence also becomes a
:class:`Meeting` of its own (id ``<series>-<original date>``, its RECURRENCE-ID the original
start), so every other rule — requests, packs, reminders — treats it like any meeting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot import timeutil
from bot.model import Meeting
from bot.options import (
    REQUIRED,
    Option,
    Reader,
    _bool,
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


