"""Reading minutes, piece by piece: owners' names split and matched to a roster, dates as
minutes state them, Status cells, actions tables in each form, the nudge's landing meeting,
and bad input that names the file and the place."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from bot.domain.model import Group, Meeting, Member, Nudge, Person
from bot.listen import dates, minutes, owners
from bot.listen.dates import Anchor, DateError
from bot.plan.context import nudge_meeting

ANCHOR = Anchor(date(2027, 1, 21), date(2027, 4, 22))


def group(*names: str, meetings: tuple[Meeting, ...] = ()) -> Group:
    members = tuple(Member(name, name.lower().replace(" ", ".").replace("'", "") + "@x.example",
                           organisation="Org " + name.split()[-1],
                           role="chair" if i == 0 else "member")
                    for i, name in enumerate(names))
    return Group(id="g", name="G", zone="Europe/London",
                 go_live=datetime(2026, 1, 1, tzinfo=UTC),
                 organiser=Person("Clerk", "clerk@x.example"),
                 admin=Person("Gemma Clarke", "gemma.clarke@x.example"), website="",
                 joining_instructions="", members=members, meetings=meetings, rules=(),
                 folder=Path("."))


ROSTER = group("Joanna Whitfield", "Thomas Hughes", "Tom Fairclough", "Jo Brown",
               "Siobhan O'Neill", "Kimberley Adeyemi", "Aman Sekhon-Gill", "Ann Kowalski")


@pytest.mark.parametrize("text,names", [
    ("Jo Whitfield and Tom Hughes", ["Jo Whitfield", "Tom Hughes"]),
    ("Jo & Tom", ["Jo", "Tom"]),
    ("Jo/Tom", ["Jo", "Tom"]),
    ("Jo, Tom and Ann", ["Jo", "Tom", "Ann"]),
    ("Jo, Tom, and Ann.", ["Jo", "Tom", "Ann"]),
    ("Amanda Meadows (Hampshire & Isle of Wight)", ["Amanda Meadows (Hampshire & Isle of Wight)"]),
    ("Jo (Salford) and Tom (Cumbria)", ["Jo (Salford)", "Tom (Cumbria)"]),
    ("All members", ["All members"]),
    ("Subgroup attendees", ["Subgroup attendees"]),
    ("", []),
])
def test_owners_are_split(text: str, names: list[str]):
    assert owners.split(text) == names


@pytest.mark.parametrize("written,emails,how", [
    ("Joanna Whitfield", ["joanna.whitfield@x.example"], ""),  # exact: no note
    ("Jo Whitfield", ["joanna.whitfield@x.example"], "'Jo Whitfield' → Joanna Whitfield"),
    ("Tom Hughes", ["thomas.hughes@x.example"], "→ Thomas Hughes"),  # a short form
    ("Siobhan", ["siobhan.oneill@x.example"], "(the only Siobhan on the roster)"),
    ("Kim", ["kimberley.adeyemi@x.example"], "(the only Kim on the roster)"),
    ("JW", ["joanna.whitfield@x.example"], "(initials)"),
    ("A.S.G.", ["aman.sekhon-gill@x.example"], "(initials)"),
    ("Aman Sekhon–Gill", ["aman.sekhon-gill@x.example"], ""),  # an en dash is a hyphen
    ("Dr Ann Kowalski", ["ann.kowalski@x.example"], ""),
    ("Kowalski", ["ann.kowalski@x.example"], "(the only Kowalski on the roster)"),
    ("the chair", ["joanna.whitfield@x.example"], "→ Joanna Whitfield"),
    ("Gemma", ["gemma.clarke@x.example"], "(the only Gemma on the roster)"),  # the admin
    ("All LAs", ["*"], "→ all members"),
    ("<Ann.Kowalski@x.example>", ["ann.kowalski@x.example"], ""),  # an Owner cell's email
])
def test_a_name_is_matched_and_how_is_said(written: str, emails: list[str], how: str):
    found = owners.match_one(written, ROSTER)
    assert list(found.emails) == emails and how in found.note


@pytest.mark.parametrize("written,candidates", [
    ("Jo", ["Joanna Whitfield", "Jo Brown"]),  # a short form and a first name
    ("Tom", ["Thomas Hughes", "Tom Fairclough"]),
    ("Siobahn O'Neil", ["Siobhan O'Neill"]),  # a letter out of place in each: not guessed
    ("Nobody Known", []),
])
def test_a_name_that_is_not_settled_offers_every_candidate(written: str,
                                                           candidates: list[str]):
    found = owners.match_one(written, ROSTER)
    assert not found.settled and [p.name for p in found.candidates] == candidates


def test_several_owners_settle_only_when_each_does_and_an_answer_settles_one():
    found = owners.match("Siobhan and Jo", ROSTER)
    assert not found.settled and found.emails == ("siobhan.oneill@x.example",)
    (jo,) = found.unsettled
    assert jo.name == "Jo" and len(jo.candidates) == 2
    both = found.answer("Jo", list(jo.candidates))
    assert both.settled and both.emails == ("siobhan.oneill@x.example",
                                            "joanna.whitfield@x.example", "jo.brown@x.example")
    assert "'Jo' → Joanna Whitfield, Jo Brown (chosen)" in both.notes


@pytest.mark.parametrize("text,day,words", [
    ("Priya will circulate the audit by 31 March.", date(2027, 3, 31), "by 31 March"),
    ("Circulate it by 31 March 2028", date(2028, 3, 31), "by 31 March 2028"),
    ("by 20 January", date(2028, 1, 20), "by 20 January"),  # the next after the meeting
    ("by Wednesday 31st March", date(2027, 3, 31), "by Wednesday 31st March"),
    ("draft it by the next meeting", date(2027, 4, 22), "by the next meeting"),
    ("report back at the next meeting", date(2027, 4, 22), "at the next meeting"),
    ("send it before the next meeting", date(2027, 4, 21), "before the next meeting"),
    ("map the routes by end of April", date(2027, 4, 30), "by end of April"),
    ("end of April 2027", date(2027, 4, 30), "end of April 2027"),
    ("by the end of the month", date(2027, 1, 31), "by the end of the month"),
    ("send by 12/02/2027.", date(2027, 2, 12), "by 12/02/2027"),  # UK day/month
    ("send by 12/2/27", date(2027, 2, 12), "by 12/2/27"),
    ("send by 3/4", date(2027, 4, 3), "by 3/4"),
    ("reply within two weeks", date(2027, 2, 4), "within two weeks"),
    ("by 2027-03-05", date(2027, 3, 5), "by 2027-03-05"),
    ("bring it to the April meeting", None, None),  # "to" is no deadline
    ("by the April meeting", date(2027, 4, 22), "by the April meeting"),
    ("report back in 10 days' time", date(2027, 1, 31), "in 10 days' time"),
])
def test_a_stated_date_counts_from_the_meeting(text: str, day: date | None,
                                              words: str | None):
    assert dates.stated(text, ANCHOR) == ((day, words) if day else None)


@pytest.mark.parametrize("text", [
    "Kim Osbourne will remind the group in 6-9 months to see how it goes",
    "reduce the meeting length to 2 hours",
    "meet at 2.30 for 3 weeks",
    "share it by 5.30 pm",
    "the Chair will create a template",
])
def test_words_that_state_no_date(text: str):
    assert dates.stated(text, ANCHOR) is None


def test_a_date_that_cannot_be_or_needs_a_meeting_is_an_error():
    with pytest.raises(DateError, match="'by 31/02/2027' is not a date"):
        dates.stated("by 31/02/2027", ANCHOR)
    with pytest.raises(DateError, match="no meeting after this one"):
        dates.stated("by the next meeting", Anchor(date(2027, 1, 21)))
    with pytest.raises(DateError, match="needs the date of the meeting"):
        dates.stated("by 31 March", None)
    assert dates.stated("by 31 March 2027", None) == (date(2027, 3, 31), "by 31 March 2027")


@pytest.mark.parametrize("text,said", [
    ("", dates.Status("open")),
    ("Done 12/02/2027", dates.Status("done", completed=date(2027, 2, 12))),
    ("Complete", dates.Status("done")),
    ("Completed on 12 February 2027", dates.Status("done", completed=date(2027, 2, 12))),
    ("Closed (12.2.2027)", dates.Status("done", completed=date(2027, 2, 12))),
    ("In progress", dates.Status("open")),
    ("Open (due 01/12/2026)", dates.Status("open", due=date(2026, 12, 1))),
    ("Dropped", dates.Status("dropped")),
    ("No longer required", dates.Status("dropped")),
    ("Amber", None),
])
def test_a_status_cell(text: str, said: dates.Status | None):
    assert dates.status(text, ANCHOR) == said


@pytest.mark.parametrize("header,found", [
    (["Topic", "Action", "Date completed"], ["topic", "action", "completed"]),
    (["Item", "Agreed actions", "Owner(s)", "By when?", "Progress / update"],
     ["topic", "action", "owner", "due", "status"]),
    (["Action", "Action owner", "Target date", "RAG"], ["action", "owner", "due", "status"]),
    (["No.", "Action/Decision", "Lead", "Deadline", "Completion date"],
     ["action", "owner", "due", "completed"]),
    (["Task", "Who", "Due date", "Date closed"], ["action", "owner", "due", "completed"]),
    (["Organisation", "Name"], []),
])
def test_columns_are_known_by_their_headers(header: list[str], found: list[str]):
    from bot.listen.tables import columns

    assert list(columns(header).values()) == found


def test_a_text_table_with_owner_due_and_status_columns(tmp_path: Path):
    path = tmp_path / "m.txt"
    path.write_text(
        "Actions from the session\n\tTopic\n\tAction\n\tOwner\n\tDue\n\tStatus\n\n"
        "\tWebsite\n\tCirculate the website link\n\tKim\n\t31/03/2027\n\tOpen\n\n"
        "\tAudit Tool Review\n\tAman Sekhon-Gill will share the audit tool\n\n\t\n\n"
        "\tInvites\n\tReview the invites\n\tJo Whitfield\n\n\tDone 12/02/2027\n",
        encoding="utf-8")
    items = minutes.read(path, ANCHOR)
    assert [(i.topic, i.owners_text, i.due, i.status, i.completed) for i in items] == [
        ("Website", ("Kim",), date(2027, 3, 31), "open", None),
        ("Audit Tool Review", ("Aman Sekhon-Gill",), None, "open", None),
        ("Invites", ("Jo Whitfield",), None, "done", date(2027, 2, 12))]
    assert items[1].place == "table 1, row 3 (starting 'Audit Tool Review'), line 14"


def test_a_table_copied_from_word_as_text_is_read_cell_by_cell(tmp_path: Path):
    """As the seed has it: each cell's first line starts with a tab, an empty cell is a tab
    alone, a cell's empty second paragraph is a blank line, and so is the gap between rows —
    so an empty Due cell does not shift a date into it."""
    path = tmp_path / "m.txt"
    path.write_text(
        "The meeting ended at 12:00.\n\nActions from the session\n\tTopic\n\tAction\n"
        "\tOwner\n\tDue\n\tStatus\n\tDate completed\n\n"
        "\tInvites\n\tUpdate the meeting invites\n\n\tGemma Clarke\n\t\n\tDone\n"
        "\t12/02/2027\n\n"
        "\tPeer review\n\tDraft the peer review protocol\n\tJo Whitfield / Tom Hughes\n"
        "\tNext meeting\n\tIn progress\n\t\n\n"
        "\tAudit summary\n\tPriya Shah will circulate the audit summary by 31 March.\n\t\n"
        "\t\n\t\n\t\n\n"
        "\tData returns\n\tSend the Q3 returns\n\tAll members\n\t28/02/2027\n \n"
        "Signed off by the chair.\n", encoding="utf-8")
    items = minutes.read(path, ANCHOR)
    assert [(i.topic, i.owners_text, i.due, i.due_source, i.status, i.completed)
            for i in items] == [
        ("Invites", ("Gemma Clarke",), None, None, "done", date(2027, 2, 12)),
        ("Peer review", ("Jo Whitfield", "Tom Hughes"), date(2027, 4, 22), "table column Due",
         "open", None),
        ("Audit summary", ("Priya Shah",), date(2027, 3, 31), "stated: 'by 31 March'", "open",
         None),
        ("Data returns", ("All members",), date(2027, 2, 28), "table column Due", "open",
         None)]
    assert items[0].place == "table 1, row 2 (starting 'Invites'), line 11"


def test_action_lines_in_their_forms_and_lines_that_are_none(tmp_path: Path):
    path = tmp_path / "m.md"
    path.write_text("Action: Update the Terms of Reference (owner: Kim)\n"
                    "Action: None.\n"
                    "ACTION – Jo to book the room\n"
                    "All actions were completed.\n"
                    "The action plan is on track.\n"
                    "Action-led audits were discussed at length.\n"
                    "Actions from the session\n"
                    "Action point: Send the paper. Owner: Ann Kowalski; Due: 12/03/2027\n"
                    "Actions:\n"
                    "- Siobhan to present it at the July meeting\n"
                    "2. Tom to report back in two weeks\n"
                    "\n"
                    "- a bullet that is no action\n", encoding="utf-8")
    later = replace(ANCHOR, later=(date(2027, 4, 22), date(2027, 7, 22)))
    items = minutes.read(path, later)
    assert [(i.owner_text, i.due, i.due_source, i.place) for i in items] == [
        ("Kim", None, None, "line 1"), ("Jo", None, None, "line 3"),
        ("Ann Kowalski", date(2027, 3, 12), "stated: '12/03/2027'", "line 8"),
        ("Siobhan", date(2027, 7, 22), "stated: 'at the July meeting'", "line 10"),
        ("Tom", date(2027, 2, 4), "stated: 'in two weeks'", "line 11")]


def test_a_word_table_header_may_be_its_second_row_and_action_owner_is_an_owner(
        tmp_path: Path):
    import docx

    document = docx.Document()
    table = document.add_table(rows=4, cols=3)
    title = table.rows[0].cells[0].merge(table.rows[0].cells[2])
    title.text = "Action log"
    for row, texts in zip(table.rows[1:], (("Action", "Action owner", "Deadline"),
                                           ("Share the tool", "Siobhan", "end of May"),
                                           ("", "", "")), strict=True):
        for cell, text in zip(row.cells, texts, strict=True):
            cell.text = text
    path = tmp_path / "m.docx"
    document.save(str(path))
    (item,) = minutes.read(path, ANCHOR)
    assert (item.owner_text, item.due, item.due_source) == (
        "Siobhan", date(2027, 5, 31), "table column Deadline")
    assert item.place == "table 1, row 3 (starting 'Share the tool')"


def meeting(mid: str, day: date, cancelled: bool = False) -> Meeting:
    return Meeting(id=mid, title=f"Meeting {mid}", start=datetime(day.year, day.month, day.day,
                                                                  14, tzinfo=UTC),
                   duration=timedelta(hours=2), location="", link="", description="",
                   items=(), cancelled=cancelled)


MEETINGS = (meeting("jun", date(2023, 6, 15)), meeting("dec", date(2023, 12, 14)),
            meeting("mar", date(2024, 3, 21)), meeting("jun24", date(2024, 6, 20)))


@pytest.mark.parametrize("start,end,asked,landed", [
    (date(2023, 12, 15), date(2024, 3, 15), "jun", "dec"),  # one day before beats six after
    (date(2023, 12, 10), date(2024, 3, 15), "jun", "dec"),  # inside: the first inside
    (date(2023, 12, 16), date(2024, 3, 19), "jun", "mar"),  # two days each way: the later
    (date(2023, 6, 16), date(2023, 6, 20), "jun", "dec"),  # never the meeting that asked
    (date(2023, 12, 15), date(2024, 3, 15), "", "mar"),  # by hand: only after its start
    (date(2024, 7, 1), date(2024, 9, 1), "jun", "jun24"),  # none after it: the last before
    (date(2024, 7, 1), date(2024, 9, 1), "", None),  # by hand: nothing from its start on
])
def test_the_meeting_a_nudge_lands_on(start: date, end: date, asked: str,
                                      landed: str | None):
    g = replace(ROSTER, meetings=MEETINGS)
    found = nudge_meeting(g, Nudge(1, "g", asked, "x", start, end))
    assert (found.id if found else None) == landed


def test_a_cancelled_meeting_is_never_the_nearest():
    g = replace(ROSTER, meetings=(MEETINGS[0], meeting("dec", date(2023, 12, 14), True),
                                  *MEETINGS[2:]))
    found = nudge_meeting(g, Nudge(1, "g", "jun", "x", date(2023, 12, 15), date(2024, 3, 15)))
    assert found is not None and found.id == "mar"


@pytest.fixture
def bad_group(clerk: Callable[..., Result]) -> Callable[[Path], Result]:
    def run(path: Path) -> Result:
        return clerk("minutes", "import", str(path), "--meeting", "2027-q1")
    return run


def test_a_word_table_with_no_action_column_is_an_error_naming_it(
        bad_group: Callable[[Path], Result], tmp_path: Path, clerk: Callable[..., Result]):
    import docx

    document = docx.Document()
    attendees = document.add_table(rows=2, cols=2)  # not about actions: passed over
    attendees.rows[0].cells[0].text, attendees.rows[0].cells[1].text = "Organisation", "Name"
    table = document.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Topic", "Owner", "Due"), strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells, ("Audit", "Ann", "31/03/2027"), strict=True):
        cell.text = text
    path = tmp_path / "minutes.docx"
    document.save(str(path))
    result = bad_group(path)
    assert result.exit_code == 2
    assert (f"{path}: table 2 has no Action column (its header: Topic, Owner, Due); name the "
            "column that holds the actions 'Action'; nothing was imported") in result.output
    assert json.loads(clerk("actions", "list", "--status", "all", "--json").output) == []


@pytest.mark.parametrize("content,message", [
    ("| Topic | Who | Deadline |\n|---|---|---|\n| Audit | Ann | 31/03/2027 |\n",
     "m.md: table 1 has no Action column (its header: Topic, Who, Deadline)"),
    ("| Topic | Action | Date completed |\n|---|---|---|\n| Invites | Kim will do it | "
     "yesterday |\n", "m.md: table 1, row 2 (starting 'Invites'), line 3: Date completed "
     "'yesterday' is not a date"),
    ("", "m.md is empty; nothing was imported"),
    ("\n\n", "m.md: no actions found"),
])
def test_bad_markdown_minutes_say_the_file_and_place(bad_group: Callable[[Path], Result],
                                                     tmp_path: Path, content: str,
                                                     message: str):
    path = tmp_path / "m.md"
    path.write_text(content, encoding="utf-8")
    result = bad_group(path)
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_zip_that_is_not_word_is_an_error(bad_group: Callable[[Path], Result],
                                            tmp_path: Path):
    path = tmp_path / "minutes.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a document")
    result = bad_group(path)
    assert result.exit_code == 2 and f"{path} is not a Word document (.docx)" in result.output


def test_a_docx_that_unpacks_too_far_is_refused_before_it_is_opened(
        bad_group: Callable[[Path], Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import docx

    from bot.listen import papers

    path = tmp_path / "minutes.docx"
    document = docx.Document()
    document.add_paragraph("Action: Tina James will do it")
    document.save(str(path))
    monkeypatch.setattr(papers, "ZIP_UNPACKED", 1000)  # a real bomb is 256 MB; this is less
    result = bad_group(path)
    assert result.exit_code == 2
    assert f"{path} unpacks to more than a Word document can" in result.output
