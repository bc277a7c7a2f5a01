"""An in-memory transport: a real, in-package fake for tests and dry runs."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from bot.domain.errors import TransportError
from bot.transports.base import Mail, Transport


class MemoryTransport(Transport):
    """Keeps every message sent in ``self.sent``. ``fail`` maps an address to an error
    (``TransportError``) raised when a message for it is sent, for fault tests."""

    name = "memory"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options or {})
        self.sent: list[EmailMessage] = []
        self.fail: dict[str, TransportError] = {}

    def send(self, message: Mail) -> None:
        for address, error in self.fail.items():
            if any(address in email for _, email in message.to):
                raise error
        self.sent.append(message.message)  # parsed back, as a reader would see it

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        return any(m["Message-ID"] == message_id for m in self.sent)
