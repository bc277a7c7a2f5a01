"""Claims that survive PID reuse, leases that expire, and a row left in ``sending`` recovered
by exactly one worker — on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot import config as config_mod
from bot.engine.claims import Claimant, at_work, me
from bot.engine.executor import Executor
from bot.engine.store import Store, ledger
from bot.transports.memory import MemoryTransport
from tests.unit.test_races import other_worker

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
KEY = "qa-leads/2027-q1/invitation/tina.jameson@brighton-hove.example/r0"


class Blind(MemoryTransport):
    """A transport that cannot tell whether a message went (SMTP without a Sent folder)."""

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        return None


def left_in_sending(store: Store, claimant: Claimant | str, *,
                    lease_until: datetime | None = None) -> None:
    """``KEY`` in ``sending``, as ``claimant`` would leave it, claimed just now."""
    wall = datetime.now(UTC)
    with store.atomic() as conn:
        conn.execute(ledger.update().where(ledger.c.key == KEY).values(
            state="sending", claimed_by=str(claimant), claimed_at=wall,
            lease_until=lease_until or wall + timedelta(minutes=15)))


def ended_pid() -> int:
    """The PID of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.fixture
def sleeper() -> Any:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_claimant_is_written_and_read_back():
    mine = me()
    assert Claimant.parse(str(mine)) == mine
    assert mine.started and mine.boot and mine.nonce  # Linux: /proc tells
    assert Claimant.parse("old-host:1234") == Claimant("old-host", "", "", 1234, "", "")
    assert Claimant.parse("nonsense") is None
    assert len(str(replace(mine, host="h" * 64))) <= 200  # ledger.claimed_by


def test_a_claim_names_this_process_and_its_lease(store: Store):
    store.lease = timedelta(minutes=3)
    at = datetime(2027, 1, 5, 9, tzinfo=UTC)
    with store.atomic() as conn:
        conn.execute(ledger.insert().values(
            key="k", group_id="g", meeting_id="m", rule_id="r", kind="invitation",
            recipient="a@x.example", state="planned", send_at=at, latest_at=at, created_at=at,
            updated_at=at, attempts=0))
    assert store.claim("k", at, "<m@x>", "smtp")
    row = store.row("k")
    assert row.claimed_by == store.claimant == str(me())
    assert row.lease_until - row.claimed_at == timedelta(minutes=3)


def test_whether_a_claimant_is_at_work():
    now = datetime.now(UTC)
    soon, past = now + timedelta(minutes=5), now - timedelta(seconds=1)
    mine = str(me())
    gone = Claimant.of(ended_pid())
    assert not at_work(str(gone), soon, now, mine)  # this host can tell: its lease aside
    assert at_work(str(replace(me(), nonce="other")), past, now, mine)  # alive: lease aside
    assert not at_work(mine, soon, now, mine)  # one's own claims: not in flight between ticks
    elsewhere = replace(me(), host="elsewhere.example")
    assert at_work(str(elsewhere), soon, now, mine)  # another host: its lease decides
    assert not at_work(str(elsewhere), past, now, mine)
    rebooted = replace(gone, boot="0" * 36)  # or a twin host of the same name: cannot tell
    assert at_work(str(rebooted), soon, now, mine)
    assert not at_work(str(rebooted), past, now, mine)
    assert not at_work(None, soon, now, mine) and not at_work("?", soon, now, mine)


def test_a_reused_pid_does_not_keep_a_dead_workers_row_in_sending(
        config_dir: Path, store: Store, sleeper: subprocess.Popen[bytes]):
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    ex.tick(T0)
    # the worker that claimed it ran under the PID a new process has now: another start time
    left_in_sending(store, replace(Claimant.of(sleeper.pid), nonce="dead", started="1"))
    result = ex.tick(T0 + timedelta(minutes=1))
    assert result.recovered == 1 and store.row(KEY).state == "sent"  # found: not sent again


def test_a_row_a_live_worker_is_sending_stays_its_own(
        config_dir: Path, store: Store, sleeper: subprocess.Popen[bytes]):
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    ex.tick(T0)
    left_in_sending(store, replace(Claimant.of(sleeper.pid), nonce="alive"),
                    lease_until=datetime.now(UTC) - timedelta(hours=1))  # however long
    assert ex.tick(T0 + timedelta(minutes=1)).recovered == 0
    assert store.row(KEY).state == "sending"
    sleeper.kill()
    sleeper.wait()
    assert ex.tick(T0 + timedelta(minutes=2)).recovered == 1


def test_a_worker_killed_and_not_yet_reaped_is_gone(
        config_dir: Path, store: Store, sleeper: subprocess.Popen[bytes]):
    # SIGKILL, and its parent has not waited for it: a zombie, still in the process table
    # with its PID and start time, that will never finish the row it was sending
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    ex.tick(T0)
    claimant = replace(Claimant.of(sleeper.pid), nonce="killed")
    left_in_sending(store, claimant)
    sleeper.kill()
    for _ in range(500):
        if Path(f"/proc/{sleeper.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.01)
    else:
        pytest.fail("the killed process did not become a zombie")
    assert Claimant.of(sleeper.pid).started == claimant.started  # the same process, a zombie
    assert claimant.gone(str(me())) is True
    assert ex.tick(T0 + timedelta(minutes=1)).recovered == 1  # at once, not after its lease
    assert store.row(KEY).state == "sent"


def test_a_row_claimed_on_another_host_waits_for_its_lease(config_dir: Path, store: Store):
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    ex.tick(T0)
    elsewhere = replace(me(), host="elsewhere.example", nonce="x")
    left_in_sending(store, elsewhere)
    assert ex.tick(T0 + timedelta(minutes=1)).recovered == 0
    left_in_sending(store, elsewhere, lease_until=datetime.now(UTC) - timedelta(seconds=1))
    assert ex.tick(T0 + timedelta(minutes=2)).recovered == 1


def test_two_workers_recovering_one_row_send_it_at_most_once_more(
        config_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch):
    config = config_mod.load(config_dir)
    a_sent, b_sent = Blind(), Blind()
    a = Executor(config, store, a_sent)
    a.tick(T0)
    left_in_sending(store, Claimant.of(ended_pid()))  # its worker was killed
    b_store = other_worker(store)
    b = Executor(config, b_store, b_sent)
    stale = b_store.in_doubt()  # worker b finds it in doubt …
    assert [r.key for r in stale] == [KEY]
    first = a.tick(T0 + timedelta(minutes=1))  # … and so does a, which recovers it first
    assert first.recovered == 1 and first.sent == [KEY]
    monkeypatch.setattr(b_store, "in_doubt", lambda: stale)  # b goes on with what it read
    second = b.tick(T0 + timedelta(minutes=2))
    b_store.dispose()
    assert second.recovered == 0 and second.sent == []
    sends = Counter(m["To"] for m in a_sent.sent + b_sent.sent)
    assert sends.most_common(1)[0][1] == 2  # Tina's: once before the crash, once after
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(ledger.c.state).where(ledger.c.key == KEY)
                            ).scalar_one() == "sent"
