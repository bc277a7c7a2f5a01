"""What one tick did, and what was done with one message read from the mailbox."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TickResult:
    """What one tick did; ``clerk tick --json`` prints it (a documented contract)."""

    now: str
    dry_run: bool = False
    replanned: bool = False
    recorded: int = 0
    updated: int = 0
    withdrawn: int = 0
    recovered: int = 0
    sent: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_late: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False
    read: int = 0  # messages read from the mailbox
    unprocessed: list[str] = field(default_factory=list)  # why each unusable one was

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """What was done with one message read from the mailbox (bot/engine/inbox.py)."""

    handled: bool  # False: it goes to the unprocessed folder
    detail: str
