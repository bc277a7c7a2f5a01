"""The smtp transport: any mail system, over SMTP with implicit TLS, STARTTLS or (on loopback
only) plain text.

One connection serves a tick's whole batch. Each message has exactly one recipient, so the
server's answer is that recipient's outcome. Replies are classified as RFC 5321 intends (and
as Mailman does): 4xx, 552 (storage exceeded), timeouts and dropped connections may clear and
are retried by the ledger with back-off; any other 5xx fails that recipient alone. A connection
dropped after DATA loses the server's "250": the message may have gone (RFC 1047), so it is
retried and may arrive twice — once at most per loss. When a Sent folder is configured, each
message is also appended there, and a message left in doubt by a crash is looked up there by
Message-ID before it is sent again.
"""

from __future__ import annotations

import contextlib
import logging
import select
import smtplib
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from bot.domain.errors import TransportError
from bot.domain.options import Option, _str
from bot.transports.base import Claim, Mail, Transport
from bot.transports.credentials import secret
from bot.transports.net import connection_options, endpoint, tls_context

log = logging.getLogger("clerk")

OPTIONS = {
    **connection_options("SMTP", "CLERK_SMTP", ("starttls", "tls", "none"),
                         "465 for tls, 587 for starttls, 25 for none"),
    "envelope_from": Option("", _str, "MAIL FROM; default: the From address (bounces go "
                            "there, where clerk reads them)"),
}
PORTS = {"tls": 465, "starttls": 587, "none": 25}


def retryable(code: int) -> bool:
    """RFC 5321 4.2.1: 4yz is transient; 552 (storage) is treated as transient too."""
    return 400 <= code < 500 or code == 552


class SmtpTransport(Transport):
    name = "smtp"

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.host, self.port, self.security = endpoint(options, "SMTP", "starttls", PORTS)
        self.timeout = float(options.get("timeout", 30.0))
        self._conn: smtplib.SMTP | None = None
        self._unreachable: str | None = None  # why the server could not be reached

    def describe(self) -> str:
        return f"smtp {self.host}:{self.port} ({self.security})"

    def __repr__(self) -> str:  # never shows credentials
        return f"<SmtpTransport {self.describe()}>"

    def _connect(self) -> smtplib.SMTP:
        conn: smtplib.SMTP
        if self.security == "tls":
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=tls_context(self.options))
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                conn.starttls(context=tls_context(self.options))
            user, password = secret(self.options, "username"), secret(self.options, "password")
            if user and password:
                conn.login(user, password)
        except BaseException:
            conn.close()  # a refused STARTTLS or login: no half-open connection left behind
            raise
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._unreachable is not None:  # once per batch: not one timeout per message
            raise TransportError(self._unreachable, retryable=True)
        if self._conn is None:
            try:
                self._conn = self._connect()
            except OSError as exc:  # smtplib's errors are OSErrors too
                # every message of the batch would fail the same way (and a wrong password
                # tried 20 times can lock the account): the ledger retries them all later
                self._unreachable = self._why(exc)
                raise TransportError(self._unreachable, retryable=True) from exc
        return self._conn

    def _why(self, exc: OSError) -> str:
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return (f"authentication failed: {_say(exc.smtp_code, exc.smtp_error)}; check the "
                    "username and password variables")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"the certificate of {self.host} is not trusted: {exc.verify_message}; "
                    "set cafile for a private CA")
        if isinstance(exc, smtplib.SMTPResponseException):
            return f"{self.host}:{self.port} refused the session: " \
                   f"{_say(exc.smtp_code, exc.smtp_error)}"
        return f"cannot reach {self.host}:{self.port}: {exc or type(exc).__name__}"

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def doctor(self) -> list[tuple[bool, str, str]]:
        what = f"{self.describe()}: connect, secure the connection and sign in"
        try:
            self._connection().noop()
        except TransportError as exc:
            return [(False, what, str(exc))]
        finally:
            self.close()
        return [(True, what, "")]

    def send(self, message: Mail) -> None:
        finish = self.start(message, _Ours())
        assert finish is not None
        finish()

    def start(self, message: Mail, claim: Claim) -> Callable[[], None] | None:
        """The ledger is written while the server answers: one transaction, begun with the
        message before recorded while it answers MAIL FROM, and committed with this one's
        row claimed while it answers the first RCPT TO (nothing is delivered before the
        data) — or at once, when MAIL FROM's answer takes longer than ``HOLD``, so other
        writers never wait on the server. Then the rest of RCPT, DATA and the message.
        Returns the call that waits for the server's last answer (meanwhile the executor
        renders the next message), or None when the claim was refused (then RSET)."""
        sender = self.options.get("envelope_from") or message.sender[1]
        recipients = message.recipients
        with self._errors():
            conn = self._connection()
            _put(conn, "mail", sender, _mail_options(conn, sender, message))
        self._meanwhile(claim.begin)
        claimed = None
        with self._errors():
            slow = not _answered(conn, HOLD)
        if slow:  # a slow server: the transaction is not held while it thinks
            claimed = self._meanwhile(claim)
        with self._errors():
            code, text = conn.getreply()
            if code == 250:
                _put(conn, "rcpt", recipients[0])
        if claimed is None:
            claimed = self._meanwhile(claim)
        with self._errors():
            if code != 250:
                if code == 421:
                    self._drop()  # the server closed the session
                _reset(conn, code)
                if not claimed:
                    return None
                raise smtplib.SMTPSenderRefused(code, text, sender)
            first = conn.getreply()
            if not claimed:
                _reset(conn, first[0])
                if first[0] == 421:
                    self._drop()
                return None
            _data(conn, recipients, message.data, first)

        def finish() -> None:
            with self._errors():
                _end(conn)
            if self.mailbox is not None:
                _keep_sent_copy(self.mailbox, message)

        return finish

    def _meanwhile(self, work: Callable[[], Any]) -> Any:
        """The ledger's work while a command's answer is on its way; if it fails, the
        answer stays unread, so the session is dropped (the next message opens a new one)."""
        try:
            return work()
        except BaseException:
            self._drop()
            raise

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """smtplib's errors as TransportErrors that say whether to try again."""
        try:
            yield
        except smtplib.SMTPRecipientsRefused as exc:
            answers = list(exc.recipients.values())
            code, text = next((a for a in answers if a[0] == 421), answers[0])
            if code == 421:
                self._drop()  # the server closed the session
            raise TransportError(_say(code, text), retryable=retryable(code)) from exc
        except NotAscii as exc:
            raise TransportError(str(exc), retryable=False) from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if exc.smtp_code == 421:
                self._drop()
            raise TransportError(_say(exc.smtp_code, exc.smtp_error),
                                 retryable=retryable(exc.smtp_code)) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            raise TransportError(_say(exc.smtp_code, exc.smtp_error),
                                 retryable=retryable(exc.smtp_code)) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()  # dropped, refused or timed out: it may have gone; retry
            raise TransportError(f"connection to {self.host}:{self.port} failed: "
                                 f"{exc or type(exc).__name__}", retryable=True,
                                 in_doubt=True) from exc

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        """Whether the mailbox's Sent folder holds it (None when no copy is kept)."""
        return self.mailbox.find_sent(message_id) if self.mailbox is not None else None

    def close(self) -> None:
        self._unreachable = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


HOLD = 0.5  # seconds the claim's transaction may wait for MAIL FROM's answer


def _answered(conn: smtplib.SMTP, seconds: float) -> bool:
    """Whether the server's answer arrives within ``seconds`` (nothing is read: without
    pipelining, nothing is left in smtplib's buffer between answers)."""
    sock = conn.sock
    if sock is None or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
        return True  # (no socket: reading the answer says what is wrong)
    return bool(select.select([sock], [], [], seconds)[0])


class _Ours:
    """The claim of a plain :meth:`SmtpTransport.send`: nothing to record, always ours."""

    def begin(self) -> None:
        pass

    def __call__(self) -> bool:
        return True


class NotAscii(Exception):
    """An address that is not ASCII, for a server without SMTPUTF8."""


def _mail_options(conn: smtplib.SMTP, sender: str, message: Mail) -> list[str]:
    """MAIL FROM's parameters, as smtplib's ``sendmail`` gives them: SIZE, and SMTPUTF8 for
    an address that is not ASCII (RFC 6531)."""
    conn.ehlo_or_helo_if_needed()
    options = [f"size={len(message.data)}"] if conn.does_esmtp and conn.has_extn("size") \
        else []
    if not all(a.isascii() for a in (sender, *message.recipients)):
        if not conn.has_extn("smtputf8"):
            raise NotAscii("the server does not take addresses that are not ASCII (it does "
                           "not offer SMTPUTF8); use an ASCII address")
        options.append("SMTPUTF8")
        conn.command_encoding = "utf-8"
    return options


def _put(conn: smtplib.SMTP, verb: str, address: str, options: list[str] | None = None) -> None:
    """MAIL FROM or RCPT TO, written (the answer is read by the caller). A plain address
    (the config checked it) is written as it is: smtplib's ``mail`` and ``rcpt`` parse every
    address again, at a tenth of the cost of sending a message."""
    plain = address.isprintable() and not any(c in address for c in "<> ")
    extra = " " + " ".join(options) if options and conn.does_esmtp else ""
    conn.putcmd(verb, f"{'FROM' if verb == 'mail' else 'TO'}:"
                      f"{f'<{address}>' if plain else smtplib.quoteaddr(address)}{extra}")


def _data(conn: smtplib.SMTP, recipients: list[str], data: bytes,
          first: tuple[int, bytes]) -> None:
    """After MAIL FROM and the first RCPT TO (``first`` its answer), as smtplib's
    ``sendmail``: RCPT for the other recipients, DATA, and the message — up to the end of
    the data."""
    refused = {}
    for n, recipient in enumerate(recipients):
        if n:
            _put(conn, "rcpt", recipient)
        code, text = conn.getreply() if n else first
        if code not in (250, 251):
            refused[recipient] = (code, text)
        if code == 421:
            conn.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if recipients[0] in refused:  # the member it is for: a Cc alone is not worth sending
        _reset(conn, 0)
        raise smtplib.SMTPRecipientsRefused({recipients[0]: refused[recipients[0]]})
    for recipient, (code, text) in refused.items():
        log.warning("the server refused a copy to %s: %s", recipient, _say(code, text))
    code, text = conn.docmd("data")
    if code != 354:
        _reset(conn, code)  # else the next MAIL FROM meets "503 nested MAIL command"
        raise smtplib.SMTPDataError(code, text)
    end = b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"
    conn.send(dot_stuffed(data) + end)


def _end(conn: smtplib.SMTP) -> None:
    """The server's answer to the end of the data."""
    code, text = conn.getreply()
    if code != 250:
        _reset(conn, code)
        raise smtplib.SMTPDataError(code, text)


def _reset(conn: smtplib.SMTP, code: int) -> None:
    if code == 421:
        conn.close()
    else:
        with contextlib.suppress(smtplib.SMTPServerDisconnected):
            conn.rset()


def dot_stuffed(data: bytes) -> bytes:
    """``data`` with a dot put before each line that starts with one (RFC 5321 4.5.2)."""
    stuffed = data.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _keep_sent_copy(mailbox: Any, message: Mail) -> None:
    try:
        mailbox.keep_sent(message.data)
    except Exception as exc:  # the message went; a missing copy is not worth a resend
        log.warning("could not keep a copy in the Sent folder: %s", exc)


def _say(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"
