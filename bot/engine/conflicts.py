"""Inserts that several processes may race on, absorbed by the database itself:
``INSERT … ON CONFLICT DO NOTHING`` (or ``DO UPDATE``), the same on SQLite (≥ 3.24) and
PostgreSQL. A check before an insert ("is it there yet?") is no guard: two workers both find
nothing and both insert, and the second one's unique key fails (the first start of a store,
a new invitation revision, the install's secret). Rows only: part of the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT of ``table``, which knows ``on_conflict_do_…``."""
    return dialect_insert(conn.dialect.name, table)


def dialect_insert(name: str, table: sa.Table) -> Any:
    """:func:`insert` for the dialect ``name`` (each imported when first used)."""
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    raise NotImplementedError(f"clerk's state store is SQLite or PostgreSQL, not {name}")


def insert_new(conn: Connection, table: sa.Table, values: Mapping[str, Any],
               keys: Sequence[str]) -> bool:
    """Insert a row unless one with the same ``keys`` (a unique key) is there, or is being
    inserted by another transaction (then wait for it); whether this one was inserted."""
    stmt = insert(conn, table).values(**values).on_conflict_do_nothing(index_elements=keys)
    return _written(conn, stmt)


def upsert(conn: Connection, table: sa.Table, values: Mapping[str, Any], keys: Sequence[str],
           update: Mapping[str, Any] | None = None, where: Any = None) -> bool:
    """Insert a row, or update the one with the same ``keys``: with ``update`` (column →
    value or expression; :func:`excluded` names the values offered), else with ``values``.
    ``where``: only update an existing row that matches. Whether a row was written."""
    stmt = insert(conn, table).values(**values)
    changes = dict(update) if update is not None else {
        k: stmt.excluded[k] for k in values if k not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=changes, where=where)
    return _written(conn, stmt)


def _written(conn: Connection, stmt: Any) -> bool:
    # an INSERT's row count is kept only when asked for (SQLAlchemy 2: psycopg's is lost)
    return bool(conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount)


def excluded(table: sa.Table, column: str) -> Any:
    """The value an INSERT … ON CONFLICT offered for ``column`` (SQL ``excluded.column``)."""
    return sa.literal_column(f"excluded.{table.c[column].name}", type_=table.c[column].type)
