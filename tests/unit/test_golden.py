"""Golden iCalendar files: what clerk sends, byte for byte, for a request, an update and a cancel.

A difference fails with an explanation property by property. If the change is intended,
review it and rewrite the files with ``CLERK_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.engine.executor import Executor
from bot.transports.memory import MemoryTransport
from tests.conftest import ROOT, add_series, edit, move_series_meeting, remove_member

GOLDEN = ROOT / "tests" / "data" / "golden"
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
WHO = "tina.jameson@brighton-hove.example"


def _properties(text: str) -> list[str]:
    """Unfolded content lines (RFC 5545 3.1), without line endings."""
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.startswith((" ", "\t")) and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def explain(name: str, golden: str, now: str) -> str:
    old, new = _properties(golden), _properties(now)
    out = [f"{name} differs from tests/data/golden/{name}:"]
    for line in difflib.unified_diff(old, new, "golden", "now", lineterm="", n=0):
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++")):
            prop = line[1:].split(":", 1)[0].split(";", 1)[0]
            out.append(f"  {'removed' if line[0] == '-' else 'added':<7} {prop:<12} {line[1:]}")
    out.append("If this is intended, review it and run with CLERK_UPDATE_GOLDEN=1.")
    return "\n".join(out)


def _calendars(ex: Executor, meeting: str) -> dict[str, str]:
    assert isinstance(ex.transport, MemoryTransport)
    out = {}
    for msg in ex.transport.sent:
        key = str(msg["X-Clerk-Key"])
        if WHO in str(msg["To"]) and f"/{meeting}/" in key:
            part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
            # as a reader parses it off the wire (CRLF), with the files' LF line endings
            out[key.rsplit("/", 1)[1]] = part.get_content().replace("\r\n", "\n")
    return out


@pytest.fixture
def generated(make_executor: Callable[[], Executor], group_dir: Path) -> dict[str, str]:
    toml = add_series(group_dir)
    ex = make_executor()
    ex.tick(T0)
    move_series_meeting(toml)
    for hour in (1, 2, 3):
        if hour == 2:
            edit(toml, 'duration = "2h"', 'duration = "3h"')
        if hour == 3:
            remove_member(group_dir, WHO)
        make_executor().tick(T0 + timedelta(hours=hour))
        make_executor().tick(T0 + timedelta(hours=hour, minutes=10))
    calendars = _calendars(ex, "2027-q1")
    series = _calendars(ex, "clinic")
    return {"request.ics": calendars["r0"], "update.ics": calendars["r1"],
            "cancel.ics": calendars["c2"], "override.ics": series["r1"]}


@pytest.mark.parametrize("name", ["request.ics", "update.ics", "cancel.ics", "override.ics"])
def test_invites_match_the_golden_files(generated: dict[str, str], name: str,
                                        request: pytest.FixtureRequest):
    if "postgresql" in request.node.callspec.id:
        pytest.skip("one store is enough to produce the files")
    path = GOLDEN / name
    if os.environ.get("CLERK_UPDATE_GOLDEN"):
        path.write_text(generated[name], newline="")
    golden = path.read_text()
    assert generated[name] == golden, explain(name, golden, generated[name])


def test_the_explanation_names_the_property_that_changed():
    golden = (GOLDEN / "update.ics").read_text()
    changed = golden.replace("SEQUENCE:1", "SEQUENCE:2")
    text = explain("update.ics", golden, changed)
    assert "removed SEQUENCE" in text and "added   SEQUENCE" in text and "SEQUENCE:2" in text
