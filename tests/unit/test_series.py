"""A series: one UID for meetings on a repeating rule; one meeting moved or cancelled is named
by RECURRENCE-ID = its original start (RFC 5545 3.8.4.4, RFC 5546 3.2.2 and 3.2.5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from click.testing import Result

from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import cancel_series_meeting, edit, remove_member

LONDON = ZoneInfo("Europe/London")
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
SETTLE = timedelta(minutes=10)
MEMBERS = 21
SERIES = '''
[[series]]
id = "clinic"
title = "QA clinic"
start = 2027-02-11T10:00:00
duration = "1h"
repeat = "FREQ=MONTHLY;COUNT=6"
'''
UID = "qa-leads.clinic@network.example"


@pytest.fixture
def series_group(group_dir: Path) -> Path:
    with (group_dir / "group.toml").open("a") as f:
        f.write(SERIES)
    edit(group_dir / "group.toml", 'send = "-90d"', 'send = "-365d"')
    return group_dir


def sent_calendars(ex: Executor, since: int = 0) -> list[tuple[str, icalendar.Calendar]]:
    assert isinstance(ex.transport, MemoryTransport)
    out = []
    for msg in ex.transport.sent[since:]:
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                cal = icalendar.Calendar.from_ical(part.get_content())
                if any(str(e["UID"]) == UID for e in cal.walk("VEVENT")):
                    out.append((str(msg["To"]), cal))
    return out


def count(ex: Executor) -> int:
    assert isinstance(ex.transport, MemoryTransport)
    return len(ex.transport.sent)


def rid(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00").replace(tzinfo=LONDON)


def test_one_invitation_per_member_for_the_whole_series(
        make_executor: Callable[[], Executor], series_group: Path, store: Store):
    ex = make_executor()
    ex.tick(T0)
    cals = sent_calendars(ex)
    assert len(cals) == MEMBERS  # one each, however many meetings the series has
    (master,) = cals[0][1].walk("VEVENT")
    assert master.decoded("DTSTART") == rid("2027-02-11")
    rrule = master["RRULE"]
    assert rrule["FREQ"] == ["MONTHLY"] and rrule["COUNT"] == [6]
    # the other rules treat each meeting of the series as a meeting of its own
    ids = {r.meeting_id for r in store.rows() if r.kind == "pack"}
    assert {i for i in ids if i.startswith("clinic-")} == {
        f"clinic-2027-{m:02d}-11" for m in range(2, 8)}


def test_a_meeting_moved_sends_its_override_alone(
        make_executor: Callable[[], Executor], series_group: Path):
    ex = make_executor()
    ex.tick(T0)
    before = count(ex)
    with (series_group / "group.toml").open("a") as f:
        f.write('\n[[series.occurrence]]\ndate = 2027-04-11\nstart = 2027-04-18T11:00:00\n')
    make_executor().tick(T0 + timedelta(hours=1))
    sent = make_executor().tick(T0 + timedelta(hours=1) + SETTLE).sent
    assert len(sent) == MEMBERS
    assert len(sent_calendars(ex, before)) == MEMBERS
    for _, cal in sent_calendars(ex, before):
        assert cal["METHOD"] == "REQUEST"
        (override,) = cal.walk("VEVENT")
        assert override.decoded("RECURRENCE-ID") == rid("2027-04-11")
        assert override.decoded("DTSTART") == datetime(2027, 4, 18, 11, tzinfo=LONDON)
        assert int(override["SEQUENCE"]) == 1 and "RRULE" not in override


def test_a_meeting_cancelled_sends_a_cancel_for_it_alone(
        make_executor: Callable[[], Executor], series_group: Path, store: Store):
    ex = make_executor()
    ex.tick(T0)
    before = count(ex)
    cancel_series_meeting(series_group / "group.toml", "2027-05-11")
    make_executor().tick(T0 + timedelta(hours=1))
    sent = make_executor().tick(T0 + timedelta(hours=1) + SETTLE).sent
    assert len(sent) == MEMBERS and all(k.endswith("/c1") for k in sent)
    assert len(sent_calendars(ex, before)) == MEMBERS
    for _, cal in sent_calendars(ex, before):
        assert cal["METHOD"] == "CANCEL"
        (event,) = cal.walk("VEVENT")
        assert event.decoded("RECURRENCE-ID") == rid("2027-05-11")
        assert event.decoded("DTSTART") == rid("2027-05-11")
        assert int(event["SEQUENCE"]) == 1
    # that meeting's own messages are withdrawn; the series' others stand
    assert {r.state for r in store.rows() if r.meeting_id == "clinic-2027-05-11"} == {
        "withdrawn"}
    assert {r.state for r in store.rows() if r.meeting_id == "clinic-2027-06-11"} == {
        "planned"}
    # and a member who joins later gets the series as it now is, in one message
    before = count(ex)
    with (series_group / "roster.csv").open("a") as f:
        f.write("Nia Newton,nia.newton@kent.example,Kent,member\n")
    make_executor().tick(T0 + timedelta(hours=3))
    make_executor().tick(T0 + timedelta(hours=3, minutes=10))  # after the settle window
    ((to, cal),) = sent_calendars(ex, before)
    assert "nia.newton" in to
    (master,) = cal.walk("VEVENT")
    assert [d.dt for d in master["EXDATE"].dts] == [rid("2027-05-11")]
    assert cal["METHOD"] == "REQUEST"


def test_a_change_to_the_whole_series_resends_it_whole(
        make_executor: Callable[[], Executor], series_group: Path):
    ex = make_executor()
    ex.tick(T0)
    with (series_group / "group.toml").open("a") as f:
        f.write('\n[[series.occurrence]]\ndate = 2027-04-11\nstart = 2027-04-18T11:00:00\n')
    make_executor().tick(T0 + timedelta(hours=1))
    make_executor().tick(T0 + timedelta(hours=1) + SETTLE)
    before = count(ex)
    edit(series_group / "group.toml", 'duration = "1h"\nrepeat', 'duration = "90m"\nrepeat')
    make_executor().tick(T0 + timedelta(hours=2))
    sent = make_executor().tick(T0 + timedelta(hours=2) + SETTLE).sent
    assert len(sent) == MEMBERS == len(sent_calendars(ex, before))
    for _, cal in sent_calendars(ex, before):
        master, override = cal.walk("VEVENT")
        assert int(master["SEQUENCE"]) == 2 and "RRULE" in master
        assert master.decoded("DTEND") - master.decoded("DTSTART") == timedelta(minutes=90)
        assert override.decoded("RECURRENCE-ID") == rid("2027-04-11")


def test_a_member_removed_gets_the_whole_series_cancelled(
        make_executor: Callable[[], Executor], series_group: Path):
    ex = make_executor()
    ex.tick(T0)
    before = count(ex)
    remove_member(series_group, "gavin.swales@kent.example")
    make_executor().tick(T0 + timedelta(hours=1))
    make_executor().tick(T0 + timedelta(hours=1) + SETTLE)
    cancels = sent_calendars(ex, before)
    assert len(cancels) == 1 and "gavin.swales" in cancels[0][0]
    assert cancels[0][1]["METHOD"] == "CANCEL"
    (event,) = cancels[0][1].walk("VEVENT")
    assert "RECURRENCE-ID" not in event and str(event["STATUS"]) == "CANCELLED"


@pytest.mark.parametrize("repeat,message", [
    ("FREQ=MONTHLY", "never ends"),
    ("FREQ=SOMETIMES;COUNT=3", "is not an RRULE"),
    ("FREQ=DAILY;COUNT=500", "more than 200"),
])
def test_a_bad_rule_is_a_clear_error(clerk: Callable[..., Result], group_dir: Path,
                                     repeat: str, message: str):
    with (group_dir / "group.toml").open("a") as f:
        f.write(SERIES.replace("FREQ=MONTHLY;COUNT=6", repeat))
    result = clerk("check")
    assert result.exit_code == 2
    assert "series[0].repeat" in result.output and message in result.output
    assert "group.toml:" in result.output


def test_an_occurrence_not_in_the_series_is_a_clear_error(clerk: Callable[..., Result],
                                                          group_dir: Path):
    with (group_dir / "group.toml").open("a") as f:
        f.write(SERIES + "\n[[series.occurrence]]\ndate = 2027-04-12\ncancelled = true\n")
    result = clerk("check")
    assert result.exit_code == 2
    assert "2027-04-12 is not a date of the series" in result.output
