"""The state store failing, said in one line: which store, what is wrong, what to do.

Installed on the store's engine (SQLAlchemy's ``handle_error``), so whatever reads or writes
the store gets a :class:`StoreError` (exit 2; the worker logs it and goes on at its next
tick) instead of a driver's traceback, for what an admin can put right: a database that
cannot be reached or opened, a full disk, a read-only file or database, a lock another
process holds for longer than ``lock_timeout``, a statement past ``statement_timeout``, a
connection lost. Anything else (a broken unique key, SQL clerk got wrong) is a bug and keeps
its traceback. Rows only: part of the store.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import sqlalchemy as sa

from bot.domain.errors import StoreError

# SQLite's primary result codes (https://sqlite.org/rescode.html)
_SQLITE = {3: "read-only", 5: "locked", 6: "locked", 8: "read-only", 10: "disk", 13: "full",
           14: "cannot open"}
_SQLITE_WORDS = (("database is locked", "locked"), ("is full", "full"),
                 ("readonly", "read-only"), ("unable to open", "cannot open"),
                 ("disk i/o", "disk"))
# PostgreSQL's SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html):
# exact codes first, then classes
_PG = {"53100": "full", "25006": "read-only", "55P03": "locked", "57014": "timeout",
       "28000": "sign-in", "28P01": "sign-in", "3D000": "cannot open", "42501": "rights",
       "57P01": "lost", "57P02": "lost", "57P03": "unreachable", "53300": "unreachable",
       "58030": "disk"}
_PG_CLASSES = {"08": "lost", "53": "full"}


def kind_of(exc: BaseException) -> str | None:
    """What went wrong with the store, for an error the admin can put right (else None)."""
    orig: Any = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE:
            return _SQLITE[code & 0xFF]
        text = str(orig).lower()
        return next((kind for words, kind in _SQLITE_WORDS if words in text), None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return _PG.get(state) or _PG_CLASSES.get(state[:2])
    module = type(orig).__module__.split(".")[0]
    if module in ("psycopg", "psycopg2") and type(orig).__name__ == "OperationalError":
        return "unreachable"  # no server answered: refused, no such host, timed out
    return None


_TO_DO = {
    "unreachable": "check that the database server runs and takes connections, and the state "
                   "URL (CLERK_STATE, or state in clerk.toml)",
    "sign-in": "check the user and password in the state URL (CLERK_STATE)",
    "cannot open": "check that it exists and that clerk's user may write its folder, or "
                   "correct the state URL (CLERK_STATE, or state in clerk.toml)",
    "full": "free space on its disk; clerk goes on from where it stopped",
    "read-only": "clerk writes its state: check the file's and its folder's owner, mode and "
                 "mount, or the database's read-only setting (or a standby server)",
    "rights": "grant clerk's database user the rights on clerk's database (the owner of what "
              "it creates)",
    "lost": "the next command or tick connects again",
    "disk": "check the disk it is on",
}


def _what_to_do(kind: str, settings: dict[str, float]) -> str:
    if kind == "locked":
        return (f"another process held it for longer than lock_timeout "
                f"({settings['lock_timeout']:g} s); the next tick tries again (to see who: "
                "SQLite, another program with the file open; PostgreSQL, pg_locks)")
    if kind == "timeout":
        return (f"a statement ran longer than statement_timeout "
                f"({settings['statement_timeout']:g} s); raise it in [clerk] if the database "
                "is only slow")
    return _TO_DO[kind]


_SAID = {"unreachable": "cannot be reached", "sign-in": "refused the sign-in",
         "cannot open": "cannot be opened", "full": "is full", "read-only": "is read-only",
         "locked": "is locked", "timeout": "is too slow", "rights": "refused a right",
         "lost": "dropped the connection", "disk": "had a disk error"}


def shown(url: str) -> str:
    """The store's URL, its password hidden."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def store_error(exc: BaseException, url: str, settings: dict[str, float]) -> StoreError | None:
    """``exc`` as one line, when it is a failure of the store the admin can put right."""
    kind = kind_of(exc)
    if kind is None:
        return None
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split())[:300] or type(orig).__name__
    return StoreError(f"state store {shown(url)} {_SAID[kind]} ({detail}): "
                      f"{_what_to_do(kind, settings)}", kind)


def opening_error(exc: BaseException, url: str) -> StoreError:
    """A store clerk cannot even begin to open: its folder, its URL, its driver."""
    if isinstance(exc, ImportError):  # SQLAlchemy knows the database, Python lacks its driver
        return StoreError(f"state store {shown(url)} cannot be opened: the driver is not "
                          f"installed ({exc}): install it, e.g. pip install 'psycopg[binary]' "
                          "for PostgreSQL", "cannot open")
    if isinstance(exc, OSError):
        where = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        return StoreError(f"state store {shown(url)} cannot be opened ({where}): "
                          f"{_TO_DO['cannot open']}", "cannot open")
    return StoreError(f"state store {shown(url)} is not a URL clerk can open ({exc}): write "
                      "it like sqlite:////srv/clerk/state.sqlite or "
                      "postgresql+psycopg://clerk@db.example.org/clerk", "cannot open")


def install(engine: sa.Engine, url: str, settings: dict[str, float]) -> None:
    """Every failure of ``engine`` the admin can put right raised as a :class:`StoreError`."""

    def on_error(context: Any) -> None:
        found = store_error(context.original_exception, url, settings)
        if found is not None:
            raise found from context.original_exception

    sa.event.listen(engine, "handle_error", on_error)


def doctor(store: Any) -> list[tuple[bool, str, str]]:
    """``clerk doctor``'s checks of the state store (a :class:`bot.engine.store.Store`), as
    the transports give theirs: (ok, what was checked, the fix). It reaches the store
    (PostgreSQL: and compares this host's clock with the server's), reads its schema, and
    writes — a table made and rolled back, so it needs the rights a first
    start's migrations need — within ``lock_timeout``; it changes nothing (a SQLite file not
    there yet is made, empty, as a first start would make it)."""
    from bot.engine import migrations

    found: list[tuple[bool, str, str]] = []
    step = f"reach {shown(store.url)}"
    try:
        with store.engine.connect() as conn:
            step += f" ({_server(conn)})"
            found.append((True, step, ""))
            if conn.dialect.name == "postgresql":
                step = "clock"
                found.append(_clock(conn))
            step = "schema"
            missing = migrations.pending(conn)
            newer = sorted(set(_recorded(conn)) - {name for name, _ in migrations.MIGRATIONS})
        if newer:
            found.append((False, step, f"the store was migrated by a newer clerk "
                          f"({', '.join(newer)}): run that version, or restore a backup "
                          "taken before the upgrade"))
        else:
            found.append((True, f"schema: {len(missing)} migration(s) to apply at the next "
                                "start" if missing else "schema up to date", ""))
        step = f"write (within lock_timeout, {store.timeouts['lock_timeout']:g} s)"
        with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, as a tick takes it
            try:
                conn.exec_driver_sql("CREATE TABLE clerk_doctor_probe (id INTEGER)")
            finally:
                conn.rollback()
        found.append((True, step, ""))
    except StoreError as exc:
        found.append((False, step, str(exc)))
    return found


CLOCK_SKEW = 5.0  # seconds this host's clock may be off the database server's


def _clock(conn: Any) -> tuple[bool, str, str]:
    """This host's clock against the database server's: a claim made on another host runs
    out by the wall clock (bot/engine/claims.py)."""
    before = time.time()
    server = conn.exec_driver_sql("SELECT extract(epoch from clock_timestamp())").scalar()
    off = (before + time.time()) / 2 - float(server)
    what = f"clock: {abs(off):.1f} s {'ahead of' if off > 0 else 'behind'} the database's"
    if abs(off) <= CLOCK_SKEW:
        return True, what, ""
    return False, what, (f"keep every worker's clock in time (chrony, systemd-timesyncd): "
                         f"more than {CLOCK_SKEW:g} s off, a claim another host made may be "
                         "taken over too early or too late")


def _server(conn: Any) -> str:
    if conn.dialect.name == "postgresql":
        version = conn.exec_driver_sql("SHOW server_version").scalar()
        standby = conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()
        return f"PostgreSQL {version}" + (", a standby: read-only" if standby else "")
    return f"SQLite {sqlite3.sqlite_version}"


def _recorded(conn: Any) -> list[str]:
    from bot.engine.schema import migrations_table

    if not sa.inspect(conn).has_table(migrations_table.name):
        return []
    return list(conn.execute(sa.select(migrations_table.c.name)).scalars())
