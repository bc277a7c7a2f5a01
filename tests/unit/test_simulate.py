"""`clerk simulate` acts at the very instants the worker would: it is compared, message by
message, with an executor ticking every interval over the same fortnight."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result

from bot import config as config_mod
from bot.domain.errors import ClerkError
from bot.engine.executor import Executor
from bot.engine.simulate import simulate
from bot.engine.store import Store
from bot.transports.outbox import OutboxTransport
from tests.conftest import edit

INTERVAL = timedelta(minutes=15)


def _quarter_hour_worker(config_dir: Path) -> None:
    (config_dir / "clerk.toml").write_text("[clerk]\ninterval = 900\npause = 0\n")


def _outbox(folder: Path) -> list[tuple[str, str, str, str]]:
    """Each message as (Date, To, X-Clerk-Key, Subject), sorted. The reply token in a subject
    is the state's own secret's: it differs between the two stores."""
    found = []
    for path in (folder / "new").iterdir():
        m = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subject = re.sub(r" \[#\w+\]$", "", str(m["Subject"]))
        found.append((str(m["Date"]), str(m["To"]), str(m["X-Clerk-Key"]), subject))
    return sorted(found)


def _ticked(config_dir: Path, tmp_path: Path, start: datetime,
            until: datetime) -> tuple[list[tuple[str, str, str]], Path]:
    """A worker's fortnight: a tick every 15 minutes, each message's (tick, key, state)."""
    store = Store(f"sqlite:///{tmp_path / 'ticked.sqlite'}")
    store.migrate()
    out = tmp_path / "ticked"
    executor = Executor(config_mod.load(config_dir), store,
                        OutboxTransport({"path": str(out), "fsync": False}))
    seen: list[tuple[str, str, str]] = []
    now = start
    while now <= until:
        result = executor.tick(now)
        for state, keys in (("sent", result.sent), ("skipped_late", result.skipped_late),
                            ("failed", result.failed)):
            seen += [(now.isoformat(), key, state) for key in keys]
        now += INTERVAL
    store.dispose()
    return sorted(seen), out


def _simulated(config_dir: Path, tmp_path: Path, start: datetime,
               until: datetime) -> tuple[list[tuple[str, ...]], Path]:
    """The simulation's fortnight: each message's (tick, group, meeting, rule, kind,
    recipient, state)."""
    timeline, out = simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}", start,
                             until, tmp_path / "simulated")
    return sorted((e["at"], e["group"], e["meeting"], e["rule"], e["kind"], recipient,
                   e["state"]) for e in timeline for recipient in e["recipients"]), out


def _as_timeline(ticked: list[tuple[str, str, str]], tmp_path: Path) -> list[tuple[str, ...]]:
    """The worker's (tick, key, state) in the simulation's terms."""
    store = Store(f"sqlite:///{tmp_path / 'ticked.sqlite'}")
    rows = {r.key: r for r in store.rows(states=None)}
    store.dispose()
    return sorted((at, rows[key].group_id, rows[key].meeting_id, rows[key].rule_id,
                   rows[key].kind, rows[key].recipient, state) for at, key, state in ticked)


@pytest.mark.slow
@pytest.mark.parametrize("start", [
    # Friday 4 December 2026, 04:10 UTC: the invitations are due, the window opens at 08:00
    datetime(2026, 12, 4, 4, 10, tzinfo=UTC),
    # Saturday night: nothing until Monday morning; the request on Thursday 17 December
    datetime(2026, 12, 5, 23, 30, tzinfo=UTC),
    # across the spring clock change and Easter: the spring meeting's request, chaser and
    # pack; the invitations to it are long past their time (skipped_late at the first tick)
    datetime(2027, 3, 20, 6, 30, tzinfo=UTC),
])
def test_a_simulated_fortnight_sends_what_a_worker_ticking_every_15_minutes_sends(
        config_dir: Path, tmp_path: Path, start: datetime):
    _quarter_hour_worker(config_dir)
    until = start + timedelta(days=14)
    ticked, ticked_out = _ticked(config_dir, tmp_path, start, until)
    simulated, simulated_out = _simulated(config_dir, tmp_path, start, until)
    assert ticked, "the fortnight should have mail in it"
    assert simulated == _as_timeline(ticked, tmp_path)
    # the messages themselves: the same people, subjects and Date headers (the tick's time)
    assert _outbox(simulated_out) == _outbox(ticked_out)


def test_a_message_waiting_for_the_window_goes_when_it_opens_in_a_simulation(
        config_dir: Path, tmp_path: Path):
    # Friday 4 December 2026 at 04:10 UTC: the first meeting's invitations (due since go-live)
    # wait for the window, which opens at 08:00 London: they go then, not at the next row's
    # send time (the request, on 17 December)
    timeline, _ = simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}",
                           datetime(2026, 12, 4, 4, 10, tzinfo=UTC),
                           datetime(2026, 12, 20, tzinfo=UTC), tmp_path / "out")
    first = timeline[0]
    assert (first["kind"], first["meeting"], first["state"]) == ("invitation", "2027-q1", "sent")
    assert first["at"] == "2026-12-04T08:00:00+00:00"


def test_a_row_released_while_the_window_is_shut_goes_at_the_opening(
        config_dir: Path, tmp_path: Path):
    # a window that opens at 09:30: the worker's first tick inside it is 09:30 exactly
    edit(config_dir / "example" / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nsend_window = "Mon-Fri 09:30-17:00"')
    timeline, _ = simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}",
                           datetime(2026, 12, 4, 4, 10, tzinfo=UTC),
                           datetime(2026, 12, 6, tzinfo=UTC), tmp_path / "out")
    assert {e["at"] for e in timeline} == {"2026-12-04T09:30:00+00:00"}


def test_a_simulation_leaves_no_scratch_state_behind(config_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    # an admin who rehearses every week must not fill the disk with copies of her state
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}",
             datetime(2026, 12, 4, 4, 10, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC),
             tmp_path / "out")
    assert list(scratch.iterdir()) == []
    # without --out the scratch folder holds the simulated mail, and only that
    _, out = simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}",
                      datetime(2026, 12, 4, 4, 10, tzinfo=UTC),
                      datetime(2026, 12, 6, tzinfo=UTC), None)
    [folder] = scratch.iterdir()
    assert [p.name for p in folder.iterdir()] == ["outbox"] and out == folder / "outbox"
    # and a simulation that fails (a broken config) leaves nothing either
    (config_dir / "example" / "group.toml").write_text("[group\n")
    shutil.rmtree(folder)
    with pytest.raises(ClerkError):
        simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}",
                 datetime(2026, 12, 4, 4, 10, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC), None)
    assert list(scratch.iterdir()) == []


def test_simulate_text_shows_each_instant_in_the_groups_zone_never_bare_utc(
        clerk: Callable[..., Result], tmp_path: Path):
    span = ("--from", "2026-11-30", "--until", "2027-04-30")
    timeline = json.loads(clerk("simulate", *span, "--out", str(tmp_path / "a"), "--json")
                          .output)
    result = clerk("simulate", *span, "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[:-1]  # the last one is the count
    assert len(lines) == len(timeline) > 0
    london = ZoneInfo("Europe/London")
    for line, e in zip(lines, timeline, strict=True):
        local = datetime.fromisoformat(e["at"]).astimezone(london)
        assert line.startswith(f"{local:%Y-%m-%d %H:%M} {local:%Z}  "), (line, e["at"])
    zones = {line.split()[2] for line in lines}
    assert zones == {"GMT", "BST"}  # winter and summer time, each named
    assert "UTC" not in result.output and "+00:00" not in result.output
    # in summer the local hour is not UTC's: 09:00 BST is 08:00 UTC
    summer = next(e for e, line in zip(timeline, lines, strict=True) if " BST " in line)
    assert datetime.fromisoformat(summer["at"]).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(summer["at"]).astimezone(london).hour == \
        datetime.fromisoformat(summer["at"]).hour + 1
