"""The executor: one reconcile pass (``tick``) — plan, record, claim what is due, send, record.

The in-doubt window is one message: a row is committed as ``sending`` before anything could
deliver its message, and as ``sent`` once the transport has it — before the next row is
claimed (the transport says when, see ``Transport.start``). A row found in ``sending`` at the
start of a tick (a crash) is looked up where the transport can tell, and sent again only if it
is not found — so a crash costs at most one duplicate (RFC 1047: exactly-once is impossible).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import windows
from bot.domain.errors import TransportError
from bot.domain.model import Config, Desired
from bot.engine import snapshot
from bot.engine.planning import Planning
from bot.engine.recovery import Recovery
from bot.engine.result import TickResult
from bot.engine.sending import IN_DOUBT
from bot.engine.store import Store
from bot.engine.units import Units
from bot.listen import authn
from bot.plan import planner
from bot.transports.base import Mail, Transport
from bot.transports.calendar import INVITE_KINDS

log = logging.getLogger("clerk")


class Executor(Planning, Recovery):
    """Holds the config, the store and the transport; ``tick(now)`` does one pass.

    It plans again only the units (groups, the owners' digests) whose files or facts
    changed or whose ``valid_until`` passed (bot/engine/planning.py), so an idle tick is a
    few index lookups.
    """

    def __init__(self, config: Config, store: Store, transport: Transport,
                 stop: threading.Event | None = None, mailbox: Any = None) -> None:
        self.config = config
        self.store = store
        self.transport = transport
        self.mailbox = mailbox  # where replies are read (bot/transports/imap.py), or None
        transport.mailbox = mailbox  # a Sent copy, and the look-up after a crash
        self.stop = stop or threading.Event()
        self._units = Units()  # the plan, unit by unit (bot/engine/planning.py)
        self._noted: dict[str, str] = {}  # group id -> its Group.fingerprint noted
        self._token_secret: bytes | None = None
        self.batch = 1000  # due rows fetched at a time
        self._in_flight: tuple[str, Callable[[], None]] | None = None  # (key, finish)
        self._in_hand: dict[str, Desired] = {}

    def use_config(self, config: Config) -> None:
        """Plan from ``config`` from now on: the groups whose files changed are planned
        again at the next tick."""
        self.config = config

    def plan_again(self) -> None:
        """Forget what was planned: the next tick plans every unit again."""
        self._units = Units()

    # --- sending -------------------------------------------------------------------------

    @property
    def units(self) -> Units:
        """What the executor planned, unit by unit."""
        return self._units

    def tick(self, now: datetime, *, dry_run: bool = False) -> TickResult:
        now = now.astimezone(UTC)
        result = TickResult(now=now.isoformat(), dry_run=dry_run)
        if dry_run:
            return self._dry_run(now, result)
        self.recover(now, result)
        self.read_mailbox(now, result)  # answers first: they may stop a chaser due now
        counts = self.current_plan(now)
        if counts is not None:
            result.replanned = True
            result.recorded, result.updated, result.withdrawn = counts
        pause = self.config.settings.pause
        meetings: dict[tuple[str, str], list[str]] = {}  # calendar transports: rows by meeting
        batch: list[tuple[str, Mail]] = []  # (key, message) handed to the transport together
        lookups = [True]  # whether messages in doubt can be looked up this tick
        size = max(1, self.transport.batch)
        with self.store.held():  # the tick's transactions share one connection
            try:
                for row in self._due(now):
                    if self.stop.is_set():
                        result.stopped = True
                        break
                    if row.latest_at < now:
                        with self.store.atomic() as conn:
                            late = self.store.update_row(conn, row.key, now,
                                                         "its window had passed",
                                                         expect=("planned", "retry"),
                                                         state="skipped_late")
                        if late:  # (else another worker took it first)
                            result.skipped_late.append(row.key)
                            log.warning("skipped_late %s: latest was %s", row.key,
                                        row.latest_at)
                        continue
                    if self._window_shut(row.group_id, now, row.latest_at):
                        continue  # released (approved, retried) while it is shut: wait for it
                    d = self.desired(row.key) if self.on_calendar else None
                    if d is not None and d.kind in INVITE_KINDS:
                        meetings.setdefault((d.group, d.meeting), []).append(row.key)
                        continue  # one change per meeting, below
                    if (row.attempts and lookups and (row.last_error or "").startswith(IN_DOUBT)
                            and self._delivered_before(row, now, result, lookups)):
                        continue
                    ready = self._prepare(row.key, now, result)
                    if ready is not None:
                        batch.append(ready)
                    if len(batch) >= size:
                        if self._deliver(batch, now, result) and pause:
                            self._finish(now, result)  # nothing delivered waits unrecorded
                            time.sleep(pause)
                        batch = []
                if batch and not self.stop.is_set():
                    self._deliver(batch, now, result)
                self._finish(now, result)
                for (group_id, unit), keys in meetings.items():
                    if self.stop.is_set():
                        result.stopped = True
                        break
                    self._sync_meeting(group_id, unit, keys, now, result)
                if self.on_calendar and not self.stop.is_set():
                    self.read_calendar(now, result)
            finally:
                try:
                    self._finish(now, result)  # only after an error: what went is recorded
                finally:
                    self._in_hand.clear()
                    self.transport.close()
                    if self.mailbox is not None:
                        self.mailbox.close()  # a Sent copy may have opened it again
        return result

    def _window_shut(self, group_id: str, now: datetime, latest: datetime) -> bool:
        """Whether the group's send window is shut now and opens again in time."""
        opens = self._opening(group_id, now)
        return now < opens <= latest

    def next_instant(self, now: datetime) -> datetime | None:
        """The first instant after ``now`` at which a tick may have something to do: a row's
        send or retry time (moved on to its group's next send-window opening), the opening
        of a window a due row waits for, a row's latest time passing (it is then recorded
        skipped_late), or the end of the plan's validity. ``clerk simulate`` steps through
        these, so it acts at every instant the worker would (it may also stop at a few
        where nothing happens)."""
        found: list[datetime] = []
        for g in self.store.pending(now):
            if g.ahead is not None:
                found.append(self._opening(g.group_id, g.ahead))
            if g.waiting:
                found.append(self._opening(g.group_id, now))
            if g.latest is not None:
                found.append(g.latest + timedelta(microseconds=1))  # the first tick after it
        if self._units.until is not None:
            found.append(self._units.until)
        later = [t for t in found if t > now]
        return min(later) if later else None

    def _opening(self, group_id: str, instant: datetime) -> datetime:
        """When the group's send window is next open at or after ``instant``."""
        group = self.config.by_id.get(group_id)
        if group is None or group.window is None:
            return instant
        return windows.next_opening(group.window, group.zone, instant)

    def _due(self, now: datetime) -> Iterator[Any]:
        """Every row due at ``now``, a thousand at a time, until none is left (a row that
        cannot be handled is not fetched twice in one tick)."""
        seen: set[str] = set()
        while True:
            batch = [r for r in self.store.due_keys(now, self.batch) if r.key not in seen]
            if not batch:
                return
            for row in batch:
                seen.add(row.key)
                yield row

    def read_mailbox(self, now: datetime, result: TickResult) -> None:
        """Turn each message in the mailbox into facts, then file it (never delete it). One
        worker at a time: two reading at once would both apply a message before either
        files it."""
        if self.mailbox is None:
            return
        with self.store.locked("mailbox") as got:
            if got:
                self._read_mailbox(now, result)
            else:
                log.info("mailbox: another worker is reading it")

    def _read_mailbox(self, now: datetime, result: TickResult) -> None:
        from bot.engine.inbox import Inbox, read

        inbox = Inbox(self.config, self.store)
        settings = self.config.settings
        trust = authn.trust_of(settings.mailbox_options, settings.mailbox)
        # a mailbox that can tell a message's size first (imap) hands on a larger one as
        # Oversized, unfetched; read() refuses any other over it before parsing
        self.mailbox.max_message = settings.max_message
        try:
            for uid, raw in self.mailbox.messages():
                if self.stop.is_set():
                    break
                outcome = read(inbox, raw, trust, now)
                self.mailbox.file(uid, outcome.handled)
                result.read += 1
                if not outcome.handled:
                    result.unprocessed.append(outcome.detail)
        except TransportError as exc:  # the mailbox is down: read it next tick
            log.warning("mailbox: %s", exc)
            result.errors.append(f"mailbox: {exc}")
        finally:
            self.mailbox.close()

    # --- meetings a server owns (bot/plan/calendar.py) -----------------------------------------

    def _dry_run(self, now: datetime, result: TickResult) -> TickResult:
        """What a tick would do at ``now``, writing nothing."""
        state = snapshot.state(self.store)
        plan = planner.plan(self.config, state, now)
        for d in plan.messages:
            current = state.keys.get(d.key)
            if current is None:
                result.recorded += 1
            if current in (None, "planned", "retry") and d.initial == "planned" \
                    and d.send_at <= now:
                (result.sent if now <= d.latest else result.skipped_late).append(d.key)
        return result


