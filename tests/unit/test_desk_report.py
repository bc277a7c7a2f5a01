"""The admin's status report: what STATUS by mail answers and what her weekly digest carries —
the next meeting's attendance and returns, overdue and stalled actions, and what waits for her
(held messages, questions, papers kept back, bounces) — as an HTML table with a CSV attached."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from bot import config as config_mod
from bot.domain.errors import TransportError
from bot.domain.model import Group
from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.plan import admin_mail, desk_report
from bot.plan.state import OwedReply, Quarantined, State
from bot.render.report_csv import COLUMNS, report_csv
from bot.render.templates import render
from bot.transports.memory import MemoryTransport
from tests.conftest import EXAMPLE
from tests.unit.test_desk import PREVIEW_AT, Office, previewed
from tests.unit.test_desk import text as plain_text
from tests.unit.test_templates import WellFormed

GROUP = "qa-leads"
KIM = "kim.osei@network.example"  # the admin
AMAN = "aman.sekhon-gill@bucks.example"
DANIELLE = "danielle.mckee@wokingham.example"
GAVIN = "gavin.swales@kent.example"
SANDRA = "sandra.davey@slough.example"
STUART = "stuart.webber@southampton.example"
NOW = datetime(2027, 3, 23, 10, tzinfo=UTC)  # a Tuesday: no digest goes today
Q2_START = "2027-04-15T14:00:00+01:00"


def add_action(store: Store, text: str, owner: str, due: date, at: datetime) -> int:
    return store.add_action({"group_id": GROUP, "meeting_id": "2027-q1", "topic": "LADO",
                             "text": text, "owners": (owner,), "due": due}, "test", "test", at)


def keep_back(store: Store, name: str, at: datetime, sender: str = GAVIN,
              meeting: str = "2027-q2") -> int:
    return store.keep_back({"group_id": GROUP, "meeting_id": meeting, "organisation": "Kent",
                            "sender": sender, "message_id": "<paper@kent.example>",
                            "name": name, "path": f"/quarantine/{name}", "size": 100,
                            "reason": "a macro-enabled document"}, at)


def member_row(group_dir: Path, email: str) -> str:
    group = config_mod.load(group_dir.parent).group(GROUP)
    return next(m.row for m in group.members if m.email == email)


def busy(store: Store, group_dir: Path) -> None:
    """A group in the run-up to its second meeting, with something in every section."""
    (group_dir / "minutes").mkdir()  # the first meeting's minutes, held for her approval
    (group_dir / "minutes" / "2027-q1.docx").write_bytes(b"PK minutes")
    for email, answer, why in ((AMAN, "ACCEPTED", ""), (DANIELLE, "DECLINED", "On leave"),
                               (GAVIN, "TENTATIVE", "")):
        store.record_rsvp(GROUP, "2027-q2", "", email, answer, why, 0, NOW - timedelta(days=3))
    store.mark_submitted(GROUP, "2027-q2", "rfi", "Kent", "submitted", NOW - timedelta(days=2))
    store.mark_submitted(GROUP, "2027-q2", "rfi", "Slough", "nil", NOW - timedelta(days=2))
    # chased on 27 January, 2 and 12 February: no longer chased
    add_action(store, "Share the audit tool", DANIELLE, date(2027, 2, 5),
               datetime(2027, 1, 20, 12, tzinfo=UTC))
    # due last Friday, chased twice so far
    add_action(store, "Circulate the LADO figures", AMAN, date(2027, 3, 19),
               datetime(2027, 3, 1, 12, tzinfo=UTC))
    store.add_mailed_minutes(
        {"group_id": GROUP, "meeting_id": "2027-q1", "path": "/papers/minutes-q1.docx",
         "name": "minutes-q1.docx", "digest": "0" * 64, "sender": KIM,
         "message_id": "<minutes@network.example>", "at": NOW - timedelta(days=1)},
        [{"n": 1, "text": "Who is 'Jo'?", "pending": {},
          "choices": [["Joanne Beale", ["joanne.beale@bracknell.example"]], ["Nobody", []]]}])
    keep_back(store, "returns.xlsm", NOW - timedelta(days=1))
    store.record_bounce(STUART, "5.1.1", "user unknown", True, None, NOW - timedelta(days=5),
                        roster_row=member_row(group_dir, STUART))
    store.note_config_problems(["group.toml:12: meeting.start: not a date"],
                               NOW - timedelta(hours=2))


def sent(ex: Executor, kind: str = "") -> list[EmailMessage]:
    assert isinstance(ex.transport, MemoryTransport)
    return [m for m in ex.transport.sent if kind in str(m["X-Clerk-Key"])]


def report_now(store: Store, config_dir: Path, now: datetime = NOW) -> dict[str, Any]:
    group = config_mod.load(config_dir).group(GROUP)
    return desk_report.report(group, snapshot.state(store), now)


def test_the_report_shows_the_meeting_the_actions_and_what_waits_for_her(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path,
        group_dir: Path):
    busy(store, group_dir)
    ex = make_executor()
    assert isinstance(ex.transport, MemoryTransport)
    ex.transport.fail[SANDRA] = TransportError("550 mailbox full", retryable=False)
    ex.tick(NOW)  # records the minutes, held; what is due to Sandra Davey fails
    ex.tick(NOW + timedelta(minutes=1))  # the admin is told of it, and still sees it listed
    assert [k for k in sent(ex, "/-/undelivered/")]
    r = report_now(store, config_dir)
    json.dumps(r)  # JSON-able: a template's context and the CSV's source
    m = r["meeting"]
    assert isinstance(m, dict)
    assert (m["title"], m["start"], m["when"]) == (
        "QA Leads Network meeting", Q2_START, "Thu 15 April 2027, 14:00")  # local, not UTC
    assert [p["name"] for p in m["attendance"]["accepted"]] == ["Aman Sekhon-Gill"]
    assert [(p["name"], p["comment"]) for p in m["attendance"]["apologies"]] == [
        ("Danielle McKee", "On leave")]
    assert [p["name"] for p in m["attendance"]["tentative"]] == ["Gavin Swales"]
    assert m["counts"] == {"accepted": 1, "apologies": 1, "tentative": 1, "no_answer": 18}
    returns = {x["organisation"]: x["status"] for x in m["returns"]}
    assert (returns["Kent"], returns["Slough"], returns["Medway"]) == (
        "submitted", "nil return", "outstanding")
    assert m["returns_outstanding"] == 14
    assert [(a["ref"], a["text"], a["owners"], a["due_text"], a["days_overdue"])
            for a in r["overdue"]] == [
        ("#2", "Circulate the LADO figures", "Aman Sekhon-Gill", "Fri 19 March 2027", 4)]
    assert [(a["ref"], a["owners"], a["last_chased_text"]) for a in r["stalled"]] == [
        ("#1", "Danielle McKee", "Fri 12 February 2027")]
    # the bouncing address is not sent the minutes: 20 members, not 21
    assert [h["text"] for h in r["held"]] == [
        "the minutes of the QA Leads Network meeting on Thu 14 January 2027, to 20 members: "
        "held for your approval"]
    assert [(q["ref"], q["text"], q["choices"], q["file"]) for q in r["questions"]] == [
        ("Q1", "Who is 'Jo'?", ["Joanne Beale", "Nobody"], "minutes-q1.docx")]
    assert [(q["file"], q["from"], q["why"], q["new"]) for q in r["quarantined"]] == [
        ("returns.xlsm", "Gavin Swales", "a macro-enabled document", True)]
    assert [b["name"] for b in r["bouncing"]] == ["Stuart Webber"]
    assert [(u["to"], u["state"], u["error"], u["at_text"]) for u in r["undelivered"]] == 2 * [
        ("Sandra Davey", "failed", "550 mailbox full", "Tue 23 March 2027, 10:00")]
    assert r["config_problems"] == ["group.toml:12: meeting.start: not a date"]
    assert r["needs_her"] is True
    assert r["headline"] == ("minutes held, 1 question, 1 paper kept back, 1 address bouncing, "
                             "2 messages undelivered, the config is broken, 1 overdue action, "
                             "1 action no longer chased")
    # the digest: the same content an hour later, another once something changes
    assert report_now(store, config_dir, NOW + timedelta(hours=1))["digest"] == r["digest"]
    store.record_rsvp(GROUP, "2027-q2", "", SANDRA, "ACCEPTED", "", 0, NOW)
    assert report_now(store, config_dir)["digest"] != r["digest"]


def test_nothing_waiting_is_nothing_needing_her(store: Store, config_dir: Path):
    r = report_now(store, config_dir)
    assert (r["needs_her"], r["headline"]) == (False, "nothing needs you")
    assert (r["held"], r["questions"], r["quarantined"], r["bouncing"], r["overdue"],
            r["stalled"]) == ([], [], [], [], [], [])


def csv_rows(message: EmailMessage) -> list[list[str]]:
    (attachment,) = message.iter_attachments()
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "text/csv"
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes) and data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_status_by_mail_is_one_message_with_a_table_and_the_csv(
        make_executor: Callable[[], Executor], store: Store, group_dir: Path):
    busy(store, group_dir)
    office = Office(make_executor, store)
    office.tick(NOW)
    # she writes STATUS to clerk, from her mailbox, with her signature under it
    outcome = office.mail("STATUS\n\nKind regards\nKim", NOW + timedelta(minutes=5),
                          subject="Where are we?", message_id="<status@network.example>")
    assert outcome.handled, outcome.detail
    office.tick(NOW + timedelta(minutes=6))
    ex = office.ex
    answers = [m for m in sent(ex) if "/-/reply/" in str(m["X-Clerk-Key"])]
    assert len(answers) == 2  # what was done, and the status in a message of its own
    (message,) = [m for m in answers if list(m.iter_attachments())]  # the one with the CSV
    (confirm,) = [m for m in answers if m is not message]
    assert "STATUS: the status follows in a message of its own" in plain_text(confirm)
    assert str(message["To"]) == f"Kim Osei <{KIM}>"
    assert str(message["Subject"]) == "Status of South Downs QA Leads Network"
    assert str(message["In-Reply-To"]) == "<status@network.example>"  # in her thread
    html = message.get_body(("html",))
    assert html is not None
    page = html.get_content()
    assert "<table" in page and "<td" in page
    for shown in ("Danielle McKee", "On leave", "Thu 15 April 2027, 14:00", "returns.xlsm",
                  "Who is &#39;Jo&#39;?", "Stuart Webber", "Circulate the LADO figures",
                  "no longer chased", "held for your approval"):
        assert shown in page, shown
    assert "2027-q2" not in page and "+00:00" not in page  # no ids, no UTC
    plain = message.get_body(("plain",))
    assert plain is not None and "Apologies:\r\n- Danielle McKee (Wokingham): On leave" in \
        plain.get_content()
    rows = csv_rows(message)
    assert rows[0] == list(COLUMNS)
    assert ["attendance", "QA Leads Network meeting, Thu 15 April 2027, 14:00",
            "Danielle McKee (Wokingham)", "2027-04-15 14:00", "apologies", "On leave",
            ""] in rows
    assert ["return", "QA Leads Network meeting, Thu 15 April 2027, 14:00", "Slough",
            "2027-04-15 14:00", "nil return", "", ""] in rows
    sections = [row[0] for row in rows[1:]]
    for section in ("config problem", "held", "question", "paper kept back", "bouncing",
                    "action no longer chased", "overdue action"):
        assert section in sections, section
    assert sections.count("attendance") == 21  # the bouncing member is still a member
    # she has now been told of the paper: it no longer counts as needing her
    assert store.quarantined(GROUP, unreported=True) == []
    # made once, sent once: the same message delivered again, and later plans, add nothing
    again = office.mail("STATUS\n\nKind regards\nKim", NOW + timedelta(minutes=20),
                        subject="Where are we?", message_id="<status@network.example>")
    assert "already" in again.detail, again.detail
    office.tick(NOW + timedelta(minutes=30))
    office.tick(NOW + timedelta(days=1))
    assert len([m for m in sent(office.ex) if "/-/reply/" in str(m["X-Clerk-Key"])]) == 2
    assert [r.about for r in store.reply_rows()].count("status") == 1


def digests(ex: Executor) -> list[tuple[date, str, str]]:
    """(day, subject, text) of each weekly digest sent."""
    return [(parsedate_to_datetime(str(m["Date"])).date(), str(m["Subject"]),
             m.get_body(("plain",)).get_content().replace("\r\n", "\n"))  # type: ignore[union-attr]
            for m in sent(ex, "/-/admin-digest/")]


def run(ex: Executor, first: date, last: date) -> None:
    day = first
    while day <= last:
        for hour in (7, 9, 12, 17):
            ex.tick(datetime(day.year, day.month, day.day, hour, tzinfo=UTC))
        day += timedelta(days=1)


def test_the_digest_goes_weekly_only_when_something_changed_or_needs_her(
        make_executor: Callable[[], Executor], store: Store):
    ex = make_executor()
    run(ex, date(2027, 2, 23), date(2027, 3, 1))
    assert [(d, s) for d, s, _ in digests(ex)] == [
        (date(2027, 3, 1), "South Downs QA Leads Network weekly digest: nothing needs you")]
    (row,) = [r for r in store.rows() if r.kind == "admin_digest"]
    assert row.sent_at == datetime(2027, 3, 1, 9, tzinfo=UTC)  # the chasers' time, Monday
    # a paper kept back just after it: told the next Monday, not before (one a week at most)
    keep_back(store, "returns.xlsm", datetime(2027, 3, 1, 9, 30, tzinfo=UTC))
    for hour in (10, 11, 16, 23):
        ex.tick(datetime(2027, 3, 1, hour, tzinfo=UTC))
    run(ex, date(2027, 3, 2), date(2027, 3, 8))
    days = [d for d, _, _ in digests(ex)]
    assert days == [date(2027, 3, 1), date(2027, 3, 8)]
    _, subject, text = digests(ex)[-1]
    assert subject == "South Downs QA Leads Network weekly digest: 1 paper kept back"
    assert "returns.xlsm (new), from Gavin Swales, Kent" in text
    # nothing changed since, and she knows of the paper: no digest
    run(ex, date(2027, 3, 9), date(2027, 3, 15))
    assert len(digests(ex)) == 2
    # an answer changes what she would read: it goes on the next digest day
    store.record_rsvp(GROUP, "2027-q2", "", AMAN, "ACCEPTED", "", 0,
                      datetime(2027, 3, 16, 11, tzinfo=UTC))
    run(ex, date(2027, 3, 16), date(2027, 3, 29))
    assert [d for d, _, _ in digests(ex)][2:] == [date(2027, 3, 22)]
    assert "Accepted:\n- Aman Sekhon-Gill (Buckinghamshire)" in digests(ex)[-1][2]
    assert {r.state for r in store.rows() if r.kind == "admin_digest"} == {"sent"}


def test_the_digest_goes_every_week_while_something_needs_her(
        make_executor: Callable[[], Executor], store: Store):
    add_action(store, "Circulate the LADO figures", AMAN, date(2027, 3, 5),
               datetime(2027, 2, 1, 12, tzinfo=UTC))
    ex = make_executor()
    run(ex, date(2027, 3, 1), date(2027, 3, 22))
    assert [(d, s) for d, s, _ in digests(ex)] == [
        (date(2027, 3, 1), "South Downs QA Leads Network weekly digest: nothing needs you"),
        (date(2027, 3, 8), "South Downs QA Leads Network weekly digest: 1 overdue action"),
        (date(2027, 3, 15), "South Downs QA Leads Network weekly digest: 1 action no longer "
                            "chased"),
        (date(2027, 3, 22), "South Downs QA Leads Network weekly digest: 1 action no longer "
                            "chased (nothing new)")]
    # each says what is new since the last, and marks it; the same news is not news again
    texts = [text for _, _, text in digests(ex)]
    assert "New since" not in texts[0] and "(new)" not in texts[0]  # her first: no marks
    assert "New since your digest of Mon 1 March 2027: 1 overdue action" in texts[1]
    assert "#1 (new) LADO: Circulate the LADO figures" in texts[1]
    assert "New since your digest of Mon 8 March 2027: 1 action no longer chased" in texts[2]
    assert "#1 (new) LADO: Circulate the LADO figures" in texts[2]
    assert "Nothing new needs you since your digest of Mon 15 March 2027." in texts[3]
    assert "#1 LADO: Circulate the LADO figures\n" in texts[3]  # still listed, not new
    # ... and so in the spreadsheet: its last column
    stalled = [[row for row in csv_rows(m) if row[0] == "action no longer chased"]
               for m in sent(ex, "/-/admin-digest/")[2:]]
    assert [[row[-1] for row in found] for found in stalled] == [["new"], [""]]


@pytest.mark.parametrize("day,expected", [("wednesday", date(2027, 3, 3)), ("off", None)])
def test_the_digest_day_is_the_groups(make_executor: Callable[[], Executor], group_dir: Path,
                                      day: str, expected: date | None):
    with (group_dir / "group.toml").open("a") as f:
        f.write(f'\n[desk]\ndigest_day = "{day}"\n')
    ex = make_executor()
    run(ex, date(2027, 3, 1), date(2027, 3, 7))
    assert [d for d, _, _ in digests(ex)] == ([expected] if expected else [])


def test_the_plan_shows_the_next_digest(make_executor: Callable[[], Executor],
                                        store: Store):
    ex = make_executor()
    ex.current_plan(datetime(2027, 3, 1, 8, tzinfo=UTC))
    assert not [m for m in ex.messages() if m.kind == "admin_digest"]
    assert ex.units.until is not None and ex.units.until <= datetime(
        2027, 3, 1, 9, tzinfo=UTC)  # planned again when it falls due
    ex.current_plan(datetime(2027, 3, 1, 9, 0, 30, tzinfo=UTC))
    (digest,) = [m for m in ex.messages() if m.kind == "admin_digest"]
    assert digest.key.startswith(f"{GROUP}/-/admin-digest/{KIM}/2027-W09/")
    assert digest.reason == "the admin's weekly digest: nothing needs you; her first"


# --- what comes from outside: names, file names ----------------------------------------------

def hostile_group() -> Group:
    group = config_mod.load(EXAMPLE.parent).group(GROUP)
    first, *rest = group.members
    return replace(group, members=(
        replace(first, name="=HYPERLINK(\"http://evil.example\",\"x\")",
                organisation="<script>alert(1)</script>"), *rest))


def hostile_state(group: Group) -> State:
    first = group.members[0]
    return State(quarantined=(
        Quarantined(1, GROUP, "2027-q1", "+Kent", first.email, "@SUM(1+1)<img src=x>.pdf",
                    True, "-2+3 a program", datetime(2027, 1, 2, tzinfo=UTC), False),))


def test_csv_cells_never_start_a_formula():
    group = hostile_group()
    r = desk_report.report(group, hostile_state(group), datetime(2027, 1, 4, 10, tzinfo=UTC))
    rows = list(csv.reader(io.StringIO(report_csv(r).decode("utf-8-sig"), newline="")))
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], cells
    paper = next(row for row in rows if row[0] == "paper kept back")
    assert paper[1:3] == ["'@SUM(1+1)<img src=x>.pdf",
                          "'=HYPERLINK(\"http://evil.example\",\"x\") (+Kent)"]
    assert paper[4:] == ["kept back", "'-2+3 a program", "new"]  # not yet in a report
    assert ["attendance", "QA Leads Network meeting, Thu 14 January 2027, 14:00",
            "'=HYPERLINK(\"http://evil.example\",\"x\") (<script>alert(1)</script>)",
            "2027-01-14 14:00", "no answer", "", ""] in rows


def test_names_and_file_names_are_text_in_the_html():
    group = hostile_group()
    now = datetime(2027, 1, 4, 10, tzinfo=UTC)
    reply = OwedReply(1, GROUP, KIM, "Kim Osei", "Re: STATUS", "", "<s@x>", now, "status")
    message = admin_mail.status_reply(group, reply, group.admin, "k",
                                       hostile_state(group), now)
    page = render(group, "status", "html", message.context)
    parser = WellFormed()
    parser.feed(page)
    parser.close()
    assert parser.stack == [] and "<script" not in page and "<img" not in page
    text = "".join(parser.text)
    assert "<script>alert(1)</script>" in text and "@SUM(1+1)<img src=x>.pdf" in text


@pytest.mark.parametrize("how,why", [
    ("HOLD", "held: you answered HOLD to its preview"),
    ("required", "held until you answer APPROVE to its preview")])
def test_a_pack_she_holds_is_in_her_status_with_why(
        make_executor: Callable[[], Executor], store: Store, group_dir: Path, how: str,
        why: str):
    if how == "required":
        with (group_dir / "group.toml").open("a") as f:
            f.write('\n[desk]\npack_approval = "required"\n')
    office = Office(make_executor, store)
    office.tick(datetime(2026, 12, 1, 10, tzinfo=UTC))
    preview = previewed(office)
    if how == "HOLD":
        office.mail("HOLD", PREVIEW_AT + timedelta(hours=1), answering=preview)
    day = datetime(2027, 4, 8, 9, tzinfo=UTC)  # the pack's day: it stays back
    assert not [k for k in office.tick(day) if "/pack/" in k]
    office.mail("STATUS", day + timedelta(hours=1), subject="status")
    office.tick(day + timedelta(hours=1))
    (status,) = [m for m in office.inbox() if list(m.iter_attachments())
                 and str(m["Subject"]).startswith("Status of")]
    said = " ".join(plain_text(status).split())
    assert ("Needs you: agenda pack held" in said and "- the agenda pack of the QA Leads "
            f"Network meeting on Thu 15 April 2027, to 21 members: {why}" in said), said
    assert "July" not in said.split("NEXT MEETING")[0]  # not the later meetings' packs
