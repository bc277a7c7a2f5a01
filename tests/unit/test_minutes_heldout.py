"""Minutes the importer was not written against: a second network's, in the seed's style
(tests/data/heldout-group: its roster, its meetings and its minutes, as Markdown and as the
Word document built from them). Every owner, date, done state and place is asserted, and that
nothing else became an action; then the interactive picker, the nudge that no meeting's date
falls inside, and default due dates that never follow the clock."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import ROOT, edit

HELDOUT = ROOT / "tests" / "data" / "heldout-group"
MINUTES = HELDOUT / "minutes-2027-01-21.md"
NOW = "2027-02-15T10:00:00+00:00"  # the minutes came out three weeks after the meeting

JOANNA = "joanna.whitfield@lancashire.example"
THOMAS = "thomas.hughes@cumbria.example"
PRIYA = "priya.shah@bolton.example"
SIOBHAN = "siobhan.oneill@wigan.example"
ANN = "ann.kowalski@trafford.example"
MARCUS = "marcus.reid@stockport.example"
KIMBERLEY = "kimberley.adeyemi@oldham.example"
JO_BROWN = "jo.brown@salford.example"
GEMMA = "gemma.clarke@nw-network.example"  # the admin

# topic -> owners, due, where the due date came from, status, completed, row of table 2
EXPECTED: dict[str, tuple[list[str], str, str | None, str, str | None, int]] = {
    "Audit summary": ([PRIYA], "2027-03-31", "stated: 'by 31 March' at ", "open", None, 2),
    "Peer review": ([JOANNA, THOMAS], "2027-04-22", "stated: 'by the next meeting' at ",
                    "open", None, 3),
    "LADO routes": ([SIOBHAN, ANN], "2027-04-30", "table column Due", "open", None, 4),
    "Neglect toolkits": ([MARCUS, KIMBERLEY], "2027-04-21",
                         "stated: 'before the next meeting'", "open", None, 5),
    "Data returns": (["*"], "2027-02-28", "table column Due", "open", None, 7),
    "Meeting venue": ([GEMMA], "2027-02-18", None, "done", "2027-02-12", 8),
}


@pytest.fixture
def heldout(config_dir: Path) -> Path:
    """The held-out group alone in the config folder."""
    shutil.rmtree(config_dir / "example")
    folder = config_dir / "nw-leads"
    folder.mkdir()
    for name in ("group.toml", "roster.csv"):
        shutil.copy(HELDOUT / name, folder / name)
    return folder


def as_docx(markdown: Path, out: Path) -> Path:
    """The minutes as the admin has them in Word: a paragraph per line, a Word table per
    Markdown table (a row of one repeated text is merged across, as a section row is)."""
    import docx

    document = docx.Document()
    rows: list[list[str]] = []

    def flush() -> None:
        if not rows:
            return
        table = document.add_table(rows=len(rows), cols=len(rows[0]))
        for row, cells in zip(table.rows, rows, strict=True):
            if len(set(cells)) == 1:
                row.cells[0].merge(row.cells[-1]).text = cells[0]
                continue
            for cell, text in zip(row.cells, cells, strict=True):
                cell.text = text
        rows.clear()

    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
            continue
        flush()
        document.add_paragraph(line)
    flush()
    document.save(str(out))
    return out


def minutes_file(form: str, tmp_path: Path) -> Path:
    return MINUTES if form == "md" else as_docx(MINUTES, tmp_path / "NW minutes.docx")


def run(config_dir: Path, tmp_path: Path, *args: str, given: str | None = None) -> Result:
    """The CLI at NOW, with ``given`` typed at its prompts."""
    from bot.cli.main import cli

    return CliRunner().invoke(cli, ["--config", str(config_dir), "--state",
                                    f"sqlite:///{tmp_path / 'state.sqlite'}", "--now", NOW,
                                    *args], input=given, catch_exceptions=False)


def imported(config_dir: Path, tmp_path: Path, path: Path, *extra: str) -> dict[str, Any]:
    result = run(config_dir, tmp_path, "minutes", "import", str(path), "--meeting", "2027-01",
                 "--json", *extra)
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.output)
    return out


@pytest.mark.parametrize("form", ["md", "docx"])
def test_every_owner_date_done_state_and_place_is_right(config_dir: Path, heldout: Path,
                                                        tmp_path: Path, form: str):
    out = imported(config_dir, tmp_path, minutes_file(form, tmp_path))
    got = {a["topic"]: a for a in out["imported"]}
    assert set(got) == set(EXPECTED)  # and nothing else: no false actions
    for topic, (owners, due, source, status, completed, row) in EXPECTED.items():
        a = got[topic]
        assert (a["owners"], a["due"], a["status"], a["completed"]) == (
            owners, due, status, completed), topic
        assert (a["due_source"] or "").startswith(source or "") and \
            (a["due_source"] is None) == (source is None), (topic, a["due_source"])
        assert a["place"].startswith(f"table 2, row {row} (starting {topic!r})"), a["place"]
    assert got["Meeting venue"]["due_why"] == "default: 28 days after the meeting"
    assert got["Peer review"]["owner_names"] == ["Joanna Whitfield", "Thomas Hughes"]
    # 'Jo' is Joanna Whitfield or Jo Brown: not imported; asked about, with both
    (jo,) = out["unresolved"]
    assert jo["place"].startswith("table 2, row 6 (starting 'Exploitation')")
    assert jo["questions"] == [{"name": "Jo", "candidates": [
        {"name": "Joanna Whitfield", "email": JOANNA}, {"name": "Jo Brown", "email": JO_BROWN}]}]
    assert jo["candidates"] == [JOANNA, JO_BROWN] and jo["matched"] == []
    # the body's action that the table does not list is reported, not imported
    (left,) = out["left_out"]
    assert left["text"] == "Ann Kowalski will invite the LADO lead to the April meeting."
    # unique first names, short forms and "all members" are matched, and each match is said
    notes = " | ".join(out["notes"])
    for said in ("'Priya' → Priya Shah", "'Siobhan' → Siobhan O'Neill", "'Marcus' → Marcus",
                 "'Kim' → Kimberley Adeyemi", "'Tom Hughes' → Thomas Hughes",
                 "'Jo Whitfield' → Joanna Whitfield", "'All members' → all members"):
        assert said in notes
    # the nudge: 4-5 months from 21 January holds no meeting; the nearest is 22 April
    (landing,) = out["nudge_meetings"]
    assert (landing["window_start"], landing["window_end"]) == ("2027-05-21", "2027-06-21")
    assert (landing["meeting"], landing["inside"]) == ("2027-04", False)
    assert landing["said"] == ("no meeting falls between 21 May 2027 and 21 June 2027; it "
                               "goes on the agenda of the meeting on Thursday 22 April 2027, "
                               "the nearest")
    assert out["next_agenda"] == ["Peer review protocol", "Regional data dashboard"]
    # what the store holds is the same: six actions, one nudge
    rows = json.loads(run(config_dir, tmp_path, "actions", "list", "--status", "all",
                          "--json").output)
    assert sorted(r["topic"] for r in rows) == sorted(EXPECTED)
    assert {r["topic"]: r["due"] for r in rows} == {t: e[1] for t, e in EXPECTED.items()}


def test_the_word_and_markdown_minutes_say_the_same(config_dir: Path, heldout: Path,
                                                    tmp_path: Path):
    from bot.listen import minutes

    anchor = minutes.Anchor(date(2027, 1, 21), date(2027, 4, 22))
    md = minutes.read_minutes(MINUTES, anchor)
    word = minutes.read_minutes(as_docx(MINUTES, tmp_path / "m.docx"), anchor)

    def same(items: list[minutes.Item]) -> list[tuple[object, ...]]:
        return [(i.topic, i.text, i.owners_text, i.due, i.status, i.completed,
                 i.place.split(", line")[0]) for i in items]

    assert same(md.items) == same(word.items)
    assert md.left_out[0].place == "line 59"
    assert re.fullmatch(r"paragraph \d+ \(starting 'Action: Ann Kowalski will…'\)",
                        word.left_out[0].place)


def test_the_import_prints_each_action_with_its_owners_and_dates(
        config_dir: Path, heldout: Path, tmp_path: Path):
    text = run(config_dir, tmp_path, "minutes", "import", str(MINUTES), "--meeting",
               "2027-01", "--yes").output
    assert text.startswith("imported 6 action(s) and 1 nudge(s) for nw-leads/2027-01\n")
    assert ("  #1 Priya Shah: Circulate the audit summary\n"
            "     due Wed 31 March 2027 (stated: 'by 31 March' at line 43); open\n"
            "     from table 2, row 2 (starting 'Audit summary'), line 104\n") in text
    assert "  #2 Joanna Whitfield, Thomas Hughes: Draft the peer review protocol\n" in text
    assert "     due Fri 30 April 2027 (table column Due); open\n" in text
    assert ("     due Thu 18 February 2027 (default: 28 days after the meeting); done Fri 12 "
            "February 2027\n") in text
    assert ("  NOT imported, table 2, row 6 (starting 'Exploitation'), line 108: who is 'Jo'? "
            "could be Joanna Whitfield <joanna.whitfield@lancashire.example>, Jo Brown "
            "<jo.brown@salford.example>") in text
    assert ("  nudge: see whether the new audit cycle has bedded in — no meeting falls between "
            "21 May 2027 and 21 June 2027; it goes on the agenda of the meeting on Thursday "
            "22 April 2027, the nearest\n") in text
    assert ("  not in the actions table, so not imported: line 59: Ann Kowalski will invite "
            "the LADO lead to the April meeting.\n") in text
    assert "  matched 'Siobhan' → Siobhan O'Neill <siobhan.oneill@wigan.example> (the only " \
           "Siobhan on the roster): table 2, row 4\n" in text


@pytest.mark.parametrize("typed,owners", [
    ("a\n", [JOANNA, JO_BROWN]),  # both
    ("1,2\n", [JOANNA, JO_BROWN]),
    ("2 1\n", [JO_BROWN, JOANNA]),
    ("x\n3\n2\n", [JO_BROWN]),  # not an answer, out of range: asked again
    ("0\n", None),  # skipped: not imported
])
def test_the_picker_takes_one_several_or_all(config_dir: Path, heldout: Path, tmp_path: Path,
                                             typed: str, owners: list[str] | None):
    result = run(config_dir, tmp_path, "minutes", "import", str(MINUTES), "--meeting",
                 "2027-01", given=typed)
    assert result.exit_code == 0, result.output
    assert ("table 2, row 6 (starting 'Exploitation'), line 108: who is 'Jo'? (Share the "
            "Salford exploitation pathway)\n  1. Joanna Whitfield <joanna.whitfield@"
            "lancashire.example>\n  2. Jo Brown <jo.brown@salford.example>\n  a. both\n"
            ) in result.output
    if typed.startswith("x"):
        assert "'x': give numbers from 1 to 2, a or 0" in result.output
        assert "'3': give numbers from 1 to 2, a or 0" in result.output
    rows = json.loads(run(config_dir, tmp_path, "actions", "list", "--json").output)
    found = [r for r in rows if r["topic"] == "Exploitation"]
    if owners is None:
        assert found == [] and "NOT imported, table 2, row 6" in result.output
    else:
        (row,) = found
        assert row["owners"] == owners and row["due"] == "2027-03-12"
        assert "'Jo' → " in result.output and "(chosen)" in result.output


def test_an_owner_nobody_fits_is_asked_about_with_the_whole_roster(
        config_dir: Path, heldout: Path, tmp_path: Path):
    minutes = tmp_path / "m.md"
    minutes.write_text("Action: Zed will book the room by 1 March.\n", encoding="utf-8")
    result = run(config_dir, tmp_path, "minutes", "import", str(minutes), "--meeting",
                 "2027-01", given="4 5\n")
    assert "line 1: who is 'Zed'?" in result.output and "  a. " not in result.output
    (row,) = json.loads(run(config_dir, tmp_path, "actions", "list", "--json").output)
    assert row["owners"] == [PRIYA, SIOBHAN] and row["due"] == "2027-03-01"
    nobody = tmp_path / "n.md"
    nobody.write_text("Action: Book the room for April.\n", encoding="utf-8")
    asked = run(config_dir, tmp_path, "minutes", "import", str(nobody), "--meeting",
                "2027-01", given="15\n")
    assert "line 1: no owner is named: who is it? (Book the room for April.)" in asked.output
    assert "matched no owner named → Gemma Clarke (chosen): line 1" in asked.output


def test_default_due_dates_count_from_the_meeting_never_the_clock(
        config_dir: Path, heldout: Path, tmp_path: Path):
    minutes = tmp_path / "m.md"
    minutes.write_text("Action: Priya Shah will share the audit tool.\n", encoding="utf-8")
    dues = set()
    for n, now in enumerate(("2026-12-01T10:00:00Z", "2027-06-30T10:00:00Z")):
        from bot.cli.main import cli

        result = CliRunner().invoke(cli, [
            "--config", str(config_dir), "--state", f"sqlite:///{tmp_path / f's{n}.sqlite'}",
            "--now", now, "minutes", "import", str(minutes), "--meeting", "2027-01", "--json"])
        (action,) = json.loads(result.output)["imported"]
        dues.add((action["due"], action["due_why"]))
    assert dues == {("2027-02-18", "default: 28 days after the meeting")}
    # with [actions] due: that long before the meeting after the one that agreed it
    with (heldout / "group.toml").open("a") as f:
        f.write('\n[actions]\ndue = "-7d"\n')
    (action,) = imported(config_dir, tmp_path, minutes)["imported"]
    assert (action["due"], action["due_why"]) == (
        "2027-04-15", "default: 7 days before the next meeting, Thu 22 April 2027")


def test_a_stated_date_that_cannot_be_is_noted_and_the_default_used(
        config_dir: Path, heldout: Path, tmp_path: Path):
    minutes = tmp_path / "m.md"
    minutes.write_text("Action: Priya Shah will share the tool by 31/02/2027.\n"
                       "| Topic | Action | Owner | Due |\n|---|---|---|---|\n"
                       "| Tool | Share the tool | Priya Shah | soonish |\n"
                       "| Audit | Share the audit | Priya Shah | 5 May 2027 |\n",
                       encoding="utf-8")
    out = imported(config_dir, tmp_path, minutes)
    assert [(a["topic"], a["due"], a["due_source"]) for a in out["imported"]] == [
        ("Tool", "2027-02-18", None), ("Audit", "2027-05-05", "table column Due")]
    notes = " | ".join(out["notes"])
    assert ("table 1, row 2 (starting 'Tool'), line 4: Due 'soonish' is not a date (write it "
            "like 31/03/2027, 31 March 2027 or 'next meeting'); the default is used") in notes
    assert "line 1: 'by 31/02/2027' is not a date; the default is used" in notes


def test_by_the_next_meeting_with_no_next_meeting_set_is_noted(
        config_dir: Path, heldout: Path, tmp_path: Path):
    minutes = tmp_path / "m.md"
    minutes.write_text("Action: Priya Shah will report back by the next meeting.\n",
                       encoding="utf-8")
    result = run(config_dir, tmp_path, "minutes", "import", str(minutes), "--meeting",
                 "2027-10", "--json")
    out = json.loads(result.output)
    (action,) = out["imported"]
    assert action["due"] == "2027-11-18" and action["due_source"] is None
    assert "line 1: 'by the next meeting': no meeting after this one is set in group.toml; " \
           "the default is used" in out["notes"]


def test_the_seed_nudge_lands_on_the_december_meeting_a_day_before_its_window(
        clerk: Callable[..., Result], config_dir: Path, tmp_path: Path):
    """The issue's case: 6-9 months from 15 June 2023 is 15 December to 15 March; the group
    meets on 14 December and 21 March."""
    from tests.unit.test_minutes import SEED, SEED_GROUP, seed_group_at

    if not SEED.exists():
        pytest.skip("the seed minutes are in ../shared")
    folder = seed_group_at(config_dir)
    shutil.copy(SEED_GROUP / "roster.csv", folder / "roster.csv")
    with (folder / "group.toml").open("a") as f:
        f.write('\n[[meeting]]\nid = "2023-12"\nstart = 2023-12-14T14:00:00\n'
                '\n[[meeting]]\nid = "2024-03"\nstart = 2024-03-21T14:00:00\n')
    out = json.loads(clerk("minutes", "import", str(SEED), "--meeting", "2023-06", "--yes",
                           "--json").output)
    (landing,) = out["nudge_meetings"]
    assert (landing["meeting"], landing["inside"]) == ("2023-12", False)
    assert landing["said"] == ("no meeting falls between 15 December 2023 and 15 March 2024; "
                               "it goes on the agenda of the meeting on Thursday 14 December "
                               "2023, the nearest")
    assert len(out["imported"]) == 9  # still nine actions


def test_actions_add_takes_names_and_says_whom_it_cannot_tell(
        config_dir: Path, heldout: Path, tmp_path: Path):
    def add(*args: str) -> Result:
        return run(config_dir, tmp_path, "actions", "add", "-g", "nw-leads", *args)

    added = add("--owner", "Jo Whitfield", "--owner", "Siobhan", "--due", "2027-03-01",
                "Share the protocol")
    assert added.exit_code == 0, added.output
    assert added.output == ("added #1 for Joanna Whitfield, Siobhan O'Neill, due Mon 1 March "
                            "2027 (given)\n")
    initials = add("--owner", "JW", "--meeting", "2027-01", "Chair the task group")
    assert initials.output == ("added #2 for Joanna Whitfield, due Thu 18 February 2027 "
                               "(default: 28 days after the meeting)\n")
    by_hand = add("--owner", "tom.fairclough@blackburn.example", "Send the paper")
    assert by_hand.output.endswith("due Mon 15 March 2027 (default: 28 days after the day it "
                                   "was added)\n")
    ambiguous = add("--owner", "Jo", "x")
    assert ambiguous.exit_code == 2
    assert ("who is 'Jo'? it could be Joanna Whitfield <joanna.whitfield@lancashire.example>, "
            "Jo Brown <jo.brown@salford.example>: give the email or the full name"
            ) in ambiguous.output
    tom = add("--owner", "Tom", "x")
    assert "Thomas Hughes" in tom.output and "Tom Fairclough" in tom.output
    unknown = add("--owner", "Nobody Known", "--owner", "someone@else.example", "x")
    assert unknown.exit_code == 2
    assert "not on the roster of nw-leads: someone@else.example" in unknown.output
    assert "'Nobody Known' is not on the roster of nw-leads; add them to roster.csv" \
        in unknown.output
    typo = add("--owner", "Siobahn O'Neil", "x")  # a letter out of place in each: offered
    assert typo.exit_code == 2 and "O'Neil\" is not on the roster of nw-leads; did you " \
        "mean Siobhan O'Neill <siobhan.oneill@wigan.example>?" in typo.output
    rows = json.loads(run(config_dir, tmp_path, "actions", "list", "--json").output)
    assert len(rows) == 3  # the refused ones recorded nothing
    past = add("--owner", "Priya", "--meeting", "2027-01", "x")
    assert past.exit_code == 0  # 18 February is after NOW's 15 February
    later = run(config_dir, tmp_path, "--now", "2027-03-01T10:00:00Z", "actions", "add",
                "-g", "nw-leads", "--owner", "Priya", "--meeting", "2027-01", "x")
    assert later.exit_code == 2 and "the default due date, 2027-02-18 (default: 28 days " \
        "after the meeting), is in the past; give --due" in later.output


def test_the_nudge_note_names_the_meeting_that_asked_by_its_title_and_date(
        config_dir: Path, heldout: Path, tmp_path: Path):
    from datetime import UTC, datetime

    from bot import config as config_mod
    from bot.engine.executor import Executor
    from bot.engine.store import Store
    from bot.transports.memory import MemoryTransport

    edit(heldout / "group.toml", 'id = "2027-07"\n', 'id = "2027-07"\ncancelled = true\n')
    imported(config_dir, tmp_path, MINUTES, "--yes")
    store = Store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    transport = MemoryTransport()
    ex = Executor(config_mod.load(config_dir), store, transport)
    ex.tick(datetime(2027, 2, 15, 9, 30, tzinfo=UTC))
    # it lands on 22 April, before its window: the chair is told 28 days before that meeting
    assert not [m for m in transport.sent if "/-/nudge/" in str(m["X-Clerk-Key"])]
    ex.tick(datetime(2027, 3, 24, 9, 30, tzinfo=UTC))
    assert not [m for m in transport.sent if "/-/nudge/" in str(m["X-Clerk-Key"])]
    ex.tick(datetime(2027, 3, 25, 9, 30, tzinfo=UTC))
    (note,) = [m for m in transport.sent if "/-/nudge/" in str(m["X-Clerk-Key"])]
    text = note.get_body(("plain",)).get_content()
    assert "At the North West Practice Leads meeting on Thursday 21 January 2027 the group " \
           "asked to come back, between Friday 21 May 2027 and Monday 21 June 2027" in text
    assert "No meeting of North West Practice Leads Network falls in that window, so it is " \
           "on the agenda of the nearest: North West Practice Leads meeting on Thursday 22 " \
           "April 2027" in text
    assert "2027-01" not in text and "2027-04" not in text
    store.dispose()
