"""The blast-radius guard: an everyday mistake in the roster or the group's id is held, the
admin told in plain words, and nothing wrongly sent (bot/plan/guard.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import CLI_NOW, EXAMPLE, edit

T0 = CLI_NOW  # go-live: the first meeting's invitations go
LATER = T0 + timedelta(days=1)
MEMBERS = 21


def roster_lines(group_dir: Path) -> list[str]:
    return (group_dir / "roster.csv").read_text().splitlines(True)


def keep(group_dir: Path, lines: list[str]) -> None:
    (group_dir / "roster.csv").write_text("".join(lines))


@pytest.fixture
def running(make_executor: Callable[[], Executor], store: Store, clerk: Callable[..., Result]
            ) -> Callable[[datetime], list[str]]:
    """A worker on the example group; each call ticks at a time and returns what it sent."""
    if not store.url.startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    assert len(make_executor().tick(T0).sent) == MEMBERS

    def tick(at: datetime) -> list[str]:
        return make_executor().tick(at).sent
    return tick


def sent_to_admin(make_executor: Callable[[], Executor]) -> list[str]:
    ex = make_executor()
    assert isinstance(ex.transport, MemoryTransport)
    return [m.get_body(("plain",)).get_content() for m in ex.transport.sent
            if "/-/guard/" in str(m["X-Clerk-Key"])]


def test_a_roster_saved_as_its_header_line_cancels_nothing(
        running: Callable[[datetime], list[str]], group_dir: Path, clerk: Callable[..., Result],
        make_executor: Callable[[], Executor], store: Store):
    lines = roster_lines(group_dir)
    keep(group_dir, lines[:1])
    sent = running(LATER)
    assert [k.split("/")[2] for k in sent] == ["guard"]  # the admin is told, at once
    (text,) = sent_to_admin(make_executor)
    assert f"{MEMBERS} of {MEMBERS} members would be taken off the meetings" in text
    assert "was roster.csv saved complete?" in text
    assert "clerk approve --guard qa-leads" in text
    for hours in (1, 24, 24 * 7):
        assert running(LATER + timedelta(hours=hours)) == []  # nothing else, ever
    plan = json.loads(clerk("--now", LATER.isoformat(), "plan", "--json").output)
    cancels = [r for r in plan if r["kind"] == "cancellation"]
    assert cancels and {r["state"] for r in cancels} == {"held"}
    assert all(r["reason"].startswith("held by the guard: 21 of 21 members") for r in cancels)
    check = clerk("--now", LATER.isoformat(), "check")
    assert check.exit_code == 0
    assert "warning: qa-leads: 21 of 21 members would be taken off" in check.output
    # the admin puts the file back: the held cancellations are dropped, nobody hears a thing
    keep(group_dir, lines)
    assert running(LATER + timedelta(days=8)) == []
    assert {r.state for r in store.rows() if r.kind == "cancellation"} == {"withdrawn"}


def test_approving_sends_what_was_held(running: Callable[[datetime], list[str]],
                                       group_dir: Path, clerk: Callable[..., Result]):
    lines = roster_lines(group_dir)
    keep(group_dir, lines[:1] + lines[12:])  # 11 of 21 leave: more than 20 %
    running(LATER)
    approved = clerk("--now", LATER.isoformat(), "approve", "--guard", "qa-leads")
    assert approved.exit_code == 0 and approved.output.count("approved") == 11
    sent = running(LATER + timedelta(hours=1))
    assert len([k for k in sent if "/invitation/" in k and k.endswith("/c1")]) == 11


def test_a_small_change_is_not_held(running: Callable[[datetime], list[str]],
                                    group_dir: Path):
    lines = roster_lines(group_dir)
    keep(group_dir, lines[:-2])  # 2 of 21 leave: under 20 %
    assert running(LATER) == []  # they wait for the settle window…
    sent = running(LATER + timedelta(minutes=10))
    assert len(sent) == 2 and all(k.endswith("/c1") for k in sent)  # …then are taken off


def test_the_wrong_sheet_is_held_in_plain_words(
        running: Callable[[datetime], list[str]], group_dir: Path,
        make_executor: Callable[[], Executor]):
    lines = roster_lines(group_dir)
    others = [f"Person {n},person{n}@elsewhere.example,Elsewhere,member\n" for n in range(20)]
    keep(group_dir, lines[:1] + others)
    assert [k.split("/")[2] for k in running(LATER)] == ["guard"]
    (text,) = sent_to_admin(make_executor)
    assert "21 of 21 members would be taken off the meetings" in text
    assert "and 20 others invited (Person 0, Person 1, Person 10, Person 11, Person 12 and " \
           "15 more) — was the right sheet saved as roster.csv?" in text
    assert running(LATER + timedelta(days=2)) == []


def test_a_renamed_group_sends_nothing_again(running: Callable[[datetime], list[str]],
                                             group_dir: Path,
                                             make_executor: Callable[[], Executor]):
    edit(group_dir / "group.toml", 'id = "qa-leads"', 'id = "qa-leads-2027"')
    assert [k.split("/")[2] for k in running(LATER)] == ["guard"]
    (text,) = sent_to_admin(make_executor)
    assert "the group's id changed from 'qa-leads' to 'qa-leads-2027'" in text
    assert running(LATER + timedelta(days=30)) == []


def test_a_group_may_turn_the_guard_off(running: Callable[[datetime], list[str]],
                                        group_dir: Path):
    edit(group_dir / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nguard = "100%"')
    keep(group_dir, roster_lines(group_dir)[:1])
    running(LATER)
    assert len(running(LATER + timedelta(minutes=10))) == MEMBERS  # as the admin asked


@pytest.mark.parametrize("value,message", [
    ('"lots"', "is not a share"), ("1.5", "from 0% to 100%"), ('"-5%"', "from 0% to 100%"),
    ("true", "from 0% to 100%"),
])
def test_a_wrong_guard_is_a_problem_with_its_line(group_dir: Path, value: str, message: str,
                                                  clerk: Callable[..., Result]):
    edit(group_dir / "group.toml", 'zone = "Europe/London"',
         f'zone = "Europe/London"\nguard = {value}')
    result = clerk("check")
    assert result.exit_code == 2 and message in result.output
    assert "group.toml:10" in result.output and "group.guard" in result.output


def test_a_config_broken_for_longer_than_the_settle_window_is_reported_once(
        make_executor: Callable[[], Executor], config_dir: Path, store: Store,
        clerk: Callable[..., Result]):
    from bot.engine.worker import Worker

    worker = Worker(make_executor(), config_dir)
    worker.tick(T0)
    (config_dir / "example" / "roster.csv").write_text(
        "name,email,organisation,role\nGavin Swales,gavin.swales@kent,Kent,member\n")
    transport = worker.executor.transport
    assert isinstance(transport, MemoryTransport)
    told = []
    for minutes in range(0, 60, 5):  # a broken file left for an hour
        worker.tick(T0 + timedelta(hours=1, minutes=minutes))
        told += [m for m in transport.sent if "/-/config/" in str(m["X-Clerk-Key"])
                 and m not in told]
    assert len(told) == 1  # once, after the settle window, to the admin
    (message,) = told
    assert str(message["To"]) == "Kim Osei <kim.osei@network.example>"
    assert message["Date"].datetime == T0 + timedelta(hours=1, minutes=10)
    text = message.get_body(("plain",)).get_content()
    assert "are not live" in text and "'gavin.swales@kent' is not an email address" in text
    assert "roster.csv:2" in text and "at 10:00" not in text and "at 11:00" in text
    assert store.config_problems() is not None
    if store.url.startswith("sqlite"):  # the CLI here uses the SQLite store
        # clerk status says so, and since when the worker has gone on with the last good one
        status = clerk("status")
        assert status.exit_code == 2
        assert "The config does not load: a worker running since before the edit goes on " \
               "with the last good one (it met these problems at 2026-12-01T11:00+00:00)" \
               in status.output
        assert "'gavin.swales@kent' is not an email address" in status.output
        shown = json.loads(clerk("status", "--json").stdout)["config_problems"]
        assert shown["since"].startswith("2026-12-01T11:00")
        assert any("roster.csv:2" in p for p in shown["problems"])
    # put right: the worker takes it up, and nothing more is said
    shutil.copy(EXAMPLE / "roster.csv", config_dir / "example" / "roster.csv")
    if store.url.startswith("sqlite"):  # until a worker ticks on it, status says what it met
        assert "The config has had problems since 2026-12-01T11:00" in clerk("status").output
    worker.tick(T0 + timedelta(hours=2))
    assert store.config_problems() is None
    if store.url.startswith("sqlite"):
        assert "problems" not in clerk("status").output
    # broken again, another way: she is told of that one too, once
    edit(config_dir / "example" / "group.toml", 'kind = "pack"', 'kind = "packs"')
    for minutes in range(0, 60, 5):
        worker.tick(T0 + timedelta(hours=3, minutes=minutes))
        told += [m for m in transport.sent if "/-/config/" in str(m["X-Clerk-Key"])
                 and m not in told]
    assert len(told) == 2 and "packs" in told[1].get_body(("plain",)).get_content()


def test_a_stranger_saved_as_the_chair_is_not_sent_the_groups_actions(
        running: Callable[[datetime], list[str]], group_dir: Path, store: Store,
        clerk: Callable[..., Result]):
    """The chair's weekly summary of the overdue actions is planned apart from the meetings
    (its own unit): to the people the guard holds the group's mail for — the wrong sheet's,
    its chair among them — it sends nothing, until the admin approves."""
    store.add_action({"group_id": "qa-leads", "meeting_id": "", "topic": "T",
                      "text": "Send the budget", "owners": ("sophie.barton@hampshire-iow.example",),
                      "due": T0.date()}, "test", "test", T0)
    lines = roster_lines(group_dir)
    stranger = "Pat Stranger,pat@elsewhere.example,Elsewhere,chair\n"
    others = [f"Person {n},person{n}@elsewhere.example,Elsewhere,member\n" for n in range(10)]
    keep(group_dir, [*lines[:1], stranger, *lines[2:], *others])  # 11 newcomers of 21
    sent: list[str] = []
    at = T0
    while at < T0 + timedelta(days=8):  # past the first Monday's summary
        at += timedelta(hours=6)
        sent += running(at)
    assert [k for k in sent if "/-/guard/" in k]  # the admin was told
    assert not [k for k in sent if "pat@elsewhere.example" in k]
    assert not [r for r in store.rows() if r.recipient == "pat@elsewhere.example"
                and r.rule_id == "overdue"]  # not even recorded: nothing to release later
    approved = clerk("--now", at.isoformat(), "approve", "--guard", "qa-leads")
    assert approved.exit_code == 0
    while at < T0 + timedelta(days=15):  # the next Monday's goes to the chair
        at += timedelta(hours=6)
        sent += running(at)
    assert [k for k in sent if "/-/overdue/pat@elsewhere.example/" in k]


def test_the_admins_own_mail_is_never_withheld():
    """Her weekly digest tells her what is held: it goes, whoever the guard holds."""
    from bot import config as config_mod
    from bot.domain.model import Desired
    from bot.plan.guard import Trip, withheld

    [group] = config_mod.load(EXAMPLE.parent).groups

    def to(email: str) -> Desired:
        return Desired(key=f"qa-leads/-/overdue/{email}/2027-01-11", group="qa-leads",
                       meeting="-", rule="overdue", kind="notice",
                       recipient=type(group.admin)(name="", email=email), send_at=T0,
                       latest=T0, subject="", reason="", template="", context={})

    trip = Trip("qa-leads", "why", ("k",), frozenset({group.admin.email, "a/b@x.example"}))
    kept = withheld(group, [trip], [to(group.admin.email), to("a/b@x.example"),
                                    to("c@x.example")])
    assert [m.recipient.email for m in kept] == [group.admin.email, "c@x.example"]
