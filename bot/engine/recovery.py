"""After a crash: rows left in ``sending`` are looked up where the transport can tell, and
sent again only when they are not found. A part of :class:`bot.engine.executor.Executor`."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.domain.errors import TransportError
from bot.engine.calendar_sync import CalendarSync
from bot.engine.result import TickResult
from bot.render import email as render_email
from bot.transports.calendar import INVITE_KINDS

log = logging.getLogger("clerk")


class Recovery(CalendarSync):
    """The executor's recovery; its sending and its calendar side come before it."""

    def recover(self, now: datetime, result: TickResult) -> None:
        """Settle rows a crash left in ``sending``: sent if the transport has them. Each is
        taken over first, so that of several workers finding it, one settles it."""
        meetings = []
        for row in self.store.in_doubt():
            if not self.store.take_over(row):
                continue  # another worker is recovering it
            if self.on_calendar and row.kind in INVITE_KINDS:
                meetings.append(row)
                continue
            try:
                found = self.transport.lookup(row.message_id, row.key) \
                    if row.message_id else None
            except TransportError as exc:  # cannot tell now (the mailbox is down): wait
                log.warning("cannot look up %s yet: %s", row.key, exc)
                continue
            self._settle(row, found, now, result)
        if meetings:
            self._recover_calendar(meetings, now, result)

    def _delivered_before(self, row: Any, now: datetime, result: TickResult,
                          lookups: list[bool]) -> bool:
        """A row whose last attempt's answer was lost (a timeout, a dropped connection):
        sent, if the transport finds it delivered. A look-up that fails is not tried again
        this tick (the server is down: one wait, not one per row)."""
        desired = self.desired(row.key)
        if desired is None:
            return False
        organiser = self.config.group(desired.group).organiser
        try:
            mid = row.message_id or render_email.message_id(row.key, organiser, self._secret())
            found = self.transport.lookup(mid, row.key)
        except TransportError as exc:
            log.warning("cannot look up messages in doubt now: %s", exc)
            lookups[0] = False
            return False  # it goes again, as before: at most one duplicate
        if found:
            log.info("%s was delivered before its answer was lost: not sent again", row.key)
            self._sent(row.key, now, result)
        return bool(found)
