"""The smtp transport's own dialogue (bot/transports/smtp.py ``start``, ``_data``, ``_end``)
against a scripted server that keeps RFC 5321's transaction state — what aiosmtpd cannot be made to
refuse (the DATA command itself, a 421 at RCPT, a server without SMTPUTF8)."""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import config as config_mod
from bot import transports
from bot.domain.errors import TransportError
from bot.engine.executor import Executor
from bot.engine.store import Store, ledger
from bot.transports import smtp as smtp_mod
from bot.transports.base import Mail
from bot.transports.smtp import SmtpTransport

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


class ScriptedSMTP:
    """One thread, one connection at a time. ``replies`` maps a command (``"DATA"``,
    ``"RCPT"``…) to the replies to give it, in turn; an empty list means the normal one. A
    MAIL inside an open transaction gets 503, as Postfix answers it."""

    def __init__(self, replies: dict[str, list[str]] | None = None, utf8: bool = True) -> None:
        self.replies = replies or {}
        self.delays: dict[str, float] = {}  # seconds before answering a command
        self.utf8 = utf8
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn, conn.makefile("rb") as rfile, contextlib.suppress(OSError):
                self._session(conn, rfile)  # a client that hangs up ends the session

    def _session(self, conn: socket.socket, rfile: object) -> None:
        def say(line: str) -> None:
            conn.sendall(line.encode() + b"\r\n")

        say("220 scripted ESMTP")
        in_transaction = False
        while line := rfile.readline():  # type: ignore[attr-defined]
            command = line.decode("utf-8", "replace").strip()
            verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
            self.commands.append(verb + command[len(verb):])
            time.sleep(self.delays.get(verb, 0))
            scripted = self.replies.get(verb)
            if scripted:
                reply = scripted.pop(0)
                say(reply)
                if reply.startswith("421"):
                    return
                continue
            if verb == "EHLO":
                say("250-scripted\r\n250-SIZE 10000000" + ("\r\n250 SMTPUTF8" if self.utf8
                                                          else "\r\n250 8BITMIME"))
            elif verb == "MAIL":
                say("503 5.5.1 Error: nested MAIL command" if in_transaction else "250 OK")
                in_transaction = True
            elif verb == "RCPT":
                say("250 OK")
            elif verb == "DATA":
                say("354 go ahead")
                data = b""
                while (chunk := rfile.readline()) != b".\r\n":  # type: ignore[attr-defined]
                    data += chunk
                self.messages.append(data)
                in_transaction = False
                say("250 OK")
            elif verb == "RSET":
                in_transaction = False
                say("250 OK")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("502 no")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ScriptedSMTP]:
    s = ScriptedSMTP()
    yield s
    s.close()


def mail(n: int, sender: str = "clerk@network.example") -> Mail:
    return Mail(key=f"k{n}", message_id=f"<m{n}@network.example>", subject=f"s{n}",
                sender=("Clerk", sender), to=((f"Member {n}", f"m{n}@council.example"),),
                cc=(), html="", text="", attachments=(),
                data=f"Subject: s{n}\r\n\r\nbody {n}\r\n.leading dot\r\n".encode())


def transport(port: int, **options: object) -> SmtpTransport:
    return SmtpTransport({"host": "127.0.0.1", "port": port, "security": "none",
                          "timeout": 5.0, **options})


def refused_then_next(server: ScriptedSMTP, verb: str, reply: str) -> TransportError:
    """Message 1 meets ``reply`` to ``verb``; message 2 follows. Message 1's error."""
    server.replies[verb] = [reply]
    t = transport(server.port)
    with pytest.raises(TransportError) as caught:
        t.send(mail(1))
    t.send(mail(2))
    t.close()
    return caught.value


def test_a_refused_data_command_leaves_the_next_message_a_clean_transaction(
        server: ScriptedSMTP):
    error = refused_then_next(server, "DATA", "451 4.3.0 not now")
    assert error.retryable and "451" in str(error)
    # message 2 did not meet "503 nested MAIL command": the transaction was reset
    assert [m.splitlines()[0] for m in server.messages] == [b"Subject: s2"]
    assert "RSET" in server.commands


def test_the_message_goes_with_its_leading_dots_doubled_and_back(server: ScriptedSMTP):
    t = transport(server.port)
    t.send(mail(1))
    t.close()
    assert server.messages == [b"Subject: s1\r\n\r\nbody 1\r\n..leading dot\r\n"]
    assert "MAIL FROM:<clerk@network.example> size=37" in server.commands
    assert "RCPT TO:<m1@council.example>" in server.commands


def test_a_421_at_rcpt_is_retried_and_the_next_message_opens_a_new_session(
        server: ScriptedSMTP):
    error = refused_then_next(server, "RCPT", "421 4.7.0 closing")
    assert error.retryable and not error.in_doubt
    assert server.connections == 2 and len(server.messages) == 1


def test_an_address_that_is_not_ascii_goes_with_smtputf8(server: ScriptedSMTP):
    t = transport(server.port, envelope_from="bounces-clérk@network.example")
    t.send(mail(1))
    t.close()
    assert "MAIL FROM:<bounces-clérk@network.example> size=37 SMTPUTF8" in server.commands


def test_an_address_that_is_not_ascii_fails_clearly_without_smtputf8():
    server = ScriptedSMTP(utf8=False)
    t = transport(server.port)
    try:
        with pytest.raises(TransportError) as caught:
            t.send(mail(1, sender="clérk@network.example"))
        assert not caught.value.retryable and "SMTPUTF8" in str(caught.value)
        t.send(mail(2))  # the next, plain one goes on the same connection
    finally:
        t.close()
        server.close()
    assert [m.splitlines()[0] for m in server.messages] == [b"Subject: s2"]
    assert server.connections == 1


class Ledger:
    """A claim that notes, in the server's own list of commands, when the ledger was
    written — each time after the server has logged the command just sent, and the claim
    after giving a wrong transport 50 ms to send DATA too early."""

    def __init__(self, server: ScriptedSMTP, ours: bool = True) -> None:
        self.server, self.ours = server, ours

    def _after(self, verb: str) -> None:
        deadline = time.monotonic() + 5
        while not any(c.startswith(verb) for c in self.server.commands):
            assert time.monotonic() < deadline, f"the server never got {verb}"
            time.sleep(0.001)

    def begin(self) -> None:
        self._after("MAIL")
        self.server.commands.append("(ledger: begun)")

    def __call__(self) -> bool:
        self._after("RCPT")
        time.sleep(0.05)
        self.server.commands.append("(ledger: claimed)")
        return self.ours


def test_nothing_is_sent_that_could_deliver_the_message_before_its_claim(server: ScriptedSMTP):
    t = transport(server.port)
    finish = t.start(mail(1), Ledger(server))
    assert finish is not None
    finish()
    t.close()
    verbs = [c.split(":")[0].split(" ")[0] for c in server.commands]
    # the claim's transaction begun (the message before recorded) while MAIL FROM is
    # answered, this one claimed and committed while the first RCPT TO is; DATA after it
    assert verbs[1:6] == ["MAIL", "(ledger", "RCPT", "(ledger", "DATA"]
    assert len(server.messages) == 1


def test_a_slow_answer_to_mail_from_never_holds_the_claims_transaction(
        server: ScriptedSMTP, monkeypatch: pytest.MonkeyPatch):
    """Past HOLD without MAIL FROM's answer, the claim is made (and committed) before
    waiting on: other writers never wait on the server."""
    monkeypatch.setattr(smtp_mod, "HOLD", 0.05)
    server.delays["MAIL"] = 0.5
    done: list[str] = []

    class Recorder:
        def begin(self) -> None:
            done.append("begun")

        def __call__(self) -> bool:
            time.sleep(0.05)  # a RCPT TO already written would reach the server meanwhile
            done.append("claimed, with MAIL FROM still unanswered"
                        if not any(c.startswith("RCPT") for c in server.commands)
                        else "claimed")
            return True

    t = transport(server.port)
    finish = t.start(mail(1), Recorder())
    assert finish is not None
    finish()
    t.close()
    assert done == ["begun", "claimed, with MAIL FROM still unanswered"]
    assert len(server.messages) == 1


def test_a_claim_refused_sends_nothing_and_resets_the_transaction(server: ScriptedSMTP):
    t = transport(server.port)
    assert t.start(mail(1), Ledger(server, ours=False)) is None
    t.send(mail(2))
    t.close()
    assert [m.splitlines()[0] for m in server.messages] == [b"Subject: s2"]
    assert "RSET" in server.commands and server.commands.count("DATA") == 1


# --- the executor with the smtp transport: the ledger's failures ---------------------------

@pytest.fixture
def smtp_config(config_dir: Path, server: ScriptedSMTP) -> Path:
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\ntransport = "smtp"\n[transport]\nhost = "127.0.0.1"\n'
        f'port = {server.port}\nsecurity = "none"\ntimeout = 5\n')
    return config_dir


def _executor(config_dir: Path, store: Store) -> Executor:
    config = config_mod.load(config_dir)
    return Executor(config, store, transports.load("smtp", config.settings.transport_options))


def _failing_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, n: int,
                  error: Exception) -> None:
    real, calls = getattr(owner, name), [0]

    def once(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == n:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, once)


LOCKED = sa.exc.OperationalError("UPDATE ledger", {}, Exception("database is locked"))


@pytest.mark.parametrize("where", ["recording", "claim", "claim after the transport failed"])
def test_a_ledger_failure_never_leaves_a_delivered_message_unrecorded(
        smtp_config: Path, store: Store, server: ScriptedSMTP, monkeypatch: pytest.MonkeyPatch,
        where: str):
    """Whatever the ledger fails on while the next message starts, the message the server
    already took is recorded sent: nothing is left in `sending` to be sent twice."""
    if where == "recording":  # recording message 1 while the server answers message 2's MAIL
        _failing_once(monkeypatch, store, "update_row", 1, LOCKED)
    else:
        _failing_once(monkeypatch, store, "claim", 2, LOCKED)
    if where == "claim after the transport failed":  # message 2 fails before its claim
        _failing_once(monkeypatch, smtp_mod, "_mail_options", 2,
                      smtp_mod.NotAscii("no SMTPUTF8"))
    with pytest.raises(sa.exc.OperationalError):
        _executor(smtp_config, store).tick(T0)
    assert len(server.messages) == 1
    assert store.counts().get("sent") == 1 and "sending" not in store.counts()


def test_a_claim_lost_to_another_worker_costs_nothing(
        smtp_config: Path, store: Store, server: ScriptedSMTP, monkeypatch: pytest.MonkeyPatch):
    real, calls = store.claim, [0]

    def claim(*args: object, **kwargs: object) -> bool:
        calls[0] += 1
        return False if calls[0] == 3 else real(*args, **kwargs)  # another worker has it

    monkeypatch.setattr(store, "claim", claim)
    result = _executor(smtp_config, store).tick(T0)
    assert len(result.sent) == len(server.messages) == 20 and not result.errors
    assert "sending" not in store.counts() and store.counts()["planned"] > 0


def test_a_copy_refused_goes_without_it_but_the_member_refused_is_not_sent(
        server: ScriptedSMTP, caplog: pytest.LogCaptureFixture):
    def with_cc(n: int) -> Mail:
        return replace(mail(n), cc=(("Chair", "chair@council.example"),))

    t = transport(server.port)
    server.replies["RCPT"] = ["250 OK", "550 5.1.1 no such chair"]
    t.send(with_cc(1))  # the member got it; the chair's copy was refused (logged)
    server.replies["RCPT"] = ["550 5.1.1 no such member", "250 OK"]
    with pytest.raises(TransportError) as caught:
        t.send(with_cc(2))
    t.close()
    assert "no such member" in str(caught.value) and not caught.value.retryable
    assert len(server.messages) == 1 and "refused a copy to chair@council.example" in caplog.text


def test_a_421_for_a_copy_retries_the_message_on_a_new_session(server: ScriptedSMTP):
    t = transport(server.port)
    server.replies["RCPT"] = ["550 5.1.1 no such member", "421 4.7.0 closing"]
    with pytest.raises(TransportError) as caught:
        t.send(replace(mail(1), cc=(("Chair", "chair@council.example"),)))
    assert caught.value.retryable and "421" in str(caught.value)
    t.send(mail(2))
    t.close()
    assert server.connections == 2 and len(server.messages) == 1


def test_a_refused_mail_from_completes_the_claim_begun_while_it_was_answered(
        smtp_config: Path, store: Store, server: ScriptedSMTP):
    """The claim's transaction is begun while MAIL FROM is answered; a 421 there still
    ends it (the row claimed and retried), and the rest go on a new session."""
    server.replies["MAIL"] = ["250 OK", "421 4.3.2 shutting down"]
    result = _executor(smtp_config, store).tick(T0)
    assert len(result.retry) == 1 and len(result.sent) == len(server.messages) == 20
    assert "sending" not in store.counts() and server.connections == 2


def test_an_interrupt_while_mail_from_is_answered_leaves_no_transaction_open(
        smtp_config: Path, store: Store, server: ScriptedSMTP, monkeypatch: pytest.MonkeyPatch):
    """Stopped between the claim's begin (message 1 recorded in it) and the claim: the
    transaction is rolled back, message 1 recorded alone, and the ledger is free."""
    _failing_once(monkeypatch, smtplib.SMTP, "getreply", 7, KeyboardInterrupt())  # MAIL 2
    with pytest.raises(KeyboardInterrupt):
        _executor(smtp_config, store).tick(T0)
    assert len(server.messages) == 1
    assert store.counts().get("sent") == 1 and "sending" not in store.counts()
    with store.atomic() as conn:  # nothing holds the ledger
        conn.execute(sa.update(ledger).values(reason="free"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60) | st.lists(st.sampled_from(
    [b".", b"..", b"a", b"\r\n", b"\n", b"\r", b".\r\n", b" ."]), max_size=20).map(b"".join))
def test_dot_stuffing_doubles_the_dot_that_starts_a_line_and_no_other(data: bytes):
    stuffed = smtp_mod.dot_stuffed(data)
    assert stuffed == re.sub(rb"(?m)^\.", b"..", data)  # as smtplib's own quotedata does
    # a reader removes one dot from each line starting with one: the same bytes again
    assert re.sub(rb"(?m)^\.", b"", stuffed) == data
