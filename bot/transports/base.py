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

from email.message import EmailMessage
from typing import Any


class Transport:
    """Base class of every transport; subclasses override :meth:`send`."""

    name = "base"
    mailbox: Any = None  # the organiser's mailbox, when clerk reads one (a Sent copy)

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to every address in its To header, or raise TransportError."""
        raise NotImplementedError

    def lookup(self, message_id: str) -> bool | None:
        """True if a message with this Message-ID was delivered, False if surely not,
        None if this transport cannot tell (then the executor sends again)."""
        return None

    def close(self) -> None:
        """Release connections; called once at the end of a tick."""

    def describe(self) -> str:
        return self.name
