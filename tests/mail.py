"""Mail servers for tests: a real Postfix + Dovecot on loopback, and a programmable aiosmtpd.

Real servers (``tests/mailservers.sh start DIR`` installs, configures and starts a private pair
for one run under DIR; ``make test`` runs it through ``tests/run.sh``, which exports
``CLERK_TEST_MAIL``, the JSON it printed or the path of a file holding it, and stops both servers
at the end):

* Postfix takes mail on ``127.0.0.1:<smtp_port>`` and delivers *every* recipient to one of two
  mailboxes, keeping the address it was sent to in ``X-Original-To``: the organiser mailbox
  (``qa-leads@network.example``, any local part starting ``qa-leads``, or an address listed in
  ``CLERK_MAIL_ORGANISERS`` when the script ran) goes to ``clerk``; every other address goes to
  ``members``.  One message to n member addresses lands as n copies in ``members``' INBOX, one
  per ``X-Original-To``.  An address in an ``.invalid`` domain is accepted and then bounced;
  bounces go to the sender's address, so to ``clerk`` when clerk sent as the organiser.  An
  unknown ``@localhost`` user is refused at RCPT (550).  Nothing leaves the machine.
* Dovecot serves both mailboxes (Maildirs, ``maildirs`` in the JSON) over IMAP on
  ``127.0.0.1:<imap_port>`` (plain LOGIN as ``clerk`` or ``members``, passwords in the JSON).

Fixtures: :func:`mailservers` (session: the servers' :class:`MailServers`; it *fails*, never
skips, when ``CLERK_TEST_MAIL`` is missing or the servers do not answer) and :func:`mailboxes`
(the same, with both users' mail emptied first).  Helpers: :func:`smtp_send` through Postfix,
:func:`imap_fetch`, :func:`wait_for` (poll IMAP until n messages are there) and
:func:`empty_mailboxes` (waits for Postfix's queue to drain, then deletes every message and
every folder but INBOX over IMAP).

Fault injection: :func:`fault_smtp` (per test) is a :class:`FaultSMTP`, an in-process aiosmtpd
``Controller`` on ``127.0.0.1`` and a free port whose handler a test programs: accept
everything (the default), refuse given recipients at RCPT (550), refuse the first n
transactions with 451, answer 421 and hang up after k messages in one connection, lose the
final 250 of a message it has stored, or be down for a while and come back on the same port.
Every stored message is in :attr:`FaultSMTP.received` with its exact envelope; every refusal it
made is in :attr:`FaultSMTP.refused`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import imaplib
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

ROOT = Path(__file__).resolve().parent.parent
ENV = "CLERK_TEST_MAIL"
SETUP = (f"run `bash tests/mailservers.sh start DIR > mail.json` as root and set "
         f"{ENV}=mail.json (`make test` does both, and stops the servers at the end)")
USERS = ("clerk", "members")


class MailServersMissing(RuntimeError):
    """``CLERK_TEST_MAIL`` is missing or unreadable, or the servers do not answer."""


# --- the real servers ----------------------------------------------------------------------


@dataclass(frozen=True)
class MailServers:
    """What ``tests/mailservers.sh`` printed."""

    host: str
    smtp_port: int
    imap_port: int
    users: dict[str, str]  # user -> password
    maildirs: dict[str, str] = field(default_factory=dict)
    organisers: tuple[str, ...] = ()
    logs: dict[str, str] = field(default_factory=dict)
    postfix_config: str = ""  # this instance's config directory (`postfix -c`), if not the default

    def log_tail(self, name: str = "postfix", lines: int = 20) -> str:
        """The end of a server's log, for failure messages ('' if unreadable)."""
        try:
            text = Path(self.logs[name]).read_text(encoding="utf-8", errors="replace")
        except (KeyError, OSError):
            return ""
        return "".join(text.splitlines(True)[-lines:])


@functools.cache
def servers() -> MailServers:
    """Read ``CLERK_TEST_MAIL`` (JSON, or the path of a JSON file) once."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        raise MailServersMissing(f"{ENV} is not set: {SETUP}")
    if not value.startswith("{"):
        path = Path(value)
        if not path.is_absolute() and not path.exists():
            path = ROOT / path
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MailServersMissing(f"{ENV}={value!r}: cannot read it ({exc}); {SETUP}") from exc
    try:
        data: dict[str, Any] = json.loads(value)
        return MailServers(host=data["host"], smtp_port=int(data["smtp_port"]),
                           imap_port=int(data["imap_port"]), users=dict(data["users"]),
                           maildirs=dict(data.get("maildirs", {})),
                           organisers=tuple(data.get("organisers", ())),
                           logs=dict(data.get("logs", {})),
                           postfix_config=str(data.get("postfix_config", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise MailServersMissing(f"{ENV} is not what tests/mailservers.sh prints ({exc!r}): "
                                 f"{SETUP}") from exc


def check_servers(ms: MailServers) -> None:
    """Raise :class:`MailServersMissing` unless Postfix greets and both IMAP logins work."""
    try:
        with smtplib.SMTP(ms.host, ms.smtp_port, timeout=5) as smtp:
            smtp.noop()
        for user in USERS:
            with _imap(user, ms):
                pass
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as exc:
        raise MailServersMissing(f"the mail servers on {ms.host} (SMTP {ms.smtp_port}, IMAP "
                                 f"{ms.imap_port}) do not answer: {exc!r}; {SETUP}") from exc


@pytest.fixture(scope="session")
def mailservers() -> MailServers:
    """Postfix and Dovecot as ``tests/mailservers.sh`` left them; fails (never skips) if absent."""
    try:
        ms = servers()
        check_servers(ms)
    except MailServersMissing as exc:
        problem = str(exc)
    else:
        return ms
    pytest.fail(problem, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture
def mailboxes(mailservers: MailServers) -> MailServers:
    """The servers, with both users' mailboxes emptied before the test."""
    empty_mailboxes()
    return mailservers


def smtp_send(message: EmailMessage, from_addr: str, to_addrs: Iterable[str]) -> dict[str, Any]:
    """Send ``message`` through Postfix with this envelope; returns smtplib's refused dict."""
    ms = servers()
    with smtplib.SMTP(ms.host, ms.smtp_port, timeout=10) as smtp:
        return smtp.send_message(message, from_addr, list(to_addrs))


@contextmanager
def _imap(user: str, ms: MailServers | None = None) -> Iterator[imaplib.IMAP4]:
    ms = ms or servers()
    conn = imaplib.IMAP4(ms.host, ms.imap_port, timeout=10)
    try:
        conn.login(user, ms.users[user])
        yield conn
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            conn.shutdown()


def _ok(response: tuple[str, list[Any]], what: str) -> list[Any]:
    typ, data = response
    if typ != "OK":
        raise AssertionError(f"IMAP {what}: {typ} {data!r}")
    return data


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uids(conn: imaplib.IMAP4) -> list[bytes]:
    return _ok(conn.uid("SEARCH", "ALL"), "UID SEARCH")[0].split()


def _fetch(conn: imaplib.IMAP4, uids: list[bytes]) -> list[EmailMessage]:
    if not uids:
        return []
    data = _ok(conn.uid("FETCH", b",".join(uids).decode(), "(UID BODY.PEEK[])"), "UID FETCH")
    found: list[tuple[int, EmailMessage]] = []
    for item in data:
        if isinstance(item, tuple):
            uid = re.search(rb"UID (\d+)", item[0])
            assert uid is not None, item[0]
            message = email.message_from_bytes(item[1], policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.append((int(uid.group(1)), message))
    return [message for _, message in sorted(found, key=lambda pair: pair[0])]


def imap_fetch(user: str, folder: str = "INBOX") -> list[EmailMessage]:
    """Every message in ``user``'s ``folder``, oldest first (by UID), without marking it read."""
    with _imap(user) as conn:
        _ok(conn.select(_quote(folder), readonly=True), f"SELECT {folder}")
        return _fetch(conn, _uids(conn))


def wait_for(user: str, count: int, timeout: float = 5.0,
             folder: str = "INBOX") -> list[EmailMessage]:
    """Poll ``user``'s ``folder`` until it holds at least ``count`` messages; return them all.

    Fails with what is there and the end of Postfix's log when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    with _imap(user) as conn:
        _ok(conn.select(_quote(folder), readonly=True), f"SELECT {folder}")
        while True:
            uids = _uids(conn)
            if len(uids) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.01)
            conn.noop()  # Dovecot looks at the Maildir again
        messages = _fetch(conn, uids)
    if len(messages) < count:
        subjects = [str(m.get("Subject")) for m in messages]
        raise AssertionError(f"{user}/{folder}: {len(messages)} of {count} messages after "
                             f"{timeout} s: {subjects}\nPostfix's log ends:\n"
                             f"{servers().log_tail()}")
    return messages


def _postqueue() -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin"
    return shutil.which("postqueue", path=path)


def wait_queue_empty(timeout: float = 5.0) -> None:
    """Wait until this run's Postfix has delivered (or bounced) everything it accepted."""
    postqueue = _postqueue()
    if postqueue is None:
        raise MailServersMissing(f"postqueue is not installed; {SETUP}")
    config = servers().postfix_config
    command = [postqueue, *(["-c", config] if config else []), "-j"]
    deadline = time.monotonic() + timeout
    while True:
        queue = subprocess.run(command, capture_output=True, text=True, timeout=10,
                               stdin=subprocess.DEVNULL, check=True).stdout
        if not queue.strip():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Postfix's queue is not empty after {timeout} s:\n{queue}\n"
                                 f"Postfix's log ends:\n{servers().log_tail()}")
        time.sleep(0.01)


def empty_mailboxes() -> None:
    """Delete all mail of ``clerk`` and ``members``: INBOX emptied, other folders removed.

    Waits for Postfix's queue to drain first, so that mail of an earlier test cannot arrive
    after the reset.
    """
    wait_queue_empty()
    for user in USERS:
        with _imap(user) as conn:
            folders = [_list_entry(line) for line in _ok(conn.list('""', "*"), "LIST")]
            # children first; a \Noselect parent goes with its last child
            for flags, name in sorted(folders, key=lambda entry: -entry[1].count("/")):
                if name.upper() != "INBOX" and not {"\\noselect", "\\nonexistent"} & flags:
                    _ok(conn.delete(_quote(name)), f"DELETE {name}")
            exists = int(_ok(conn.select("INBOX"), "SELECT INBOX")[0] or 0)
            if exists:
                _ok(conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                _ok(conn.expunge(), "EXPUNGE")
            conn.close()


def _list_entry(line: bytes) -> tuple[set[str], str]:
    """(lower-cased flags, name) of a LIST reply line: ``(\\HasNoChildren) "/" "INBOX"``."""
    match = re.match(rb'\(([^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
    assert match is not None, line
    name = match.group(2).decode()
    if name.startswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return set(match.group(1).decode().lower().split()), name


# --- aiosmtpd with faults ------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd's ``Controller(port=0)`` does not work)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """A message the fault server stored, with its exact envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    connection: int  # 1 for the first connection of the server's life, 2 for the next, ...
    acknowledged: bool  # False when the final 250 was lost on purpose

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class Refusal:
    """A reply other than 2xx that the fault server gave on purpose."""

    stage: Literal["MAIL", "RCPT", "DATA"]
    address: str  # MAIL FROM for MAIL and DATA, the recipient for RCPT
    reply: str


@dataclass
class _Connection:
    number: int
    accepted: int = 0  # messages stored in this connection
    tempfail: bool = False  # the current transaction is one of the first n


class _Handler:
    """aiosmtpd handler hooks; runs on the controller's event loop thread."""

    def __init__(self, fault: FaultSMTP) -> None:
        self.fault = fault

    def _conn(self, session: Session) -> _Connection:
        conn = getattr(session, "_fault_connection", None)
        if conn is None:
            with self.fault._lock:
                self.fault.connections += 1
                conn = _Connection(self.fault.connections)
            session._fault_connection = conn  # type: ignore[attr-defined]
        return conn

    def _refuse(self, stage: Literal["MAIL", "RCPT", "DATA"], address: str, reply: str) -> str:
        with self.fault._lock:
            self.fault.refused.append(Refusal(stage, address, reply))
        return reply

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        fault, conn = self.fault, self._conn(session)
        if fault._close_after is not None and conn.accepted >= fault._close_after:
            # answer 421, then hang up once the reply has been written
            asyncio.get_running_loop().call_soon(_close, server)
            return self._refuse("MAIL", address,
                                "421 4.7.0 fault_smtp: too many messages, closing connection")
        with fault._lock:
            fault.transactions += 1
            conn.tempfail = fault.transactions <= fault._tempfail
        if conn.tempfail and fault._tempfail_stage == "MAIL":
            return self._refuse("MAIL", address, "451 4.3.0 fault_smtp: try again later")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        fault, conn = self.fault, self._conn(session)
        if address.lower() in fault._rejected:
            return self._refuse("RCPT", address, fault._rejected[address.lower()])
        if conn.tempfail and fault._tempfail_stage == "RCPT":
            return self._refuse("RCPT", address, "451 4.3.0 fault_smtp: try again later")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault, conn = self.fault, self._conn(session)
        sender = envelope.mail_from or ""
        if conn.tempfail and fault._tempfail_stage == "DATA":
            return self._refuse("DATA", sender, "451 4.3.0 fault_smtp: try again later")
        with fault._lock:
            lose = fault._lose_250 > 0
            fault._lose_250 -= lose
            content = envelope.original_content or envelope.content or b""
            if isinstance(content, str):
                content = content.encode()
            fault.received.append(Received(sender, tuple(envelope.rcpt_tos), content,
                                           conn.number, acknowledged=not lose))
            conn.accepted += 1
        if lose:
            # Stored, but the client never hears so: close before the 250 is written.  aiosmtpd
            # then writes "250" into a closed transport, which drops it.
            _close(server)
        return "250 OK: queued as fault_smtp"

    async def handle_exception(self, error: Exception) -> str:
        self.fault.errors.append(error)
        return f"500 fault_smtp handler error: {error!r}"


def _close(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class FaultSMTP:
    """An SMTP server on ``127.0.0.1:port`` that a test programs to fail in given ways.

    Faults can be combined and stay in force until :meth:`reset`.  All lists are safe to read
    from the test's thread.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.received: list[Received] = []
        self.refused: list[Refusal] = []
        self.errors: list[Exception] = []  # exceptions in the handler (a bug here)
        self.connections = 0
        self.transactions = 0
        self._lock = threading.Lock()
        self._handler = _Handler(self)
        self._controller: Controller | None = None
        self._timer: threading.Timer | None = None
        self.reset()

    # programming

    def reset(self) -> None:
        """Accept everything again (records are kept)."""
        self._rejected: dict[str, str] = {}
        self._tempfail = 0
        self._tempfail_stage: Literal["MAIL", "RCPT", "DATA"] = "DATA"
        self._close_after: int | None = None
        self._lose_250 = 0

    def reject_rcpt(self, *addresses: str, code: int = 550,
                    text: str = "5.1.1 fault_smtp: no such user") -> None:
        """Answer ``RCPT TO`` for each of ``addresses`` with ``code`` (others are accepted)."""
        for address in addresses:
            self._rejected[address.lower()] = f"{code} {text}"

    def tempfail(self, n: int, stage: Literal["MAIL", "RCPT", "DATA"] = "DATA") -> None:
        """Refuse the next ``n`` transactions (MAIL commands) with 451 at ``stage``.

        At RCPT every recipient of such a transaction gets 451; at DATA the content is sent and
        then refused.  Transactions after those are accepted.
        """
        self._tempfail = self.transactions + n
        self._tempfail_stage = stage

    def close_after(self, k: int) -> None:
        """After ``k`` messages stored in one connection, answer the next MAIL with 421 and
        close the connection (a server that hangs up mid-batch)."""
        self._close_after = k

    def lose_250(self, n: int = 1) -> None:
        """Store the next ``n`` messages, then drop the connection instead of saying 250."""
        self._lose_250 = n

    # up and down

    def start(self) -> None:
        """Listen (again) on the same port."""
        if self._controller is not None:
            return
        controller = Controller(self._handler, hostname=self.host, port=self.port,
                                server_hostname="fault-smtp.localhost", ready_timeout=5.0)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening and drop open connections: connecting is refused until start()."""
        self._cancel_timer()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def down_for(self, seconds: float) -> None:
        """Stop now and start again on the same port after ``seconds``, in the background."""
        self.stop()
        self._timer = threading.Timer(seconds, self.start)
        self._timer.daemon = True
        self._timer.start()

    def wait_up(self, timeout: float = 10.0) -> None:
        """Block until the server listens (after :meth:`down_for`)."""
        deadline = time.monotonic() + timeout
        while self._controller is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"fault_smtp is not back up after {timeout} s")
            time.sleep(0.01)

    @property
    def up(self) -> bool:
        return self._controller is not None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
            self._timer = None

    # waiting

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``count`` messages are stored; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fault_smtp stored {len(self.received)} of {count} "
                                     f"messages after {timeout} s; refused: {self.refused}")
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture
def fault_smtp() -> Iterator[FaultSMTP]:
    """A fresh :class:`FaultSMTP`, accepting everything until the test programs it."""
    fault = FaultSMTP()
    fault.start()
    try:
        yield fault
    finally:
        fault.stop()
    assert not fault.errors, f"fault_smtp's handler raised: {fault.errors!r}"
