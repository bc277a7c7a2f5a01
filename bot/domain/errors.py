"""One exception hierarchy for clerk.

User errors carry a list of :class:`Problem` values and an exit code; the CLI has a single
funnel (:func:`bot.cli.main`) that prints them. Anything else is a bug and shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, and where it is."""

    where: str  # a file path, or a command argument
    message: str
    line: int | None = None
    key: str | None = None
    hint: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        place = self.where
        if self.line is not None:
            place += f":{self.line}"
        if self.key:
            place += f": {self.key}"
        text = f"{place}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return ("warning: " if self.warning else "") + text


class ClerkError(Exception):
    """A problem the user can fix; printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        lines = [self.message, *(f"  {p}" for p in self.problems)]
        return "\n".join(lines)


class ConfigError(ClerkError):
    """The configuration (settings, rosters, templates) has problems; nothing is sent."""

    exit_code = 2


class UsageError(ClerkError):
    """A command was given something that does not exist (a group, a key, a date)."""

    exit_code = 2


class StoreError(ClerkError):
    """The state store failed: it cannot be reached or opened, is full, read-only, locked
    by another process for longer than ``lock_timeout``, or too slow. One line that names
    the store and says what to do; exit 2 from any command, and the worker logs it and
    tries again at its next tick. ``kind``: unreachable, sign-in, cannot open, full,
    read-only, locked, timeout, rights, lost, disk."""

    exit_code = 2

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class TransportError(Exception):
    """A transport could not deliver a message.

    ``retryable`` says whether a later attempt may succeed (a 4xx reply, a timeout, a full
    disk) or not (a 5xx reply for that recipient). Transports raise; they never return False.
    ``retry_after`` (seconds) is the server's own word on when to come back (an Exchange
    ``ErrorServerBusy`` back-off, a Graph ``Retry-After``); the ledger waits at least that.
    ``in_doubt``: the request may have been carried out though its answer was lost (a
    timeout, a dropped connection): before it goes again, the message is looked up.
    """

    def __init__(self, message: str, *, retryable: bool,
                 retry_after: float | None = None, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.in_doubt = in_doubt
        self.parts: Any = None  # calendar transports: the items as they were left
