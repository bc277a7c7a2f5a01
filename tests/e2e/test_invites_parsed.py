"""Every invite clerk sends, read by four independent parsers and stored by a real Radicale.

The invites come from the real pipeline (config → planner → executor → MIME), for meetings on
both sides of both UK clock changes and in winter: first invitations, an update (2h → 3h), a
cancellation to a removed member and a cancelled meeting.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar

from bot.engine.executor import Executor
from bot.transports.memory import MemoryTransport
from tests.conftest import (
    add_series,
    cancel_series_meeting,
    edit,
    move_series_meeting,
    remove_member,
)
from tests.parsers import PARSERS, CalendarPut, EventTimes, Parsed, all_times, libical_check

LONDON = ZoneInfo("Europe/London")
DAYS = ["2027-01-14", "2027-03-25", "2027-03-29", "2027-10-28", "2027-11-01"]
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def _meetings_on_the_clock_changes(group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    for old, new in zip(["2027-01-14", "2027-04-15", "2027-07-15", "2027-10-14"], DAYS,
                        strict=False):
        edit(toml, f"start = {old}T14:00:00", f"start = {new}T14:00:00")
    with toml.open("a") as f:
        f.write(f'\n[[meeting]]\nid = "2027-extra"\nstart = {DAYS[-1]}T14:00:00\n')
    edit(toml, 'send = "-90d"', 'send = "-365d"')  # every invitation goes at go-live


def _calendar_parts(ex: Executor) -> list[tuple[email.message.EmailMessage, bytes]]:
    assert isinstance(ex.transport, MemoryTransport)
    out = []
    for msg in ex.transport.sent:
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                out.append((msg, part.get_content().encode()))
    return out


def test_every_invite_reads_the_same_in_every_parser_and_radicale_stores_it(
        make_executor: Callable[[], Executor], group_dir: Path, radicale_put: CalendarPut):
    _meetings_on_the_clock_changes(group_dir)
    ex = make_executor()
    ex.tick(T0)
    toml = group_dir / "group.toml"
    edit(toml, f'id = "2027-q2"\nstart = {DAYS[1]}T14:00:00',
         f'id = "2027-q2"\nstart = {DAYS[1]}T14:00:00\nduration = "3h"')
    edit(toml, 'id = "2027-extra"', 'id = "2027-extra"\ncancelled = true')
    remove_member(group_dir, "linde.weber@surrey.example")
    make_executor().tick(T0 + timedelta(hours=1))
    make_executor().tick(T0 + timedelta(hours=2))

    samples: dict[tuple[str, str, int], tuple[email.message.EmailMessage, bytes]] = {}
    for msg, data in _calendar_parts(ex):
        cal = icalendar.Calendar.from_ical(data)
        ev = cal.walk("VEVENT")[0]
        samples.setdefault((str(ev["UID"]), str(cal["METHOD"]), int(ev["SEQUENCE"])),
                           (msg, data))
    kinds = {(method, seq > 0) for (_, method, seq) in samples}
    assert kinds == {("REQUEST", False), ("REQUEST", True), ("CANCEL", True)}
    assert len(samples) == 5 + 1 + 5  # invitations, the update, a CANCEL per meeting

    for (uid, method, seq), (msg, data) in sorted(samples.items()):
        meeting_id = uid.split(".", 1)[1].split("@")[0]
        day = DAYS[["2027-q1", "2027-q2", "2027-q3", "2027-q4", "2027-extra"].index(
            meeting_id)]
        start = datetime.fromisoformat(f"{day}T14:00:00").replace(tzinfo=LONDON)
        hours = 3 if meeting_id == "2027-q2" and seq > 0 else 2
        want = Parsed(method, {None: EventTimes(uid, seq, start.astimezone(UTC),
                                                (start.astimezone(UTC)
                                                 + timedelta(hours=hours)))})
        assert all_times(data) == dict.fromkeys(PARSERS, want), (uid, method, seq)
        assert libical_check(data) == [], (uid, method, seq)
        assert radicale_put(data) in (201, 204), (uid, method, seq)
        calendar_part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        assert calendar_part.get_param("method") == method


def test_every_series_message_reads_the_same_in_every_parser(
        make_executor: Callable[[], Executor], group_dir: Path, radicale_put: CalendarPut):
    """A series over the spring change: the whole series, one meeting moved across it, one
    cancelled, and a newcomer's copy with both (master + EXDATE + override)."""
    toml = add_series(group_dir)
    ex = make_executor()
    ex.tick(T0)
    move_series_meeting(toml)
    make_executor().tick(T0 + timedelta(hours=1))
    make_executor().tick(T0 + timedelta(hours=2))
    cancel_series_meeting(toml, "2027-04-22")
    make_executor().tick(T0 + timedelta(hours=3))
    make_executor().tick(T0 + timedelta(hours=4))
    with (group_dir / "roster.csv").open("a") as f:
        f.write("Nia Newton,nia.newton@kent.example,Kent,member\n")
    make_executor().tick(T0 + timedelta(hours=5))
    make_executor().tick(T0 + timedelta(hours=6))  # once her settle window has passed

    def at(day: str) -> datetime:
        return datetime.fromisoformat(f"{day}T14:00:00").replace(tzinfo=LONDON).astimezone(UTC)

    uid = "qa-leads.clinic@network.example"
    two = timedelta(hours=2)
    shapes: dict[str, Parsed] = {
        "whole": Parsed("REQUEST", {None: EventTimes(uid, 0, at("2027-02-25"),
                                                     at("2027-02-25") + two)}),
        "moved": Parsed("REQUEST", {at("2027-03-25"): EventTimes(
            uid, 1, at("2027-03-29"), at("2027-03-29") + two)}),
        "cancelled": Parsed("CANCEL", {at("2027-04-22"): EventTimes(
            uid, 2, at("2027-04-22"), at("2027-04-22") + two)}),
        "newcomer": Parsed("REQUEST", {
            None: EventTimes(uid, 2, at("2027-02-25"), at("2027-02-25") + two),
            at("2027-03-25"): EventTimes(uid, 2, at("2027-03-29"), at("2027-03-29") + two)}),
    }
    seen: dict[str, bytes] = {}
    for msg, data in _calendar_parts(ex):
        if uid.encode() not in data.replace(b"\r\n ", b"").replace(b"\n ", b""):
            continue
        key = str(msg["X-Clerk-Key"])
        shape = ("newcomer" if "nia.newton" in key else
                 {"r0": "whole", "r1": "moved", "c2": "cancelled"}[key.rsplit("/", 1)[1]])
        seen.setdefault(shape, data)
    assert set(seen) == set(shapes)
    for shape, data in seen.items():
        assert all_times(data) == dict.fromkeys(PARSERS, shapes[shape]), shape
        assert libical_check(data) == [], shape
        assert radicale_put(data) in (201, 204), shape
