"""What people read: a first invitation says so whatever the meeting's revision; times are
local, with the zone's name, in update texts and in every command's output; the join link is
where calendars show it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
from click.testing import Result

from bot.engine.executor import Executor
from bot.plan.invites import describe_change
from bot.transports.memory import MemoryTransport
from tests.conftest import edit

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_an_update_says_the_times_as_people_read_them():
    old = {"start": "2027-07-15T13:00:00+00:00", "duration": "2h"}
    assert describe_change(old, {**old, "start": "2027-07-15T09:00:00+00:00"},
                           "Europe/London") == "start Thu 15 Jul 2027 14:00 BST → 10:00 BST"
    assert describe_change(old, {**old, "start": "2027-07-22T13:00:00+00:00"},
                           "Europe/London") == ("start Thu 15 Jul 2027 14:00 BST → "
                                                "Thu 22 Jul 2027 14:00 BST")


def test_a_newcomer_after_a_change_gets_an_invitation_not_an_update(
        make_executor: Callable[[], Executor], group_dir: Path):
    make_executor().tick(T0)
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    make_executor().tick(T0 + timedelta(hours=1))
    make_executor().tick(T0 + timedelta(hours=2))  # the update went: the meeting is at rev 1
    with (group_dir / "roster.csv").open("a") as f:
        f.write("Nia Newton,nia.newton@kent.example,Kent,member\n")
    make_executor().tick(T0 + timedelta(hours=3))
    ex = make_executor()
    ex.tick(T0 + timedelta(hours=4))
    assert isinstance(ex.transport, MemoryTransport)
    mine = [m for m in ex.transport.sent if "nia.newton" in str(m["To"])
            and "/2027-q1/" in str(m["X-Clerk-Key"])]
    (first,) = mine
    assert str(first["Subject"]).startswith("Invitation: ")
    text = first.get_body(("plain",)).get_content()
    assert "You are invited" in text and "has changed" not in text
    assert str(first["X-Clerk-Key"]).endswith("/r1")  # at the meeting's revision


def test_the_join_link_and_the_local_time_are_in_the_calendar_entry(
        make_executor: Callable[[], Executor]):
    ex = make_executor()
    ex.tick(T0)
    assert isinstance(ex.transport, MemoryTransport)
    part = next(p for p in ex.transport.sent[0].walk()
                if p.get_content_type() == "text/calendar")
    event = icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")[0]
    link = "https://meet.network.example/qa-leads"
    assert str(event["LOCATION"]) == f"Online (Microsoft Teams): {link}"
    assert str(event["DESCRIPTION"]).endswith(
        "When: Thursday 14 January 2027, 14:00 to 16:00 (Europe/London)\n"
        f"Join online: {link}")


def test_commands_say_local_times_with_the_zone(clerk: Callable[..., Result]):
    clerk("tick", "--now", "2026-12-01T10:00:00Z")
    log = clerk("log").output
    assert "2026-12-01 10:00 GMT" in log and "+00:00" not in log and "T10:00" not in log
    plan = clerk("plan", "--now", "2027-06-01T10:00:00Z").output
    assert " BST " in plan and "Z " not in plan
