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

from bot.executor import Executor
from bot.transports.memory import MemoryTransport
from tests.conftest import edit, remove_member
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
