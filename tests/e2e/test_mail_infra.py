"""The mail test infrastructure itself (tests/mail.py): the real Postfix + Dovecot that
tests/mailservers.sh sets up, and every fault mode of the aiosmtpd ``fault_smtp`` server,
driven with plain smtplib so that clerk's own transports are not needed to trust them."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

import pytest

from tests import mail
from tests.mail import FaultSMTP, MailServers, empty_mailboxes, imap_fetch, smtp_send, wait_for

pytestmark = pytest.mark.slow  # real servers

# the fixtures (tests/e2e/conftest.py may import them instead)

ORGANISER = "qa-leads@network.example"


def message(subject: str, to: str = "someone@kent.example") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"QA Leads Network (clerk) <{ORGANISER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@clerk.test>"
    msg.set_content(f"{subject}\n")
    return msg


def original_to(messages: list[EmailMessage]) -> list[str]:
    return sorted(str(m["X-Original-To"]) for m in messages)


# --- Postfix and Dovecot -------------------------------------------------------------------


def test_a_member_address_lands_in_members_inbox(mailboxes: MailServers) -> None:
    assert smtp_send(message("to a member"), ORGANISER, ["someone@kent.example"]) == {}
    [got] = wait_for("members", 1)
    assert got["X-Original-To"] == "someone@kent.example"
    assert got["Subject"] == "to a member"
    assert got["Message-ID"] == "<to-a-member@clerk.test>"
    assert got.get_content().rstrip() == "to a member"
    mail.wait_queue_empty()
    assert imap_fetch("clerk") == []


def test_the_organiser_address_lands_in_clerks_inbox(mailboxes: MailServers) -> None:
    smtp_send(message("to the organiser", ORGANISER), "kim.osei@network.example",
              [ORGANISER, "qa-leads+rsvp@network.example"])
    got = wait_for("clerk", 2)
    assert original_to(got) == ["qa-leads+rsvp@network.example", ORGANISER]
    mail.wait_queue_empty()
    assert imap_fetch("members") == []


def test_one_copy_per_recipient_each_with_its_address(mailboxes: MailServers) -> None:
    members = ["gavin.swales@kent.example", "sandra.davey@slough.example",
               "kim.osei@network.example"]
    smtp_send(message("agenda pack"), ORGANISER, [*members, ORGANISER])
    assert original_to(wait_for("members", 3)) == sorted(members)
    assert original_to(wait_for("clerk", 1)) == [ORGANISER]
    mail.wait_queue_empty()
    assert len(imap_fetch("members")) == 3  # no more than one copy each


def test_an_invalid_domain_bounces_to_the_organiser(mailboxes: MailServers) -> None:
    # .invalid addresses are accepted, then bounced to the sender: here clerk's mailbox
    refused = smtp_send(message("to nowhere", "gone@school.invalid"), ORGANISER,
                        ["gone@school.invalid", "someone@kent.example"])
    assert refused == {}
    [bounce] = wait_for("clerk", 1)
    assert bounce["X-Original-To"] == ORGANISER
    assert bounce.get_content_type() == "multipart/report"
    assert "gone@school.invalid" in bounce.as_string()
    assert original_to(wait_for("members", 1)) == ["someone@kent.example"]


def test_smtp_to_imap_latency_is_small(mailboxes: MailServers) -> None:
    latencies = []
    for n in range(5):
        start = time.monotonic()
        smtp_send(message(f"latency {n}"), ORGANISER, ["someone@kent.example"])
        wait_for("members", n + 1)
        latencies.append(time.monotonic() - start)
    assert max(latencies) < 1.0, latencies


def test_empty_mailboxes_removes_mail_and_folders(mailboxes: MailServers) -> None:
    smtp_send(message("old"), ORGANISER, ["someone@kent.example", ORGANISER])
    wait_for("members", 1)
    wait_for("clerk", 1)
    with mail._imap("clerk") as conn:
        assert conn.create('"Processed/2027"')[0] == "OK"
    empty_mailboxes()
    assert imap_fetch("members") == []
    assert imap_fetch("clerk") == []
    with mail._imap("clerk") as conn:
        names = [mail._list_entry(line)[1] for line in conn.list('""', "*")[1]]
    assert names == ["INBOX"]


def test_missing_setting_fails_with_what_to_run(monkeypatch: pytest.MonkeyPatch,
                                                 mailservers: MailServers, tmp_path) -> None:
    monkeypatch.delenv(mail.ENV)
    mail.servers.cache_clear()
    try:
        with pytest.raises(mail.MailServersMissing, match=r"bash tests/mailservers\.sh"):
            mail.servers()
        path = tmp_path / "mail.json"
        path.write_text('{"host": "127.0.0.1", "smtp_port": 1, "imap_port": 2, "users": {}}')
        monkeypatch.setenv(mail.ENV, str(path))
        assert mail.servers().imap_port == 2
        mail.servers.cache_clear()
        monkeypatch.setenv(mail.ENV, str(tmp_path / "absent.json"))
        with pytest.raises(mail.MailServersMissing, match="cannot read it"):
            mail.servers()
    finally:
        mail.servers.cache_clear()


# --- fault_smtp ----------------------------------------------------------------------------


def connect(fault: FaultSMTP) -> smtplib.SMTP:
    return smtplib.SMTP(fault.host, fault.port, timeout=5)


def test_fault_smtp_accepts_and_records_the_exact_envelope(fault_smtp: FaultSMTP) -> None:
    with connect(fault_smtp) as smtp:
        refused = smtp.send_message(message("hello"), "bounces+x@network.example",
                                    ["a@kent.example", "B@Bucks.example"])
    assert refused == {}
    [got] = fault_smtp.received
    assert got.mail_from == "bounces+x@network.example"
    assert got.rcpt_tos == ("a@kent.example", "B@Bucks.example")
    assert got.message["Subject"] == "hello"
    assert got.acknowledged
    assert got.connection == 1
    assert fault_smtp.refused == []


def test_fault_smtp_refuses_one_recipient_of_several(fault_smtp: FaultSMTP) -> None:
    fault_smtp.reject_rcpt("gone@bucks.example")
    with connect(fault_smtp) as smtp:
        refused = smtp.sendmail(ORGANISER, ["a@kent.example", "gone@bucks.example",
                                            "b@slough.example"], message("x").as_bytes())
        assert set(refused) == {"gone@bucks.example"}
        assert refused["gone@bucks.example"][0] == 550
        # a message to the refused address alone fails as a whole
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail(ORGANISER, ["gone@bucks.example"], message("y").as_bytes())
        assert list(info.value.recipients) == ["gone@bucks.example"]
    [got] = fault_smtp.received
    assert got.rcpt_tos == ("a@kent.example", "b@slough.example")
    assert [(r.stage, r.address, r.reply[:3]) for r in fault_smtp.refused] == [
        ("RCPT", "gone@bucks.example", "550")] * 2


def test_fault_smtp_451_twice_then_ok(fault_smtp: FaultSMTP) -> None:
    fault_smtp.tempfail(2)
    outcomes: list[object] = []
    with connect(fault_smtp) as smtp:
        for _ in range(3):
            try:
                outcomes.append(smtp.sendmail(ORGANISER, ["a@kent.example"],
                                              message("retry").as_bytes()))
            except smtplib.SMTPDataError as exc:
                outcomes.append(exc.smtp_code)
    assert outcomes == [451, 451, {}]
    assert len(fault_smtp.received) == 1
    assert [r.stage for r in fault_smtp.refused] == ["DATA", "DATA"]


@pytest.mark.parametrize(("stage", "error"), [("MAIL", smtplib.SMTPSenderRefused),
                                              ("RCPT", smtplib.SMTPRecipientsRefused)])
def test_fault_smtp_451_at_other_stages(fault_smtp: FaultSMTP, stage: str,
                                        error: type[Exception]) -> None:
    fault_smtp.tempfail(1, stage=stage)  # type: ignore[arg-type]
    with connect(fault_smtp) as smtp:
        with pytest.raises(error):
            smtp.sendmail(ORGANISER, ["a@kent.example", "b@kent.example"], b"Subject: x\r\n\r\nx")
        assert smtp.sendmail(ORGANISER, ["a@kent.example"], b"Subject: x\r\n\r\nx") == {}
    assert len(fault_smtp.received) == 1
    assert {r.reply[:3] for r in fault_smtp.refused} == {"451"}
    assert {r.stage for r in fault_smtp.refused} == {stage}


def test_fault_smtp_421_mid_batch(fault_smtp: FaultSMTP) -> None:
    fault_smtp.close_after(2)
    sent: list[str] = []
    smtp = connect(fault_smtp)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        for n in range(5):
            smtp.sendmail(ORGANISER, [f"m{n}@kent.example"], message(f"batch {n}").as_bytes())
            sent.append(f"m{n}@kent.example")
    assert info.value.smtp_code == 421
    assert smtp.sock is None  # smtplib closed the connection on 421
    assert sent == ["m0@kent.example", "m1@kent.example"]
    # the next connection gets its own k messages
    with connect(fault_smtp) as again:
        again.sendmail(ORGANISER, ["m2@kent.example"], message("batch 2").as_bytes())
    assert [(r.rcpt_tos, r.connection) for r in fault_smtp.received] == [
        (("m0@kent.example",), 1), (("m1@kent.example",), 1), (("m2@kent.example",), 2)]


def test_fault_smtp_lost_250(fault_smtp: FaultSMTP) -> None:
    fault_smtp.lose_250()
    smtp = connect(fault_smtp)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail(ORGANISER, ["a@kent.example"], message("lost").as_bytes())
    smtp.close()
    [got] = fault_smtp.received  # the server has it, the client was never told
    assert (got.mail_from, got.rcpt_tos, got.acknowledged) == (
        ORGANISER, ("a@kent.example",), False)
    assert got.message["Subject"] == "lost"
    with connect(fault_smtp) as smtp:  # only the next message was lost
        assert smtp.sendmail(ORGANISER, ["a@kent.example"], message("again").as_bytes()) == {}
    assert [r.acknowledged for r in fault_smtp.received] == [False, True]


def test_fault_smtp_down_for_a_while_then_up_on_the_same_port(fault_smtp: FaultSMTP) -> None:
    port = fault_smtp.port
    fault_smtp.down_for(0.5)
    assert not fault_smtp.up
    with pytest.raises(ConnectionRefusedError):
        connect(fault_smtp)
    fault_smtp.wait_up()
    assert fault_smtp.port == port
    with connect(fault_smtp) as smtp:
        assert smtp.sendmail(ORGANISER, ["a@kent.example"], message("back").as_bytes()) == {}
    assert len(fault_smtp.received) == 1
    # and by hand
    fault_smtp.stop()
    with pytest.raises(ConnectionRefusedError):
        connect(fault_smtp)
    fault_smtp.start()
    with connect(fault_smtp) as smtp:
        smtp.noop()


def test_fault_smtp_stop_drops_an_open_connection(fault_smtp: FaultSMTP) -> None:
    smtp = connect(fault_smtp)
    smtp.noop()
    fault_smtp.stop()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail(ORGANISER, ["a@kent.example"], b"Subject: x\r\n\r\nx")
    smtp.close()
    assert fault_smtp.received == []
