"""Several clerk processes on one store at once, as real processes: the first start of a
new store, and workers sharing the sending — on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.engine.migrations import MIGRATIONS
from bot.engine.store import Store, events, ledger, migrations_table
from tests.conftest import PG_URL, ROOT, _drop_all

pytestmark = [pytest.mark.slow]

MEMBERS = 21
# each process imports clerk first, then waits for the word to go: they start together
AT_ONCE = """
import os, sys, time
from bot.cli.main import cli
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
cli(sys.argv[2:], prog_name="clerk")
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a store nobody has opened yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    if not PG_URL:
        pytest.skip("CLERK_TEST_PG_URL is not set (make test sets it)")
    store = Store(PG_URL)
    _drop_all(store)
    store.dispose()
    return PG_URL


def together(n: int, args: list[str], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """``clerk ARGS`` in ``n`` processes started at the same instant."""
    go = cwd / "go"
    procs = [subprocess.Popen([sys.executable, "-c", AT_ONCE, str(go), *args], cwd=cwd,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(n)]
    time.sleep(3)  # all of them have imported clerk by now (or soon: the race stays)
    go.touch()
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_workers_started_at_once_on_a_new_store_migrate_once_and_send_once(
        config_dir: Path, tmp_path: Path, fresh_state: str):
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\nstate = "{fresh_state}"\n\n[transport]\npath = "{tmp_path / "outbox"}"\n')
    runs = together(4, ["--config", str(config_dir), "tick", "--now",
                        "2026-12-01T10:00:00+00:00"], tmp_path)
    for run in runs:
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    store = Store(fresh_state)
    with store.engine.connect() as conn:
        names = list(conn.execute(sa.select(migrations_table.c.name)).scalars())
        states = Counter(conn.execute(sa.select(ledger.c.state).where(
            ledger.c.kind == "invitation", ledger.c.meeting_id == "2027-q1")).scalars())
        keys = list(conn.execute(sa.select(ledger.c.key)).scalars())
        first_events = conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.state == "planned")).scalar()
    histories = [[h.state for h in store.history(k)] for k in keys]
    store.dispose()
    assert sorted(names) == sorted(name for name, _ in MIGRATIONS)
    assert states == {"sent": MEMBERS}
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == MEMBERS  # each once
    assert first_events == 0  # each row's history begins with the row, once
    assert all(h[0] in ("planned", "held") and h.count("planned") == 1 for h in histories)
