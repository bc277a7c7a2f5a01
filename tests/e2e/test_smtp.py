"""The smtp transport against a fault-injecting aiosmtpd and a real Postfix (tests/mail.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import config as config_mod
from bot import transports
from bot.engine.executor import Executor
from bot.engine.store import Store
from tests.mail import FaultSMTP, MailServers, imap_fetch, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.clock]
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
MEMBERS = 21
ORGANISER = "qa-leads@network.example"


def smtp_config(config_dir: Path, host: str, port: int, extra: str = "") -> None:
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\ntransport = "smtp"\n{extra}\n[transport]\nhost = "{host}"\n'
        f'port = {port}\nsecurity = "none"\ntimeout = 5\n')


@pytest.fixture
def smtp_executor(config_dir: Path, store: Store,
                  fault_smtp: FaultSMTP) -> Callable[..., Executor]:
    def make(extra: str = "") -> Executor:
        smtp_config(config_dir, fault_smtp.host, fault_smtp.port, extra)
        config = config_mod.load(config_dir)
        s = config.settings
        return Executor(config, store, transports.load(s.transport, s.transport_options))
    return make


def delivered(fault: FaultSMTP) -> Counter[str]:
    """How many times the server stored each Message-ID."""
    return Counter(str(r.message["Message-ID"]) for r in fault.received)


def test_one_connection_carries_a_tick_and_each_envelope_is_exact(
        smtp_executor: Callable[..., Executor], fault_smtp: FaultSMTP):
    result = smtp_executor().tick(T0)
    assert len(result.sent) == MEMBERS
    assert {r.connection for r in fault_smtp.received} == {1}
    for r in fault_smtp.received:
        assert r.mail_from == ORGANISER
        assert r.rcpt_tos == (str(r.message["To"]).split("<")[1].rstrip(">"),)


def test_a_550_fails_that_recipient_alone(smtp_executor: Callable[..., Executor],
                                          fault_smtp: FaultSMTP, store: Store):
    fault_smtp.reject_rcpt("gavin.swales@kent.example")
    result = smtp_executor().tick(T0)
    assert len(result.sent) == MEMBERS - 1
    (failed,) = result.failed
    assert "gavin.swales" in failed and "550" in store.row(failed).last_error
    assert len(fault_smtp.received) == MEMBERS - 1


def test_a_451_is_retried_later_and_then_delivered_once(
        smtp_executor: Callable[..., Executor], fault_smtp: FaultSMTP, store: Store):
    fault_smtp.tempfail(1)
    ex = smtp_executor()
    first = ex.tick(T0)
    (retry,) = first.retry
    assert len(first.sent) == MEMBERS - 1
    assert ex.tick(T0 + timedelta(seconds=30)).sent == []  # its back-off is not over
    assert ex.tick(T0 + timedelta(minutes=2)).sent == [retry]
    assert set(delivered(fault_smtp).values()) == {1} and len(delivered(fault_smtp)) == MEMBERS


def test_a_421_mid_batch_loses_nothing(smtp_executor: Callable[..., Executor],
                                       fault_smtp: FaultSMTP, store: Store):
    fault_smtp.close_after(5)
    ex = smtp_executor()
    first = ex.tick(T0)
    assert first.retry and len(first.sent) + len(first.retry) == MEMBERS
    fault_smtp.reset()
    ex.tick(T0 + timedelta(minutes=5))
    assert Counter(r.state for r in store.rows() if r.kind == "invitation"
                   and r.meeting_id == "2027-q1") == {"sent": MEMBERS}
    assert set(delivered(fault_smtp).values()) == {1} and len(delivered(fault_smtp)) == MEMBERS


def test_a_lost_250_costs_at_most_one_duplicate(smtp_executor: Callable[..., Executor],
                                                fault_smtp: FaultSMTP, store: Store):
    fault_smtp.lose_250(1)
    ex = smtp_executor()
    first = ex.tick(T0)
    (retry,) = first.retry
    ex.tick(T0 + timedelta(minutes=5))
    counts = delivered(fault_smtp)
    assert len(counts) == MEMBERS  # nothing lost
    assert sorted(counts.values()) == [1] * (MEMBERS - 1) + [2]  # one duplicate, for it
    assert store.row(retry).state == "sent"


def test_an_hour_of_downtime_delays_but_loses_nothing(
        smtp_executor: Callable[..., Executor], fault_smtp: FaultSMTP, store: Store):
    fault_smtp.stop()
    ex = smtp_executor()
    now = T0
    while now < T0 + timedelta(hours=1):
        result = ex.tick(now)
        assert result.sent == [] and result.failed == [] and result.parked == []
        now += timedelta(minutes=1)
    rows = [r for r in store.rows() if r.state == "retry"]
    assert len(rows) == MEMBERS and all(r.next_attempt_at > T0 for r in rows)
    assert max(r.attempts for r in rows) >= 5  # capped exponential back-off, not every tick
    assert max(r.attempts for r in rows) <= 8
    fault_smtp.start()
    while now < T0 + timedelta(hours=3):
        ex.tick(now)
        now += timedelta(minutes=1)
    assert set(delivered(fault_smtp).values()) == {1} and len(delivered(fault_smtp)) == MEMBERS


def test_a_message_failing_too_long_is_parked_and_the_admin_told_once(
        smtp_executor: Callable[..., Executor], fault_smtp: FaultSMTP, store: Store):
    fault_smtp.stop()
    ex = smtp_executor('park_after = "30m"\n')
    now = T0
    parked: list[str] = []
    while now < T0 + timedelta(hours=1):
        parked += ex.tick(now).parked
        now += timedelta(minutes=1)
    assert len(parked) == MEMBERS
    fault_smtp.start()
    sent: list[str] = []
    for minute in range(40):  # the digest itself waits out its back-off
        sent += ex.tick(now + timedelta(minutes=minute)).sent
    (notice,) = sent  # told once, in one digest; the parked messages stay parked
    assert "/undelivered/kim.osei@network.example/" in notice
    (received,) = fault_smtp.received
    digest = received.message
    assert digest["To"].addresses[0].addr_spec == "kim.osei@network.example"
    assert digest.get_body(("plain",)).get_content().count("parked:") == MEMBERS


def test_invites_go_through_postfix_to_each_members_mailbox(
        config_dir: Path, store: Store, mailboxes: MailServers):
    smtp_config(config_dir, mailboxes.host, mailboxes.smtp_port)
    config = config_mod.load(config_dir)
    s = config.settings
    ex = Executor(config, store, transports.load(s.transport, s.transport_options))
    assert len(ex.tick(T0).sent) == MEMBERS
    messages = wait_for("members", MEMBERS)
    roster = {line.split(",")[1] for line in
              (config_dir / "example" / "roster.csv").read_text().splitlines()[1:]}
    assert {str(m["X-Original-To"]) for m in messages} == roster
    for m in messages:
        calendar = [p for p in m.walk() if p.get_content_type() == "text/calendar"]
        assert calendar and calendar[0].get_param("method") == "REQUEST"
        assert str(m["X-Original-To"]) in calendar[0].get_content().replace("\r\n ", "")
    assert imap_fetch("clerk") == []  # nothing came back to the organiser


def test_clerk_retry_sends_parked_messages_again(
        smtp_executor: Callable[..., Executor], fault_smtp: FaultSMTP, store: Store,
        clerk: Callable[..., object]):
    if not store.url.startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    fault_smtp.stop()
    ex = smtp_executor('park_after = "10m"\n')
    for minute in range(0, 30):
        ex.tick(T0 + timedelta(minutes=minute))
    assert Counter(r.state for r in store.rows() if "/invitation/" in r.key
                   and r.meeting_id == "2027-q1") == {"parked": MEMBERS}
    fault_smtp.start()
    # the admin retries at 10:30 (the command's clock is the same as the ticks')
    result = clerk("--now", (T0 + timedelta(minutes=30)).isoformat(), "retry",
                   "qa-leads/2027-q1/invitation/")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert result.output.count("queued again") == MEMBERS  # type: ignore[attr-defined]
    sent = ex.tick(T0 + timedelta(minutes=31)).sent
    assert len([k for k in sent if "/invitation/" in k]) == MEMBERS


def test_a_552_is_retried_not_failed(smtp_executor: Callable[..., Executor],
                                     fault_smtp: FaultSMTP, store: Store):
    fault_smtp.reject_rcpt("gavin.swales@kent.example", code=552,
                           text="5.2.2 mailbox full")
    result = smtp_executor().tick(T0)
    (retry,) = result.retry
    assert "gavin.swales" in retry and result.failed == []
    assert "552" in store.row(retry).last_error


def test_a_server_that_never_answers_times_out_and_is_retried(
        config_dir: Path, store: Store):
    import socket

    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(50)
        smtp_config(config_dir, "127.0.0.1", silent.getsockname()[1])
        edit_timeout(config_dir, 0.5)
        config = config_mod.load(config_dir)
        s = config.settings
        ex = Executor(config, store, transports.load(s.transport, s.transport_options))
        started = time.monotonic()
        result = ex.tick(T0)
        elapsed = time.monotonic() - started
    assert result.sent == [] and len(result.retry) == MEMBERS
    assert "timed out" in store.row(result.retry[0]).last_error
    # the batch waited for one time-out, not one per message
    assert elapsed < 5 * 0.5


def edit_timeout(config_dir: Path, seconds: float) -> None:
    path = config_dir / "clerk.toml"
    path.write_text(path.read_text().replace("timeout = 5", f"timeout = {seconds}"))
