"""Tests for bot.render.vtimezone and bot.render.ical: the compact VTIMEZONE and the iTIP
invite.

The VTIMEZONE is read back by two independent parsers -- icalendar (through
dateutil's tzical, bypassing its zoneinfo lookup by TZID) and vobject, in a
fresh subprocess because vobject caches TZIDs process-wide -- and every
offset they compute is compared with zoneinfo's.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event, Timezone
from icalendar.parser import _foldline

from bot.render.ical import (
    EventSpec,
    fold,
    invite_calendar,
    itip,
    itip_for,
)
from bot.render.vtimezone import compact_vtimezone

YEARS = range(2026, 2031)
ZONES = (
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Europe/Berlin",
)
# zone -> {observance: (BYMONTH, BYDAY)}
RULES = {
    "Europe/London": {"STANDARD": (10, "-1SU"), "DAYLIGHT": (3, "-1SU")},
    "Europe/Berlin": {"STANDARD": (10, "-1SU"), "DAYLIGHT": (3, "-1SU")},
    "America/New_York": {"STANDARD": (11, "1SU"), "DAYLIGHT": (3, "2SU")},
    "Australia/Sydney": {"STANDARD": (4, "1SU"), "DAYLIGHT": (10, "1SU")},
}
TIMES = ((0, 0), (1, 30), (12, 0))
LONDON_DAYS = (
    date(2027, 3, 25),
    date(2027, 3, 29),
    date(2027, 10, 28),
    date(2027, 11, 1),
)

VOBJECT_OFFSETS = textwrap.dedent(
    """
    import sys
    import vobject
    with open(sys.argv[1], encoding="utf-8", newline="") as f:
        cal = vobject.readOne(f.read())
    for event in cal.vevent_list:
        start = event.dtstart.value
        # dateutil's tzical: vobject used our VTIMEZONE, not pytz's zone
        assert type(start.tzinfo).__module__.startswith("dateutil"), start.tzinfo
        print(event.uid.value, int(start.utcoffset().total_seconds()))
    """
)
VOBJECT_UTC = textwrap.dedent(
    """
    import sys
    from datetime import timezone
    import vobject
    with open(sys.argv[1], encoding="utf-8", newline="") as f:
        event = vobject.readOne(f.read()).vevent
    for prop in (event.dtstart, event.dtend):
        assert type(prop.value.tzinfo).__module__.startswith("dateutil")
        print(prop.value.astimezone(timezone.utc).isoformat())
    """
)


def _exists(naive: datetime, tz: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


def _every_day(zone: str) -> Iterator[datetime]:
    """Every day of YEARS at 00:00, 01:30 and 12:00 local, if that time exists."""
    tz, day = ZoneInfo(zone), date(YEARS[0], 1, 1)
    while day.year <= YEARS[-1]:
        for hour, minute in TIMES:
            naive = datetime(day.year, day.month, day.day, hour, minute)
            if _exists(naive, tz):
                yield naive
        day += timedelta(days=1)


def _samples(zone: str) -> list[datetime]:
    """Days on both sides of each change (found from noon offsets), and more."""
    tz = ZoneInfo(zone)
    days = {date(2027, 1, 14)} | set(LONDON_DAYS)
    day = date(YEARS[0], 1, 1)
    while day.year <= YEARS[-1]:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
        if noon.utcoffset() != (noon - timedelta(days=1)).utcoffset():
            days |= {day + timedelta(days=n) for n in range(-4, 4)}
        if day.day in (1, 15):
            days.add(day)
        day += timedelta(days=1)
    times = (*TIMES, (3, 30), (14, 0))
    naive = (datetime(d.year, d.month, d.day, h, m) for d in days for h, m in times)
    return sorted(dt for dt in naive if _exists(dt, tz))


def _calendar_with_events(vtimezone: Timezone, zone: str, at: list[datetime]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//clerk//test//EN"]
    lines += vtimezone.to_ical().decode().splitlines()
    for n, naive in enumerate(at):
        lines += [
            "BEGIN:VEVENT",
            f"UID:{n}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID={zone}:{naive:%Y%m%dT%H%M%S}",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


def _reparsed(zone: str, years: range | list[int]) -> Timezone:
    """The VTIMEZONE as it reads back from the wire (values become lists)."""
    return Timezone.from_ical(compact_vtimezone(zone, years).to_ical())


def _run(script: str, path: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.split("\n")[:-1]


@pytest.mark.parametrize("zone", ZONES)
def test_icalendar_reads_zoneinfo_offsets_every_day(zone: str) -> None:
    vtimezone = Timezone.from_ical(compact_vtimezone(zone, YEARS).to_ical())
    ours = vtimezone.to_tz(lookup_tzid=False)  # the rules, not zoneinfo by TZID
    real = ZoneInfo(zone)
    wrong = [
        (
            naive,
            naive.replace(tzinfo=ours).utcoffset(),
            naive.replace(tzinfo=real).utcoffset(),
        )
        for naive in _every_day(zone)
        if naive.replace(tzinfo=ours).utcoffset() != naive.replace(tzinfo=real).utcoffset()
    ]
    assert wrong == []


@pytest.mark.slow  # a vobject subprocess
@pytest.mark.parametrize("zone", ZONES)
def test_vobject_reads_zoneinfo_offsets_every_day(zone: str, tmp_path: Path) -> None:
    at = sorted({*_every_day(zone), *_samples(zone)})  # one VEVENT each
    if zone == "Europe/London":
        assert datetime(2027, 1, 14, 14) in at
        assert {d.date() for d in at} >= set(LONDON_DAYS)
    path = tmp_path / "zone.ics"
    path.write_bytes(_calendar_with_events(compact_vtimezone(zone, YEARS), zone, at).encode())
    read = dict(line.split() for line in _run(VOBJECT_OFFSETS, path))
    assert len(read) == len(at)
    real = ZoneInfo(zone)
    wrong = [
        (naive, read[str(n)])
        for n, naive in enumerate(at)
        if timedelta(seconds=int(read[str(n)])) != naive.replace(tzinfo=real).utcoffset()
    ]
    assert wrong == []


@pytest.mark.parametrize("zone", sorted(RULES))
def test_dst_zone_has_one_rrule_standard_and_daylight(zone: str) -> None:
    vtimezone = _reparsed(zone, YEARS)
    assert vtimezone["TZID"] == zone
    assert sorted(sub.name for sub in vtimezone.subcomponents) == [
        "DAYLIGHT",
        "STANDARD",
    ]
    assert b"RDATE" not in vtimezone.to_ical()
    for sub in vtimezone.subcomponents:
        for prop in ("DTSTART", "TZOFFSETFROM", "TZOFFSETTO", "TZNAME", "RRULE"):
            assert prop in sub, (sub.name, prop)
        assert "RDATE" not in sub
        rrule = sub["RRULE"]
        assert (rrule["FREQ"], rrule["BYMONTH"], rrule["BYDAY"]) == (
            ["YEARLY"],
            [RULES[zone][sub.name][0]],
            [RULES[zone][sub.name][1]],
        )
        onset = sub.DTSTART
        assert onset.tzinfo is None
        assert onset.year <= YEARS[0]
        # DTSTART is itself the rule's first occurrence (RFC 5545 3.8.5.3)
        first = rrulestr(rrule.to_ical().decode(), dtstart=onset)[0]
        assert first == onset


def test_zone_without_dst_is_one_standard_without_rrule() -> None:
    vtimezone = compact_vtimezone("Asia/Kolkata", YEARS)
    assert [sub.name for sub in vtimezone.subcomponents] == ["STANDARD"]
    standard = vtimezone.subcomponents[0]
    assert "RRULE" not in standard
    assert "RDATE" not in standard
    assert standard.TZOFFSETFROM == standard.TZOFFSETTO == timedelta(hours=5, minutes=30)


def test_single_year_picks_last_sunday_when_also_fourth() -> None:
    # 2027-03-28 and 2027-10-31: 28 March is both the 4th and the last Sunday.
    vtimezone = _reparsed("Europe/London", [2027])
    assert {sub.name: sub["RRULE"]["BYDAY"] for sub in vtimezone.subcomponents} == {
        "STANDARD": ["-1SU"],
        "DAYLIGHT": ["-1SU"],
    }


def test_zone_that_abolished_dst_in_span_raises() -> None:
    tz = ZoneInfo("America/Mexico_City")  # no DST from the end of October 2022
    jan, jul = (
        datetime(2022, 1, 15, 12, tzinfo=tz),
        datetime(2022, 7, 15, 12, tzinfo=tz),
    )
    assert jan.utcoffset() != jul.utcoffset()
    jan, jul = jan.replace(year=2023), jul.replace(year=2023)
    assert jan.utcoffset() == jul.utcoffset()
    with pytest.raises(ValueError, match="America/Mexico_City"):
        compact_vtimezone("America/Mexico_City", [2022, 2023])


def test_zone_whose_rule_dates_changed_in_span_raises() -> None:
    tz = ZoneInfo("America/New_York")  # 2007: April/October -> March/November
    assert datetime(2006, 3, 20, 12, tzinfo=tz).utcoffset() == timedelta(hours=-5)
    assert datetime(2007, 3, 20, 12, tzinfo=tz).utcoffset() == timedelta(hours=-4)
    with pytest.raises(ValueError, match="rules changed"):
        compact_vtimezone("America/New_York", range(2005, 2009))


def test_no_years_raises() -> None:
    with pytest.raises(ValueError, match="at least one year"):
        compact_vtimezone("Europe/London", [])


LONDON = ZoneInfo("Europe/London")
BASE: dict[str, Any] = {
    "method": "REQUEST",
    "uid": "meeting-42@clerk.example",
    "sequence": 3,
    "dtstamp": datetime(2026, 12, 1, 9, 30, tzinfo=ZoneInfo("America/New_York")),
    "start": datetime(2027, 1, 14, 14, 0, tzinfo=LONDON),
    "end": datetime(2027, 1, 14, 15, 30, tzinfo=LONDON),
    "zone": "Europe/London",
    "summary": "QA leads; weekly, with minutes",
    "location": "Room 4",
    "description": "Agenda:\n1. minutes\n2. actions",
    "url": None,
    "organiser_name": "Clerk Bot",
    "organiser_email": "clerk@example.org",
    "attendees": [("Ann Smith", "ann@example.org"), ("Bob Jones", "bob@example.org")],
}


def _invite(**changes: Any) -> bytes:
    return invite_calendar(**{**BASE, **changes})


def _event(ical: bytes) -> Any:  # icalendar values are a wide union
    [event] = Calendar.from_ical(ical).walk("VEVENT")
    assert isinstance(event, Event)
    return event


def _lines(ical: bytes) -> list[str]:
    """Unfolded content lines (RFC 5545 3.1)."""
    return re.sub(r"\r\n[ \t]", "", ical.decode()).split("\r\n")[:-1]


def test_request_has_every_required_property() -> None:
    ical = _invite()
    cal = Calendar.from_ical(ical)
    assert (cal["METHOD"], cal["PRODID"], cal["VERSION"]) == (
        "REQUEST",
        "-//clerk//clerk//EN",
        "2.0",
    )
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
    event = _event(ical)
    assert event["UID"] == BASE["uid"]
    assert event["SEQUENCE"] == 3
    assert "DTSTAMP:20261201T143000Z" in _lines(ical)
    assert event["DTSTART"].params["TZID"] == event["DTEND"].params["TZID"] == "Europe/London"
    assert "DTSTART;TZID=Europe/London:20270114T140000" in _lines(ical)
    assert event["DTSTART"].dt.astimezone(UTC) == BASE["start"]
    assert event["DTEND"].dt.astimezone(UTC) == BASE["end"]
    assert (event["SUMMARY"], event["LOCATION"]) == (BASE["summary"], "Room 4")
    # the description, then the time as people read it, with the zone's name
    assert event["DESCRIPTION"] == BASE["description"] + \
        "\n\nWhen: Thursday 14 January 2027, 14:00 to 15:30 (Europe/London)"
    assert "URL" not in event
    assert "RECURRENCE-ID" not in event
    assert event["STATUS"] == "CONFIRMED"
    assert event["ORGANIZER"] == "mailto:clerk@example.org"
    assert event["ORGANIZER"].params["CN"] == "Clerk Bot"
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == [
        "mailto:ann@example.org",
        "mailto:bob@example.org",
    ]
    for attendee, (name, _) in zip(attendees, BASE["attendees"], strict=True):
        assert dict(attendee.params) == {
            "CN": name,
            "ROLE": "REQ-PARTICIPANT",
            "PARTSTAT": "NEEDS-ACTION",
            "RSVP": "TRUE",
        }


def test_cancel_is_cancelled_without_rsvp() -> None:
    ical = _invite(method="CANCEL", sequence=4)
    assert Calendar.from_ical(ical)["METHOD"] == "CANCEL"
    event = _event(ical)
    assert event["STATUS"] == "CANCELLED"
    assert event["SEQUENCE"] == 4
    for attendee in event["ATTENDEE"]:
        assert set(attendee.params) == {"CN", "ROLE"}
    assert not [line for line in _lines(ical) if "PARTSTAT" in line or "RSVP" in line]


def test_tentative_request_keeps_its_status() -> None:
    assert _event(_invite(status="TENTATIVE"))["STATUS"] == "TENTATIVE"
    assert _event(_invite(method="CANCEL", status="TENTATIVE"))["STATUS"] == "CANCELLED"


def test_the_join_link_is_in_location_and_description() -> None:
    """Outlook and Google Calendar show LOCATION and DESCRIPTION, not URL."""
    link = "https://meet.example.org/qa-leads?pwd=a,b;c"
    with_room = _event(_invite(url=link))
    assert (with_room["LOCATION"], with_room["URL"]) == (f"Room 4: {link}", link)
    assert with_room["DESCRIPTION"].endswith(f"(Europe/London)\nJoin online: {link}")
    assert with_room["DESCRIPTION"].startswith(BASE["description"])
    online = _event(_invite(url=link, location=None, description=None))
    assert (online["LOCATION"], online["URL"]) == (link, link)
    assert online["DESCRIPTION"] == "When: Thursday 14 January 2027, 14:00 to 15:30 " \
        f"(Europe/London)\nJoin online: {link}"
    bare = _event(_invite(location=None, description=None))
    assert "LOCATION" not in bare
    assert bare["DESCRIPTION"] == "When: Thursday 14 January 2027, 14:00 to 15:30 (Europe/London)"


def test_recurrence_id_has_tzid() -> None:
    rid = datetime(2027, 7, 1, 13, tzinfo=UTC)
    ical = _invite(recurrence_id=rid)
    assert "RECURRENCE-ID;TZID=Europe/London:20270701T140000" in _lines(ical)
    assert _event(ical)["RECURRENCE-ID"].dt.astimezone(UTC) == rid


def test_lines_are_crlf_and_folded() -> None:
    ical = _invite(description="word " * 100)
    assert ical.endswith(b"\r\n")
    assert b"\n" not in ical.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in ical.split(b"\r\n"))
    assert _event(ical)["DESCRIPTION"].startswith("word " * 100)


def test_newline_or_quote_in_name_stays_inside_the_property() -> None:
    attendees = [
        ("Ann\r\nX-INJECTED:1\nSmith", "ann@example.org"),
        ('Bob "B" Jones', "b@e.org"),
    ]
    ical = _invite(organiser_name="Clerk\nBot", attendees=attendees)
    lines = _lines(ical)
    assert not [line for line in lines if line.startswith("X-INJECTED")]
    assert len([line for line in lines if line.startswith("ATTENDEE")]) == 2
    assert len([line for line in lines if line.startswith("ORGANIZER")]) == 1
    event = _event(ical)
    names = [a.params["CN"] for a in event["ATTENDEE"]]
    assert names == ["Ann X-INJECTED:1 Smith", "Bob 'B' Jones"]
    assert event["ORGANIZER"].params["CN"] == "Clerk Bot"
    assert "^" not in ical.decode()  # nothing left that needs RFC 6868 decoding


@pytest.mark.slow  # a vobject subprocess
@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/London", datetime(2027, 1, 14, 14, tzinfo=LONDON)),
        ("Europe/London", datetime(2027, 3, 29, 9, tzinfo=UTC)),
        ("America/New_York", datetime(2027, 11, 1, 15, tzinfo=UTC)),
        ("Australia/Sydney", datetime(2027, 1, 10, 23, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2027, 6, 1, 4, tzinfo=timezone(timedelta(hours=-7)))),
    ],
)
def test_vobject_and_icalendar_read_back_the_utc_times(
    zone: str, start: datetime, tmp_path: Path
) -> None:
    end = start + timedelta(hours=1, minutes=15)
    ical = _invite(zone=zone, start=start, end=end)
    event = _event(ical)
    assert event["DTSTART"].params["TZID"] == zone
    assert (event["DTSTART"].dt, event["DTEND"].dt) == (start, end)
    path = tmp_path / "invite.ics"
    path.write_bytes(ical)
    assert _run(VOBJECT_UTC, path) == [
        start.astimezone(UTC).isoformat(),
        end.astimezone(UTC).isoformat(),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "PUBLISH"}, "REQUEST or CANCEL"),
        ({"status": "MAYBE"}, "status"),
        ({"start": datetime(2027, 1, 14, 14)}, "timezone-aware"),
        ({"end": BASE["start"]}, "after start"),
        ({"attendees": [("Eve", "eve@example.org\r\nBCC:x@y")]}, "e-mail address"),
    ],
)
def test_bad_input_raises(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _invite(**changes)


# --- one calendar written once for a meeting's recipients (itip_for) ---------------------

NAMES = [("Ann Smith", "ann@example.org"), ("Zoë Ångström-Łukasz", "zoe@example.org"),
         ("Smith, Jo; \"JJ\": chair", "jo@example.org"), ("李小龍", "lee@example.org"),
         ("A very long name " * 6, "long.name.of.a.member@a-long-domain.example.org"),
         ("", "noname@example.org"), ("clerk attendee", "attendee@example.org"),
         ("Seán O'Brien ^ x", "sean@example.org"), ("Plain", "p@example.org"),
         ("Eve\nSmith\r\n", "a.very.long.address.of.someone.at.a.long.domain@x" * 2)]


def _specs(n: int) -> list[EventSpec]:
    start = datetime(2027, 1, 14, 14, 0, tzinfo=LONDON)
    return [EventSpec(start=start + timedelta(days=7 * i), end=start + timedelta(days=7 * i,
                                                                               hours=2),
                      summary="QA leads", location="Room 4", description=None, url=None,
                      recurrence_id=start + timedelta(days=7 * i) if i else None)
            for i in range(n)]


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
@pytest.mark.parametrize("events", [1, 3])
def test_a_calendar_written_once_is_the_same_as_one_written_for_each_recipient(
        method: str, events: int) -> None:
    common: dict[str, Any] = {
        "method": method, "uid": "q1@clerk.example", "sequence": 2,
        "dtstamp": datetime(2026, 12, 1, 10, tzinfo=UTC), "zone": "Europe/London",
        "organiser_name": "Clerk Bot", "organiser_email": "clerk@example.org",
        "events": _specs(events), "zone_years": [2027]}
    for attendee in NAMES:
        assert itip_for(**common)(attendee) == itip(attendees=[attendee], **common), attendee


def test_a_calendar_written_once_is_never_served_for_another_revision() -> None:
    common: dict[str, Any] = {
        "method": "REQUEST", "uid": "q1@clerk.example", "sequence": 2,
        "dtstamp": datetime(2026, 12, 1, 10, tzinfo=UTC), "zone": "Europe/London",
        "organiser_name": "Clerk Bot", "organiser_email": "clerk@example.org",
        "events": _specs(1)}
    first = itip_for(**common)(NAMES[0])
    moved = itip_for(**{**common, "sequence": 3, "events": _specs(2)[1:]})(NAMES[0])
    assert b"SEQUENCE:2" in first and b"SEQUENCE:3" in moved
    assert _event(moved)["DTSTART"].dt == datetime(2027, 1, 21, 14, 0, tzinfo=LONDON)
    assert itip_for(**common)(NAMES[0]) == first


# --- folding (ical.fold: icalendar's own folding, faster for ASCII) ----------------------

_FOLDABLE = st.text(alphabet=st.sampled_from("ab;:,\"\\^ ~Z"), max_size=400) | st.text(
    alphabet=st.sampled_from("ab\\^ é€😀"), max_size=200)


@settings(max_examples=400, deadline=None)
@given(_FOLDABLE)
def test_a_line_is_folded_exactly_as_icalendar_folds_it(line: str) -> None:
    assert fold(line) == _foldline(line)


@pytest.mark.parametrize("at", [0, 1, 72, 73, 74, 75, 146, 147, 148, 149])
@pytest.mark.parametrize("escape", ["\\", "^", "\\\\", "^^", "\\^"])
@pytest.mark.parametrize("length", [74, 75, 76, 148, 149, 150, 223, 300])
def test_an_escape_at_a_fold_moves_to_the_next_line_as_icalendar_moves_it(at: int, escape: str,
                                                                 length: int) -> None:
    line = ("x" * at + escape + "y" * length)[:length]
    folded = fold(line)
    assert folded == _foldline(line)
    assert folded.replace("\r\n ", "") == line
    assert all(len(part) <= 75 for part in folded.split("\r\n"))
