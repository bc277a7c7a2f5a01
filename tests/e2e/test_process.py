"""clerk as a real process: crashes (SIGKILL) mid-batch, and the worker stopping on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.engine.store import Store, events, ledger
from tests.conftest import ROOT, edit

pytestmark = [pytest.mark.slow, pytest.mark.clock]

MEMBERS = 21


def settings(config_dir: Path, tmp_path: Path, *, pause: float, interval: int = 60) -> str:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\nstate = "{state}"\npause = {pause}\ninterval = {interval}\n\n'
        f'[transport]\npath = "{tmp_path / "outbox"}"\n')
    return state


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot.cli.main", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for_files(folder: Path, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.iterdir())) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"clerk ended early: {proc.communicate()}")
        time.sleep(0.002)
    raise AssertionError(f"fewer than {count} messages appeared")


@pytest.mark.parametrize("kill_after", [0, 1, 9, 20])
def test_a_kill_mid_batch_loses_nothing_and_duplicates_at_most_one(
        config_dir: Path, tmp_path: Path, kill_after: int):
    state = settings(config_dir, tmp_path, pause=0.03)
    new = tmp_path / "outbox" / "new"
    args = ["--config", str(config_dir), "tick", "--now", "2026-12-01T10:00:00+00:00"]
    proc = start(args, tmp_path)
    if kill_after:
        wait_for_files(new, kill_after, proc)
    else:  # as soon as the first row is claimed, before its message is written
        store = Store(state)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if store.counts().get("sending"):
                    break
            except sa.exc.OperationalError:
                pass  # the schema is not there yet
            time.sleep(0.001)
        store.dispose()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    restart = subprocess.run([sys.executable, "-m", "bot.cli.main", *args], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert restart.returncode == 0, restart.stderr
    store = Store(state)
    with store.engine.connect() as conn:
        states = Counter(conn.execute(sa.select(ledger.c.state).where(
            ledger.c.kind == "invitation", ledger.c.meeting_id == "2027-q1")).scalars())
        attempts = Counter(conn.execute(sa.select(events.c.key).where(
            events.c.state == "sending")).scalars())
    store.dispose()
    assert states == {"sent": MEMBERS}  # nothing lost, nothing left in sending
    assert len(list(new.iterdir())) == MEMBERS
    twice = [k for k, n in attempts.items() if n > 1]
    assert len(twice) <= 1, twice  # at most one message handed over twice per kill
    assert all(n <= 2 for n in attempts.values())


# the worker's rehearsal clock starts here (`clerk --now … run`): nothing reads the real date
NOW = "2026-12-07T10:00:00+00:00"


def _near_future_group(group_dir: Path) -> None:
    """Two meetings soon after NOW, so the worker has both meetings' invitations due."""
    today = date.fromisoformat(NOW[:10])
    edit(group_dir / "group.toml", "go_live = 2026-12-01", f"go_live = {today - timedelta(1)}")
    for n, old in enumerate(["2027-01-14", "2027-04-15", "2027-07-15", "2027-10-14"]):
        edit(group_dir / "group.toml", f"start = {old}T14:00:00",
             f"start = {today + timedelta(days=60 + 30 * n)}T14:00:00")


def test_the_worker_stops_on_sigterm_after_the_message_in_hand(
        config_dir: Path, tmp_path: Path):
    _near_future_group(config_dir / "example")
    state = settings(config_dir, tmp_path, pause=0.2, interval=1)
    new = tmp_path / "outbox" / "new"
    proc = start(["--config", str(config_dir), "--now", NOW, "run"], tmp_path)
    wait_for_files(new, 3, proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in err
    store = Store(state)
    counts = store.counts()
    store.dispose()
    assert "sending" not in counts
    assert counts["sent"] == len(list(new.iterdir()))
    assert counts["sent"] < 2 * MEMBERS  # it stopped mid-batch, not at the end


def test_the_worker_ticks_at_start_up_and_on_its_interval(config_dir: Path, tmp_path: Path):
    _near_future_group(config_dir / "example")
    # no settle window: a newcomer goes at the next tick (the window is tested elsewhere)
    edit(config_dir / "example" / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nsettle = "0m"')
    settings(config_dir, tmp_path, pause=0.0, interval=1)
    new = tmp_path / "outbox" / "new"
    proc = start(["--config", str(config_dir), "--now", NOW, "-v", "run"], tmp_path)
    try:
        wait_for_files(new, 2 * MEMBERS, proc)  # both near meetings' invitations
        # a member added while it runs is invited within a tick or two
        with (config_dir / "example" / "roster.csv").open("a") as f:
            f.write("Nia Newton,nia.newton@kent.example,Kent,member\n")
        wait_for_files(new, 2 * MEMBERS + 2, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "config reloaded" in err
