"""The run-up to a meeting: the agenda pack with its Word agenda, action tracker, nudges,
proposals, returns register and papers; nudge notes to the chair."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import docx
import pytest
from click.testing import Result

from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests import paper_files
from tests.conftest import read_reply

PACK_DAY = datetime(2027, 4, 8, 10, tzinfo=UTC)  # a week before the 15 April meeting
AMAN = "aman.sekhon-gill@bucks.example"


class Checker(HTMLParser):
    """Well-formed enough: every opened block element is closed, in order."""

    VOID = frozenset({"br", "meta", "img", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()


def setup(store: Store, tmp_path: Path) -> None:
    store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "LADO",
                      "text": "Share the LADO audit tool", "owners": (AMAN,),
                      "due": date(2027, 3, 1)}, "t", "t", datetime(2027, 1, 15, tzinfo=UTC))
    done = store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1",
                             "topic": "Website", "text": "Circulate the website link",
                             "owners": ("kim.osei@network.example",),
                             "due": date(2027, 2, 1)}, "t", "t",
                            datetime(2027, 1, 15, tzinfo=UTC))
    store.change_action(done, "DONE", "t", "t", datetime(2027, 1, 20, tzinfo=UTC),
                        status="done", completed=date(2027, 1, 20))
    store.add_nudge({"group_id": "qa-leads", "meeting_id": "2027-q1",
                     "text": "How authorities triangulate feedback",
                     "window_start": date(2027, 4, 1), "window_end": date(2027, 6, 30),
                     "source": "t"}, datetime(2027, 1, 15, tzinfo=UTC))
    store.propose("qa-leads", "2027-q2", AMAN, "LADO audit tools", PACK_DAY)
    store.mark_submitted("qa-leads", "2027-q2", "rfi", "Kent", "submitted", PACK_DAY)
    store.mark_submitted("qa-leads", "2027-q2", "rfi", "Slough", "nil", PACK_DAY)
    papers = tmp_path / "papers" / "qa-leads" / "2027-q2"
    papers.mkdir(parents=True)
    (papers / "kent--numbers.xlsx").write_bytes(paper_files.workbook())
    (papers / "medway--audit tool.docx").write_bytes(paper_files.word(padding=4000))


def test_the_pack_carries_the_whole_run_up(make_executor: Callable[[], Executor],
                                           store: Store, tmp_path: Path,
                                           monkeypatch: object, config_dir: Path):
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\npapers = "{tmp_path / "papers"}"\nzip_papers_above = 1000\n')
    setup(store, tmp_path)
    ex = make_executor()
    sent = ex.tick(PACK_DAY).sent
    packs = [k for k in sent if "/2027-q2/pack/" in k]
    assert len(packs) == 21
    assert isinstance(ex.transport, MemoryTransport)
    msg = next(m for m in ex.transport.sent if "/2027-q2/pack/" in str(m["X-Clerk-Key"]))
    text = msg.get_body(("plain",)).get_content()
    assert "#1 LADO: Share the LADO audit tool — Aman Sekhon-Gill — open" in text
    assert "Website: Circulate the website link" in text and "done 2027-01-20" in text
    assert text.index("Share the LADO audit tool") < text.index("Circulate the website")
    assert ("How authorities triangulate feedback (agreed at the meeting of 14 January 2027)"
            in text)
    assert "LADO audit tools (proposed by Aman Sekhon-Gill)" in text
    assert "Kent: submitted" in text and "Slough: nil return" in text
    assert "Medway: outstanding" in text
    checker = Checker()
    checker.feed(msg.get_body(("html",)).get_content())
    assert checker.stack == []
    files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert set(files) == {"agenda-2027-q2.docx", "papers.zip"}
    with zipfile.ZipFile(io.BytesIO(files["papers.zip"])) as z:
        assert z.namelist() == ["kent--numbers.xlsx", "medway--audit tool.docx"]
    agenda = docx.Document(io.BytesIO(files["agenda-2027-q2.docx"]))
    headings = [p.text for p in agenda.paragraphs if p.style.name.startswith("Heading")]
    assert headings[:3] == ["Agenda", "1. Introductions and apologies",
                            "2. Matters arising"]
    assert any("How authorities triangulate feedback" in h for h in headings)
    assert "Returns" in headings and "Papers" in headings
    tracker, returns = agenda.tables[0], agenda.tables[1]
    assert [c.text for c in tracker.rows[0].cells] == ["Topic", "Action", "Owner", "Status",
                                                      "Date completed"]
    assert tracker.rows[1].cells[0].text == "LADO"
    assert {r.cells[0].text: r.cells[1].text for r in returns.rows[1:]}["Slough"] == \
        "Nil return"


def test_a_nudge_note_goes_to_the_chair_when_its_window_opens(
        make_executor: Callable[[], Executor], store: Store):
    store.add_nudge({"group_id": "qa-leads", "meeting_id": "2027-q1",
                     "text": "How authorities triangulate feedback",
                     "window_start": date(2027, 4, 1), "window_end": date(2027, 6, 30),
                     "source": "t"}, datetime(2027, 1, 15, tzinfo=UTC))
    store.add_nudge({"group_id": "qa-leads", "meeting_id": "", "text": "Peer review",
                     "window_start": date(2027, 8, 2), "window_end": date(2027, 9, 30),
                     "source": "t"}, datetime(2027, 1, 15, tzinfo=UTC))
    ex = make_executor()
    notes = []
    day = datetime(2027, 3, 29, 10, tzinfo=UTC)
    while day < datetime(2027, 8, 10, tzinfo=UTC):
        notes += [k for k in ex.tick(day).sent if "/-/nudge/" in k]
        day += timedelta(days=1)
    assert notes == ["qa-leads/-/nudge/sophie.barton@hampshire-iow.example/1",
                     "qa-leads/-/nudge/sophie.barton@hampshire-iow.example/2"]
    assert isinstance(ex.transport, MemoryTransport)
    bodies = [m.get_body(("plain",)).get_content() for m in ex.transport.sent
              if "/-/nudge/" in str(m["X-Clerk-Key"])]
    assert "on the agenda of QA Leads Network meeting on Thursday 15 April 2027" in bodies[0]
    # no meeting between 2 August and 30 September: the nearest after it, 14 October
    assert ("No meeting of South Downs QA Leads Network falls in that window, so it is on the "
            "agenda of the nearest: QA Leads Network meeting on Thursday 14 October 2027"
            ) in bodies[1]
    # the meeting that asked is named by its title and date, never by its id
    assert bodies[0].startswith("Dear ") and "At the QA Leads Network meeting on Thursday 14 "\
        "January 2027 the group asked to come back, between Thursday 1 April 2027 and "\
        "Wednesday 30 June 2027" in bodies[0] and "2027-q1" not in bodies[0]
    assert "Earlier the group asked" in bodies[1]
    rows = [r for r in store.rows() if r.kind == "nudge_note"]
    assert [r.sent_at.date() for r in rows] == [date(2027, 4, 1), date(2027, 8, 2)]


def test_nudge_and_submissions_commands(clerk: Callable[..., Result]):
    added = clerk("nudge", "add", "--group", "qa-leads", "--window", "3-5m", "--from",
                  "2027-03-01", "--meeting", "2027-q1", "Triangulation of feedback")
    assert added.exit_code == 0, added.output
    assert "on the agenda of 2027-q3" in added.output  # 15 July falls in June–August
    between = clerk("nudge", "add", "-g", "qa-leads", "--window", "1-2m", "--from",
                    "2027-07-20", "Nothing then")  # no meeting from 20 August to 20 September
    assert ("no meeting falls between 20 August 2027 and 20 September 2027; it goes on the "
            "agenda of the meeting on Thursday 14 October 2027, the nearest (2027-q4)"
            ) in between.output
    lonely = clerk("nudge", "add", "-g", "qa-leads", "--window", "1-2m", "--from",
                   "2027-11-01", "After the last meeting set")
    assert "warning: no meeting falls in that window" in lonely.output
    rows = json.loads(clerk("nudge", "list", "--json").output)
    assert [(r["meeting"], r["inside"], r["window_start"]) for r in rows] == [
        ("2027-q3", True, "2027-06-01"), ("2027-q4", False, "2027-08-20"),
        (None, False, "2027-12-01")]
    assert clerk("nudge", "add", "-g", "qa-leads", "--window", "nine months", "x"
                 ).exit_code == 2
    marked = clerk("submissions", "mark", "--meeting", "2027-q2", "--organisation", "Kent",
                   "--nil")
    assert marked.exit_code == 0 and "Kent: nil return for 2027-q2" in marked.output
    status = json.loads(clerk("status", "--json", "--now", "2027-04-01T10:00:00Z").output)
    q2 = next(m for m in status["meetings"] if m["meeting"] == "2027-q2")
    assert {"organisation": "Kent", "status": "nil return"} in q2["returns"]
    bad = clerk("submissions", "mark", "--meeting", "2027-q2", "--organisation", "Kentt")
    assert bad.exit_code == 2 and "unknown organisation 'Kentt'" in bad.output


def test_a_member_proposes_an_agenda_item_by_replying(make_executor: Callable[[], Executor],
                                                      store: Store, clerk: Callable[..., Result]):
    from email.message import EmailMessage

    from bot.engine.inbox import Inbox

    ex = make_executor()
    ex.tick(datetime(2026, 12, 1, 10, tzinfo=UTC))
    assert isinstance(ex.transport, MemoryTransport)
    invite = next(m for m in ex.transport.sent if AMAN in str(m["To"]))

    def reply(sender: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, "qa-leads@network.example"
        msg["Subject"], msg["In-Reply-To"] = f"Re: {invite['Subject']}", invite["Message-ID"]
        msg["Message-ID"] = "<x@members.example>"
        msg.set_content(body)
        return msg

    inbox = Inbox(ex.config, store)
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)
    ok = inbox.apply(read_reply(reply(AMAN, "AGENDA: LADO audit tools\n\nThanks")), now)
    assert ok.handled and "proposed 'LADO audit tools' for 2027-q1" in ok.detail
    stranger = inbox.apply(read_reply(reply("who@else.example", "AGENDA: spam")), now)
    assert not stranger.handled and "not on the roster" in stranger.detail
    assert store.proposals() == [("qa-leads", "2027-q1", AMAN, "LADO audit tools")]
    if store.url.startswith("sqlite"):
        text = clerk("status", "--now", "2026-12-02T10:00:00Z").output
        assert "proposed for the agenda: LADO audit tools (Aman Sekhon-Gill)" in text


def test_a_simulated_year_of_the_run_up(make_executor: Callable[[], Executor], store: Store):
    """Every meeting gets its requests; chasers go only to those outstanding; each pack goes
    on time with the right returns register; the nudge lands on the meeting inside its
    window; and no mail goes at a weekend, after hours or on a bank holiday."""
    from email.utils import parsedate_to_datetime
    from zoneinfo import ZoneInfo

    from bot.domain import windows

    london = ZoneInfo("Europe/London")
    store.add_nudge({"group_id": "qa-leads", "meeting_id": "2027-q1",
                     "text": "How authorities triangulate feedback",
                     "window_start": date(2027, 4, 1), "window_end": date(2027, 6, 30),
                     "source": "t"}, datetime(2026, 12, 1, tzinfo=UTC))
    ex = make_executor()
    day = datetime(2026, 11, 30, tzinfo=UTC)
    while day < datetime(2027, 12, 31, tzinfo=UTC):
        if day.date() == date(2027, 3, 25):  # two answers come in before q2's chasers
            store.mark_submitted("qa-leads", "2027-q2", "rfi", "Kent", "submitted", day)
            store.mark_submitted("qa-leads", "2027-q2", "rfi", "Slough", "nil", day)
        for hour in (8, 11, 16):
            ex.tick(day.replace(hour=hour))
        day += timedelta(days=1)
    assert isinstance(ex.transport, MemoryTransport)
    sent = ex.transport.sent
    keys = [str(m["X-Clerk-Key"]) for m in sent]
    for meeting in ("2027-q1", "2027-q2", "2027-q3", "2027-q4"):
        assert len([k for k in keys if f"/{meeting}/rfi/" in k]) == 16
        chased = [k for k in keys if f"/{meeting}/rfi-chaser/" in k]
        assert len(chased) == (14 if meeting == "2027-q2" else 16)
        assert len([k for k in keys if f"/{meeting}/pack/" in k]) == 21
    q2_chased = " ".join(k for k in keys if "/2027-q2/rfi-chaser/" in k)
    assert "kent" not in q2_chased and "slough" not in q2_chased
    packs = {str(m["X-Clerk-Key"]).split("/")[1]: m for m in sent
             if "/pack/" in str(m["X-Clerk-Key"])}
    q2 = packs["2027-q2"].get_body(("plain",)).get_content()
    assert "Kent: submitted" in q2 and "Slough: nil return" in q2 and \
        "Medway: outstanding" in q2
    assert "How authorities triangulate feedback" in q2
    for other in ("2027-q1", "2027-q3", "2027-q4"):
        assert "triangulate" not in packs[other].get_body(("plain",)).get_content()
    for row in store.rows(states=["sent"]):
        if row.kind == "pack":
            assert row.sent_at.astimezone(london).date() == \
                (row.send_at.astimezone(london).date())
    window = windows.parse("Mon-Fri 08:00-18:00", "GB-ENG")
    for m in sent:
        at = parsedate_to_datetime(str(m["Date"])).astimezone(london)
        assert windows.is_open_day(window, at.date()) and 8 <= at.hour < 18, m["X-Clerk-Key"]


def test_the_agenda_is_built_once_for_all_its_recipients(
        make_executor: Callable[[], Executor], store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    """21 members get the 15 April pack: one .docx, built once, the same bytes in each;
    an apology that changes the agenda makes it built anew."""
    from bot.render import agenda as docs
    from bot.render import email as render_email

    setup(store, tmp_path)
    built: list[str] = []
    real = docs.agenda_docx

    def counting(agenda: docs.Agenda) -> bytes:
        built.append(agenda.title)
        return real(agenda)

    monkeypatch.setattr(docs, "agenda_docx", counting)
    monkeypatch.setattr(render_email, "_AGENDAS", type(render_email._AGENDAS)())
    ex = make_executor()
    sent = [k for k in ex.tick(PACK_DAY).sent if "/2027-q2/pack/" in k]
    assert len(sent) == 21 and len(built) == 1
    assert isinstance(ex.transport, MemoryTransport)
    docs_sent = {p.get_content() for m in ex.transport.sent
                 if "/2027-q2/pack/" in str(m["X-Clerk-Key"])
                 for p in m.iter_attachments() if p.get_filename().endswith(".docx")}
    assert len(docs_sent) == 1
    d = ex.desired(sent[0])
    assert d is not None
    papers = tmp_path / "none"
    render_email.pack_attachments(ex.config.group("qa-leads"), d, papers, 10**9)
    assert len(built) == 1  # the same agenda again: from the cache
    m = d.context["meeting"]
    declined = dict(m["rsvp"], declined=[{"name": "Aman Sekhon-Gill", "email": AMAN,
                                          "organisation": "Bucks", "comment": "ill"}])
    render_email.pack_attachments(ex.config.group("qa-leads"), replace(
        d, context=dict(d.context, meeting=dict(m, rsvp=declined))), papers, 10**9)
    assert len(built) == 2  # an apology: another agenda
