"""Shared fixtures: a scratch copy of the example config, a store, an executor, the CLI."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot import config as config_mod
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.listen import replies
from bot.listen.authn import Trust
from bot.listen.replies import Incoming
from bot.transports.memory import MemoryTransport
from tests.ews_fake import ews  # noqa: F401  (a fixture: a fake Exchange Server)
from tests.graph_fake import graph  # noqa: F401  (a fixture: a fake Microsoft 365)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example"

# tests run in a non-UTC zone too: nothing may depend on the machine's zone
os.environ.setdefault("TZ", "America/New_York")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--clock", metavar="TIME",
                     help="Run every test with the wall clock moved to TIME (ISO 8601 with an "
                          "offset), running on from there (time-machine). Nothing may depend "
                          "on the real date or hour: tests/clock.sh runs the suite so.")


def pytest_configure(config: pytest.Config) -> None:
    when = config.getoption("--clock")
    if when:
        import time_machine

        at = datetime.fromisoformat(when)
        if at.tzinfo is None:
            raise pytest.UsageError(f"--clock {when}: give an offset, e.g. {when}+00:00")
        traveller = time_machine.travel(at, tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    when = config.getoption("--clock")
    return f"clock moved to {when} (time-machine)" if when else None


@pytest.fixture(autouse=True)
def collector_as_found() -> Iterator[None]:
    """Python's garbage collector as each test found it: a Worker freezes what the process
    holds when it starts (gc.freeze), and every clerk command sets the collector's thresholds
    (bot.tune_collector) — in a test, one test's objects would be kept from the collector for
    the rest of the run."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A config folder holding a copy of the example group."""
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copytree(EXAMPLE, folder / "example")
    return folder


@pytest.fixture
def group_dir(config_dir: Path) -> Path:
    return config_dir / "example"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The groups the planner plans (``planner.group_plan``), in order."""
    return count_plans(monkeypatch)


def count_plans(monkeypatch: pytest.MonkeyPatch, part: str = "group_plan") -> list[str]:
    """The groups ``planner.<part>`` plans from now on, in order."""
    from bot.plan import planner

    planned: list[str] = []
    real = getattr(planner, part)

    def counting(config: Any, group: Any, state: Any, at: datetime, chased: Any,
                 *more: Any) -> Any:
        planned.append(group.id)
        return real(config, group, state, at, chased, *more)

    monkeypatch.setattr(planner, part, counting)
    return planned


def second_group(config_dir: Path, group_id: str = "second") -> Path:
    """A second group beside the example, with the same roster (a member in two groups)."""
    folder = config_dir / group_id
    shutil.copytree(EXAMPLE, folder)
    edit(folder / "group.toml", 'id = "qa-leads"', f'id = "{group_id}"')
    return folder


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in a config file, failing loudly if ``old`` is absent."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def remove_member(group_dir: Path, email: str) -> None:
    """Take a member off the group's roster, as an admin deleting their row would."""
    roster = group_dir / "roster.csv"
    lines = roster.read_text(encoding="utf-8").splitlines(True)
    kept = [line for line in lines if email not in line]
    assert len(kept) == len(lines) - 1, f"{email} is not on the roster once"
    roster.write_text("".join(kept), encoding="utf-8")


def add_series(group_dir: Path) -> Path:
    """Add a fortnightly series over the spring clock change, invited at go-live."""
    toml = group_dir / "group.toml"
    with toml.open("a") as f:
        f.write('\n[[series]]\nid = "clinic"\nstart = 2027-02-25T14:00:00\n'
                'repeat = "FREQ=WEEKLY;INTERVAL=2;COUNT=6"\n')
    edit(toml, 'send = "-90d"', 'send = "-365d"')
    return toml


def cancel_series_meeting(toml: Path, day: str = "2027-03-11") -> None:
    """Cancel the series' meeting of ``day`` (by default the second, 11 March)."""
    with toml.open("a") as f:
        f.write(f"\n[[series.occurrence]]\ndate = {day}\ncancelled = true\n")


def move_series_meeting(toml: Path) -> None:
    """Move the series' 25 March meeting to 29 March: across the spring change."""
    with toml.open("a") as f:
        f.write("\n[[series.occurrence]]\ndate = 2027-03-25\nstart = 2027-03-29T14:00:00\n")


# The receiving mail server the tests play: it authenticates a member's mail and says so on
# top of it (RFC 8601), as an install's own server does; clerk is told its authserv-id.
MX = "mx.clerk-test.example"


def authenticated(message: EmailMessage | bytes) -> bytes:
    """``message`` as the install's mail server hands it on once it has checked its From
    (DMARC pass): with its Authentication-Results on top."""
    raw = message if isinstance(message, bytes) else message.as_bytes()
    sender = parseaddr(BytesHeaderParser(policy=policy.default).parsebytes(raw)["From"] or "")[1]
    verdict = f"Authentication-Results: {MX}; dmarc=pass header.from={sender.rpartition('@')[2]}"
    return verdict.encode() + b"\r\n" + raw


TRUST = Trust(authserv_ids=(MX,))  # what clerk.toml's [mailbox] authserv_id = MX makes


def read_reply(message: EmailMessage | bytes) -> Incoming:
    """What clerk makes of ``message`` from a member, authenticated by the install's server."""
    return replies.read(authenticated(message), trust=TRUST)


PG_URL = os.environ.get("CLERK_TEST_PG_URL")  # set by `make test` (tests/postgres.sh)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store: SQLite, and PostgreSQL when CLERK_TEST_PG_URL names one."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    elif PG_URL:
        s = Store(PG_URL)
        _drop_all(s)
    else:
        pytest.skip("CLERK_TEST_PG_URL is not set (make test sets it)")
    s.migrate()
    yield s
    s.dispose()


def _drop_all(s: Store) -> None:
    import sqlalchemy as sa

    from bot.engine.store import metadata

    with s.atomic() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS migrations"))


@pytest.fixture
def make_executor(config_dir: Path, store: Store) -> Callable[[], Executor]:
    """Build an executor on the current config files and a shared memory transport."""
    transport = MemoryTransport()

    def make() -> Executor:
        return Executor(config_mod.load(config_dir), store, transport)

    return make


# The time the CLI acts at in tests (``clerk --now``): go-live day of the example group, a
# Tuesday morning in its send window. A test that needs another passes its own ``--now``
# first (the last one given wins); no test reads the real clock.
CLI_NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.fixture
def clerk(config_dir: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Invoke the CLI in-process with the scratch config and state, at :data:`CLI_NOW`, in
    the test's folder (what the defaults put in the working folder, the outbox, goes there)."""
    from bot.cli.main import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--config", str(config_dir), "--state",
                                   f"sqlite:///{tmp_path / 'state.sqlite'}",
                                   "--now", CLI_NOW.isoformat(), *args],
                             catch_exceptions=False)

    return invoke


def run_clerk(*args: str, cwd: Path, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``clerk`` as a real subprocess (for exit codes, signals and crashes)."""
    return subprocess.run([sys.executable, "-m", "bot.cli.main", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
