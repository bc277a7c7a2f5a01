"""Every kind of invite clerk builds, read by four independent parsers and stored in Radicale.

For a 14:00 Europe/London meeting on each side of both UK clock changes of 2027 and in winter,
``invite_calendar`` builds a REQUEST (2 h and 3 h), an update (SEQUENCE 1, 3 h -> 2 h), a
CANCEL, and a single-occurrence override (RECURRENCE-ID) moved across the clock change, plus
its cancellation.  icalendar, vobject, ical.js and libical must each read the same UTC start
and end as zoneinfo, through the calendar's own VTIMEZONE; libical's RFC 5546 restriction
check must pass; Radicale must store each object.  The negative tests show that each check
can fail.  The tools come from tests/setup.sh: a missing one fails, it never skips.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from bot.render.ical import invite_calendar
from tests.parsers import (
    PARSERS,
    CalendarPut,
    EventTimes,
    Parsed,
    ParserError,
    Radicale,
    all_times,
    icalendar_times,
    libical_check,
)

pytestmark = pytest.mark.slow  # parser subprocesses and a Radicale server

ZONE = "Europe/London"
LONDON = ZoneInfo(ZONE)
DTSTAMP = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
# day -> UTC hour of 14:00 in London: GMT, except BST from 2027-03-28 to 2027-10-31
DAYS = {
    date(2027, 1, 14): 14,
    date(2027, 3, 25): 14,
    date(2027, 3, 29): 13,
    date(2027, 10, 28): 13,
    date(2027, 11, 1): 14,
}
# an override moves that day's occurrence across the clock change (January: a week on)
MOVED_TO = {
    date(2027, 1, 14): date(2027, 1, 21),
    date(2027, 3, 25): date(2027, 3, 29),
    date(2027, 3, 29): date(2027, 3, 25),
    date(2027, 10, 28): date(2027, 11, 1),
    date(2027, 11, 1): date(2027, 10, 28),
}
KINDS = ("request-2h", "request-3h", "update-3h-to-2h", "cancel", "override", "override-cancel")


def at_1400(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 14, tzinfo=LONDON)


@dataclass(frozen=True)
class Case:
    method: str
    uid: str
    sequence: int
    start: datetime  # aware, London
    hours: int
    recurrence_id: datetime | None = None


def case(day: date, kind: str) -> Case:
    start, moved = at_1400(day), at_1400(MOVED_TO[day])
    single, series = f"single.{day}@example.org", f"series.{day}@example.org"
    return {
        "request-2h": Case("REQUEST", f"short.{day}@example.org", 0, start, 2),
        "request-3h": Case("REQUEST", single, 0, start, 3),
        "update-3h-to-2h": Case("REQUEST", single, 1, start, 2),
        "cancel": Case("CANCEL", single, 2, start, 2),
        "override": Case("REQUEST", series, 1, moved, 3, recurrence_id=start),
        "override-cancel": Case("CANCEL", series, 2, moved, 3, recurrence_id=start),
    }[kind]


def build(c: Case) -> bytes:
    return invite_calendar(
        method=c.method,
        uid=c.uid,
        sequence=c.sequence,
        dtstamp=DTSTAMP,
        start=c.start,
        end=c.start + timedelta(hours=c.hours),
        zone=ZONE,
        summary="Quarterly meeting of the committee",
        location="Room 1",
        description="Agenda and papers: see the link.",
        url="https://example.org/meeting",
        organiser_name="Clerk of the Committee",
        organiser_email="clerk@example.org",
        attendees=[("Ann Member", "ann@example.org"), ("Bob O'Neill", "bob@example.org")],
        recurrence_id=c.recurrence_id,
    )


def zoneinfo_reading(c: Case) -> Parsed:
    """What the invite must say, by zoneinfo (aware arithmetic here is wall-clock)."""
    start = c.start.astimezone(UTC)
    end = (c.start + timedelta(hours=c.hours)).astimezone(UTC)
    rid = c.recurrence_id and c.recurrence_id.astimezone(UTC)
    return Parsed(c.method, {rid: EventTimes(c.uid, c.sequence, start, end)})


def test_zoneinfo_puts_the_days_on_the_expected_side_of_each_change() -> None:
    assert {day: at_1400(day).astimezone(UTC).hour for day in DAYS} == DAYS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("day", DAYS, ids=str)
def test_every_parser_reads_zoneinfos_times_and_radicale_stores_it(
    day: date, kind: str, radicale_put: CalendarPut
) -> None:
    c = case(day, kind)
    data = build(c)
    want = zoneinfo_reading(c)
    assert all_times(data) == dict.fromkeys(PARSERS, want)
    assert libical_check(data) == []
    assert radicale_put(data) == 201


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_radicale_replaces_the_object_through_update_and_cancel(
    day: date, radicale_put: CalendarPut
) -> None:
    for kinds in (("request-3h", "update-3h-to-2h", "cancel"), ("override", "override-cancel")):
        statuses = [radicale_put(build(case(day, kind))) for kind in kinds]
        assert statuses == [201] + [204] * (len(kinds) - 1)
    for kind in ("cancel", "override-cancel"):  # what is stored is the last message
        c = case(day, kind)
        stored = radicale_put.get(c.uid)
        assert icalendar_times(stored) == zoneinfo_reading(c)


def test_a_series_with_overrides_in_one_calendar_is_keyed_by_recurrence_id(
    radicale_put: CalendarPut,
) -> None:
    """A weekly series (Mondays and Thursdays from 2027-01-14) whose occurrence on each day
    is moved across the clock change, all in one object as CalDAV stores a series.  clerk
    writes no RRULE yet, so the test adds it to the master built by ``invite_calendar``."""
    uid = "series.2027@example.org"
    first = min(DAYS)
    master = Case("REQUEST", uid, 1, at_1400(first), 2)
    overrides = [
        Case("REQUEST", uid, 1, at_1400(MOVED_TO[day]), 3, recurrence_id=at_1400(day))
        for day in DAYS
    ]
    series = Calendar.from_ical(build(master))
    (event,) = series.walk("VEVENT")
    until = datetime(2027, 12, 31, 23, 59, tzinfo=UTC)  # UTC, as DTSTART has a TZID
    event.add("RRULE", {"FREQ": "WEEKLY", "BYDAY": ["MO", "TH"], "UNTIL": until})
    for c in overrides:
        for override in Calendar.from_ical(build(c)).walk("VEVENT"):
            series.add_component(override)
    data = series.to_ical()
    want = Parsed("REQUEST", {})
    for c in (master, *overrides):
        want.events.update(zoneinfo_reading(c).events)
    assert len(want.events) == 1 + len(DAYS)
    assert all_times(data) == dict.fromkeys(PARSERS, want)
    assert libical_check(data) == []
    assert radicale_put(data) == 201


# --- the checks can fail -------------------------------------------------------------


def _without(data: bytes, prop: str) -> bytes:
    cal = Calendar.from_ical(data)
    for event in cal.walk("VEVENT"):
        assert prop in event
        del event[prop]
    return cal.to_ical()


def test_libical_flags_a_request_without_organizer() -> None:
    data = build(case(date(2027, 3, 29), "request-3h"))
    assert libical_check(data) == []
    problems = libical_check(_without(data, "ORGANIZER"))
    assert problems, "libical's RFC 5546 check passed a REQUEST without ORGANIZER"
    assert any("ORGANIZER" in problem for problem in problems), problems


def test_libical_applies_the_rules_of_the_calendars_method() -> None:
    # RFC 5546: SEQUENCE is optional in a REQUEST (3.2.2) and required in a CANCEL (3.2.5)
    day = date(2027, 10, 28)
    request = _without(build(case(day, "request-3h")), "SEQUENCE")
    cancel = _without(build(case(day, "cancel")), "SEQUENCE")
    assert libical_check(request) == []
    problems = libical_check(cancel)
    assert any("SEQUENCE" in problem for problem in problems), problems


def test_every_parser_uses_the_calendars_vtimezone_not_its_own_zone_data() -> None:
    """A VTIMEZONE that starts summer time on the last Sunday of *April*: 2027-03-29 at
    14:00 is then 14:00Z for every parser, where zoneinfo (and a parser that looked the
    TZID up in its own database) says 13:00Z."""
    c = case(date(2027, 3, 29), "request-3h")
    data = build(c)
    shifted = data.replace(b"DTSTART:19700329T010000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
                           b"DTSTART:19700426T010000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=4")
    assert shifted != data, "the DAYLIGHT observance is not written as expected"
    start = datetime(2027, 3, 29, 14, tzinfo=UTC)
    want = Parsed("REQUEST", {None: EventTimes(c.uid, 0, start, start + timedelta(hours=3))})
    assert all_times(shifted) == dict.fromkeys(PARSERS, want)


def test_the_comparison_catches_icalendars_rdate_style_zone() -> None:
    """REAL-PARTS.md: ``add_missing_timezones()`` writes RDATE lists that vobject and ical.js
    misread (2027-01-15 14:00 London as 13:00Z).  The check must see that."""
    cal = Calendar.from_ical(build(case(date(2027, 1, 14), "request-2h")))
    cal.subcomponents = [sub for sub in cal.subcomponents if sub.name != "VTIMEZONE"]
    cal.add_missing_timezones()
    data = cal.to_ical()
    assert b"RDATE" in data
    right = datetime(2027, 1, 14, 14, tzinfo=UTC)
    starts = {name: parsed.events[None].start for name, parsed in all_times(data).items()}
    assert set(starts.values()) != {right}, f"every parser read the RDATE zone right: {starts}"


@pytest.mark.parametrize("parser", PARSERS)
def test_every_parser_refuses_a_tzid_without_a_vtimezone(parser: str) -> None:
    data = build(case(date(2027, 1, 14), "request-2h"))
    orphan = data.replace(b"TZID:Europe/London\r\n", b"TZID:Europe/Elsewhere\r\n")
    assert orphan != data
    with pytest.raises(ParserError, match="TZID=Europe/London"):
        PARSERS[parser](orphan)


def test_radicale_refuses_an_unparseable_event(radicale: Radicale) -> None:
    calendar = radicale.mkcalendar()
    bad = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//clerk//test//EN\r\nBEGIN:VEVENT\r\n"
           b"UID:bad@example.org\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:garbage\r\n"
           b"END:VEVENT\r\nEND:VCALENDAR\r\n")
    status, _ = radicale.request("PUT", calendar + "bad.ics", bad, "text/calendar")
    assert status == 400
