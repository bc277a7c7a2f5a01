"""The statements of sending one message (the claim, the `sent` update, their events) and of
recording a plan (its ledger rows, invitation revisions, the rosters noted), prepared:
compiled once per kind of database and run with ``exec_driver_sql`` — the ledger's part of
sending at the speed bench/smtp_throughput.py asks for, and a first plan of thousands of
groups in the time bench/plan_scale.py asks for. Used by the store (bot/engine/store.py and
its mixins) alone."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.engine.conflicts import dialect_insert
from bot.engine.schema import events, ledger

# a statement compiled: its SQL, whether its parameters are positional, each parameter (its
# name in the SQL, its key, its value when fixed, its conversion), the functions picking the
# given ones' values out of a row (a dict; a sequence in the order of ``keys``: None without
# them), and the fixed ones' values in their places (None: none)
_Compiled = tuple[str, bool, list[tuple[str, str, Any, Any]], tuple[Any, Any],
                  list[Any] | None]


class Prepared:
    """A statement of sending one message, compiled once per kind of database and run with
    ``exec_driver_sql``: the SQL SQLAlchemy writes for it, each value converted by its
    column's type as SQLAlchemy converts it, without the compile-cache lookup and parameter
    processing of each ``execute`` (most of the cost of writing a message's rows; see
    bench/smtp_throughput.py). ``keys``: the columns an INSERT writes. Returns the row
    count. A row is a dict of the parameters, or (``by_position``) a sequence of the values
    of ``keys`` in their order: a plan's thousands of ledger rows are not each made a
    dict."""

    def __init__(self, statement: Any, keys: Sequence[str] | None = None) -> None:
        self.statement, self.keys = statement, keys
        self._compiled: dict[Any, _Compiled] = {}

    def __call__(self, conn: Connection, params: dict[str, Any]) -> int:
        sql, given = self._given(conn, [params])
        return int(conn.exec_driver_sql(sql, given[0]).rowcount)

    def many(self, conn: Connection, rows: Sequence[Any], by_position: bool = False) -> int:
        """The statement for each of ``rows``, in one ``executemany``; the rows it changed
        (the drivers sum each statement's)."""
        if not rows:
            return 0
        sql, given = self._given(conn, rows, by_position)
        return int(conn.exec_driver_sql(sql, given, execution_options=_COUNTED).rowcount)

    def _given(self, conn: Connection, rows: Sequence[Any],
               by_position: bool = False) -> tuple[str, list[Any]]:
        dialect = conn.dialect
        kind = type(dialect), dialect.paramstyle
        compiled = self._compiled.get(kind) or self._compile(kind, dialect)
        sql, positional, binds, getters, template = compiled
        get = getters[by_position]
        if get is None:
            raise ValueError(f"cannot take rows by position for {sql!r}: its keys do not "
                             "name every parameter")
        # each row's values in the statement's order: those given picked out in C (one
        # itemgetter), in the places the fixed ones leave them
        if template is None:
            out = [list(get(params)) for params in rows]
        else:
            places = [n for n, (_, _, fixed, _) in enumerate(binds) if fixed is _GIVEN]
            out = []
            for params in rows:
                values = list(template)
                for n, value in zip(places, get(params), strict=True):
                    values[n] = value
                out.append(values)
        # rows share instants: each value of a column converted once
        for n, (_, _, _, convert) in enumerate(binds):
            if convert:
                done: dict[Any, Any] = {}
                for values in out:
                    value = values[n]
                    found = done.get(value, _GIVEN)
                    if found is _GIVEN:
                        found = done[value] = convert(value)
                    values[n] = found
        if positional:
            return sql, [tuple(values) for values in out]
        names = [name for name, _, _, _ in binds]
        return sql, [dict(zip(names, values, strict=True)) for values in out]

    def _compile(self, kind: Any, dialect: Any) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
        if (compiled.post_compile_params or compiled.literal_execute_params
                or compiled.insert_prefetch or compiled.update_prefetch):
            raise ValueError(f"cannot prepare {compiled.string!r}: it needs SQLAlchemy at "
                             "each execution (expanding parameters or Python-side defaults)")
        escaped = compiled.escaped_bind_names or {}
        if compiled.positional:
            named = [(name, compiled.binds[name]) for name in compiled.positiontup or ()]
        else:
            named = [(escaped.get(name, name), bind)
                     for bind, name in compiled.bind_names.items()]
        binds = []  # each parameter: its name in the SQL, its key, its value when fixed, and
        for name, bind in named:  # its conversion
            fixed = _GIVEN if bind.required else bind.effective_value
            binds.append((name, bind.key, fixed,
                          bind.type.dialect_impl(dialect).bind_processor(dialect)))
        given = [key for _, key, fixed, _ in binds if fixed is _GIVEN]
        keys = list(self.keys or ())
        by_position = [keys.index(key) for key in given] \
            if all(key in keys for key in given) else None  # rows as dicts alone
        template = None if len(given) == len(binds) else [fixed for _, _, fixed, _ in binds]
        self._compiled[kind] = done = (compiled.string, bool(compiled.positional), binds,
                                       (_picker(given), _picker(by_position)), template)
        return done


_GIVEN = object()  # a parameter given at each call


def _picker(items: Sequence[Any] | None) -> Any:
    """A function of a row giving the tuple of its ``items`` (keys, or indexes), in C."""
    if items is None:
        return None
    if not items:
        return lambda row: ()
    pick = operator.itemgetter(*items)
    return (lambda row: (pick(row),)) if len(items) == 1 else pick

_COUNTED = {"preserve_rowcount": True}  # the rowcount of an executemany kept for the caller

# the statements of sending one message, built once with bind parameters
ADD_EVENT = Prepared(events.insert().inline(),  # inline: no RETURNING of the new id
                       keys=("key", "at", "state", "detail"))
CLAIM = Prepared(ledger.update().where(
    ledger.c.key == sa.bindparam("b_key"),
    sa.or_(ledger.c.state == "planned", ledger.c.state == "retry")).values(
    state="sending", updated_at=sa.bindparam("b_now"), attempts=ledger.c.attempts + 1,
    message_id=sa.bindparam("b_message_id"), transport=sa.bindparam("b_transport"),
    claimed_by=sa.bindparam("b_by"), claimed_at=sa.bindparam("b_at"),
    lease_until=sa.bindparam("b_until")))


@functools.lru_cache(maxsize=16)
def insert_rows(dialect: str, columns: tuple[str, ...], table: sa.Table = ledger,
                keys: tuple[str, ...] = ("key",)) -> Prepared:
    """INSERT INTO ``table`` ``columns`` unless a row with the same unique ``keys`` is there
    (another worker's; by default, a ledger row's key)."""
    stmt = dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))
    return Prepared(stmt, keys=columns)


@functools.lru_cache(maxsize=64)
def update_of(columns: tuple[str, ...], expected: int = 0) -> Prepared:
    """UPDATE ledger SET updated_at and ``columns`` WHERE key (and, with ``expected``, the
    state is one of that many): parameters ``b_<column>``, ``b_expect<n>``."""
    where = [ledger.c.key == sa.bindparam("b_key")]
    if expected:
        where.append(ledger.c.state.in_([sa.bindparam(f"b_expect{n}")
                                         for n in range(expected)]))
    return Prepared(ledger.update().where(*where).values(
        updated_at=sa.bindparam("b_updated_at"),
        **{c: sa.bindparam(f"b_{c}") for c in columns}, **first_reason(columns)))


def first_reason(columns: Any) -> dict[str, Any]:
    """With ``reason`` among the ``columns`` an UPDATE of a ledger row sets: the reason it
    was first planned for kept in its history (``first_reason``, while NULL, takes the
    reason the row had until then)."""
    if "reason" not in columns:
        return {}
    return {"first_reason": sa.func.coalesce(ledger.c.first_reason, ledger.c.reason)}
