"""`clerk check` warns of plausible wrong dates and of replies nobody reads — warnings, not
errors: the admin may mean them (bot/config/checks.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import edit


@pytest.mark.parametrize("start,said", [
    ("2027-01-16T14:00:00", "is on a Saturday"),
    ("2027-05-03T14:00:00", "is on a bank holiday"),  # the early May bank holiday
    ("2027-01-14T02:00:00", "at 02:00, outside 08:00–18:00"),
    ("2026-11-19T14:00:00", "before go-live (01 December 2026): nothing of it is sent"),
    ("2027-01-13T10:00:00", "on a Wednesday at 10:00, while the group meets on Thursdays at "
                            "14:00"),
])
def test_a_plausible_wrong_date_is_a_warning_on_its_line(
        group_dir: Path, clerk: Callable[..., Result], start: str, said: str):
    edit(group_dir / "group.toml", "start = 2027-01-14T14:00:00", f"start = {start}")
    result = clerk("check")
    assert result.exit_code == 0, result.output  # a warning: the admin may mean it
    (line,) = [w for w in result.output.splitlines() if "meeting[0].start" in w]
    assert line.startswith("warning: ") and "group.toml:40: meeting[0].start" in line
    assert said in line and "meeting '2027-q1'" in line


def test_the_example_has_no_date_warning(clerk: Callable[..., Result]):
    assert "meeting[" not in clerk("check").output


def test_replies_nobody_reads_are_a_warning(config_dir: Path, tmp_path: Path,
                                           clerk: Callable[..., Result]):
    result = clerk("check")
    assert "warning:" in result.output and "no mailbox: qa-leads ask members to reply" in \
        result.output
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\nmailbox = "maildir"\n\n[mailbox]\npath = "{tmp_path}"\n'
        'authserv_id = "mx.example.org"\n')
    assert "no mailbox" not in clerk("check").output
