"""The transport contract.

Terminology:
    message   one rendered RFC 5322 message for one recipient (``email.message.EmailMessage``)
    key       the ledger's idempotency key; the message carries it as ``X-Clerk-Key``
    in doubt  a message whose row was left in ``sending`` by a crash: it may or may not
              have gone (RFC 1047). :meth:`Transport.lookup` answers where the transport can.

A transport delivers or raises :class:`bot.errors.TransportError` saying whether a later
attempt may succeed. It never returns False for a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from bot.errors import TransportError

# clerk's MAPI property set: the ledger key on a message, the UID, revision and part on a
# meeting's item (ClerkKey, ClerkUid, ClerkRevision, ClerkPart), the same for exchange and
# graph, so an item reads the same from either
PROPERTY_SET = "4c3b2e7a-6f2d-4c55-9a57-0c1e1e2f6b7d"


class Transport:
    """Base class of every transport; subclasses override :meth:`send`."""

    name = "base"
    calendar = False  # True: the server owns meetings (bot/calendar.py), no iCalendar mail
    batch = 1  # messages handed over together (send_many); the in-doubt window after a crash
    mailbox: Any = None  # the organiser's mailbox, when clerk reads one (a Sent copy)

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to every address in its To header, or raise TransportError."""
        raise NotImplementedError

    def send_many(self, messages: list[EmailMessage]) -> list[TransportError | None]:
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


@dataclass(frozen=True)
class Outgoing:
    """A rendered message taken apart for a service that builds its own (Exchange, Graph):
    the addresses, the HTML part, the attachments (not the iCalendar parts: there the server
    owns the meeting) and the ledger key."""

    key: str
    message_id: str
    subject: str
    to: tuple[tuple[str, str], ...]  # (name, email)
    cc: tuple[tuple[str, str], ...]
    html: str
    text: str
    attachments: tuple[tuple[str, str, bytes], ...]  # (file name, MIME type, content)

    @property
    def size(self) -> int:
        return sum(len(data) for _, _, data in self.attachments)


def outgoing(message: EmailMessage) -> Outgoing:
    """Take ``message`` (as bot/render/email.py builds it) apart."""
    def addresses(header: str) -> tuple[tuple[str, str], ...]:
        return tuple((a.display_name, a.addr_spec) for a in
                     getattr(message[header], "addresses", ()) or ())

    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    files = tuple((part.get_filename() or "attachment", part.get_content_type(),
                   bytes(part.get_payload(decode=True) or b""))  # type: ignore[arg-type]
                  for part in message.iter_attachments()
                  if part.get_content_type() not in ("application/ics", "text/calendar"))
    return Outgoing(
        key=str(message.get("X-Clerk-Key", "")), message_id=str(message["Message-ID"]),
        subject=str(message["Subject"]), to=addresses("To"), cc=addresses("Cc"),
        html=html.get_content() if html is not None else "",  # type: ignore[attr-defined]
        text=text.get_content() if text is not None else "",  # type: ignore[attr-defined]
        attachments=files)
