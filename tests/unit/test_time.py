"""Time: offsets across the UK clock changes, local times that do not exist, the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain import timeutil

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize("meeting,offset,at,expected_utc", [
    # a day offset keeps the local time of day across the spring change (28 March 2027)
    ("2027-03-29T14:00", "-1d", (9, 0), "2027-03-28T08:00"),
    ("2027-03-29T14:00", "-4d", (9, 0), "2027-03-25T09:00"),
    # and across the autumn change (31 October 2027)
    ("2027-11-01T14:00", "-1d", (9, 0), "2027-10-31T09:00"),
    ("2027-11-01T14:00", "-4d", (9, 0), "2027-10-28T08:00"),
    ("2027-01-14T14:00", "-2w", (9, 30), "2026-12-31T09:30"),
    # hour and minute offsets are exact durations, whatever the wall clock does
    ("2027-03-28T14:00", "-13h", (9, 0), "2027-03-28T00:00"),
    ("2027-10-31T14:00", "-90m", (9, 0), "2027-10-31T12:30"),
    ("2027-01-14T14:00", "+10d", (9, 0), "2027-01-24T09:00"),
])
def test_offsets_follow_the_local_calendar(meeting: str, offset: str, at: tuple[int, int],
                                           expected_utc: str):
    start = timeutil.localize(datetime.fromisoformat(meeting), LONDON)
    got = timeutil.apply_offset(start, timeutil.parse_offset(offset), at)
    assert got == datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)


def test_a_day_offset_landing_in_the_spring_gap_moves_on_like_a_clock():
    start = timeutil.localize(datetime(2027, 3, 29, 14), LONDON)
    got = timeutil.apply_offset(start, timeutil.parse_offset("-1d"), (1, 30))
    assert got == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 BST, the hour skipped


def test_local_times_that_do_not_exist_or_happen_twice_are_refused():
    with pytest.raises(ValueError, match="does not exist"):
        timeutil.localize(datetime(2027, 3, 28, 1, 30), LONDON)
    with pytest.raises(ValueError, match="happens twice"):
        timeutil.localize(datetime(2027, 10, 31, 1, 30), LONDON)
    assert timeutil.localize(datetime(2027, 3, 28, 2, 30), LONDON).utcoffset() == \
        timedelta(hours=1)


@pytest.mark.parametrize("text", ["-", "-1y", "d-3", "", "1.5h"])
def test_bad_offsets_say_how_to_write_one(text: str):
    with pytest.raises(ValueError, match="write it like"):
        timeutil.parse_offset(text)


@pytest.mark.parametrize("text,expected", [("2h", 120), ("90m", 90), ("1h30m", 90)])
def test_durations(text: str, expected: int):
    assert timeutil.parse_duration(text) == timedelta(minutes=expected)
    assert timeutil.parse_duration(timeutil.format_duration(timedelta(minutes=expected))) == \
        timedelta(minutes=expected)


def test_instants_from_the_command_line():
    assert timeutil.parse_instant("2027-03-11", LONDON) == datetime(2027, 3, 11, tzinfo=UTC)
    assert timeutil.parse_instant("2027-07-11T09:00", LONDON) == \
        datetime(2027, 7, 11, 8, tzinfo=UTC)
    assert timeutil.parse_instant("2027-07-11T09:00Z") == datetime(2027, 7, 11, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        timeutil.parse_instant("next tuesday")


def test_unknown_zone():
    with pytest.raises(ValueError, match="IANA"):
        timeutil.zone("Europe/Londn")


def test_a_meeting_over_a_clock_change_lasts_its_duration():
    from bot.domain.model import Meeting

    start = timeutil.localize(datetime(2027, 10, 31, 0, 30), LONDON)
    m = Meeting(id="m", title="t", start=start, duration=timedelta(hours=2), location="",
                link="", description="", items=())
    assert m.end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=2)
    assert (m.end.hour, m.end.minute) == (1, 30)  # 00:30 BST + 2h = 01:30 GMT
