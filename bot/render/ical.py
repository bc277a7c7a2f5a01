"""iCalendar (RFC 5545) invitations for iTIP (RFC 5546) REQUEST and CANCEL.

Each carries a compact VTIMEZONE of its zone (bot/render/vtimezone.py, which says why
clerk writes its own).

:func:`invite_calendar` builds the iTIP object: METHOD (RFC 5546 section
3.2.2 REQUEST, 3.2.5 CANCEL), UID/SEQUENCE/DTSTAMP (RFC 5546 section 2.1.4,
RFC 5545 sections 3.8.4.7, 3.8.7.4, 3.8.7.2), ORGANIZER and ATTENDEE with CN
(RFC 5545 sections 3.8.4.3, 3.8.4.1, 3.2.2).  icalendar's ``to_ical`` does the
CRLF line endings and 75-octet folding (RFC 5545 section 3.1) and RFC 6868
parameter escaping; display names are still cleaned of CR/LF and double quotes
because many clients do not decode RFC 6868 (``^n``, ``^'``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vRecur
from icalendar.parser import Contentline, Parameters, _foldline

from bot.render.vtimezone import compact_vtimezone

PRODID = "-//clerk//clerk//EN"


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
    # Outlook and Google show LOCATION and DESCRIPTION, not URL: the join link goes in both,
    # and the description says the time as people read it, with the zone's name
    if spec.location or spec.url:
        event.add("LOCATION", ": ".join(p for p in (spec.location, spec.url) if p))
    event.add("DESCRIPTION", _description(spec, local_start, local_end))
    if spec.url:
        event.add("URL", spec.url)
    event.add("STATUS", "CANCELLED" if method == "CANCEL" else spec.status)
    return event, years


def _description(spec: EventSpec, start: datetime, end: datetime) -> str:
    """The description, then when (local, with the zone's name) and the join link."""
    # ASCII, so that a calendar part stays 7bit as most clients expect
    when = f"{start:%A} {start.day} {start:%B %Y}, {start:%H:%M} to {end:%H:%M} " \
           f"({start.tzinfo})"
    lines = [f"{'First meeting' if spec.rrule else 'When'}: {when}"]
    if spec.url:
        lines.append(f"Join online: {spec.url}")
    return "\n\n".join(([spec.description] if spec.description else []) + ["\n".join(lines)])
