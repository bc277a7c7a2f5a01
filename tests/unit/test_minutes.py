"""Importing minutes: the seed's nine actions and its nudge, lenient names that are reported,
the .docx, Markdown and text forms, and bad input that imports nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import EXAMPLE, ROOT, edit, read_reply

SEED = ROOT.parent / "shared" / "seed" / "qa-leads-minutes-2023-06-15.txt"
SEED_GROUP = ROOT / "tests" / "data" / "seed-group"
KIM = "kimesha.osbourne@hampshire.example"


@pytest.fixture
def seed_group(config_dir: Path) -> Path:
    """The seed's group: its roster, its admin, and the meeting of the minutes."""
    return seed_group_at(config_dir)


def seed_group_at(config_dir: Path) -> Path:
    """The seed's group, alone in ``config_dir``."""
    shutil.rmtree(config_dir / "example")
    folder = config_dir / "seslip"
    shutil.copytree(EXAMPLE, folder)
    shutil.copy(SEED_GROUP / "roster.csv", folder / "roster.csv")
    toml = folder / "group.toml"
    edit(toml, 'id = "qa-leads"', 'id = "seslip-qa"')
    edit(toml, 'name = "Kim Osei"\nemail = "kim.osei@network.example"',
         f'name = "Kimesha Osbourne"\nemail = "{KIM}"')
    edit(toml, "go_live = 2026-12-01", "go_live = 2023-06-01")
    with toml.open("a") as f:
        f.write('\n[[meeting]]\nid = "2023-06"\nstart = 2023-06-15T14:00:00\n'
                'duration = "3h"\n')
    return folder


def imported(clerk: Callable[..., Result], path: Path, *extra: str) -> dict[str, object]:
    result = clerk("minutes", "import", str(path), "--meeting", "2023-06", "--json", *extra)
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.output)
    return out


@pytest.mark.skipif(not SEED.exists(), reason="the seed minutes are in ../shared")
def test_the_seed_minutes_yield_nine_actions_and_a_nudge(
        clerk: Callable[..., Result], seed_group: Path, store_path: Path):
    out = imported(clerk, SEED)
    assert len(out["actions"]) == 9 and out["nudges"] == 1  # type: ignore[arg-type]
    assert out["unresolved"] == []
    # "Kim" for "Kimesha": matched, and said so
    assert any("'Kim Osbourne' → Kimesha Osbourne" in n for n in out["notes"])  # type: ignore
    rows = json.loads(clerk("actions", "list", "--status", "all", "--json").output)
    owners = sorted({o for r in rows for o in r["owners"]})
    assert owners == sorted(["*", KIM, "aman.sekhon-gill@bucks.example",
                             "danielle.mckenzie@wokingham.example",
                             "tina.james@brighton-hove.example"])
    done = {r["topic"]: r["completed"] for r in rows if r["status"] == "done"}
    assert done == {"Meeting invites": "2023-06-22", "Meeting length": "2023-06-22",
                    "Agenda Setting": "2023-06-23", "Terms of Reference": "2023-06-23"}
    assert {r["topic"] for r in rows if r["owners"] == ["*"]} == {"LADO Audit Tool"}
    from bot.engine.store import Store

    store = Store(f"sqlite:///{store_path}")
    (nudge,) = store.nudges()
    assert "triangulate feedback" in nudge.text and nudge.meeting_id == "2023-06"
    assert (str(nudge.window_start), str(nudge.window_end)) == ("2023-12-15", "2024-03-15")
    store.dispose()
    assert out["next_agenda"] == ["Voice of the child",
                                  "Triangulation of feedback from families as part of audits"]
    again = imported(clerk, SEED)  # the same minutes twice: nothing new
    assert again["actions"] == [] and again["nudges"] == 0 and again["already"] == 10
    assert again["next_agenda"] == []


def test_markdown_with_action_lines_and_lenient_names(
        clerk: Callable[..., Result], seed_group: Path, tmp_path: Path):
    minutes = tmp_path / "minutes.md"
    minutes.write_text(
        "# QA Leads, 15 June 2023\n\n"
        "Action: Aman Sekhon–Gill will share the LADO audit tool.\n"  # an en dash
        "Action: Danielle Mackenzie will ask the LADO workers.\n"  # a letter out of place
        "Action: Nobody Known will do something.\n", encoding="utf-8")
    out = imported(clerk, minutes, "--yes")
    assert len(out["actions"]) == 2  # type: ignore[arg-type]
    assert any("'Danielle Mackenzie' → Danielle McKenzie" in n
               for n in out["notes"])  # type: ignore[union-attr]
    (unknown,) = out["unresolved"]  # type: ignore[misc]
    assert unknown["owner"] == "Nobody Known" and unknown["line"] == 5
    text = clerk("minutes", "import", str(minutes), "--meeting", "2023-06", "--yes").output
    assert "2 already imported" in text and "NOT imported, line 5" in text


def test_a_markdown_table(clerk: Callable[..., Result], seed_group: Path, tmp_path: Path):
    minutes = tmp_path / "minutes.md"
    minutes.write_text(
        "| Topic | Action | Date completed |\n|---|---|---|\n"
        "| Website | Kim Osbourne will circulate the website link | |\n"
        "| Invites | Kim Osbourne will review the invites | 22/06/2023 |\n", encoding="utf-8")
    out = imported(clerk, minutes)
    assert len(out["actions"]) == 2  # type: ignore[arg-type]
    rows = json.loads(clerk("actions", "list", "--status", "all", "--json").output)
    assert {(r["topic"], r["status"]) for r in rows} == {("Website", "open"),
                                                         ("Invites", "done")}


def test_a_word_document(clerk: Callable[..., Result], seed_group: Path, tmp_path: Path):
    import docx

    document = docx.Document()
    document.add_paragraph("Action: Tina James will circulate the questionnaire.")
    table = document.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Topic", "Action", "Date completed"),
                          strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells,
                          ("Direct payments", "Tina James will circulate the questionnaire",
                           ""), strict=True):
        cell.text = text
    path = tmp_path / "minutes.docx"
    document.save(str(path))
    out = imported(clerk, path)
    assert len(out["actions"]) == 1  # type: ignore[arg-type]  (the table wins)


@pytest.mark.parametrize("name,content,message", [
    ("minutes.docx", b"this is not a zip file", "is not a Word document"),
    ("minutes.txt", b"We met and talked.\nNothing was agreed.\n", "no actions found"),
    ("minutes.pdf", b"%PDF-1.4", "is not a PDF clerk can read"),
    ("minutes.odt", b"PK", "must be .docx, .pdf, .md or .txt"),
    ("minutes.txt", "Action: Tina James will do it\n".encode("utf-16"), "is not UTF-8"),
])
def test_bad_minutes_import_nothing(clerk: Callable[..., Result], seed_group: Path,
                                    tmp_path: Path, name: str, content: bytes,
                                    message: str):
    path = tmp_path / name
    path.write_bytes(content)
    result = clerk("minutes", "import", str(path), "--meeting", "2023-06")
    assert result.exit_code == 2 and message in result.output and name in result.output
    assert json.loads(clerk("actions", "list", "--status", "all", "--json").output) == []


def test_an_unknown_meeting_is_a_clear_error(clerk: Callable[..., Result], seed_group: Path,
                                             tmp_path: Path):
    path = tmp_path / "m.txt"
    path.write_text("Action: Tina James will do it\n")
    result = clerk("minutes", "import", str(path), "--meeting", "1999-01")
    assert result.exit_code == 2 and "meeting '1999-01' is not in any group" in result.output


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite"


def test_minutes_are_held_for_approval_then_go_to_every_member(
        make_executor: Callable[..., object], clerk: Callable[..., Result], group_dir: Path,
        tmp_path: Path, store: object):
    from datetime import UTC, datetime

    from bot.transports.memory import MemoryTransport

    if not str(getattr(store, "url", "")).startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    ex = make_executor()
    ex.tick(datetime(2026, 12, 1, 10, tzinfo=UTC))  # q1 invitations go to the roster
    with (group_dir / "roster.csv").open("a") as f:  # someone joins after the q1 meeting
        f.write("Nia Newton,nia.newton@kent.example,Kent,member\n")
    ex = make_executor()
    ex.tick(datetime(2027, 1, 15, 10, tzinfo=UTC))
    minutes = tmp_path / "QA minutes.docx"
    minutes.write_bytes(b"PK minutes")
    sent = clerk("--now", "2027-01-15T11:00:00+00:00", "minutes", "send", str(minutes),
                 "--meeting", "2027-q1")
    assert sent.exit_code == 0 and "held for approval" in sent.output
    assert (group_dir / "minutes" / "2027-q1.docx").read_bytes() == b"PK minutes"
    day = datetime(2027, 1, 18, 10, tzinfo=UTC)
    assert not [k for k in make_executor().tick(day).sent if "/minutes/" in k]
    rows = json.loads(clerk("plan", "--json", "--now", day.isoformat()).output)
    held = [r for r in rows if r["kind"] == "minutes"]
    assert len(held) == 22 and {r["state"] for r in held} == {"held"}
    # the minutes are in: no reminder to the admin that they are due
    assert not [r for r in rows if r["kind"] == "minutes_due" and r["meeting"] == "2027-q1"]
    assert clerk("approve", "qa-leads/2027-q1/minutes/").output.count("approved") == 22
    ex = make_executor()
    sent_keys = [k for k in ex.tick(day).sent if "/minutes/" in k]
    assert len(sent_keys) == 22
    assert isinstance(ex.transport, MemoryTransport)
    by_to = {str(m["To"]).split("<")[-1].rstrip(">"): m for m in ex.transport.sent
             if "/minutes/" in str(m["X-Clerk-Key"])}
    old, new = by_to["gavin.swales@kent.example"], by_to["nia.newton@kent.example"]
    assert [p.get_filename() for p in old.iter_attachments()] == ["2027-q1.docx"]
    assert "network.example/qa-leads" in old.get_body(("plain",)).get_content()
    assert "joining instructions" not in old.get_body(("plain",)).get_content().lower()
    assert "To join the website" in new.get_body(("plain",)).get_content()
    assert "To join the website" not in old.get_body(("plain",)).get_content()
    # someone joining after the minutes went gets them too, without a second approval
    with (group_dir / "roster.csv").open("a") as f:
        f.write("Ola Late,ola.late@kent.example,Kent,member\n")
    late = make_executor().tick(day + timedelta(days=1)).sent
    assert "qa-leads/2027-q1/minutes/ola.late@kent.example" in late


def test_a_stray_file_in_the_minutes_folder_is_a_warning(clerk: Callable[..., Result],
                                                         group_dir: Path):
    (group_dir / "minutes").mkdir()
    (group_dir / "minutes" / "notes.docx").write_bytes(b"x")
    result = clerk("check")
    assert result.exit_code == 0
    assert "warning:" in result.output and "notes.docx" in result.output


def test_an_organisation_in_brackets_settles_a_tie_and_a_mismatch_is_reported(
        clerk: Callable[..., Result], seed_group: Path, tmp_path: Path):
    with (seed_group / "roster.csv").open("a") as f:  # two people of one name
        f.write("Douglas Sinclair,d.sinclair@west-sussex.example,West Sussex,member\n")
    minutes = tmp_path / "m.md"
    minutes.write_text(
        "Action: Douglas Sinclair (West Sussex) will share the LADO framework.\n"
        "Action: Douglas Sinclair will ask about thresholds.\n"
        "Action: Tina James (Surrey) will circulate the questionnaire.\n", encoding="utf-8")
    out = imported(clerk, minutes, "--yes")
    assert len(out["actions"]) == 2  # type: ignore[arg-type]
    notes = " ".join(out["notes"])  # type: ignore[arg-type]
    assert "(West Sussex) → Douglas Sinclair <d.sinclair@west-sussex.example>" in notes
    assert "the minutes say Surrey, the roster Brighton & Hove" in notes
    (tie,) = out["unresolved"]  # type: ignore[misc]
    assert tie["owner"] == "Douglas Sinclair" and len(tie["candidates"]) == 2


def test_the_chair_approves_the_minutes_by_replying(
        make_executor: Callable[..., object], group_dir: Path, store: object):
    from datetime import UTC, datetime
    from email.message import EmailMessage

    from bot.engine.inbox import Inbox
    from bot.transports.memory import MemoryTransport

    edit(group_dir / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nminutes_approval = "chair"')
    (group_dir / "minutes").mkdir()
    (group_dir / "minutes" / "2027-q1.pdf").write_bytes(b"%PDF minutes")
    day = datetime(2027, 1, 18, 10, tzinfo=UTC)
    ex = make_executor()
    sent = [k for k in ex.tick(day).sent if "minutes" in k]
    (key,) = sent  # one request, for this version of the file
    assert key.startswith("qa-leads/2027-q1/minutes-approval/sophie.barton@hampshire-iow.")
    assert isinstance(ex.transport, MemoryTransport)
    request = next(m for m in ex.transport.sent if "minutes-approval" in str(m["X-Clerk-Key"]))
    assert [p.get_filename() for p in request.iter_attachments()] == ["2027-q1.pdf"]

    def reply(sender: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, "qa-leads@network.example"
        msg["Subject"] = f"Re: {request['Subject']}"
        msg["In-Reply-To"], msg["Message-ID"] = request["Message-ID"], "<r@x.example>"
        msg.set_content(body)
        return msg

    inbox = Inbox(ex.config, store)  # type: ignore[arg-type]
    other = inbox.apply(read_reply(reply("gavin.swales@kent.example", "APPROVE")), day)
    assert not other.handled and "who was asked to approve" in other.detail
    chair = inbox.apply(read_reply(reply("sophie.barton@hampshire-iow.example",
                                           "Approved, thanks")), day)
    assert chair.handled and "21 message(s) released" in chair.detail
    assert len([k for k in ex.tick(day).sent if "/minutes/" in k]) == 21


def test_a_corrected_file_needs_approving_again(make_executor: Callable[..., object],
                                                group_dir: Path, store: object):
    from datetime import UTC, datetime
    from email.message import EmailMessage

    from bot.engine.inbox import Inbox
    from bot.transports.memory import MemoryTransport

    edit(group_dir / "group.toml", 'zone = "Europe/London"',
         'zone = "Europe/London"\nminutes_approval = "chair"')
    (group_dir / "minutes").mkdir()
    minutes = group_dir / "minutes" / "2027-q1.txt"
    minutes.write_text("version 1")
    day = datetime(2027, 1, 18, 10, tzinfo=UTC)
    ex = make_executor()
    ex.tick(day)
    assert isinstance(ex.transport, MemoryTransport)
    first = next(m for m in ex.transport.sent if "minutes-approval" in str(m["X-Clerk-Key"]))
    minutes.write_text("version 2, corrected")  # the chair asked for a change
    ex = make_executor()
    again = [k for k in ex.tick(day + timedelta(hours=1)).sent if "minutes-approval" in k]
    assert len(again) == 1 and again[0] != str(first["X-Clerk-Key"])
    old = EmailMessage()
    old["From"], old["To"] = "sophie.barton@hampshire-iow.example", "qa-leads@network.example"
    old["Subject"], old["In-Reply-To"] = f"Re: {first['Subject']}", first["Message-ID"]
    old["Message-ID"] = "<old@x.example>"
    old.set_content("APPROVE")
    outcome = Inbox(ex.config, store).apply(read_reply(old), day)  # type: ignore[arg-type]
    assert not outcome.handled and "changed since this request" in outcome.detail


def test_minutes_approved_at_the_weekend_wait_for_monday(
        make_executor: Callable[..., object], clerk: Callable[..., Result], group_dir: Path,
        store: object):
    from datetime import UTC, datetime

    if not str(getattr(store, "url", "")).startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    (group_dir / "minutes").mkdir()
    (group_dir / "minutes" / "2027-q1.txt").write_text("minutes")
    saturday = datetime(2027, 1, 23, 21, 30, tzinfo=UTC)
    make_executor().tick(saturday)
    assert clerk("approve", "qa-leads/2027-q1/minutes/").exit_code == 0
    assert not [k for k in make_executor().tick(saturday).sent if "/minutes/" in k]
    monday = datetime(2027, 1, 25, 8, 5, tzinfo=UTC)
    assert len([k for k in make_executor().tick(monday).sent if "/minutes/" in k]) == 21


def test_next_agenda_items_stop_at_the_next_heading(tmp_path: Path):
    from bot.listen import minutes

    path = tmp_path / "m.md"
    path.write_text("## Items for the next agenda\n\n1. Ofsted readiness\n2. Voice of the "
                    "child\n- Peer review\n\n## Any other business\nNone.\n", encoding="utf-8")
    assert minutes.next_agenda(path) == ["Ofsted readiness", "Voice of the child",
                                         "Peer review"]
    # a plain-text "Date of next meeting: ..." line under the items is not one of them
    path.write_text("Items for the next agenda\n\tVoice of the child in audits\n\n"
                    "Date of next meeting: Thursday 15 July 2027\n", encoding="utf-8")
    assert minutes.next_agenda(path) == ["Voice of the child in audits"]
    path.write_text("Items for the next meeting\n- Peer review\nNext meeting: 15 July\n"
                    "AOB: none\n", encoding="utf-8")
    assert minutes.next_agenda(path) == ["Peer review"]


def test_the_approve_command_minutes_send_prints_works_at_once(
        clerk: Callable[..., Result], tmp_path: Path, group_dir: Path):
    minutes = tmp_path / "minutes.pdf"
    minutes.write_bytes(b"%PDF-1.7 minutes")
    at = ("--now", "2027-01-18T10:00:00+00:00")
    sent = clerk(*at, "minutes", "send", str(minutes), "--meeting", "2027-q1")
    assert sent.exit_code == 0 and "`clerk approve qa-leads/2027-q1/minutes/`" in sent.output
    approved = clerk(*at, "approve", "qa-leads/2027-q1/minutes/")  # no tick in between
    assert approved.exit_code == 0 and approved.output.count("approved") == 21
