"""Send windows: no mail at weekends, after hours or on bank holidays; deadlines on working days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result

from bot import config as config_mod
from bot.domain import windows
from bot.engine.simulate import simulate
from tests.conftest import edit

LONDON = ZoneInfo("Europe/London")
WINDOW = windows.parse("Mon-Fri 08:00-18:00", "GB-ENG")
BANK_HOLIDAYS_2027 = {date(2027, 1, 1), date(2027, 3, 26), date(2027, 3, 29), date(2027, 5, 3),
                      date(2027, 5, 31), date(2027, 8, 30), date(2027, 12, 27),
                      date(2027, 12, 28)}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


@pytest.mark.parametrize("due,goes", [
    ("2027-01-16T09:00", "2027-01-18T08:00"),  # Saturday → Monday
    ("2027-01-15T18:30", "2027-01-18T08:00"),  # Friday evening → Monday
    ("2027-01-13T07:15", "2027-01-13T08:00"),  # too early → opening time
    ("2027-01-13T11:00", "2027-01-13T11:00"),  # open: as it is
    ("2027-03-26T10:00", "2027-03-30T08:00"),  # Good Friday, weekend, Easter Monday (BST)
    ("2027-12-24T18:00", "2027-12-29T08:00"),  # Christmas, substitute days
])
def test_a_message_due_when_the_window_is_shut_goes_at_its_next_opening(due: str, goes: str):
    got = windows.next_opening(WINDOW, "Europe/London", local(due).astimezone(UTC))
    assert got == local(goes).astimezone(UTC)


def test_the_bank_holidays_are_englands():
    assert {d for d in windows.closed_days("GB-ENG", 2027) if d.weekday() < 5} == \
        BANK_HOLIDAYS_2027
    assert date(2027, 1, 4) in windows.closed_days("GB-SCT", 2027)  # Scotland: 2 January


def test_a_deadline_never_falls_when_the_window_is_shut(clerk: Callable[..., Result],
                                                        group_dir: Path):
    import json

    # 12 days before Thursday 14 January 2027 is Saturday 2 January; 1 January is a holiday
    edit(group_dir / "group.toml", 'deadline = "-10d"', 'deadline = "-12d"')
    rows = json.loads(clerk("plan", "--json", "--now", "2026-11-30").output)
    request = next(r for r in rows if r["kind"] == "request" and r["meeting"] == "2027-q1")
    assert request["latest"] == "2026-12-31T17:00:00+00:00"
    subject = request["subject"]
    assert "Thursday 31 December 2026" in subject


@pytest.mark.slow
def test_a_simulated_year_sends_nothing_when_the_window_is_shut(config_dir: Path,
                                                                 tmp_path: Path):
    timeline, _ = simulate(config_dir, f"sqlite:///{tmp_path / 'none.sqlite'}",
                           datetime(2026, 11, 30, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC),
                           tmp_path / "out")
    sent = [e for e in timeline if e["state"] == "sent"]
    assert sum(len(e["recipients"]) for e in sent) == 4 * 76 + 5  # packs' previews, 5 digests
    for e in sent:
        at = datetime.fromisoformat(e["at"]).astimezone(LONDON)
        assert at.weekday() < 5 and 8 <= at.hour < 18, e
        assert at.date() not in BANK_HOLIDAYS_2027, e


@pytest.mark.parametrize("line,message", [
    ('send_window = "Mon-Fri 8-18"', "is not a send window"),
    ('send_window = "Mon-Fun 08:00-18:00"', "is not a day"),
    ('send_window = "Mon-Fri 18:00-08:00"', "must close after it opens"),
    ('bank_holidays = "XX-YY"', "unknown bank holiday calendar"),
])
def test_a_bad_window_is_a_clear_error(clerk: Callable[..., Result], group_dir: Path,
                                       line: str, message: str):
    edit(group_dir / "group.toml", 'zone = "Europe/London"', f'zone = "Europe/London"\n{line}')
    result = clerk("check")
    assert result.exit_code == 2 and message in result.output
    assert "group.toml:" in result.output


def test_an_empty_window_means_any_time(group_dir: Path, config_dir: Path):
    edit(group_dir / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nsend_window = ""')
    assert config_mod.load(config_dir).groups[0].window is None
