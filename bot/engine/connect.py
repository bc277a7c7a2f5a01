"""How the store's database engine is made: SQLite's file private to clerk's user and in WAL
mode, PostgreSQL given a time to connect, and each session's lock and statement limits, so a
lock held elsewhere or a stuck server is an error (bot/engine/failures.py), never a hung tick."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.engine import failures

CONNECT_TIMEOUT = 10  # seconds to reach a PostgreSQL server (unless the URL says)
log = logging.getLogger("clerk")


def engine(url: str, timeouts: dict[str, float]) -> Engine:
    """The engine of ``url`` with the session limits ``timeouts`` (``lock_timeout``,
    ``statement_timeout``: seconds); a store clerk cannot open is a :class:`StoreError`."""
    lock_timeout, statement_timeout = timeouts["lock_timeout"], timeouts["statement_timeout"]
    try:
        _private_sqlite(url)
        parsed = sa.engine.make_url(url)
        args = {"connect_timeout": CONNECT_TIMEOUT} if parsed.get_backend_name() == \
            "postgresql" and "connect_timeout" not in parsed.query else {}
        made = sa.create_engine(url, connect_args=args)
    except (OSError, sa.exc.ArgumentError, ImportError) as exc:
        raise failures.opening_error(exc, url) from exc
    failures.install(made, url, timeouts)
    if made.dialect.name == "sqlite":
        sa.event.listen(made, "connect", _sqlite_session(lock_timeout))
    elif made.dialect.name == "postgresql":
        sa.event.listen(made, "connect", _pg_session(lock_timeout, statement_timeout))
    return made


def _sqlite_session(lock_timeout: float) -> Any:
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # the wait first: switching a new file to WAL takes a lock another first start holds
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def _pg_session(lock_timeout: float, statement_timeout: float) -> Any:
    """Each PostgreSQL session waits ``lock_timeout`` seconds at most for a lock, and lets a
    statement run ``statement_timeout`` seconds at most (0: no limit): a lock held elsewhere
    or a stuck server is an error (bot/engine/failures.py), never a tick hung for ever."""

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
        cursor.execute(f"SET statement_timeout = {int(statement_timeout * 1000)}")
        cursor.close()
        dbapi_connection.autocommit = autocommit

    return on_connect


def _private_sqlite(url: str) -> None:
    """The SQLite database of ``url`` readable and writable by clerk's user alone: its file
    made 0600 before SQLite opens it (SQLite gives its -wal, -shm and -journal files the
    database file's mode), one an older clerk left readable tightened, and its folder made
    0700 when clerk makes it. It holds the install's secret and every address."""
    parsed = sa.engine.make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") \
            or database.startswith("file:") or parsed.query.get("mode") == "memory":
        return
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)  # (or another start did)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (database, f"{database}-wal", f"{database}-shm", f"{database}-journal"):
        try:
            mode = os.stat(name).st_mode
            if mode & 0o077:
                os.chmod(name, mode & 0o600)
                log.warning("state: %s was readable by others; now by clerk's user alone",
                            name)
        except FileNotFoundError:
            continue
