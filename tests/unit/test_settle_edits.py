"""Edits that cannot embarrass the admin: a roster edit — an address changed, a member taken
off and put back — waits for the group's settle window after the *last* edit before any mail
goes, so a slip fixed within it costs nothing (bot/plan/invites.py, the roster's change times
in bot/engine/facts.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.engine.executor import Executor
from bot.transports.memory import MemoryTransport
from tests.conftest import edit, remove_member

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)  # go-live: the q1 invitations go
EDIT = T0 + timedelta(hours=1)
MEMBERS = 21
LINDE = "linde.weber@surrey.example"
WRONG = "linde.webber@surrey.example"  # a typo, but a valid address
ROW = "Linde Weber,linde.weber@surrey.example,Surrey,lead\n"
INVITE = "qa-leads/2027-q1/invitation"


def tick(make: Callable[[], Executor], at: datetime) -> list[str]:
    return make().tick(at).sent


def recipients(ex: Executor) -> list[str]:
    assert isinstance(ex.transport, MemoryTransport)
    return [str(m["To"]).split("<")[-1].rstrip(">") for m in ex.transport.sent]


def invited(make: Callable[[], Executor]) -> Executor:
    """Go-live: every member has her q1 invitation."""
    ex = make()
    assert len(ex.tick(T0).sent) == MEMBERS
    return ex


def quiet(make: Callable[[], Executor], since: datetime, *minutes: int) -> None:
    """Nothing is sent at any of these minutes after ``since``."""
    for m in minutes:
        assert tick(make, since + timedelta(minutes=m)) == [], m


def put_back(group_dir: Path) -> None:
    roster = group_dir / "roster.csv"
    roster.write_text(roster.read_text() + ROW)


def _settle(group_dir: Path, value: str) -> None:
    edit(group_dir / "group.toml", "go_live = 2026-12-01", f'settle = "{value}"\n'
         "go_live = 2026-12-01")


def test_a_changed_address_waits_for_the_groups_settle_window(
        make_executor: Callable[[], Executor], group_dir: Path):
    _settle(group_dir, "30m")
    ex = invited(make_executor)
    edit(group_dir / "roster.csv", LINDE, WRONG)
    quiet(make_executor, EDIT, 0, 10, 29)  # nothing to the new address, nor the old's CANCEL
    assert set(tick(make_executor, EDIT + timedelta(minutes=30))) == {
        f"{INVITE}/{LINDE}/c1", f"{INVITE}/{WRONG}/r0"}
    assert recipients(ex).count(WRONG) == 1 and recipients(ex).count(LINDE) == 2


def test_a_wrong_address_put_right_within_the_window_costs_no_mail(
        make_executor: Callable[[], Executor], group_dir: Path):
    ex = invited(make_executor)
    roster = group_dir / "roster.csv"
    edit(roster, LINDE, WRONG)
    assert tick(make_executor, EDIT) == []
    edit(roster, WRONG, LINDE)
    quiet(make_executor, EDIT, 9, 10, 20, 60)
    assert WRONG not in recipients(ex) and recipients(ex).count(LINDE) == 1
    assert len(recipients(ex)) == MEMBERS


def test_remove_re_add_remove_waits_for_the_window_after_the_last_edit(
        make_executor: Callable[[], Executor], group_dir: Path):
    ex = invited(make_executor)
    remove_member(group_dir, LINDE)
    quiet(make_executor, EDIT, 0)
    put_back(group_dir)  # 5 minutes later
    quiet(make_executor, EDIT, 5, 10)  # at +10 the first removal's window is over: she is back
    remove_member(group_dir, LINDE)  # and taken off again
    quiet(make_executor, EDIT, 12, 15, 21)  # its window counts from this last edit, seen at +12
    assert tick(make_executor, EDIT + timedelta(minutes=22)) == [f"{INVITE}/{LINDE}/c1"]
    assert recipients(ex).count(LINDE) == 2  # the invitation, then one CANCEL
    assert tick(make_executor, EDIT + timedelta(hours=2)) == []


def test_a_member_put_back_after_her_cancel_waits_again_at_each_edit(
        make_executor: Callable[[], Executor], group_dir: Path):
    ex = invited(make_executor)
    remove_member(group_dir, LINDE)
    quiet(make_executor, EDIT, 0)
    assert tick(make_executor, EDIT + timedelta(minutes=10)) == [f"{INVITE}/{LINDE}/c1"]
    back = EDIT + timedelta(hours=1)
    put_back(group_dir)
    quiet(make_executor, back, 0)
    remove_member(group_dir, LINDE)  # off again before her new invitation went
    quiet(make_executor, back, 5)
    put_back(group_dir)  # and back for good
    quiet(make_executor, back, 8, 10, 17)  # the window from +8, not from +0
    assert tick(make_executor, back + timedelta(minutes=18)) == [f"{INVITE}/{LINDE}/r2"]
    assert recipients(ex).count(LINDE) == 3  # invitation, CANCEL, invitation again
