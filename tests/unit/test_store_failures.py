"""The state store failing — a lock held elsewhere, a statement too slow — as one clear line:
a tick fails with it and the worker goes on to the next tick; nothing hangs."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg.errors as psycopg_errors
import pytest
import sqlalchemy as sa
from click.testing import Result

from bot import config as config_mod
from bot.domain.errors import StoreError
from bot.engine import failures
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.engine.worker import Worker
from bot.transports.memory import MemoryTransport

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def _sqlite_error(text: str, code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError(text)
    error.sqlite_errorcode = code
    return error


@contextmanager
def locked_elsewhere(store: Store) -> Iterator[None]:
    """Another process holds the ledger (PostgreSQL: the table's lock; SQLite: the file's
    write lock) until the block ends."""
    other = sa.create_engine(store.url)
    with other.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
        else:
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.exec_driver_sql("ROLLBACK")
    other.dispose()


def impatient(config_dir: Path, store: Store, lock_timeout: float) -> tuple[Store, Worker]:
    """A worker on ``store`` that waits ``lock_timeout`` seconds at most for a lock."""
    quick = Store(store.url, lock_timeout=lock_timeout)
    quick.migrate()
    return quick, Worker(Executor(config_mod.load(config_dir), quick, MemoryTransport()),
                         config_dir)


def test_a_lock_held_elsewhere_fails_the_tick_in_one_line_and_the_next_tick_goes_on(
        config_dir: Path, store: Store, caplog: pytest.LogCaptureFixture):
    quick, worker = impatient(config_dir, store, 0.5)
    with locked_elsewhere(store), caplog.at_level(logging.ERROR, "clerk"):
        began = time.monotonic()
        worker.tick(T0)
        assert time.monotonic() - began < 10  # not a hang
    [failed] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failed.exc_info is None and "\n" not in failed.getMessage()  # one line
    assert failed.getMessage().startswith("tick failed: state store ")
    assert "is locked" in failed.getMessage() and "lock_timeout (0.5 s)" in failed.getMessage()
    worker.tick(T0 + timedelta(minutes=1))  # let go: the next tick sends
    assert quick.counts() == {"planned": quick.counts()["planned"], "sent": 21}
    quick.dispose()


def test_a_statement_past_statement_timeout_is_one_line(store: Store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's")
    slow = Store(store.url, statement_timeout=0.2)
    with pytest.raises(StoreError) as caught, slow.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_sleep(5)")
    slow.dispose()
    assert caught.value.kind == "timeout" and caught.value.exit_code == 2
    assert "statement_timeout (0.2 s)" in str(caught.value)


def test_the_timeouts_and_the_lease_are_settings(config_dir: Path, tmp_path: Path):
    from bot.cli.common import Ctx

    (config_dir / "clerk.toml").write_text(
        'lock_timeout = 2.5\nstatement_timeout = 30\nlease = "5m"\n'.join(["[clerk]\n", ""]))
    config = config_mod.load(config_dir)
    assert (config.settings.lock_timeout, config.settings.statement_timeout,
            config.settings.lease) == (2.5, 30.0, timedelta(minutes=5))
    store = Ctx(str(config_dir), f"sqlite:///{tmp_path / 's.sqlite'}").store(config)
    assert store.timeouts == {"lock_timeout": 2.5, "statement_timeout": 30.0}
    assert store.lease == timedelta(minutes=5)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
    store.dispose()


def test_the_worker_says_a_store_failure_once_while_it_lasts_and_when_it_is_over(
        config_dir: Path, store: Store, caplog: pytest.LogCaptureFixture):
    quick, worker = impatient(config_dir, store, 0.3)
    with locked_elsewhere(store), caplog.at_level(logging.INFO, "clerk"):
        for minute in range(3):
            worker.tick(T0 + timedelta(minutes=minute))
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in said] == [logging.ERROR]
    caplog.clear()
    with caplog.at_level(logging.INFO, "clerk"):
        worker.tick(T0 + timedelta(minutes=5))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "state store answers again: ticking as usual"]
    quick.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_exit_2(result: Result) -> str:
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith("error: state store ") and "Traceback" not in result.output
    return line


def test_a_store_that_cannot_be_reached_is_one_line_and_exit_2(
        clerk: Callable[..., Result]):
    url = f"postgresql+psycopg://clerk:secret@127.0.0.1:{_free_port()}/clerk"
    began = time.monotonic()
    line = _one_line_exit_2(clerk("--state", url, "status"))
    assert time.monotonic() - began < 30
    assert "cannot be reached" in line and "CLERK_STATE" in line
    assert "secret" not in line and "clerk:***@127.0.0.1" in line  # the password hidden
    line = _one_line_exit_2(clerk("--state", url, "run"))  # the worker does not start
    assert "cannot be reached" in line


def test_a_read_only_store_is_one_line_and_exit_2(clerk: Callable[..., Result],
                                                  tmp_path: Path):
    assert clerk("status").exit_code == 0  # the store made and migrated
    url = f"sqlite:///file:{tmp_path / 'state.sqlite'}?mode=ro&uri=true"
    line = _one_line_exit_2(clerk("--state", url, "tick"))
    assert "is read-only" in line and "owner, mode" in line


def test_a_store_whose_folder_cannot_be_made_is_one_line_and_exit_2(
        clerk: Callable[..., Result], tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    line = _one_line_exit_2(clerk("--state", f"sqlite:///{tmp_path / 'a-file' / 's.sqlite'}",
                                  "log"))
    assert "cannot be opened" in line and "a-file" in line


def test_a_state_url_clerk_cannot_read_is_one_line_and_exit_2(clerk: Callable[..., Result]):
    line = _one_line_exit_2(clerk("--state", "not a url", "log"))
    assert "not a URL" in line and "postgresql+psycopg://" in line


@pytest.mark.parametrize(("error", "kind"), [
    (psycopg_errors.DiskFull("could not extend file"), "full"),
    (psycopg_errors.ReadOnlySqlTransaction("cannot execute INSERT"), "read-only"),
    (psycopg_errors.LockNotAvailable("canceling statement due to lock timeout"), "locked"),
    (psycopg_errors.InvalidPassword("password authentication failed"), "sign-in"),
    (psycopg_errors.AdminShutdown("terminating connection"), "lost"),
    (psycopg_errors.UniqueViolation("duplicate key"), None),  # a bug: its traceback kept
    (_sqlite_error("database or disk is full", 13), "full"),
    (_sqlite_error("attempt to write a readonly database", 8), "read-only"),
    (_sqlite_error("database is locked", 5), "locked"),
    (_sqlite_error("no such table: ledger", 1), None),
])
def test_each_kind_of_store_failure_is_told_apart(error: Exception, kind: str | None):
    assert failures.kind_of(sa.exc.OperationalError("x", {}, error)) == kind
    told = failures.store_error(error, "sqlite:///state.sqlite",
                                {"lock_timeout": 10, "statement_timeout": 60})
    assert (told.kind if told else None) == kind
