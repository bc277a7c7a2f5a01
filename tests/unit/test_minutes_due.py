"""The minutes-due reminder (templates/minutes_due.*) tells the admin how to circulate the
minutes: by mail to the organiser address, or with `clerk minutes send`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from bot.engine.executor import Executor
from bot.engine.inbox import Inbox
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import read_reply

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
DUE = datetime(2027, 1, 25, 10, tzinfo=UTC)  # q1 (14 January) + 10 days, a Sunday: Monday
ADMIN, ORGANISER = "kim.osei@network.example", "qa-leads@network.example"
MINUTES = """\
# QA Leads Network — minutes of 14 January 2027

## Actions

| Topic | Action | Owner | Due |
|---|---|---|---|
| Invites | Review the meeting invites | Kim Osei | 31/01/2027 |
"""


def reminder(make: Callable[[], Executor]) -> EmailMessage:
    ex = make()
    ex.tick(T0)
    sent = ex.tick(DUE).sent
    assert f"qa-leads/2027-q1/minutes-due/{ADMIN}" in sent, sent
    assert isinstance(ex.transport, MemoryTransport)
    (got,) = [m for m in ex.transport.sent if "/minutes-due/" in str(m["X-Clerk-Key"])]
    return got


def test_the_minutes_due_reminder_says_how_to_circulate_them(
        make_executor: Callable[[], Executor]):
    msg = reminder(make_executor)
    assert ADMIN in str(msg["To"])
    assert str(msg["Subject"]) == ("Minutes due: QA Leads Network meeting of Thursday 14 "
                                   "January 2027")
    text = " ".join(msg.get_body(("plain",)).get_content().split())
    html = " ".join(re.sub(r"<[^>]+>", "", msg.get_body(("html",)).get_content()).split())
    for body in (text, html):
        # by mail: her reply, or a message to the organiser address, with the file attached
        assert "reply to this message with the minutes attached" in body, body
        assert f"send them to {ORGANISER}" in body, body
        assert "answers with a summary" in body and "APPROVE" in body, body
        # or from the shell
        assert "clerk minutes send FILE --meeting 2027-q1" in body, body
        assert "clerk minutes import FILE --meeting 2027-q1" in body, body
        assert "to the 21 members" in body and "https://network.example/qa-leads" in body


def test_a_reply_to_the_reminder_with_the_minutes_attached_does_what_it_says(
        make_executor: Callable[[], Executor], store: Store, group_dir: Path):
    msg = reminder(make_executor)
    answer = EmailMessage()
    answer["From"], answer["To"] = ADMIN, ORGANISER
    answer["Subject"] = f"Re: {msg['Subject']}"
    answer["Message-ID"] = "<minutes-1@network.example>"
    answer["In-Reply-To"] = answer["References"] = msg["Message-ID"]
    answer.set_content("Here they are.\n\nKim")
    answer.add_attachment(MINUTES.encode(), maintype="text", subtype="markdown",
                          filename="minutes.md")
    got = Inbox(make_executor().config, store).apply(read_reply(answer), DUE)
    assert got.handled, got.detail
    assert (group_dir / "minutes" / "2027-q1.md").read_text() == MINUTES
    sent = make_executor().tick(DUE).sent
    assert not [k for k in sent if "/minutes/" in k]  # not before she approves
    held = [r for r in store.rows(group="qa-leads", states=("held",)) if r.kind == "minutes"]
    assert len(held) == 21  # circulated to every member once she answers APPROVE
