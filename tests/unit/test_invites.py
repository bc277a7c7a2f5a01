"""Invites as iTIP: updates, per-person adds and cancellations, settle windows
(bot/plan/invites.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar

from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import edit, remove_member

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # go-live: the q1 invitations go
SETTLE = timedelta(minutes=10)
MEMBERS = 21
Q1 = 'id = "2027-q1"\nstart = 2027-01-14T14:00:00'


def calendars(ex: Executor, since: int = 0) -> list[tuple[str, icalendar.Calendar]]:
    """(recipient, parsed calendar) of each message sent, from the ``since``-th on."""
    assert isinstance(ex.transport, MemoryTransport)
    out = []
    for msg in ex.transport.sent[since:]:
        parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        if parts:
            to = str(msg["To"]).split("<")[-1].rstrip(">")
            out.append((to, icalendar.Calendar.from_ical(parts[0].get_content())))
            assert parts[0].get_param("method") == out[-1][1]["METHOD"]
    return out


def event(cal: icalendar.Calendar) -> icalendar.Event:
    (ev,) = cal.walk("VEVENT")
    return ev


def tick(make: Callable[[], Executor], at: datetime) -> list[str]:
    return make().tick(at).sent


def test_the_seed_case_3h_to_2h_sends_one_request_each_with_sequence_plus_one(
        make_executor: Callable[[], Executor], group_dir: Path):
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    ex = make_executor()
    ex.tick(T0)
    before = {to: event(cal) for to, cal in calendars(ex)}
    assert len(before) == MEMBERS
    assert {int(e["SEQUENCE"]) for e in before.values()} == {0}
    edit(group_dir / "group.toml", 'duration = "3h"', 'duration = "2h"')
    assert tick(make_executor, T0 + timedelta(hours=1)) == []  # the settle window
    sent = tick(make_executor, T0 + timedelta(hours=1) + SETTLE)
    after = calendars(ex, MEMBERS)
    assert len(sent) == len(after) == MEMBERS  # exactly one each, and no one else
    assert sorted(to for to, _ in after) == sorted(before)
    for to, cal in after:
        ev = event(cal)
        assert cal["METHOD"] == "REQUEST"
        assert ev["UID"] == before[to]["UID"]
        assert int(ev["SEQUENCE"]) == int(before[to]["SEQUENCE"]) + 1
        assert ev.decoded("DTEND") - ev.decoded("DTSTART") == timedelta(hours=2)
        assert ev.decoded("DTEND").astimezone(UTC) == datetime(2027, 1, 14, 16, tzinfo=UTC)
    reasons = {r.reason for r in make_executor().store.rows(states=["sent"])
               if r.sequence == 1}
    assert reasons == {"update rev 1: duration 3h → 2h (rule invitation -90d)"}
    assert tick(make_executor, T0 + timedelta(days=1)) == []


def test_several_edits_within_the_settle_window_make_one_update(
        make_executor: Callable[[], Executor], group_dir: Path):
    ex = make_executor()
    ex.tick(T0)
    toml = group_dir / "group.toml"
    edit(toml, Q1, Q1.replace("14:00", "15:00"))
    assert tick(make_executor, T0 + timedelta(minutes=5)) == []
    edit(toml, Q1.replace("14:00", "15:00"), Q1.replace("14:00", "13:00"))
    # the second edit, seen at +12 minutes, restarts the window
    assert tick(make_executor, T0 + timedelta(minutes=12)) == []
    assert tick(make_executor, T0 + timedelta(minutes=21)) == []
    assert len(tick(make_executor, T0 + timedelta(minutes=22))) == MEMBERS
    cals = calendars(ex, MEMBERS)
    assert len(cals) == MEMBERS
    assert {int(event(c)["SEQUENCE"]) for _, c in cals} == {1}
    assert {event(c).decoded("DTSTART").hour for _, c in cals} == {13}


def test_a_wording_change_sends_nothing(make_executor: Callable[[], Executor],
                                        group_dir: Path):
    make_executor().tick(T0)
    edit(group_dir / "group.toml", 'description = "Quarterly meeting of the QA Leads Network."',
         'description = "The quarterly meeting."')
    assert tick(make_executor, T0 + timedelta(hours=2)) == []


def test_a_member_removed_gets_a_cancel_naming_them_alone(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    ex = make_executor()
    ex.tick(T0)
    gone = "linde.weber@surrey.example"
    remove_member(group_dir, gone)
    roster = group_dir / "roster.csv"
    tick(make_executor, T0 + timedelta(minutes=1))
    sent = tick(make_executor, T0 + timedelta(minutes=1) + SETTLE)
    assert sent == [f"qa-leads/2027-q1/invitation/{gone}/c1"]
    ((to, cal),) = calendars(ex, MEMBERS)
    ev = event(cal)
    assert to == gone and cal["METHOD"] == "CANCEL" and int(ev["SEQUENCE"]) == 1
    assert [str(a) for a in _list(ev["ATTENDEE"])] == [f"mailto:{gone}"]
    assert ev["UID"] == "qa-leads.2027-q1@network.example"
    # added back: a REQUEST newer than the CANCEL, to them alone
    roster.write_text(roster.read_text() + "Linde Weber,linde.weber@surrey.example,Surrey,lead\n")
    tick(make_executor, T0 + timedelta(hours=1))
    assert tick(make_executor, T0 + timedelta(hours=1) + SETTLE) == [
        f"qa-leads/2027-q1/invitation/{gone}/r2"]
    ((to, cal),) = calendars(ex, MEMBERS + 1)
    assert cal["METHOD"] == "REQUEST" and int(event(cal)["SEQUENCE"]) == 2


def test_a_cancelled_meeting_sends_cancel_to_everyone_holding_it(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    ex = make_executor()
    ex.tick(T0)
    edit(group_dir / "group.toml", Q1, Q1 + "\ncancelled = true")
    tick(make_executor, T0 + timedelta(hours=1))
    sent = tick(make_executor, T0 + timedelta(hours=1) + SETTLE)
    assert len(sent) == MEMBERS and all(k.endswith("/c1") for k in sent)
    cals = calendars(ex, MEMBERS)
    assert {c["METHOD"] for _, c in cals} == {"CANCEL"}
    assert {str(event(c)["STATUS"]) for _, c in cals} == {"CANCELLED"}
    # its other messages are withdrawn; nothing more goes for it
    q1 = Counter(r.state for r in store.rows() if r.meeting_id == "2027-q1")
    assert q1 == {"sent": 2 * MEMBERS, "withdrawn": 16 + 16 + MEMBERS + 1 + 1}  # +the preview
    assert tick(make_executor, datetime(2027, 1, 29, 10, tzinfo=UTC)) and not any(
        "/2027-q1/" in k for k in tick(make_executor, datetime(2027, 2, 1, 10, tzinfo=UTC)))


def test_a_meeting_cancelled_before_any_invite_sends_nothing(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    edit(group_dir / "group.toml", 'id = "2027-q2"', 'id = "2027-q2"\ncancelled = true')
    make_executor().tick(T0)
    sent = tick(make_executor, datetime(2027, 1, 16, tzinfo=UTC))
    assert not any("/2027-q2/" in k for k in sent)
    assert not any(r.meeting_id == "2027-q2" for r in store.rows())


def test_plan_shows_each_update_with_its_reason(clerk, group_dir: Path):
    import json

    clerk("tick", "--now", T0.isoformat())
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    rows = json.loads(clerk("plan", "--json", "--now", (T0 + timedelta(hours=1)).isoformat(),
                            "--from", "2026-12-01", "--until", "2026-12-02").output)
    updates = [r for r in rows if r["sequence"] == 1]
    assert len(updates) == MEMBERS
    assert {r["reason"] for r in updates} == {
        "update rev 1: duration 2h → 3h (rule invitation -90d)"}
    text = clerk("plan", "--now", (T0 + timedelta(hours=1)).isoformat(), "--until",
                 "2026-12-02").output
    assert "update rev 1: duration 2h → 3h" in text and "21 recipients" in text


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def test_a_group_may_ask_for_updates_on_wording_changes(
        make_executor: Callable[[], Executor], group_dir: Path):
    edit(group_dir / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nwording_updates = true')
    make_executor().tick(T0)
    edit(group_dir / "group.toml", 'description = "Quarterly meeting of the QA Leads Network."',
         'description = "The quarterly meeting."')
    make_executor().tick(T0 + timedelta(hours=2))
    sent = tick(make_executor, T0 + timedelta(hours=2) + SETTLE)
    assert len(sent) == MEMBERS and all(k.endswith("/r1") for k in sent)
    rows = make_executor().store.rows(states=["sent"])
    assert {r.reason for r in rows if r.sequence == 1} == {
        "update rev 1: description reworded (rule invitation -90d)"}


def test_a_zone_invitations_cannot_carry_is_refused_by_check(clerk, group_dir: Path):
    # Mexico City stopped daylight saving in 2022: a compact zone cannot span 2022-2023
    edit(group_dir / "group.toml", 'zone = "Europe/London"', 'zone = "America/Mexico_City"')
    edit(group_dir / "group.toml", "go_live = 2026-12-01", "go_live = 2021-12-01")
    edit(group_dir / "group.toml", "start = 2027-01-14T14:00:00", "start = 2022-05-12T14:00:00")
    result = clerk("check")
    assert result.exit_code == 2
    assert "group.zone" in result.output and "invitations cannot carry this zone" in \
        result.output
