"""End to end over real Postfix and Dovecot: clerk sends, members answer from their mailboxes,
and clerk's next tick reads the organiser's inbox over IMAP and gets each answer right."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import icalendar
import pytest

from bot import config as config_mod
from bot import transports
from bot.cli import report
from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.render import email as render_email
from tests import paper_files
from tests.conftest import MX
from tests.mail import (
    MailServers,
    imap_fetch,
    servers,
    smtp_send,
    wait_for,
    wait_queue_empty,
)

pytestmark = pytest.mark.slow
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
RFI_DAY = datetime(2026, 12, 17, 10, tzinfo=UTC)
ORGANISER = "qa-leads@network.example"
MEMBERS = 21


@pytest.fixture
def clerk_executor(config_dir: Path, store: Store, mailboxes: MailServers, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Callable[[], Executor]:
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\ntransport = "smtp"\nmailbox = "imap"\npapers = "{tmp_path / "papers"}"\n'
        f'max_attachment = 100000\n\n'
        f'[transport]\nhost = "{mailboxes.host}"\nport = {mailboxes.smtp_port}\n'
        f'security = "none"\n\n'
        f'[mailbox]\nhost = "{mailboxes.host}"\nport = {mailboxes.imap_port}\n'
        f'security = "none"\nsent = "Sent"\nauthserv_id = "{MX}"\n')
    monkeypatch.setenv("CLERK_IMAP_USERNAME", "clerk")
    monkeypatch.setenv("CLERK_IMAP_PASSWORD", mailboxes.users["clerk"])

    def make() -> Executor:
        config = config_mod.load(config_dir)
        s = config.settings
        return Executor(config, store, transports.load(s.transport, s.transport_options),
                        mailbox=transports.load_mailbox(s.mailbox, s.mailbox_options))
    return make


def invite_for(messages: list[EmailMessage], email: str) -> icalendar.Calendar:
    for m in messages:
        if str(m["X-Original-To"]) == email:
            part = next(p for p in m.walk() if p.get_content_type() == "text/calendar")
            return icalendar.Calendar.from_ical(part.get_content())
    raise AssertionError(f"no invitation for {email}")


def verified(msg: EmailMessage, authentic: bool) -> EmailMessage:
    """The verdict the install's receiving server puts on top of a member's message when it
    has checked its From (tests/conftest.py's MX): the test Postfix plays that server."""
    if authentic:
        domain = str(msg["From"]).rpartition("@")[2].strip(">")
        msg["Authentication-Results"] = f"{MX}; dmarc=pass header.from={domain}"
    return msg


def reply(invite: icalendar.Calendar, email: str, partstat: str,
          comment: str = "", *, authentic: bool = True) -> EmailMessage:
    """What a member's calendar sends back: an iMIP REPLY (RFC 6047)."""
    event = invite.walk("VEVENT")[0]
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//member//calendar//EN")
    cal.add("VERSION", "2.0")
    cal.add("METHOD", "REPLY")
    answer = icalendar.Event()
    for name in ("UID", "SEQUENCE", "DTSTART", "DTEND", "ORGANIZER"):
        answer.add(name, event[name])
    answer.add("DTSTAMP", datetime.now(UTC))
    attendee = icalendar.vCalAddress(f"mailto:{email}")
    attendee.params["PARTSTAT"] = partstat
    answer.add("ATTENDEE", attendee)
    if comment:
        answer.add("COMMENT", comment)
    cal.add_component(answer)
    msg = EmailMessage()
    msg["From"], msg["To"] = email, ORGANISER
    verified(msg, authentic)
    msg["Subject"] = f"{partstat.title()}: {event['SUMMARY']}"
    msg["Message-ID"] = make_msgid(domain="members.example")
    msg.set_content(f"{partstat.title()}.")
    msg.add_alternative(cal.to_ical().decode(), subtype="calendar",
                        params={"method": "REPLY"})
    return msg


def answer(to_message: EmailMessage | None, email: str, body: str, *, subject: str = "",
           attachment: tuple[str, bytes] | None = None, authentic: bool = True,
           **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = email, ORGANISER
    verified(msg, authentic)
    msg["Subject"] = subject or f"Re: {to_message['Subject'] if to_message else ''}"
    msg["Message-ID"] = make_msgid(domain="members.example")
    if to_message is not None:
        msg["In-Reply-To"] = to_message["Message-ID"]
        msg["References"] = to_message["Message-ID"]
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    if attachment:
        msg.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                           filename=attachment[0])
    return msg


def test_members_answers_are_read_and_each_lands_right(
        clerk_executor: Callable[[], Executor], store: Store, group_dir: Path,
        tmp_path: Path):
    with (group_dir / "roster.csv").open("a") as f:  # an address that bounces
        f.write("Nobody Here,nobody@gone.invalid,Nowhere,member\n")
    assert len(clerk_executor().tick(T0).sent) == MEMBERS + 1
    invites = wait_for("members", MEMBERS)
    sent_copies = imap_fetch("clerk", "Sent")
    assert len(sent_copies) == MEMBERS + 1  # a copy of each in the Sent folder

    smtp_send(reply(invite_for(invites, "joanne.beale@bracknell.example"),
                    "joanne.beale@bracknell.example", "ACCEPTED"),
              "joanne.beale@bracknell.example", [ORGANISER])
    smtp_send(reply(invite_for(invites, "gavin.swales@kent.example"),
                    "gavin.swales@kent.example", "DECLINED", "Ofsted inspection that week"),
              "gavin.swales@kent.example", [ORGANISER])
    smtp_send(reply(invite_for(invites, "tina.jameson@brighton-hove.example"),
                    "tina.jameson@brighton-hove.example", "TENTATIVE"),
              "tina.jameson@brighton-hove.example", [ORGANISER])
    stale = reply(invite_for(invites, "rebecca.cooke@medway.example"),
                  "rebecca.cooke@medway.example", "DECLINED")
    smtp_send(answer(None, "sandra.davey@slough.example", "I am out of the office.",
                     subject="Automatic reply: Invitation", Auto_Submitted="auto-replied"),
              "sandra.davey@slough.example", [ORGANISER])
    unknown = reply(invite_for(invites, "laura.mallory@west-sussex.example"),
                    "laura.mallory@west-sussex.example", "ACCEPTED")
    unknown.replace_header("Subject", "Accepted: something else")
    body = unknown.get_payload()[1]
    body.set_content(body.get_content().replace("qa-leads.2027-q1@", "qa-leads.nope@"),
                     subtype="calendar", params={"method": "REPLY"})
    smtp_send(unknown, "laura.mallory@west-sussex.example", [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 5 + 1)  # five answers and Postfix's bounce

    result = clerk_executor().tick(T0 + timedelta(minutes=5))
    assert result.read == 6
    rsvp = {r.email: (r.partstat, r.comment) for r in _rsvps(store)}
    assert rsvp == {"joanne.beale@bracknell.example": ("ACCEPTED", ""),
                    "gavin.swales@kent.example": ("DECLINED", "Ofsted inspection that week"),
                    "tina.jameson@brighton-hove.example": ("TENTATIVE", "")}
    bounced = store.bouncing()
    assert [b.email for b in bounced] == ["nobody@gone.invalid"] and bounced[0].permanent
    assert store.row("qa-leads/2027-q1/invitation/nobody@gone.invalid/r0").state == "failed"
    assert result.unprocessed == ["a reply for an unknown meeting (UID qa-leads.nope@"
                                  "network.example)"]
    assert imap_fetch("clerk") == []  # the inbox is empty: everything filed, nothing deleted
    ex = clerk_executor()
    status = report.status(ex.config, store, T0 + timedelta(minutes=6))
    q1 = status["meetings"][0]
    assert q1["meeting"] == "2027-q1"
    assert q1["rsvp"]["accepted"] == ["joanne.beale@bracknell.example"]
    assert q1["apologies"] == [{"email": "gavin.swales@kent.example", "name": "Gavin Swales",
                                "reason": "Ofsted inspection that week"}]
    assert len(q1["rsvp"]["no_answer"]) == MEMBERS + 1 - 3
    assert status["bouncing"] == ["nobody@gone.invalid"]
    assert [u["reason"] for u in status["unprocessed"]] == result.unprocessed
    ex.current_plan(T0)
    pack = next(d for d in ex.messages() if d.kind == "pack")
    body = render_email.build(ex.config.group("qa-leads"), pack, T0, secret=store.secret())
    assert "Gavin Swales (Kent): Ofsted inspection that week" in \
        body.text
    assert len(imap_fetch("clerk", "clerk/processed")) == 5
    assert len(imap_fetch("clerk", "clerk/unprocessed")) == 1

    # the next tick tells the admin of the bounce; a reply to an older revision is ignored
    edit_duration(group_dir)
    clerk_executor().tick(T0 + timedelta(hours=1))
    clerk_executor().tick(T0 + timedelta(hours=1, minutes=10))  # update rev 1 goes
    smtp_send(stale, "rebecca.cooke@medway.example", [ORGANISER])  # SEQUENCE 0
    wait_queue_empty()
    wait_for("clerk", 1)
    clerk_executor().tick(T0 + timedelta(hours=2))
    assert "rebecca.cooke@medway.example" not in {r.email for r in _rsvps(store)}
    digests = [m for m in wait_for("members", 1, timeout=5) if "kim.osei" in
               str(m["X-Original-To"])]
    assert digests and "nobody@gone.invalid" in digests[0].get_body(("plain",)).get_content()


def test_answers_to_a_request_become_submissions_and_stop_the_chasers(
        clerk_executor: Callable[[], Executor], store: Store, tmp_path: Path):
    clerk_executor().tick(T0)
    assert len(clerk_executor().tick(RFI_DAY).sent) == 16  # one request per organisation
    requests = [m for m in wait_for("members", MEMBERS + 16)
                if str(m["Subject"]).startswith("Request for information")]
    kent = next(m for m in requests if "kent" in str(m["X-Original-To"]))
    slough = next(m for m in requests if "slough" in str(m["X-Original-To"]))
    assert "[#" in str(kent["Subject"])  # the reference token
    smtp_send(answer(kent, "gavin.swales@kent.example", "Our numbers are attached.",
                     attachment=("../../etc/kent numbers.xlsx", paper_files.workbook())),
              "gavin.swales@kent.example", [ORGANISER])
    # no In-Reply-To: matched by the token in the subject alone
    smtp_send(answer(None, "sandra.davey@slough.example", "Nil return from Slough, thanks.",
                     subject=f"Re: {slough['Subject']}"),
              "sandra.davey@slough.example", [ORGANISER])
    # a token that is not clerk's, from a member who was never asked
    smtp_send(answer(None, "helena.wicks@east-sussex.example", "Here you are",
                     subject="Re: Request for information [#aaaaaaaaaa]"),
              "helena.wicks@east-sussex.example", [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 3)
    result = clerk_executor().tick(RFI_DAY + timedelta(hours=1))
    assert result.read == 3 and len(result.unprocessed) == 1
    assert ("qa-leads", "2027-q1", "rfi", "Kent") in snapshot.state(store).submitted
    assert ("qa-leads", "2027-q1", "rfi", "Slough") in snapshot.state(store).submitted
    papers = list((tmp_path / "papers" / "qa-leads" / "2027-q1").iterdir())
    assert [p.name for p in papers] == ["kent--kent numbers.xlsx"]
    assert papers[0].read_bytes() == paper_files.workbook()
    chasers = clerk_executor().tick(datetime(2026, 12, 31, 10, tzinfo=UTC)).sent
    chased = [k for k in chasers if "/rfi-chaser/" in k]
    assert len(chased) == 16 - 2
    assert not any("kent" in k or "slough" in k for k in chased)


def _rsvps(store: Store) -> list[object]:
    import sqlalchemy as sa

    from bot.engine.store import rsvps

    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(rsvps)))


def edit_duration(group_dir: Path) -> None:
    toml = group_dir / "group.toml"
    toml.write_text(toml.read_text().replace('duration = "2h"', 'duration = "3h"', 1))


def test_a_message_in_doubt_is_found_in_the_sent_folder_not_sent_again(
        clerk_executor: Callable[[], Executor], store: Store):
    ex = clerk_executor()
    assert len(ex.tick(T0).sent) == MEMBERS
    key = "qa-leads/2027-q1/invitation/tina.jameson@brighton-hove.example/r0"
    with store.atomic() as conn:  # as if clerk died between the server's 250 and the commit
        store.update_row(conn, key, T0, "", state="sending")
    result = clerk_executor().tick(T0 + timedelta(minutes=1))
    assert result.recovered == 1 and result.sent == []
    assert store.row(key).state == "sent"
    assert len(wait_for("members", MEMBERS)) == MEMBERS  # no second copy
    # and one that never left is sent again
    with store.atomic() as conn:
        store.update_row(conn, key, T0, "", state="sending",
                         message_id="<clerk.never-sent@network.example>")
    result = clerk_executor().tick(T0 + timedelta(minutes=2))
    assert result.recovered == 1 and result.sent == [key]


def test_hostile_mail_is_filed_with_a_reason_and_the_rest_still_counts(
        clerk_executor: Callable[[], Executor], store: Store):
    clerk_executor().tick(T0)
    invites = wait_for("members", MEMBERS)
    broken = reply(invite_for(invites, "joanne.beale@bracknell.example"),
                   "joanne.beale@bracknell.example", "ACCEPTED")
    part = broken.get_payload()[1]
    part.set_content("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:x\r\n",
                     subtype="calendar", params={"method": "REPLY"})
    smtp_send(broken, "joanne.beale@bracknell.example", [ORGANISER])
    big = answer(None, "gavin.swales@kent.example", "Attached",
                 subject="Re: papers", attachment=("big.bin", b"x" * 200_000))
    smtp_send(big, "gavin.swales@kent.example", [ORGANISER])
    named = answer(None, "tina.jameson@brighton-hove.example", "Hello").as_bytes().replace(
        b"From: tina.jameson@brighton-hove.example",  # a line break hidden in the name
        b"From: =?utf-8?q?Tina=0AX-Evil:_1?= <tina.jameson@brighton-hove.example>")
    with smtplib.SMTP(servers().host, servers().smtp_port) as smtp:
        smtp.sendmail("tina.jameson@brighton-hove.example", [ORGANISER], named)
    fine = reply(invite_for(invites, "laura.mallory@west-sussex.example"),
                 "laura.mallory@west-sussex.example", "ACCEPTED")
    smtp_send(fine, "laura.mallory@west-sussex.example", [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 4)
    result = clerk_executor().tick(T0 + timedelta(minutes=5))
    assert result.read == 4
    assert len(result.unprocessed) == 3 and any("calendar" in u for u in result.unprocessed)
    assert {r.email for r in _rsvps(store)} == {"laura.mallory@west-sussex.example"}
    assert len(imap_fetch("clerk", "clerk/unprocessed")) == 3
    log = store.inbox_log()
    assert all("\n" not in row.sender + row.subject for row in log)


def test_done_from_the_owner_closes_an_action_and_a_spoofed_done_does_not(
        clerk_executor: Callable[[], Executor], store: Store):
    aman, gavin = "aman.sekhon-gill@bucks.example", "gavin.swales@kent.example"
    ids = [store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": t,
                             "text": t, "owners": (who,), "due": date(2026, 12, 10)},
                            "test", "test", T0)
           for t, who in (("LADO audit tool", aman), ("LADO tools", gavin))]
    clerk_executor().tick(T0)
    chase_day = datetime(2026, 12, 7, 10, tzinfo=UTC)  # three days before it is due
    sent = clerk_executor().tick(chase_day).sent
    assert {k.split("/")[3] for k in sent if "/-/actions/" in k} == {aman, gavin}
    mail = wait_for("members", MEMBERS + 2)
    chaser = next(m for m in mail if str(m["X-Original-To"]) == aman
                  and "action" in str(m["Subject"]))
    assert "[#" in str(chaser["Subject"])
    # gavin replies DONE to aman's chaser (forwarded to him): token fine, sender wrong
    smtp_send(answer(chaser, gavin, "DONE"), gavin, [ORGANISER])
    # someone forges aman's address, the reference and the token: the server cannot verify it
    smtp_send(answer(chaser, aman, "DONE", authentic=False), aman, [ORGANISER])
    # aman himself, without the token
    smtp_send(answer(chaser, aman, "DONE", subject="Re: your actions"), aman, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 3)
    result = clerk_executor().tick(chase_day + timedelta(minutes=10))
    assert len(result.unprocessed) == 3
    assert any("only the owner or the admin" in u for u in result.unprocessed)
    assert any(f"From {aman} is not authenticated" in u for u in result.unprocessed)
    assert any("without its [#token]" in u for u in result.unprocessed)
    assert {a.status for a in snapshot.actions(store)} == {"open"}
    # aman's own DONE closes his action, and his chasers stop
    smtp_send(answer(chaser, aman, "DONE, shared on the website"), aman, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 1)
    result = clerk_executor().tick(chase_day + timedelta(minutes=20))
    assert result.unprocessed == []
    status = {a.id: a.status for a in snapshot.actions(store)}
    assert status == {ids[0]: "done", ids[1]: "open"}
    history = [h.what for h in store.action_history(ids[0])]
    assert history == ["added", "DONE"]
    later = clerk_executor().tick(datetime(2026, 12, 17, 10, tzinfo=UTC)).sent
    assert not any(aman in k for k in later if "/-/actions/" in k)
    assert any(gavin in k for k in later if "/-/actions/" in k)
