"""The transport contract.

Terminology:
    message   one rendered RFC 5322 message for one recipient (:class:`Mail`: its bytes and
              its parts)
    key       the ledger's idempotency key; the message carries it as ``X-Clerk-Key``
    in doubt  a message whose row was left in ``sending`` by a crash: it may or may not
              have gone (RFC 1047). :meth:`Transport.lookup` answers where the transport can.

A transport delivers or raises :class:`bot.errors.TransportError` saying whether a later
attempt may succeed. It never returns False for a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from bot.domain.errors import TransportError

if TYPE_CHECKING:
    from email.message import EmailMessage

# clerk's MAPI property set: the ledger key on a message, the UID, revision and part on a
# meeting's item (ClerkKey, ClerkUid, ClerkRevision, ClerkPart), the same for exchange and
# graph, so an item reads the same from either
PROPERTY_SET = "4c3b2e7a-6f2d-4c55-9a57-0c1e1e2f6b7d"


class Claim(Protocol):
    """The ledger's part in :meth:`Transport.start`: calling it records the message before
    this one (when the executor has one to record) and claims this message's row, in one
    transaction — True when the message is ours to send. ``begin()`` (optional, any time
    before) opens that transaction and records the message before, so a transport can
    split the work between two waits for a server."""

    def begin(self) -> None: ...

    def __call__(self) -> bool: ...


class Transport:
    """Base class of every transport; subclasses override :meth:`send`."""

    name = "base"
    calendar = False  # True: the server owns meetings (bot/plan/calendar.py), no iCalendar mail
    batch = 1  # messages handed over together (send_many); the in-doubt window after a crash
    mailbox: Any = None  # the organiser's mailbox, when clerk reads one (a Sent copy)

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def send(self, message: Mail) -> None:
        """Deliver ``message`` to its recipients (To and Cc), or raise TransportError."""
        raise NotImplementedError

    def start(self, message: Mail, claim: Claim) -> Callable[[], None] | None:
        """Begin delivering ``message``: call ``claim()`` once, before anything could
        deliver it (when it says False, drop the message and return None); return the call
        that completes the delivery. Both may raise TransportError. A transport that can work
        while the ledger is written, or while clerk renders the next message, overrides this
        (smtp); here the message is sent at once."""
        if not claim():
            return None
        self.send(message)
        return lambda: None

    def send_many(self, messages: list[Mail]) -> list[TransportError | None]:
        """Deliver several messages (at most :attr:`batch`); each one's outcome: None when
        delivered, else the error. A service with a bulk call overrides this."""
        outcomes: list[TransportError | None] = []
        for message in messages:
            try:
                self.send(message)
            except TransportError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        """True if a message with this Message-ID (and ledger ``key``) was delivered, False
        if surely not, None if this transport cannot tell (then the executor sends again)."""
        return None

    def close(self) -> None:
        """Release connections; called once at the end of a tick."""

    def doctor(self) -> list[tuple[bool, str, str]]:
        """``clerk doctor``: (ok, what was checked, how to fix it) for each check."""
        return [(True, f"{self.describe()}: nothing to check", "")]

    def describe(self) -> str:
        return self.name


HEAD = 64 * 1024  # of a message too large to read, this much is read: who sent it, its subject


@dataclass(frozen=True)
class Oversized:
    """What a mailbox hands on instead of a message larger than clerk reads (``[clerk]
    max_message``, set as the mailbox's ``max_message``): it was never fetched whole."""

    size: int  # in bytes, as the server said (IMAP RFC822.SIZE)
    head: bytes  # its first bytes, for the log: who sent it, its subject


@dataclass(frozen=True)
class Mail:
    """One rendered message for one recipient (bot/render/email.py builds it): its bytes as
    sent, and what a service that builds its own message (Exchange, Graph) takes from it —
    the addresses, the texts, the attachments (not the iCalendar parts: there the server owns
    the meeting) and the ledger key."""

    key: str
    message_id: str
    subject: str
    sender: tuple[str, str]  # (name, email): the From address
    to: tuple[tuple[str, str], ...]  # (name, email)
    cc: tuple[tuple[str, str], ...]
    html: str
    text: str
    attachments: tuple[tuple[str, str, bytes], ...]  # (file name, MIME type, content)
    data: bytes = field(repr=False)  # RFC 5322, CRLF line endings

    @property
    def recipients(self) -> list[str]:
        """Every address it goes to (To and Cc): the SMTP envelope."""
        return [email for _, email in self.to + self.cc]

    @property
    def size(self) -> int:
        return sum(len(data) for _, _, data in self.attachments)

    @cached_property
    def message(self) -> EmailMessage:
        """The bytes parsed back (for a reader: a test, ``clerk preview``)."""
        from email import policy
        from email.parser import BytesParser

        parsed: EmailMessage = BytesParser(policy=policy.default).parsebytes(self.data)
        return parsed
