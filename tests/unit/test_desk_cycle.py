"""A whole meeting cycle of the seed group where the admin's only inputs are three emails —
the minutes with two owners to resolve, the approval answering both questions, and the pack
approval — and everything else happens by itself: the minutes go to every member with the
joining instructions for the newcomers, the actions are chased, and the nudge lands on a
later agenda. The same commands from a member, or unauthenticated, change nothing and are
reported."""

from __future__ import annotations

import io
import re
import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import docx
import pytest

from bot import config as config_mod
from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.inbox import Inbox, Outcome
from bot.engine.store import Store
from bot.listen import replies
from bot.transports.memory import MemoryTransport
from tests.conftest import EXAMPLE, ROOT, TRUST, edit, read_reply

SEED = ROOT / "tests" / "data" / "seed-group"
KIM = "kimesha.osbourne@hampshire.example"
CLERK = "qa-leads@network.example"
NEWCOMERS = {"joanna.whitfield@surrey.example", "sandra.okafor@slough.example"}


def _minutes_docx() -> bytes:
    """The minutes as the admin has them: a Word document, one paragraph a line."""
    document = docx.Document()
    for line in (SEED / "minutes-2027-04-15.txt").read_text().splitlines():
        document.add_paragraph(line.strip())
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


class Cycle:
    """The worker ticking at every instant it would act at, and the admin's mailbox."""

    def __init__(self, folder: Path, store: Store) -> None:
        self.folder, self.store = folder, store
        self.transport = MemoryTransport()
        self.now = datetime(2026, 12, 1, 9, tzinfo=UTC)
        self.ex = self._executor()
        self.mails = 0

    def _executor(self) -> Executor:
        return Executor(config_mod.load(self.folder), self.store, self.transport)

    def run_until(self, end: datetime) -> None:
        """Tick at every instant the worker would act at, up to ``end``."""
        while self.now <= end:
            self.ex.tick(self.now)
            nxt = self.ex.next_instant(self.now)
            if nxt is None or nxt > end:
                break
            self.now = max(nxt, self.now + timedelta(minutes=5))
        self.now = end
        self.ex = self._executor()  # the config as the worker reloads it (minutes, roster)
        self.ex.tick(end)

    def mail(self, body: str, *, answering: EmailMessage | None = None,
             subject: str = "", attach: tuple[str, bytes] | None = None,
             sender: str = KIM, authentic: bool = True) -> Outcome:
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, CLERK
        msg["Subject"] = f"Re: {answering['Subject']}" if answering is not None else subject
        self.mails += 1
        msg["Message-ID"] = f"<cycle{self.mails}@hampshire.example>"
        if answering is not None:
            msg["In-Reply-To"] = msg["References"] = answering["Message-ID"]
        msg.set_content(body)
        if attach is not None:
            msg.add_attachment(attach[1], maintype="application", subtype="octet-stream",
                               filename=attach[0])
        incoming = read_reply(msg) if authentic else replies.read(msg.as_bytes(), trust=TRUST)
        return Inbox(self.ex.config, self.store).apply(incoming, self.now)

    def to(self, email: str) -> list[EmailMessage]:
        return [m for m in self.transport.sent if email in str(m["To"])]


def body(msg: EmailMessage) -> str:
    return str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


@pytest.fixture
def seslip(config_dir: Path) -> Path:
    """The seed's group on the example's 2027 meetings, its admin Kimesha Osbourne."""
    shutil.rmtree(config_dir / "example")
    folder = config_dir / "seslip"
    shutil.copytree(EXAMPLE, folder)
    shutil.copy(SEED / "roster.csv", folder / "roster.csv")
    edit(folder / "group.toml", 'name = "Kim Osei"\nemail = "kim.osei@network.example"',
         f'name = "Kimesha Osbourne"\nemail = "{KIM}"')
    return folder


def test_a_cycle_run_by_three_emails(seslip: Path, store: Store):
    cycle = Cycle(seslip.parent, store)
    cycle.run_until(datetime(2027, 2, 1, 9, tzinfo=UTC))
    with (seslip / "roster.csv").open("a") as f:  # two join after the January meeting
        f.write("Joanna Whitfield,joanna.whitfield@surrey.example,Surrey,member\n"
                "Sandra Okafor,sandra.okafor@slough.example,Slough,member\n")
    cycle.run_until(datetime(2027, 4, 20, 10, tzinfo=UTC))

    # 1. the minutes, by mail
    sent = cycle.mail("Hi,\n\nThe minutes of last week's meeting are attached.\n\nKim",
                      subject="QA Leads minutes 15 April",
                      attach=("SESLIP QA Leads minutes 15.04.27.docx", _minutes_docx()))
    assert sent.handled, sent.detail
    cycle.run_until(datetime(2027, 4, 20, 10, 5, tzinfo=UTC))
    (summary,) = [m for m in cycle.to(KIM) if "QA Leads minutes" in str(m["Subject"])]
    said = body(summary)
    assert "Q1: who is 'Jo'?" in said and "1 Joanne Beaton  2 Joanna Whitfield  3 both" in said
    assert "Q2: who is 'Sandra'?" in said and "1 Sandra Davies  2 Sandra Okafor" in said
    assert "Douglas Sinclair: Douglas Sinclair will circulate the summary" in said
    assert "due Fri 30 April 2027" in said
    assert "Nudge: " in said and "For the next agenda: Voice of the child in audits" in said

    # the same commands from a member, and in Kim's name unauthenticated: nothing happens
    member = cycle.mail("Q1 1\nQ2 1\nAPPROVE", answering=summary,
                        sender="gavin.swann@kent.example")
    forged = cycle.mail("Q1 1\nQ2 1\nAPPROVE", answering=summary, authentic=False)
    assert not member.handled and not forged.handled and "not obeyed" in forged.detail
    unprocessed = [i.detail for i in store.inbox_log(handled=False)]
    assert member.detail in unprocessed and forged.detail in unprocessed
    assert len(snapshot.actions(store, "qa-leads")) == 1
    cycle.run_until(datetime(2027, 4, 21, 10, tzinfo=UTC))
    assert not [m for m in cycle.transport.sent if "/2027-q2/minutes/" in str(m["X-Clerk-Key"])]

    # 2. her approval, answering both questions
    approved = cycle.mail("Q1 2\nQ2 1\nAPPROVE\n\nThanks\nKim", answering=summary)
    assert approved.handled, approved.detail
    cycle.run_until(datetime(2027, 7, 6, 11, tzinfo=UTC))
    minutes = [m for m in cycle.transport.sent if "/2027-q2/minutes/" in str(m["X-Clerk-Key"])]
    attendees = {m.email for m in cycle.ex.config.group("qa-leads").attendees}
    assert {str(m["To"]).split("<")[-1].rstrip(">") for m in minutes} == attendees
    joining = {str(m["To"]).split("<")[-1].rstrip(">") for m in minutes
               if "To join the website" in body(m)}
    assert joining == NEWCOMERS
    owners = {a.text: a.owners for a in snapshot.actions(store, "qa-leads")}
    assert owners["Jo will upload the multi-agency audit tool to the SESLIP website."] == (
        "joanna.whitfield@surrey.example",)
    assert owners["Sandra will collate the child protection numbers returned for this "
                  "quarter."] == ("sandra.davies@slough.example",)
    # the actions are chased, by themselves
    for owner in ("joanna.whitfield@surrey.example", "sandra.davies@slough.example",
                  "douglas.sinclair@east-sussex.example"):
        assert [m for m in cycle.to(owner) if "action_chaser" in str(m["X-Clerk-Key"])
                or "/actions/" in str(m["X-Clerk-Key"])], owner

    # 3. the pack: its preview came two days before, and her APPROVE sends it now
    (preview,) = [m for m in cycle.to(KIM) if str(m["Subject"]).startswith("Preview:")
                  and "2027-q3" in str(m["X-Clerk-Key"])]
    assert "Voice of the child in audits" in body(preview)
    went = cycle.mail("Approve", answering=preview)
    assert went.handled, went.detail
    cycle.run_until(datetime(2027, 7, 6, 11, 5, tzinfo=UTC))
    packs = [m for m in cycle.transport.sent if "/2027-q3/pack/" in str(m["X-Clerk-Key"])]
    assert len(packs) == len(attendees)  # on 6 July, not at its time on 8 July

    # and the nudge lands on a later agenda, by itself
    cycle.run_until(datetime(2027, 10, 8, 10, tzinfo=UTC))
    q4 = [m for m in cycle.transport.sent if "/2027-q4/pack/" in str(m["X-Clerk-Key"])]
    assert q4 and "triangulate feedback from families" in body(q4[0])
    assert cycle.mails == 5  # her three emails, and the two that were refused


def test_a_year_of_the_seed_group_floods_nobody(seslip: Path, store: Store):
    """The seed's minutes imported by mail, then the rest of the year by itself: the chair gets
    at most one summary a week, no action is chased more often than the group allows, and an
    owner gets one digest a week unless an action falls due that week."""
    cycle = Cycle(seslip.parent, store)
    with (seslip / "roster.csv").open("a") as f:
        f.write("Joanna Whitfield,joanna.whitfield@surrey.example,Surrey,member\n"
                "Sandra Okafor,sandra.okafor@slough.example,Slough,member\n")
    cycle.run_until(datetime(2027, 4, 20, 10, tzinfo=UTC))
    cycle.mail("The minutes.", subject="QA Leads minutes 15 April",
               attach=("minutes.docx", _minutes_docx()))
    cycle.run_until(datetime(2027, 4, 20, 10, 5, tzinfo=UTC))
    (summary,) = [m for m in cycle.to(KIM) if "QA Leads minutes" in str(m["Subject"])]
    assert cycle.mail("Q1 both\nQ2 2\nAPPROVE", answering=summary).handled
    cycle.run_until(datetime(2028, 1, 31, 12, tzinfo=UTC))

    group = cycle.ex.config.group("qa-leads")
    assert group.chair is not None
    keys = [str(m["X-Clerk-Key"]).strip() for m in cycle.transport.sent]
    overdue = [k for k in keys if "/-/overdue/" in k]
    assert overdue  # the actions were never done: the chair is told, weekly
    weeks = Counter(date.fromisoformat(k.rsplit("/", 1)[1]).isocalendar()[:2]
                    for k in overdue)
    assert max(weeks.values()) == 1
    assert {k.split("/")[3] for k in overdue} == {group.chair.email}

    listed: Counter[tuple[str, str]] = Counter()  # (owner, action ref) -> digests listing it
    per_week: Counter[tuple[str, tuple[int, int]]] = Counter()
    for m in cycle.transport.sent:
        key = str(m["X-Clerk-Key"]).strip()
        if "/-/actions/" not in key:
            continue
        owner, day = key.split("/")[3], date.fromisoformat(key.rsplit("/", 1)[1])
        per_week[owner, day.isocalendar()[:2]] += 1
        listed.update((owner, ref) for ref in re.findall(r"^(#\d+) ", body(m), re.MULTILINE))
    actions = {a.ref: a for a in snapshot.actions(store, "qa-leads")}
    assert len(actions) == 3 and {ref for _, ref in listed} == set(actions)
    for (owner, ref), times in listed.items():
        assert times <= (1 if "*" in actions[ref].owners else group.ladder.max_chasers), (
            owner, actions[ref])
    assert max(per_week.values()) <= 2  # a second only in an action's due week
