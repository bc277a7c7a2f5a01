"""The admin's commands as she writes them: one a line, case-insensitive, forgiving of
bullets, quoting marks, greetings and signatures — and prose is never taken for a command."""

from __future__ import annotations

import pytest

from bot.listen.commands import parse, parse_picks


def verbs(text: str) -> list[tuple[str, int | None, str]]:
    return [(c.verb, c.number, c.argument) for c in parse(text).commands]


def test_a_reply_from_outlook_with_greeting_bullets_and_signature():
    text = ("Hi clerk,\n\n- APPROVE.\n* Q1 3\n  q2: both\n1. DUE #4 31 May\nDrop #5!\n"
            "add: Budget 2027-28\n\nKind regards\nKim Osei\nStatus: Secretariat\n"
            "Add me on LinkedIn")
    assert verbs(text) == [("APPROVE", None, ""), ("ANSWER", 1, "3"), ("ANSWER", 2, "both"),
                           ("DUE", 4, "31 May"), ("DROP", 5, ""),
                           ("ADD", None, "Budget 2027-28")]


@pytest.mark.parametrize("prose", [
    "Approved by the board on Monday, as you know.",
    "Hold on, one question about item 3",
    "Due to illness I could not check the minutes",
    "Drop me a line if anything is unclear",
    "Status: Secretariat",
    "Thanks for sending these",
    "Done a quick check of the actions",
    "Assign 3 people to the working group",
    "Give 2 weeks for comments",
    "Owner of the audit tool is Jo",
])
def test_prose_is_never_a_command(prose: str):
    assert parse(prose).commands == () and parse(prose).unknown == ()


def test_thanks_above_the_commands_is_not_a_sign_off():
    assert verbs("Thanks!\nAPPROVE") == [("APPROVE", None, "")]


def test_a_sign_off_ends_the_commands():
    assert verbs("APPROVE\nRegards,\nHOLD") == [("APPROVE", None, "")]


def test_short_lines_in_capitals_that_are_no_command_are_reported():
    found = parse("APROVE\nPUBLISH NOW\nHello\nOK")
    assert found.commands == () and found.unknown == ("APROVE", "PUBLISH NOW")


def test_a_command_that_reads_as_one_but_cannot_be_done_says_why():
    (due,) = parse("DUE #4").commands
    assert due.problem.startswith("DUE needs a date")
    (owner,) = parse("OWNER #4").commands
    assert owner.problem.startswith("OWNER needs who (a name or an email)")


@pytest.mark.parametrize(("line", "expected"), [
    ("STATUS please", ("STATUS", None, "")), ("send me the status", ("STATUS", None, "")),
    ("Approve the pack", ("APPROVE", None, "pack")), ("approved", ("APPROVE", None, "")),
    ("keep them back", ("HOLD", None, "")), ("new date #3 1/6/2027", ("DUE", 3, "1/6/2027")),
    ("close action 7", ("DONE", 7, "")), ("AGENDA: Peer review", ("ADD", None, "Peer review")),
    ("Q 12 = 1, 2", ("ANSWER", 12, "1, 2")), ("help", ("HELP", None, "")),
    ("> APPROVE", ("APPROVE", None, "")),
    ("OWNER #5 Jo Whitfield", ("OWNER", 5, "Jo Whitfield")),
    ("owner 5: jo@surrey.example", ("OWNER", 5, "jo@surrey.example")),
    ("Give #5 to Jo and Tom", ("OWNER", 5, "Jo and Tom")),
    ("reassign #5 to Tom Hughes", ("OWNER", 5, "Tom Hughes")),
])
def test_forms_she_may_write(line: str, expected: tuple[str, int | None, str]):
    assert verbs(line) == [expected]


@pytest.mark.parametrize(("answer", "count", "every", "picked"), [
    ("2", 3, False, [1]), ("1,3", 3, False, [0, 2]), ("1 3", 3, False, [0, 2]),
    ("a", 2, True, [0, 1]), ("0", 2, False, []), ("", 2, False, []), ("4", 3, False, None),
    ("x", 3, False, None), ("both", 2, False, None),
])
def test_picks(answer: str, count: int, every: bool, picked: list[int] | None):
    assert parse_picks(answer, count, every=every) == picked
