"""Bad input: every kind gets a clear message naming its file and line (or key), exit 2.

Each test breaks one thing in a scratch copy of the example config and runs the CLI.
Expected line numbers are computed from the edited file, never hard-coded.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import edit, run_clerk

Clerk = Callable[..., Result]


def _text(result: Result) -> str:
    """Everything the command printed, stdout and stderr (click 8.1 and 8.2+)."""
    try:
        return result.stdout + result.stderr
    except ValueError:  # click < 8.2 with stderr mixed into output
        return result.output


def _stderr(result: Result) -> str:
    try:
        return result.stderr
    except ValueError:
        return result.output


def check(clerk: Clerk) -> tuple[int, str]:
    """Run `clerk check`; return its exit code and everything it printed."""
    result = clerk("check")
    return result.exit_code, _text(result)


def line_of(path: Path, text: str, after: int = 0) -> int:
    """1-based number of the first line of ``path`` containing ``text`` (after line ``after``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines[after:], start=after + 1):
        if text in line:
            return n
    raise AssertionError(f"{text!r} not in {path}")


def test_example_config_is_clean(clerk: Clerk) -> None:
    code, text = check(clerk)
    assert code == 0, text
    assert "config OK" in text


def test_malformed_toml(clerk: Clerk, group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    edit(toml, 'name = "South Downs QA Leads Network"', 'name = "South Downs QA Leads Network')
    n = line_of(toml, 'name = "South Downs')
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{n}:" in text
    assert "not valid TOML" in text
    assert "toml.io" in text  # the hint


def test_roster_missing_column(clerk: Clerk, group_dir: Path) -> None:
    roster = group_dir / "roster.csv"
    rows = [line.rsplit(",", 1)[0] for line in roster.read_text(encoding="utf-8").splitlines()]
    roster.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, text = check(clerk)
    assert code == 2, text
    assert "roster.csv:1:" in text
    assert "missing column(s) role" in text
    assert "name,email,organisation,role" in text  # the hint


def test_roster_extra_column(clerk: Clerk, group_dir: Path) -> None:
    roster = group_dir / "roster.csv"
    edit(roster, "name,email,organisation,role", "name,email,organisation,role,phone")
    code, text = check(clerk)
    assert code == 2, text
    assert "roster.csv:1:" in text
    assert "unknown column(s) 'phone'" in text
    assert "name,email,organisation,role" in text  # the hint


def test_roster_invalid_email(clerk: Clerk, group_dir: Path) -> None:
    roster = group_dir / "roster.csv"
    edit(roster, "joanne.beale@bracknell.example", "joanne.beale-at-bracknell.example")
    n = line_of(roster, "joanne.beale-at-bracknell.example")
    code, text = check(clerk)
    assert code == 2, text
    assert f"roster.csv:{n}: email:" in text
    assert "'joanne.beale-at-bracknell.example' is not an email address" in text


def test_roster_duplicate_email(clerk: Clerk, group_dir: Path) -> None:
    roster = group_dir / "roster.csv"
    edit(roster, "gavin.swales@kent.example", "Joanne.Beale@bracknell.example")  # case differs
    first = line_of(roster, "joanne.beale@bracknell.example")
    second = line_of(roster, "Joanne.Beale@bracknell.example")
    code, text = check(clerk)
    assert code == 2, text
    assert f"roster.csv:{second}: email:" in text
    assert "joanne.beale@bracknell.example is listed twice" in text
    assert f"first on line {first}" in text
    assert "one row per member" in text  # the hint


def test_unknown_zone(clerk: Clerk, group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    edit(toml, 'zone = "Europe/London"', 'zone = "Europe/Londn"')
    n = line_of(toml, 'zone = "Europe/Londn"')
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{n}: group.zone:" in text
    assert "unknown time zone 'Europe/Londn'" in text
    assert "Europe/London" in text.replace("'Europe/Londn'", "")  # suggests a real name


@pytest.mark.parametrize(("start", "says"), [
    ("2027-03-28T01:30:00", "does not exist"),  # last Sunday of March: clocks go forward
    ("2027-10-31T01:30:00", "happens twice"),  # last Sunday of October: clocks go back
])
def test_meeting_at_a_local_time_that_does_not_exist_or_repeats(
    clerk: Clerk, group_dir: Path, start: str, says: str
) -> None:
    toml = group_dir / "group.toml"
    edit(toml, "start = 2027-01-14T14:00:00", f"start = {start}")
    n = line_of(toml, f"start = {start}")
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{n}: meeting[0].start:" in text
    assert says in text
    assert "Europe/London" in text
    assert "choose another time" in text


def test_template_syntax_error(clerk: Clerk, group_dir: Path) -> None:
    template = group_dir / "templates" / "invitation.txt.j2"
    template.parent.mkdir()
    template.write_text("Dear {{ recipient.name }},\n\n{{ meeting.title | }}\nSee you.\n",
                        encoding="utf-8")
    code, text = check(clerk)
    assert code == 2, text
    assert f"{template}:3:" in text
    assert "template error" in text
    assert "tags around this line" in text  # the hint


def test_template_undefined_variable(clerk: Clerk, group_dir: Path) -> None:
    template = group_dir / "templates" / "invitation.txt.j2"
    template.parent.mkdir()
    template.write_text("Dear {{ recipient.name }},\n{{ undefined_thing }}\nSee you.\n",
                        encoding="utf-8")
    code, text = check(clerk)
    assert code == 2, text
    assert f"{template}:2:" in text
    assert "'undefined_thing' is undefined" in text
    assert "rule invitation" in text
    assert "Templates" in text  # the hint points at docs/configuration.md's section


@pytest.mark.parametrize("command", ["plan", "status", "log"])
def test_unknown_group(clerk: Clerk, command: str) -> None:
    result = clerk(command, "--group", "nope")
    text = _text(result)
    assert result.exit_code == 2, text
    assert "error: unknown group 'nope'" in _stderr(result)
    assert "qa-leads" in text  # the groups that do exist


def test_every_problem_at_once(clerk: Clerk, group_dir: Path) -> None:
    roster, toml = group_dir / "roster.csv", group_dir / "group.toml"
    edit(roster, "gavin.swales@kent.example", "gavin.swales@kent")
    edit(toml, 'website = "', 'colour = "red"\nwebsite = "')
    edit(toml, 'id = "2027-q3"', 'id = "2027-q2"')
    bad_email = line_of(roster, "gavin.swales@kent,")
    colour = line_of(toml, "colour =")
    second_q2 = line_of(toml, 'id = "2027-q2"', after=line_of(toml, 'id = "2027-q2"'))
    code, text = check(clerk)
    assert code == 2, text
    assert "3 problem(s)" in text
    assert f"roster.csv:{bad_email}: email:" in text
    assert f"group.toml:{colour}: group.colour: unknown option" in text
    assert f"group.toml:{second_q2}: meeting[2].id: '2027-q2' is used twice" in text


# Regression: bot/config.py load() once checked templates only when everything else was
# clean, so a roster problem hid a template problem; `clerk check` lists every problem at once.
def test_every_problem_at_once_includes_templates(clerk: Clerk, group_dir: Path) -> None:
    roster = group_dir / "roster.csv"
    edit(roster, "gavin.swales@kent.example", "gavin.swales@kent")
    template = group_dir / "templates" / "invitation.txt.j2"
    template.parent.mkdir()
    template.write_text("Dear {{ recipient.name }},\n{{ undefined_thing }}\n", encoding="utf-8")
    code, text = check(clerk)
    assert code == 2, text
    assert f"roster.csv:{line_of(roster, 'gavin.swales@kent,')}: email:" in text
    assert f"{template}:2:" in text and "'undefined_thing' is undefined" in text


def test_unknown_option_key(clerk: Clerk, group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    edit(toml, 'website = "', 'colour = "red"\nwebsite = "')
    n = line_of(toml, 'colour = "red"')
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{n}: group.colour: unknown option" in text
    assert "known options:" in text and "zone" in text  # the hint


@pytest.mark.parametrize("questions", ["", "questions = []\n"])
def test_request_rule_without_questions(
    clerk: Clerk, group_dir: Path, questions: str
) -> None:
    toml = group_dir / "group.toml"
    text = toml.read_text(encoding="utf-8")
    start = text.index("questions = [")
    end = text.index("]\n", start) + 2
    toml.write_text(text[:start] + questions + text[end:], encoding="utf-8")
    header = line_of(toml, 'id = "rfi"') - 1
    assert "[[rule]]" in toml.read_text(encoding="utf-8").splitlines()[header - 1]
    n = line_of(toml, "questions = []") if questions else header
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{n}: rule[1].questions:" in text
    assert "a request must ask at least one question" in text


@pytest.mark.slow
def test_run_refuses_invalid_config(config_dir: Path, group_dir: Path, tmp_path: Path) -> None:
    roster = group_dir / "roster.csv"
    edit(roster, "gavin.swales@kent.example", "gavin.swales@kent")
    n = line_of(roster, "gavin.swales@kent,")
    before = set(tmp_path.rglob("*"))
    proc = run_clerk("--config", str(config_dir), "--state",
                     "sqlite:///" + str(tmp_path / "s.sqlite"), "run", cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"roster.csv:{n}: email:" in proc.stderr
    assert "nothing was sent" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outbox").exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name in
                ("new", "cur", "tmp")]
    assert {p for p in set(tmp_path.rglob("*")) - before if p.name != "s.sqlite"} == set()


def test_tick_bad_now(clerk: Clerk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default outbox is ./outbox
    result = clerk("tick", "--now", "not-a-date")
    text = _text(result)
    assert result.exit_code == 2, text
    assert "'not-a-date' is not an ISO 8601 date or time" in _stderr(result)
    assert "2027-03-11" in text  # an example of what to write
    assert not (tmp_path / "outbox").exists()


def test_preview_unknown_key(clerk: Clerk) -> None:
    result = clerk("preview", "no/such/key")
    text = _text(result)
    assert result.exit_code == 2, text
    assert "'no/such/key' is not in the current plan" in _stderr(result)
    assert "clerk plan --json" in text


def test_config_without_groups(clerk: Clerk, group_dir: Path, config_dir: Path) -> None:
    shutil.rmtree(group_dir)
    code, text = check(clerk)
    assert code == 2, text
    assert f"{config_dir}: no group folders" in text
    assert "clerk init" in text


def test_a_deadline_after_the_meeting_is_refused(clerk: Clerk, group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    edit(toml, 'deadline = "-10d"', 'deadline = "+2d"')
    n = line_of(toml, 'deadline = "+2d"')
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{n}: rule[1].deadline: the deadline +2d is not before the meeting" \
        in text


def test_a_second_invitation_rule_is_refused(clerk: Clerk, group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    with toml.open("a") as f:
        f.write('\n[[rule]]\nid = "invite-again"\nkind = "invitation"\nsend = "-7d"\n')
    n = line_of(toml, 'id = "invite-again"') + 1  # its kind line
    code, text = check(clerk)
    assert code == 2, text
    assert "rule[5].kind: a second invitation rule" in text and f"group.toml:{n}" in text


def test_an_id_with_a_line_break_is_refused(clerk: Clerk, group_dir: Path) -> None:
    # a group's id begins every key of its mail (its ledger rows are the range of keys under
    # "<id>/"): an id is the whole value, never one line of it
    toml = group_dir / "group.toml"
    edit(toml, 'id = "qa-leads"', 'id = "qa-leads\\n"')
    code, text = check(clerk)
    assert code == 2, text
    assert f"group.toml:{line_of(toml, 'id = ')}:" in text and "is not an id" in text
