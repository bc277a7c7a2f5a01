"""The ``exchange`` transport the registry loads: the messages
(bot/transports/exchange/messages.py) and the meetings (bot/transports/exchange/meetings.py)
of one EWS session."""

from __future__ import annotations

from typing import Any

from bot.transports.calendar import CalendarTransport
from bot.transports.exchange.doctor import doctor
from bot.transports.exchange.meetings import ExchangeMeetings
from bot.transports.exchange.messages import ExchangeMessages
from bot.transports.exchange.session import Ews


class ExchangeTransport(ExchangeMessages, ExchangeMeetings, CalendarTransport):
    """Meetings in the organiser's calendar and messages from their mailbox, over EWS."""

    name = "exchange"
    batch = 100  # messages per CreateItem request (EWS's and exchangelib's chunk)

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.ews = Ews(options)

    def __repr__(self) -> str:  # never shows credentials
        return f"<ExchangeTransport {self.describe()} ({self.ews.auth})>"

    def describe(self) -> str:
        return f"exchange {self.ews.address} at {self.ews.host}"

    @property
    def account(self) -> Any:
        return self.ews.account

    def close(self) -> None:
        self.ews.close()

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.ews)
