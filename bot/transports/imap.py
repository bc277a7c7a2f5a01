"""The imap mailbox: the organiser's inbox, read by clerk.

clerk reads each new message in the inbox, hands it to bot/listen/replies.py and
bot/engine/inbox.py, then
moves it to a processed folder (``clerk/processed``) or, when it could not use it, to
``clerk/unprocessed`` for the admin to look at. Mail is never deleted. The same mailbox can
keep a copy of what clerk sends in a Sent folder, and find a message there by Message-ID
after a crash (so it is not sent twice).

A message larger than ``max_message`` (set by the executor from ``[clerk] max_message``) is
not fetched: its RFC822.SIZE is asked first, and only its first bytes are fetched, for the
log; it is handed on as :class:`bot.transports.base.Oversized` and filed as unprocessed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from bot.domain.errors import TransportError
from bot.domain.options import REQUIRED, Option, _int, _str
from bot.transports.base import HEAD, Oversized
from bot.transports.credentials import secret
from bot.transports.net import connection_options, endpoint, tls_context

log = logging.getLogger("clerk")

OPTIONS = {
    **connection_options("IMAP", "CLERK_IMAP", ("tls", "starttls", "none"),
                         "993 for tls, 143 for starttls and none"),
    # no default: a mailbox named without its server is a mistake, not "localhost"
    "host": Option(REQUIRED, _str, "the IMAP server"),
    "inbox": Option("INBOX", _str, "the folder clerk reads"),
    "processed": Option("clerk/processed", _str, "where handled messages go"),
    "unprocessed": Option("clerk/unprocessed", _str, "where messages clerk cannot use go"),
    "sent": Option("", _str, "keep a copy of each message sent here (e.g. Sent); empty: no copy"),
    "batch": Option(200, _int, "at most this many messages read per tick"),
}
PORTS = {"tls": 993, "starttls": 143, "none": 143}
DONE = "$ClerkDone"  # the keyword on a message clerk has filed, where MOVE is missing


class ImapMailbox:
    """A connection to the organiser's mailbox, opened per tick and closed after it."""

    name = "imap"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.host, self.port, self.security = endpoint(options, "IMAP", "tls", PORTS)
        self._client: Any = None
        self.max_message: int | None = None  # larger messages are not fetched whole

    def __repr__(self) -> str:  # never shows credentials
        return f"<ImapMailbox {self.host}:{self.port} ({self.security})>"

    def client(self) -> Any:
        if self._client is None:
            import imapclient

            try:
                client = imapclient.IMAPClient(
                    self.host, port=self.port, ssl=self.security == "tls",
                    ssl_context=tls_context(self.options) if self.security == "tls" else None,
                    timeout=float(self.options.get("timeout", 30.0)))
                try:
                    if self.security == "starttls":
                        client.starttls(tls_context(self.options))
                    client.login(secret(self.options, "username") or "",
                                 secret(self.options, "password") or "")
                except BaseException:
                    client.shutdown()  # no half-open connection left behind
                    raise
            except (OSError, imapclient.exceptions.IMAPClientError) as exc:
                raise TransportError(f"cannot open the mailbox {self.host}:{self.port}: "
                                     f"{exc}", retryable=True) from exc
            self._client = client
        return self._client

    def _folder(self, name: str) -> str:
        client = self.client()
        if not client.folder_exists(name):
            client.create_folder(name)
            log.info("created mailbox folder %s", name)
        return name

    def messages(self) -> Iterator[tuple[int, bytes | Oversized]]:
        """(uid, raw message) for what is in the inbox now, oldest first; a message over
        ``max_message`` as :class:`Oversized`, its body never fetched."""
        with _as_transport_error("read the inbox"):
            yield from self._messages()

    def _messages(self) -> Iterator[tuple[int, bytes | Oversized]]:
        client = self.client()
        client.select_folder(self.options.get("inbox", "INBOX"))
        found = client.search(["UNKEYWORD", DONE])
        uids = sorted(found)[: int(self.options.get("batch", 200))]
        sizes = client.fetch(uids, ["RFC822.SIZE"]) if uids and self.max_message else {}
        for uid in uids:
            size = sizes.get(uid, {}).get(b"RFC822.SIZE")
            if isinstance(size, int) and self.max_message and size > self.max_message:
                log.warning("mailbox: message %s is %d bytes, over max_message: not fetched",
                            uid, size)
                data = client.fetch([uid], [f"BODY.PEEK[]<0.{HEAD}>"]).get(uid, {})
                head = next((v for k, v in data.items() if k.startswith(b"BODY[")), b"")
                yield uid, Oversized(size, bytes(head or b""))
                continue
            data = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
            raw = data.get(b"BODY[]")
            if raw is not None:
                yield uid, raw

    def file(self, uid: int, handled: bool) -> None:
        """Move a message out of the inbox: to the processed or the unprocessed folder."""
        with _as_transport_error("file a message"):
            self._file(uid, handled)

    def _file(self, uid: int, handled: bool) -> None:
        folder = str(self.options.get("processed" if handled else "unprocessed") or "")
        client = self.client()
        target = self._folder(folder or ("clerk/processed" if handled else "clerk/unprocessed"))
        client.select_folder(self.options.get("inbox", "INBOX"))
        if client.has_capability("MOVE"):
            client.move([uid], target)
        else:  # no MOVE: copy, and mark the original so it is not read again (never delete)
            client.copy([uid], target)
            client.add_flags([uid], [DONE.encode()])

    def keep_sent(self, raw: bytes) -> None:
        folder = self.options.get("sent")
        if folder:
            self.client().append(self._folder(folder), raw, flags=[b"\\Seen"])

    def find_sent(self, message_id: str) -> bool | None:
        """Whether the Sent folder holds ``message_id`` (None: no Sent folder kept)."""
        folder = self.options.get("sent")
        if not folder:
            return None
        with _as_transport_error("look in the Sent folder"):
            client = self.client()
            client.select_folder(self._folder(folder), readonly=True)
            return bool(client.search(["HEADER", "Message-ID", message_id]))

    def doctor(self) -> list[tuple[bool, str, str]]:
        what = f"imap {self.host}:{self.port}: sign in and open the inbox"
        try:
            with _as_transport_error("open the inbox"):
                self.client().select_folder(self.options.get("inbox", "INBOX"), readonly=True)
        except TransportError as exc:
            return [(False, what, str(exc))]
        finally:
            self.close()
        return [(True, what, "")]

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("mailbox logout failed", exc_info=True)


@contextlib.contextmanager
def _as_transport_error(what: str) -> Iterator[None]:
    """An IMAP or network failure is a TransportError: the tick goes on, reading next time."""
    import imapclient

    try:
        yield
    except (OSError, imapclient.exceptions.IMAPClientError) as exc:
        raise TransportError(f"cannot {what}: {exc}", retryable=True) from exc
