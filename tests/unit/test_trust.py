"""Listening you can trust: a stranger's mail never changes what clerk knows, and every answer
is applied once and right (bot/engine/inbox.py with bot/listen/authn.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import icalendar
import pytest
from click.testing import Result

from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.inbox import Inbox, Outcome
from bot.engine.store import Store
from bot.listen import replies
from bot.transports.memory import MemoryTransport
from tests.conftest import MX, TRUST, authenticated, edit, read_reply

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
RFI_DAY = datetime(2026, 12, 17, 10, tzinfo=UTC)
ORGANISER = "qa-leads@network.example"
JOANNE, GAVIN = "joanne.beale@bracknell.example", "gavin.swales@kent.example"
AMAN = "aman.sekhon-gill@bucks.example"
MALLORY = "mallory@evil.example"


@pytest.fixture
def sent(make_executor: Callable[[], Executor], config_dir: Path, tmp_path: Path
         ) -> Callable[[datetime], list[EmailMessage]]:
    """Tick at a time; what the memory transport holds so far."""
    (config_dir / "clerk.toml").write_text(f'[clerk]\npapers = "{tmp_path / "papers"}"\n')
    ex = make_executor()

    def tick(at: datetime) -> list[EmailMessage]:
        ex.tick(at)
        assert isinstance(ex.transport, MemoryTransport)
        return list(ex.transport.sent)
    return tick


def inbox(config_dir: Path, store: Store) -> Inbox:
    from bot import config as config_mod

    return Inbox(config_mod.load(config_dir), store)


def to(messages: list[EmailMessage], email: str, kind: str) -> EmailMessage:
    return next(m for m in messages if str(m["X-Clerk-Key"]).split("/")[2] == kind
                and email in str(m["To"]))


def calendar_reply(invite: EmailMessage, sender: str, answers: dict[str, str],
                   **params: str) -> EmailMessage:
    """An iMIP REPLY from ``sender`` carrying an ATTENDEE line per (email, PARTSTAT)."""
    part = next(p for p in invite.walk() if p.get_content_type() == "text/calendar")
    event = icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")[0]
    cal = icalendar.Calendar()
    cal.add("METHOD", "REPLY")
    cal.add("VERSION", "2.0")
    cal.add("PRODID", "-//a member//EN")
    answer = icalendar.Event()
    for name in ("UID", "SEQUENCE", "DTSTART", "DTEND", "DTSTAMP"):
        answer.add(name, event[name])
    for email, partstat in answers.items():
        attendee = icalendar.vCalAddress(f"mailto:{email}")
        attendee.params["PARTSTAT"] = partstat
        attendee.params.update(params)
        answer.add("ATTENDEE", attendee)
    cal.add_component(answer)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ORGANISER, "Re: invitation"
    msg["Message-ID"] = f"<{hashlib.sha256(repr(answers).encode()).hexdigest()[:12]}@m.example>"
    msg.set_content("answer")
    msg.add_alternative(cal.to_ical().decode(), subtype="calendar", params={"method": "REPLY"})
    return msg


def mail_reply(to_message: EmailMessage | None, sender: str, body: str,
               message_id: str = "<reply-1@m.example>", subject: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, ORGANISER
    msg["Subject"] = subject or f"Re: {to_message['Subject'] if to_message else 'hello'}"
    msg["Message-ID"] = message_id
    if to_message is not None:
        msg["In-Reply-To"] = to_message["Message-ID"]
    msg.set_content(body)
    return msg


def answers(store: Store, unit: str = "2027-q1") -> dict[str, tuple[str, ...]]:
    return dict(snapshot.state(store).rsvps.get(("qa-leads", unit, ""), {}))


def test_a_strangers_calendar_reply_for_every_member_changes_nothing(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    invite = to(sent(T0), JOANNE, "invitation")
    members = {p.split(",")[1]: "DECLINED" for p in
               (config_dir / "example" / "roster.csv").read_text().splitlines()[1:]}
    # authenticated as evil.example by our server (DMARC pass): still not any member
    got = inbox(config_dir, store).apply(read_reply(calendar_reply(invite, MALLORY, members)),
                                         T0)
    assert not got.handled and answers(store) == {}
    assert f"{MALLORY} answered for {JOANNE}: not applied" in got.detail


def test_a_member_answers_for_themselves_only(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    invite = to(sent(T0), JOANNE, "invitation")
    reply = calendar_reply(invite, JOANNE, {JOANNE: "ACCEPTED", GAVIN: "DECLINED"})
    got = inbox(config_dir, store).apply(read_reply(reply), T0)
    assert got.handled and set(answers(store)) == {JOANNE}
    assert f"{JOANNE} answered for {GAVIN}: not applied" in got.detail


def test_a_forged_from_is_not_applied(sent: Callable[[datetime], list[EmailMessage]],
                                      config_dir: Path, store: Store):
    invite = to(sent(T0), JOANNE, "invitation")
    forged = calendar_reply(invite, JOANNE, {JOANNE: "DECLINED"})
    mine = inbox(config_dir, store)
    for raw in (forged.as_bytes(),  # no verdict at all
                b"Authentication-Results: mx.evil.example; dmarc=pass header.from="
                b"bracknell.example\r\n" + forged.as_bytes(),  # another server's name
                f"Authentication-Results: {MX}; dmarc=fail header.from=bracknell.example\r\n"
                .encode() + forged.as_bytes()):
        got = mine.apply(replies.read(raw, trust=TRUST), T0)
        assert not got.handled and "is not authenticated" in got.detail
    assert answers(store) == {}


def test_gmails_decline_note_is_the_reason(sent: Callable[[datetime], list[EmailMessage]],
                                           config_dir: Path, store: Store):
    invite = to(sent(T0), GAVIN, "invitation")
    reply = calendar_reply(invite, GAVIN, {GAVIN: "DECLINED"},
                           **{"X-RESPONSE-COMMENT": "Ofsted are in that week"})
    assert inbox(config_dir, store).apply(read_reply(reply), T0).handled
    assert answers(store)[GAVIN][:2] == ("DECLINED", "Ofsted are in that week")


def test_answers_given_for_the_earlier_time_are_stale_after_a_move(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        clerk: Callable[..., Result]):
    if not store.url.startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    messages = sent(T0)
    mine = inbox(config_dir, store)
    for who, partstat in ((JOANNE, "ACCEPTED"), (GAVIN, "DECLINED")):
        reply = calendar_reply(to(messages, who, "invitation"), who, {who: partstat})
        assert mine.apply(read_reply(reply), T0).handled
    status = json.loads(clerk("status", "--json").output)["meetings"][0]
    assert status["rsvp"]["accepted"] == [JOANNE] and status["rsvp"]["stale"] == []
    edit(config_dir / "example" / "group.toml", "start = 2027-01-14T14:00:00",
         "start = 2027-01-14T15:00:00")  # 14:00 → 15:00: everyone is asked again
    status = json.loads(clerk("status", "--json").output)["meetings"][0]
    assert status["rsvp"]["accepted"] == [] and status["apologies"] == []
    assert sorted(status["rsvp"]["stale"]) == sorted([JOANNE, GAVIN])
    text = clerk("status").output
    assert "2 answered for an earlier time" in text


def test_the_same_message_delivered_twice_is_applied_once(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        tmp_path: Path):
    request = to(sent(RFI_DAY), GAVIN, "rfi")
    reply = mail_reply(request, GAVIN, "Our numbers attached")
    reply.add_attachment(b"%PDF-1.7 numbers", maintype="application", subtype="pdf",
                         filename="numbers.pdf")
    mine = inbox(config_dir, store)
    first, second = (mine.apply(read_reply(reply), RFI_DAY) for _ in range(2))
    assert first.handled and "a submission (1 paper(s))" in first.detail
    assert second.handled and "already applied" in second.detail
    assert len(list((tmp_path / "papers" / "qa-leads" / "2027-q1").iterdir())) == 1


def test_a_computed_reference_is_no_reference(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    request = to(sent(RFI_DAY), GAVIN, "rfi")
    key = str(request["X-Clerk-Key"])  # printed in every message
    guessed = f"<clerk.{hashlib.sha256(key.encode()).hexdigest()[:32]}@network.example>"
    assert guessed != request["Message-ID"]
    reply = mail_reply(None, GAVIN, "Nil return", subject="Re: Request for information")
    reply["In-Reply-To"] = guessed
    got = inbox(config_dir, store).apply(read_reply(reply), RFI_DAY)
    assert not got.handled and "an answer to nothing clerk sent" in got.detail
    assert snapshot.state(store).submitted == {}


def test_an_answer_after_the_meeting_is_not_applied(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    request = to(sent(RFI_DAY), GAVIN, "rfi")
    after = datetime(2027, 1, 15, 10, tzinfo=UTC)
    got = inbox(config_dir, store).apply(read_reply(mail_reply(request, GAVIN, "nil")), after)
    assert not got.handled and "which is over" in got.detail


def _chaser(store: Store, sent: Callable[[datetime], list[EmailMessage]]) -> tuple[int,
                                                                                 EmailMessage]:
    action = store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "T",
                               "text": "Share the LADO tool", "owners": (AMAN,),
                               "due": date(2027, 2, 12)}, "test", "test", T0)
    chase_day = datetime(2026, 12, 8, 10, tzinfo=UTC)
    sent(T0)
    chaser = next(m for m in sent(chase_day) if "/-/actions/" in str(m["X-Clerk-Key"]))
    return action, chaser


def test_an_old_chasers_token_stops_working(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    _, chaser = _chaser(store, sent)
    late = datetime(2027, 2, 10, 10, tzinfo=UTC)  # 64 days after it went
    got = inbox(config_dir, store).apply(read_reply(mail_reply(chaser, AMAN, "DONE")), late)
    assert not got.handled and "more than 60 days old" in got.detail
    assert snapshot.actions(store)[0].status == "open"


def _closed_by_the_admin(store: Store, config_dir: Path, action: int, at: datetime) -> None:
    from bot import config as config_mod
    from bot.engine import action_log

    (found,) = [a for a in snapshot.actions(store) if a.id == action]
    done = action_log.apply(store, config_mod.load(config_dir).group("qa-leads"), found,
                            "DONE", who="kim.osei@network.example", via="clerk actions done",
                            now=at)
    assert done == f"#{action} done"


@pytest.mark.parametrize("body", ["DONE", "DONE #1", "NEW DATE 2027-03-01",
                                  "UPDATE the tool is on the website"])
def test_a_chaser_of_an_action_closed_since_changes_nothing(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        body: str):
    action, chaser = _chaser(store, sent)
    day = datetime(2026, 12, 9, 10, tzinfo=UTC)
    _closed_by_the_admin(store, config_dir, action, day)
    before = (snapshot.actions(store), store.action_history(action))
    got = inbox(config_dir, store).apply(read_reply(mail_reply(chaser, AMAN, body)),
                                         day + timedelta(hours=2))
    assert not got.handled, got.detail  # filed unprocessed, for the admin to read
    assert f"#{action} (Share the LADO tool) was closed (done) since this chaser went: " \
        "nothing changed" in got.detail
    assert (snapshot.actions(store), store.action_history(action)) == before
    assert snapshot.state(store).replies == ()  # and no answer back to the owner


def test_a_plain_done_never_lands_on_another_action_once_the_listed_one_is_closed(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    other = store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "T",
                              "text": "Ask the LADO workers", "owners": (AMAN,),
                              "due": date(2027, 2, 12)}, "test", "test", T0)
    action, chaser = _chaser(store, sent)  # it lists both: a plain DONE would ask which
    day = datetime(2026, 12, 9, 10, tzinfo=UTC)
    _closed_by_the_admin(store, config_dir, action, day)
    got = inbox(config_dir, store).apply(read_reply(mail_reply(chaser, AMAN, "DONE")),
                                         day + timedelta(hours=2))
    assert not got.handled and f"#{action} (Share the LADO tool) was closed" in got.detail
    assert {a.id: a.status for a in snapshot.actions(store)} == {other: "open",
                                                                 action: "done"}
    # naming the open one still works
    named = mail_reply(chaser, AMAN, f"DONE #{other}", message_id="<reply-2@m.example>")
    assert inbox(config_dir, store).apply(read_reply(named), day + timedelta(hours=3)).handled
    assert {a.status for a in snapshot.actions(store)} == {"done"}


def test_a_replayed_new_date_does_not_move_the_date_back(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    _, chaser = _chaser(store, sent)
    day = datetime(2026, 12, 9, 10, tzinfo=UTC)
    mine = inbox(config_dir, store)
    first = mail_reply(chaser, AMAN, "NEW DATE 2027-03-01", message_id="<a@m.example>")
    assert mine.apply(read_reply(first), day).handled
    later = mail_reply(chaser, AMAN, "NEW DATE 2027-04-01", message_id="<b@m.example>")
    assert mine.apply(read_reply(later), day + timedelta(hours=1)).handled is False
    again = mine.apply(read_reply(first), day + timedelta(days=2))  # the first, replayed
    assert again.handled and "already applied" in again.detail
    assert snapshot.actions(store)[0].due == date(2027, 3, 1)


def test_a_forged_bounce_stops_no_mail_and_a_real_one_stops_it_until_the_row_changes(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        make_executor: Callable[[], Executor]):
    invite = to(sent(T0), GAVIN, "invitation")

    def bounce(message_id: str) -> bytes:
        return (f"From: MAILER-DAEMON@kent.example\r\nTo: {ORGANISER}\r\nSubject: Undelivered"
                f"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type="
                f'delivery-status; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
                f"gone\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: "
                f"dns; mx.kent.example\r\n\r\nFinal-Recipient: rfc822; {GAVIN}\r\nAction: "
                f"failed\r\nStatus: 5.1.1\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n"
                f"\r\nMessage-ID: {message_id}\r\n\r\n--b--\r\n").encode()

    mine = inbox(config_dir, store)
    forged = mine.apply(replies.read(bounce("<clerk.0123456789abcdef@network.example>")), T0)
    assert not forged.handled and store.bouncing() == []
    real = mine.apply(replies.read(bounce(str(invite["Message-ID"]))), T0)
    assert real.handled and "not mailed again until its row in the roster changes" in \
        real.detail
    rfi = [k for k in make_executor().tick(RFI_DAY).sent if "/rfi/" in k]
    assert len(rfi) == 15 and not any(GAVIN in k for k in rfi)
    # the admin checks the row and saves it again, corrected: Gavin is mailed again
    edit(config_dir / "example" / "roster.csv", "Gavin Swales,", "Gavin Swales (Kent),")
    rfi = [k for k in make_executor().tick(RFI_DAY + timedelta(minutes=1)).sent
           if "/rfi/" in k]
    assert rfi == [f"qa-leads/2027-q1/rfi/{GAVIN}"]


@pytest.mark.parametrize("body,applied", [
    ("Apologies, I can't make Thursday — Ofsted are in.", True),
    ("Sorry, I will not be able to attend this one.", True),
    ("Please send my apologies.", True),
    ("Hi, can you send the dial-in details again?", False),
    ("No apologies from me, I'll be there.", False),
])
def test_apologies_by_mail_to_an_invitation(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        body: str, applied: bool):
    invite = to(sent(T0), GAVIN, "invitation")
    got = inbox(config_dir, store).apply(read_reply(mail_reply(invite, GAVIN, body)), T0)
    assert got.handled is applied
    if applied:
        assert answers(store)[GAVIN][:2] == ("DECLINED", " ".join(body.split()))
    else:
        assert "does not read as apologies: for the admin to read" in got.detail
        assert answers(store) == {}


PACK_DAY = datetime(2027, 1, 7, 10, tzinfo=UTC)  # the q1 agenda pack goes (-7d)


@pytest.mark.parametrize("body,applied", [
    ("Apologies, I am on leave that week.", True),
    ("Hi, the second paper will not open.", False),
])
def test_apologies_by_mail_to_the_agenda_pack(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        body: str, applied: bool):
    sent(T0)
    pack = to(sent(PACK_DAY), GAVIN, "pack")
    got = inbox(config_dir, store).apply(read_reply(mail_reply(pack, GAVIN, body)), PACK_DAY)
    assert got.handled is applied, got.detail
    if applied:
        assert answers(store)[GAVIN][:2] == ("DECLINED", body)
        assert f"{GAVIN} sent apologies for 2027-q1 by mail" in got.detail
    else:
        assert "a reply to the agenda pack of 2027-q1 from Gavin Swales that does not read " \
            "as apologies: for the admin to read" in got.detail
        assert answers(store) == {}


def test_nothing_is_applied_without_a_way_to_authenticate(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    invite = to(sent(T0), GAVIN, "invitation")
    reply = authenticated(calendar_reply(invite, GAVIN, {GAVIN: "DECLINED"}))
    got: Outcome = inbox(config_dir, store).apply(replies.read(reply), T0)  # no trust given
    assert not got.handled and "set [mailbox] authserv_id" in got.detail


# --- an inbox without a server: a Maildir, and message files read by hand ----------------


def _maildir(root: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    return root


def test_a_maildir_is_read_like_a_mailbox_and_nothing_is_deleted(
        make_executor: Callable[[], Executor], config_dir: Path, store: Store,
        tmp_path: Path):
    box = _maildir(tmp_path / "Maildir")
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\nmailbox = "maildir"\n\n[mailbox]\npath = "{box}"\nauthserv_id = "{MX}"\n')
    ex = make_executor()
    ex.tick(T0)
    assert isinstance(ex.transport, MemoryTransport)
    invite = to(list(ex.transport.sent), GAVIN, "invitation")
    (box / "new" / "1.eml").write_bytes(authenticated(calendar_reply(
        invite, GAVIN, {GAVIN: "DECLINED"}, **{"X-RESPONSE-COMMENT": "On leave"})))
    (box / "cur" / "2.eml:2,S").write_bytes(calendar_reply(invite, GAVIN, {GAVIN: "ACCEPTED"})
                                            .as_bytes())  # forged: no verdict
    from bot import config as config_mod
    from bot import transports

    s = config_mod.load(config_dir).settings
    result = Executor(config_mod.load(config_dir), store, ex.transport,
                      mailbox=transports.load_mailbox(s.mailbox, s.mailbox_options)
                      ).tick(T0 + timedelta(minutes=5))
    assert result.read == 2 and len(result.unprocessed) == 1
    assert "is not authenticated" in result.unprocessed[0]
    assert answers(store)[GAVIN][:2] == ("DECLINED", "On leave")
    assert [p.name for p in (box / ".clerk.processed" / "cur").iterdir()] == ["1.eml:2,"]
    assert [p.name for p in (box / ".clerk.unprocessed" / "cur").iterdir()] == ["2.eml:2,S"]
    assert list((box / "new").iterdir()) == list((box / "cur").iterdir()) == []


def test_clerk_inbox_read_applies_files_as_mail_from_the_mailbox(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        tmp_path: Path, clerk: Callable[..., Result]):
    if not store.url.startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    invite = to(sent(T0), GAVIN, "invitation")
    with (config_dir / "clerk.toml").open("a") as f:  # no mailbox: files only
        f.write(f'\n[mailbox]\nauthserv_id = "{MX}"\nmicrosoft365 = true\n')
    saved = tmp_path / "Gavin's reply.eml"
    saved.write_bytes(authenticated(mail_reply(invite, GAVIN, "Apologies, I can't make it")))
    stamped = tmp_path / "stamped.eml"  # Microsoft's stamp is not believed from a file
    stamped.write_bytes(
        b"Authentication-Results: spf=pass smtp.mailfrom=bracknell.example; dmarc=pass "
        b"action=none header.from=bracknell.example\r\n" + calendar_reply(
            invite, JOANNE, {JOANNE: "ACCEPTED"}).as_bytes())
    result = clerk("--now", "2026-12-02T09:00:00+00:00", "inbox", "read", str(saved),
                   str(stamped), "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert [(g["file"], g["applied"]) for g in got] == [(str(saved), True), (str(stamped), False)]
    assert "is not authenticated" in got[1]["detail"]
    assert answers(store)[GAVIN][0] == "DECLINED" and JOANNE not in answers(store)
    assert saved.exists() and stamped.exists()  # the files stay where they are


@pytest.mark.parametrize("settings,message", [
    ('[clerk]\nmailbox = "maildir"\n', "mailbox.path"),
    ('[clerk]\nmailbox = "imap"\n\n[mailbox]\nhost = "imap.example"\ntrusted = true\n',
     "a imap mailbox cannot vouch for its senders"),
    ('[clerk]\nmailbox = "maildir"\n\n[mailbox]\npath = "m"\nmicrosoft365 = true\n',
     "Microsoft 365's verdict cannot be read from a maildir mailbox"),
    ('[mailbox]\nhost = "imap.example"\n', "a [mailbox] section, but no mailbox"),
    ('[mailbox]\nauthserv_id = "not a host name"\n', "is not an authserv-id"),
    ('[mailbox]\nauthserv_id = 5\n', "must be a name in quotes"),
])
def test_bad_trust_settings_are_problems_with_their_key(
        config_dir: Path, settings: str, message: str, clerk: Callable[..., Result]):
    (config_dir / "clerk.toml").write_text(settings)
    result = clerk("check")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "clerk.toml:" in result.output


def test_check_warns_when_no_reply_can_be_authenticated(config_dir: Path, tmp_path: Path,
                                                         clerk: Callable[..., Result]):
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\nmailbox = "maildir"\n\n[mailbox]\npath = "{tmp_path}"\n')
    result = clerk("check")
    assert result.exit_code == 0 and "warning" in result.output
    assert "clerk cannot tell who sent a reply" in result.output


def test_a_maildir_file_over_max_message_is_never_read_whole(
        make_executor: Callable[[], Executor], config_dir: Path, store: Store,
        tmp_path: Path):
    from bot import config as config_mod
    from bot import transports

    box = _maildir(tmp_path / "Maildir")
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\nmailbox = "maildir"\nmax_message = 200000\n\n[mailbox]\npath = "{box}"\n'
        f'authserv_id = "{MX}"\n')
    big = mail_reply(None, GAVIN, "x").as_bytes() + b"y" * 300_000
    (box / "new" / "big.eml").write_bytes(big)
    config = config_mod.load(config_dir)
    mailbox = transports.load_mailbox(config.settings.mailbox, config.settings.mailbox_options)
    mailbox.max_message = config.settings.max_message
    ((_, got),) = list(mailbox.messages())
    assert not isinstance(got, bytes) and got.size == len(big) and len(got.head) < len(big)
    result = Executor(config, store, MemoryTransport(), mailbox=mailbox).tick(T0)
    assert result.read == 1 and "larger than max_message" in result.unprocessed[0]
    assert [p.name for p in (box / ".clerk.unprocessed" / "cur").iterdir()] == ["big.eml:2,"]


def test_a_plain_done_closes_the_owners_only_action_of_their_own(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    action, chaser = _chaser(store, sent)
    store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "All",
                      "text": "Share a tool", "owners": ("*",), "due": date(2027, 2, 12)},
                     "test", "test", T0)  # an all-members action rides along
    day = datetime(2026, 12, 9, 10, tzinfo=UTC)
    got = inbox(config_dir, store).apply(read_reply(mail_reply(chaser, AMAN, "Done!")), day)
    assert got.handled and "done" in got.detail
    assert {a.id: a.status for a in snapshot.actions(store)}[action] == "done"


def test_an_ambiguous_done_gets_one_answer_listing_the_actions(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store,
        make_executor: Callable[[], Executor]):
    store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "T",
                      "text": "Write the report", "owners": (AMAN,), "due": date(2027, 3, 1)},
                     "test", "test", T0)
    _, chaser = _chaser(store, sent)
    day = datetime(2026, 12, 9, 10, tzinfo=UTC)
    asked = mail_reply(chaser, AMAN, "DONE", message_id="<done-1@bucks.example>")
    got = inbox(config_dir, store).apply(read_reply(asked), day)
    assert got.handled and "asked" in got.detail and "not applied yet" in got.detail
    assert {a.status for a in snapshot.actions(store)} == {"open"}
    ex = make_executor()
    ex.tick(day)
    assert isinstance(ex.transport, MemoryTransport)
    (answer,) = [m for m in ex.transport.sent if "/-/reply/" in str(m["X-Clerk-Key"])]
    assert str(answer["To"]).endswith(f"<{AMAN}>")
    assert answer["In-Reply-To"] == "<done-1@bucks.example>"
    text = answer.get_body(("plain",)).get_content()
    assert "Which action did you mean?" in text and "#1" in text and "#2" in text
    assert len([k for k in ex.tick(day + timedelta(hours=1)).sent if "/-/reply/" in k]) == 0


def test_an_all_members_action_is_closed_by_the_chair_not_by_one_member(
        sent: Callable[[datetime], list[EmailMessage]], config_dir: Path, store: Store):
    everyone = store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1",
                                 "topic": "All", "text": "Share your audit tool",
                                 "owners": ("*",), "due": date(2027, 2, 12)},
                                "test", "test", T0)
    sent(T0)
    chasers = [m for m in sent(datetime(2026, 12, 8, 10, tzinfo=UTC))
               if "/-/actions/" in str(m["X-Clerk-Key"])]
    mine = next(m for m in chasers if GAVIN in str(m["To"]))
    day = datetime(2026, 12, 9, 10, tzinfo=UTC)
    got = inbox(config_dir, store).apply(read_reply(mail_reply(mine, GAVIN, f"DONE #{everyone}")),
                                         day)
    assert got.handled and "the chair closes it" in got.detail
    (action,) = snapshot.actions(store)
    assert action.status == "open"
    chair = "sophie.barton@hampshire-iow.example"
    theirs = next(m for m in chasers if chair in str(m["To"]))
    closed = inbox(config_dir, store).apply(read_reply(mail_reply(
        theirs, chair, f"DONE #{everyone}", message_id="<c@m.example>")), day)
    assert closed.handled and snapshot.actions(store)[0].status == "done"
