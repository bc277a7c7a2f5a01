"""Config options: each declared once (default, check, help), and the reader that converts a
TOML table by its declarations and records every problem with its file, line and key."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bot.domain import timeutil
from bot.domain.errors import Problem

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Option:
    """One option: where it lives, its default (``...`` = required), its check, its help."""

    default: Any
    convert: Callable[[Any], Any]
    help: str


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be text in quotes")
    return v


def _id(v: Any) -> str:
    v = _str(v)
    if not _ID.fullmatch(v):
        raise ValueError(f"{v!r} is not an id: use lower-case letters, digits, '-', '_' or '.'")
    return v


def _email(v: Any) -> str:
    v = _str(v).strip()
    if not _EMAIL.fullmatch(v):
        raise ValueError(f"{v!r} is not an email address")
    return v.lower()


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("must be a whole number, 0 or more")
    return v


def _count(v: Any) -> int:
    """A whole number, 1 or more."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError("must be a whole number, 1 or more")
    return v


_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2,
          "gb": 1024**3, "gib": 1024**3}


def _size(v: Any) -> int:
    """A number of bytes, 1 or more: 26214400, or text like "25MB" (KB, MB and GB are 1024
    based, as mail servers count)."""
    wrong = ('must be a size: a whole number of bytes, 1 or more, or text like "25MB" '
             "(KB, MB, GB)")
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", v)
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{v!r} {wrong.replace('must be', 'is not')}")
        v = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(wrong)
    return v


def _float(v: Any) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
        raise ValueError("must be a number, 0 or more")
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a list of texts, like ["one", "two"]')
    return tuple(v)


def _date(v: Any) -> date:
    if isinstance(v, datetime) or not isinstance(v, date):
        raise ValueError("must be a date like 2027-01-04 (no quotes)")
    return v


def _local_datetime(v: Any) -> datetime:
    if not isinstance(v, datetime) or v.tzinfo is not None:
        raise ValueError(
            "must be a local date and time like 2027-01-14T14:00:00 (no quotes, no offset: "
            "it is read in the group's zone)"
        )
    return v


def _time_of_day(v: Any) -> tuple[int, int]:
    if isinstance(v, time):
        return (v.hour, v.minute)
    m = re.match(r"^(\d{1,2}):(\d{2})$", _str(v))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{v!r} is not a time of day like 09:00")
    return (int(m.group(1)), int(m.group(2)))


def _duration(v: Any) -> timedelta:
    return timeutil.parse_duration(_str(v))


def _days(v: Any) -> timedelta:
    """A whole number of days or weeks: "7d", "2w"."""
    offset = timeutil.parse_offset(_str(v))
    if offset.unit not in "dw" or offset.amount <= 0:
        raise ValueError(f"{v!r} is not a number of days; write it like 7d or 2w")
    return timedelta(days=offset.amount * (7 if offset.unit == "w" else 1))


def _offset(v: Any) -> Any:
    return timeutil.parse_offset(_str(v))


def _choice(*allowed: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        v = _str(v)
        if v not in allowed:
            raise ValueError(f"{v!r} is not one of: {', '.join(allowed)}")
        return v

    return convert


REQUIRED = ...

class Reader:
    """Collects problems for one file while its values are converted."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.problems: list[Problem] = []

    def line_of(self, table: str | None, index: int, key: str | None) -> int | None:
        """Best-effort line of ``key`` in the ``index``-th ``[table]``/``[[table]]``."""
        start, seen = 0, -1
        # a table-valued key is written as a table of its own: [table.key]
        sub = re.compile(rf"^\s*\[\[?\s*{re.escape(f'{table}.' if table else '')}"
                         rf"{re.escape(key or '')}\s*\]")
        if key and index == 0:
            found = next((n for n, line in enumerate(self.lines) if sub.match(line)), None)
            if found is not None:
                return found + 1
        if table is not None:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
            for n, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if seen == index:
                        start = n
                        break
            else:  # written inline (rule = [{...}, {...}]): the key's line, else the table's
                inline = re.compile(rf"^\s*{re.escape(table)}\s*=")
                begin = next((n for n, line in enumerate(self.lines) if inline.match(line)),
                             None)
                if begin is None:
                    return None
                word = re.compile(rf"\b{re.escape(key or '')}\s*=")
                hits = [n for n in range(begin, len(self.lines))
                        if key and word.search(self.lines[n])]
                return (hits[index] if index < len(hits) else begin) + 1
            if key is None:
                return start + 1
        pattern = re.compile(rf"^\s*{re.escape(key or '')}\s*=")
        for n in range(start + (1 if table else 0), len(self.lines)):
            if sub.match(self.lines[n]):
                return n + 1
            if table is None and self.lines[n].lstrip().startswith("["):
                break
            if n > start and table is not None and self.lines[n].lstrip().startswith("[") \
                    and not self.lines[n].lstrip().startswith(f"[{table}."):
                break
            if pattern.match(self.lines[n]):
                return n + 1
        return start + 1 if table else None

    def problem(
        self, key: str, message: str, *, table: str | None = None, index: int = 0,
        name: str | None = None, hint: str | None = None, warning: bool = False,
    ) -> None:
        line = self.line_of(table, index, name)
        self.problems.append(
            Problem(str(self.path), message, line=line, key=key, hint=hint, warning=warning)
        )

    def section(
        self, data: Any, options: dict[str, Option], where: str, *, table: str | None = None,
        index: int = 0,
    ) -> dict[str, Any]:
        """Convert one table by its declared options; unknown keys are problems too."""
        out: dict[str, Any] = {}
        if not isinstance(data, dict):
            self.problem(where, "must be a table", table=table, index=index)
            return {name: o.default for name, o in options.items() if o.default is not REQUIRED}
        for name in data:
            if name not in options:
                known = ", ".join(options)
                self.problem(f"{where}.{name}" if where else name, "unknown option",
                             table=table, index=index, name=name, hint=f"known options: {known}")
        for name, option in options.items():
            key = f"{where}.{name}" if where else name
            if name not in data:
                if option.default is REQUIRED:
                    self.problem(key, "is required", table=table, index=index,
                                 hint=option.help)
                else:
                    out[name] = option.default
                continue
            try:
                out[name] = option.convert(data[name])
            except Exception as exc:  # any value a user can write is a problem, not a crash
                message = str(exc) if isinstance(exc, ValueError) else \
                    f"{type(data[name]).__name__} is not a value this option takes"
                self.problem(key, message, table=table, index=index, name=name,
                             hint=option.help)
                if option.default is not REQUIRED:  # so that every problem is found at once
                    out[name] = option.default
        return out
