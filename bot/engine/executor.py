"""The executor: one reconcile pass (``tick``) — plan, record, claim what is due, send, record.

The in-doubt window is one message: a row is committed as ``sending`` before anything could
deliver its message, and as ``sent`` once the transport has it — before the next row is
claimed (the transport says when, see ``Transport.start``). A row found in ``sending`` at the
start of a tick (a crash) is looked up where the transport can tell, and sent again only if it
is not found — so a crash costs at most one duplicate (RFC 1047: exactly-once is impossible).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import windows
from bot.domain.errors import TransportError
from bot.domain.model import Config, Desired
from bot.engine import snapshot
from bot.engine.recovery import Recovery
from bot.engine.result import TickResult
from bot.engine.sending import IN_DOUBT
from bot.engine.store import Store
from bot.listen import authn
from bot.plan import planner
from bot.plan.planner import Plan
from bot.transports.base import Mail, Transport
from bot.transports.calendar import INVITE_KINDS

log = logging.getLogger("clerk")


def _row_values(d: Desired, now: datetime, state: str) -> dict[str, Any]:
    return {
        "key": d.key, "group_id": d.group, "meeting_id": d.meeting, "rule_id": d.rule,
        "kind": d.kind, "recipient": d.recipient.email, "recipient_name": d.recipient.name,
        "revision": d.revision, "sequence": d.sequence, "state": state, "send_at": d.send_at,
        "latest_at": d.latest,
        "subject": d.subject, "reason": d.reason, "attempts": 0, "created_at": now,
        "updated_at": now,
    }


class Executor(Recovery):
    """Holds the config, the store and the transport; ``tick(now)`` does one pass.

    It keeps the last plan and re-plans only when the config or the planner's facts change
    or when the plan's ``valid_until`` has passed, so an idle tick is a few index lookups.
    """

    def __init__(self, config: Config, store: Store, transport: Transport,
                 stop: threading.Event | None = None, mailbox: Any = None) -> None:
        self.config = config
        self.store = store
        self.transport = transport
        self.mailbox = mailbox  # where replies are read (bot/transports/imap.py), or None
        transport.mailbox = mailbox  # a Sent copy, and the look-up after a crash
        self.stop = stop or threading.Event()
        self._plan: Plan | None = None
        self._parts = planner.PlanCache()  # each group's part of it
        self._by_key: dict[str, Desired] = {}
        self._stamp: tuple[str, int] | None = None
        self._noted = ""  # the config fingerprint whose rosters the store has noted
        self._noted_groups: dict[str, str] = {}  # group id -> its Group.fingerprint noted
        self._token_secret: bytes | None = None
        self.batch = 1000  # due rows fetched at a time
        self._in_flight: tuple[str, Callable[[], None]] | None = None  # (key, finish)

    def use_config(self, config: Config) -> None:
        self.config = config
        self._plan = None

    # --- planning ------------------------------------------------------------------------

    def current_plan(self, now: datetime) -> tuple[Plan, tuple[int, int, int] | None]:
        """The plan for ``now``, recorded in the ledger, and the counts of what recording it
        changed (None when the plan in hand was still valid)."""
        stamp = (self.config.fingerprint, self.store.facts_version())
        plan = self._plan
        if (plan is not None and stamp == self._stamp
                and (plan.valid_until is None or now < plan.valid_until)):
            return plan, None
        # the old plan goes before the new one is made: never two in memory (the groups'
        # parts kept for the new one are shared, not copied)
        self._plan, self._by_key, plan = None, {}, None
        if stamp[0] != self._noted:  # the config changed: when did each roster row?
            # the groups whose files changed (all of them, the first time)
            edited = [g for g in self.config.groups
                      if not g.fingerprint or self._noted_groups.get(g.id) != g.fingerprint]
            self.store.note_roster({g.id: {m.email: m.row for m in g.members}
                                    for g in edited}, now)
            self._noted = stamp[0]
            self._noted_groups = {g.id: g.fingerprint for g in self.config.groups}
            stamp = (stamp[0], self.store.facts_version())
        state = snapshot.state(self.store)
        self._parts.use_facts(stamp[1])
        plan = planner.plan(self.config, state, now, self._parts)
        self._by_key = plan.by_key()
        counts = self.record(plan, now, state.keys, self._by_key)
        del state
        # the facts as they were when the snapshot was taken (read before it), plus our own
        # bump for recording revisions: any other change made meanwhile (another process)
        # leaves the versions apart, and the next tick plans again
        after = self.store.facts_version()
        ours = stamp[1] + (1 if plan.revisions else 0)
        self._plan = plan
        self._stamp = (stamp[0], after) if after == ours else stamp
        if after == ours:
            self._parts.advance(after)
        return plan, counts

    def record(self, plan: Plan, now: datetime, existing: Mapping[str, str],
               wanted: Mapping[str, Desired] | None = None) -> tuple[int, int, int]:
        """Write the plan into the ledger: insert new rows (``existing`` holds the keys the
        plan was made with; a key another worker recorded meanwhile is skipped), update
        unsent ones, withdraw rows no longer wanted (``wanted``: the plan by key, when the
        caller has it). Returns (recorded, updated, withdrawn)."""
        recorded = updated = withdrawn = 0
        with self.store.atomic() as conn:
            for r in plan.revisions:
                self.store.record_revision(conn, r.group, r.meeting, r.revision.rev,
                                           r.revision.digest, r.revision.fields, r.replaces,
                                           r.restart, now)
            if plan.revisions:
                self.store.bump_facts(conn)
            if wanted is None:
                wanted = plan.by_key()
            # the rows recorded before, a batch at a time (bounded memory), then the new
            # ones; each change only while the row is as read: another worker may be
            # sending it
            for rows in self.store.active_rows(conn, self.batch * 10):
                for row in rows:
                    key = row.key
                    d = wanted.get(key)
                    was = (row.state,)
                    if row.state == "skipped_late":
                        if d is None or d.latest <= now or d.initial == "skipped_late":
                            continue  # still too late: it stays as it was recorded
                        updated += self.store.update_row(
                            conn, key, now, "timely again after an edit", expect=was,
                            state=d.initial, send_at=d.send_at, latest_at=d.latest,
                            subject=d.subject, reason=d.reason)
                        continue
                    if d is None:
                        if row.state != "withdrawn":
                            withdrawn += self.store.update_row(conn, key, now,
                                                               "no longer in the plan",
                                                               expect=was, state="withdrawn")
                        continue
                    values: dict[str, Any] = {}
                    if row.state == "withdrawn":
                        values["state"] = d.initial
                    if d.hold and row.state in ("planned", "retry"):
                        values["state"] = "held"
                    if (row.send_at, row.latest_at, row.subject, row.reason,
                            row.recipient_name) != d.digest_fields():
                        values.update(send_at=d.send_at, latest_at=d.latest,
                                      subject=d.subject, reason=d.reason,
                                      recipient_name=d.recipient.name)
                    if values:
                        updated += self.store.update_row(conn, key, now, "plan changed",
                                                         expect=was, **values)
            new = (d for d in plan.messages if d.key not in existing)
            while batch := [_row_values(d, now, d.initial)
                            for d in itertools.islice(new, self.batch)]:
                # a batch at a time (bounded memory), less those another worker did
                recorded += self.store.insert_rows(conn, batch)
            if recorded:
                log.info("planned %d new message(s)", recorded)
        return recorded, updated, withdrawn

    # --- sending -------------------------------------------------------------------------

    @property
    def plan(self) -> Plan | None:
        """The plan in hand (None before the first tick)."""
        return self._plan

    def tick(self, now: datetime, *, dry_run: bool = False) -> TickResult:
        now = now.astimezone(UTC)
        result = TickResult(now=now.isoformat(), dry_run=dry_run)
        if dry_run:
            return self._dry_run(now, result)
        self.recover(now, result)
        self.read_mailbox(now, result)  # answers first: they may stop a chaser due now
        _, counts = self.current_plan(now)
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
                    d = self._by_key.get(row.key)
                    if self.on_calendar and d is not None and d.kind in INVITE_KINDS:
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
        if self._plan is not None and self._plan.valid_until is not None:
            found.append(self._plan.valid_until)
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


