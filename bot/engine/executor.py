"""The executor: one reconcile pass (``tick``) — plan, record, claim what is due, send, record.

The in-doubt window is one message: a row is committed as ``sending`` before anything could
deliver its message, and as ``sent`` once the transport has it — before the next row is
claimed (the transport says when, see ``Transport.start``). A row found in ``sending`` at the
start of a tick (a crash) is looked up where the transport can tell, and sent again only if it
is not found — so a crash costs at most one duplicate (RFC 1047: exactly-once is impossible).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.domain import windows
from bot.domain.errors import TransportError
from bot.domain.model import Config, Desired
from bot.domain.tokens import ANSWERABLE, make_token
from bot.engine import snapshot
from bot.engine.store import Store
from bot.plan import calendar, planner
from bot.plan.planner import Plan
from bot.render import email as render_email
from bot.transports.base import Mail, Transport
from bot.transports.calendar import INVITE_KINDS, RESPONSES, is_calendar

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("clerk")
IN_DOUBT = "in doubt: "  # a retry's last error when its answer was lost (looked up first)


@dataclass
class TickResult:
    """What one tick did; ``clerk tick --json`` prints it (a documented contract)."""

    now: str
    dry_run: bool = False
    replanned: bool = False
    recorded: int = 0
    updated: int = 0
    withdrawn: int = 0
    recovered: int = 0
    sent: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_late: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False
    read: int = 0  # messages read from the mailbox
    unprocessed: list[str] = field(default_factory=list)  # why each unusable one was

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row_values(d: Desired, now: datetime, state: str) -> dict[str, Any]:
    return {
        "key": d.key, "group_id": d.group, "meeting_id": d.meeting, "rule_id": d.rule,
        "kind": d.kind, "recipient": d.recipient.email, "recipient_name": d.recipient.name,
        "revision": d.revision, "sequence": d.sequence, "state": state, "send_at": d.send_at,
        "latest_at": d.latest,
        "subject": d.subject, "reason": d.reason, "attempts": 0, "created_at": now,
        "updated_at": now,
    }


def backoff(key: str, attempts: int, base: int, cap: int) -> timedelta:
    """Capped exponential back-off with a jitter that is the same for the same key and try."""
    seconds = min(cap, base * 2 ** max(0, attempts - 1))
    jitter = int(hashlib.sha256(f"{key}/{attempts}".encode()).hexdigest()[:4], 16) / 0xFFFF
    return timedelta(seconds=seconds * (0.9 + 0.2 * jitter))


class Executor:
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
        self._by_key: dict[str, Desired] = {}
        self._stamp: tuple[str, int] | None = None
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
        state = snapshot.state(self.store)
        plan = planner.plan(self.config, state, now)
        counts = self.record(plan, now, state.keys)
        # the facts as they were when the snapshot was taken (read before it), plus our own
        # bump for recording revisions: any other change made meanwhile (another process)
        # leaves the versions apart, and the next tick plans again
        after = self.store.facts_version()
        ours = stamp[1] + (1 if plan.revisions else 0)
        self._plan, self._by_key = plan, plan.by_key()
        self._stamp = (stamp[0], after) if after == ours else stamp
        return plan, counts

    def record(self, plan: Plan, now: datetime,
               existing: Mapping[str, str]) -> tuple[int, int, int]:
        """Write the plan into the ledger: insert new rows (``existing`` holds the keys the
        plan was made with; a key another worker recorded meanwhile is skipped), update
        unsent ones, withdraw rows no longer wanted. Returns (recorded, updated, withdrawn)."""
        recorded = updated = withdrawn = 0
        with self.store.atomic() as conn:
            for r in plan.revisions:
                self.store.record_revision(conn, r.group, r.meeting, r.revision.rev,
                                           r.revision.digest, r.revision.fields, r.replaces,
                                           r.restart, now)
            if plan.revisions:
                self.store.bump_facts(conn)
            active = self.store.active_rows(conn)
            new = [_row_values(d, now, d.initial) for d in plan.messages
                   if d.key not in existing]
            self.store.insert_rows(conn, new)
            recorded = len(new)
            if new:
                log.info("planned %d new message(s)", recorded)
            wanted = plan.by_key()
            for key, row in active.items():
                d = wanted.get(key)
                if row.state == "skipped_late":
                    if d is None or d.latest <= now or d.initial == "skipped_late":
                        continue  # still too late: it stays as it was recorded
                    self.store.update_row(conn, key, now, "timely again after an edit",
                                          state=d.initial, send_at=d.send_at,
                                          latest_at=d.latest, subject=d.subject,
                                          reason=d.reason)
                    updated += 1
                    continue
                if d is None:
                    if row.state != "withdrawn":
                        self.store.update_row(conn, key, now, "no longer in the plan",
                                              state="withdrawn")
                        withdrawn += 1
                    continue
                values: dict[str, Any] = {}
                if row.state == "withdrawn":
                    values["state"] = d.initial
                if (row.send_at, row.latest_at, row.subject, row.reason,
                        row.recipient_name) != d.digest_fields():
                    values.update(send_at=d.send_at, latest_at=d.latest, subject=d.subject,
                                  reason=d.reason, recipient_name=d.recipient.name)
                if values:
                    self.store.update_row(conn, key, now, "plan changed", **values)
                    updated += 1
        return recorded, updated, withdrawn

    # --- sending -------------------------------------------------------------------------

    def recover(self, now: datetime, result: TickResult) -> None:
        """Settle rows a crash left in ``sending``: sent if the transport has them."""
        meetings = []
        for row in self.store.in_doubt():
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

    def _settle(self, row: Any, found: bool | None, now: datetime, result: TickResult) -> None:
        """A row left in doubt: sent if the transport found it, else sent again."""
        with self.store.atomic() as conn:
            if found:
                self.store.update_row(conn, row.key, now, "found after a crash",
                                      state="sent", sent_at=row.updated_at)
            else:
                self.store.update_row(conn, row.key, now, "in doubt after a crash; "
                                      "sending again", state="retry", next_attempt_at=now)
        result.recovered += 1
        log.warning("recovered %s after a crash: %s", row.key,
                    "already delivered" if found else "sending again")

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
                            self.store.update_row(conn, row.key, now, "its window had passed",
                                                  state="skipped_late")
                        result.skipped_late.append(row.key)
                        log.warning("skipped_late %s: latest was %s", row.key, row.latest_at)
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
        group = next((g for g in self.config.groups if g.id == group_id), None)
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
        """Turn each message in the mailbox into facts, then file it (never delete it)."""
        if self.mailbox is None:
            return
        from bot.engine.inbox import Inbox, Outcome
        from bot.listen import replies

        inbox = Inbox(self.config, self.store)
        limit = self.config.settings.max_attachment
        try:
            for uid, raw in self.mailbox.messages():
                if self.stop.is_set():
                    break
                try:
                    outcome = inbox.apply(replies.read(raw, max_attachment=limit), now)
                except Exception as exc:  # one odd message must not stop clerk for good
                    log.exception("inbox: could not use a message")
                    outcome = Outcome(False, f"clerk could not use it: {exc!r}"[:500])
                self.mailbox.file(uid, outcome.handled)
                result.read += 1
                if not outcome.handled:
                    result.unprocessed.append(outcome.detail)
        except TransportError as exc:  # the mailbox is down: read it next tick
            log.warning("mailbox: %s", exc)
            result.errors.append(f"mailbox: {exc}")
        finally:
            self.mailbox.close()

    def _delivered_before(self, row: Any, now: datetime, result: TickResult,
                          lookups: list[bool]) -> bool:
        """A row whose last attempt's answer was lost (a timeout, a dropped connection):
        sent, if the transport finds it delivered. A look-up that fails is not tried again
        this tick (the server is down: one wait, not one per row)."""
        desired = self._by_key.get(row.key)
        if desired is None:
            return False
        organiser = self.config.group(desired.group).organiser
        try:
            found = self.transport.lookup(render_email.message_id(row.key, organiser), row.key)
        except TransportError as exc:
            log.warning("cannot look up messages in doubt now: %s", exc)
            lookups[0] = False
            return False  # it goes again, as before: at most one duplicate
        if found:
            log.info("%s was delivered before its answer was lost: not sent again", row.key)
            self._sent(row.key, now, result)
        return bool(found)

    def _prepare(self, key: str, now: datetime, result: TickResult) -> tuple[str, Mail] | None:
        """The rendered message of a due row (None when it is no longer planned or cannot
        be rendered: that row alone fails)."""
        desired = self._by_key.get(key)
        if desired is None:
            return None  # not in the plan any more; the next record() withdraws it
        group = self.config.group(desired.group)
        token = make_token(self._secret(), key) if desired.kind in ANSWERABLE else None
        try:
            files = render_email.pack_attachments(
                group, desired, Path(self.config.settings.papers),
                self.config.settings.zip_papers_above) if desired.kind == "pack" else []
            if desired.kind in ("minutes", "approval_request"):
                files = render_email.file_attachment(group.minutes[desired.meeting])
            return key, render_email.build(group, desired, now, token, files)
        except Exception as exc:  # a template that fails at send time: that row only
            self._fail(key, now, f"cannot render: {exc}", result)
            return None

    def _deliver(self, batch: list[tuple[str, Mail]], now: datetime,
                 result: TickResult) -> bool:
        """Claim the rows of ``batch`` and hand their messages to the transport together
        (a service's batch for exchange and graph); record each one's outcome. False when
        nothing was claimed."""
        if len(batch) == 1 and self.transport.batch == 1:
            return self._start(*batch[0], now, result)
        self._finish(now, result)
        claimed = [(key, message) for key, message in batch
                   if self.store.claim(key, now, message.message_id, self.transport.name)]
        if not claimed:
            return False
        try:
            outcomes = self.transport.send_many([m for _, m in claimed])
        except Exception as exc:  # a bug or a broken setting: never leave a row in sending
            self._broken([k for k, _ in claimed], exc, now, result)
            return True
        for (key, _), error in zip(claimed, outcomes, strict=True):
            self._outcome(key, error, now, result)
        return True

    def _start(self, key: str, message: Mail, now: datetime, result: TickResult) -> bool:
        """One message at a time (outbox, smtp): wait for the answer to the message in
        flight, and hand ``key``'s message to the transport, which records that one ``sent``
        and claims ``key``'s row, in one transaction, when it says (smtp: while the server
        answers MAIL FROM and the first RCPT TO), always before anything could deliver it.
        The answer to a message's data is awaited only once the next message is rendered, so
        clerk renders while the server works, and a kill still leaves at most one message in
        doubt."""
        done = self._wait(now, result)
        claim = _Claim(self.store, lambda conn: self.store.claim(
            key, now, message.message_id, self.transport.name, conn))
        if done is not None:
            claim.settles(lambda conn: self._record_sent(conn, done, now),
                          lambda: self._report_sent(done, result))
        try:
            try:
                finish = self.transport.start(message, claim)
            except Exception as exc:
                if claim.error is not None:  # the ledger failed (the database): stop here
                    raise
                if not claim.called:  # the transport failed first: an attempt, as any
                    claim()
                if claim.claimed:
                    if isinstance(exc, TransportError):
                        self._outcome(key, exc, now, result)
                    else:
                        self._broken([key], exc, now, result)
                return claim.claimed
            if not claim.called:
                raise RuntimeError(f"{self.transport.name}: start() never claimed {key}")
        except BaseException:
            try:
                claim.close()  # a transaction begun and left: rolled back
            finally:
                if done is not None and not claim.settled:  # what went is recorded alone
                    self._sent(done, now, result)
            raise
        if finish is not None and claim.claimed:
            self._in_flight = key, finish
        return claim.claimed

    def _wait(self, now: datetime, result: TickResult) -> str | None:
        """Wait for the server's answer to the message in flight: its key when it was
        delivered (for the caller to record), else None (a failure is recorded here)."""
        if self._in_flight is None:
            return None
        (key, finish), self._in_flight = self._in_flight, None
        try:
            finish()
        except TransportError as exc:
            self._outcome(key, exc, now, result)
        except Exception as exc:
            self._broken([key], exc, now, result)
        else:
            return key
        return None

    def _finish(self, now: datetime, result: TickResult) -> None:
        """The message in flight, if any, answered and recorded."""
        key = self._wait(now, result)
        if key is not None:
            self._sent(key, now, result)

    def _broken(self, keys: list[str], exc: Exception, now: datetime,
                result: TickResult) -> None:
        log.error("sending %s failed", ", ".join(keys), exc_info=exc)
        for key in keys:
            self._fail(key, now, f"{type(exc).__name__}: {exc}", result)

    def _outcome(self, key: str, error: TransportError | None, now: datetime,
                 result: TickResult) -> None:
        if error is None:
            self._sent(key, now, result)
        elif error.retryable:
            self._retry(key, now, str(error), result, error.retry_after, in_doubt=error.in_doubt)
        else:
            self._fail(key, now, str(error), result)

    def _sent(self, key: str, now: datetime, result: TickResult) -> None:
        with self.store.atomic() as conn:
            self._record_sent(conn, key, now)
        self._report_sent(key, result)

    def _record_sent(self, conn: Connection, key: str, now: datetime) -> None:
        self.store.update_row(conn, key, now, "", state="sent", sent_at=now)
        desired = self._by_key[key]
        if desired.kind == "notice":  # the admin now knows about these
            self.store.mark_notified(conn, desired.context.get("undelivered_keys", []), now)

    def _report_sent(self, key: str, result: TickResult) -> None:
        desired = self._by_key[key]
        result.sent.append(key)
        log.info("sent %s %s to %s via %s", desired.kind, desired.meeting,
                 desired.recipient.email, self.transport.describe())

    # --- meetings a server owns (bot/plan/calendar.py) -----------------------------------------

    @property
    def on_calendar(self) -> bool:
        return is_calendar(self.transport)

    def _sync_meeting(self, group_id: str, unit: str, keys: list[str], now: datetime,
                      result: TickResult) -> None:
        """Carry out one meeting's due invitation rows as calendar operations, holding the
        meeting's lock: two workers never change one meeting's items at once."""
        with self.store.locked(self._lock(group_id, unit)) as got:
            if got:
                self._change_meeting(group_id, unit, keys, now, result)
            else:
                log.info("calendar %s/%s: another worker is changing it; next tick",
                         group_id, unit)

    def _lock(self, group_id: str, unit: str) -> str:
        return f"calendar:{self.transport.name}:{group_id}:{unit}"

    def _change_meeting(self, group_id: str, unit: str, keys: list[str], now: datetime,
                        result: TickResult) -> None:
        group = self.config.group(group_id)
        name = self.transport.name
        claimed = {k for k in keys if k in self._by_key and self.store.claim(
            k, now, render_email.message_id(k, group.organiser), name)}
        if not claimed:
            return
        wanted = [self._by_key[k] for k in keys if k in claimed]
        try:
            change = calendar.change_for(group, unit, wanted)
        except Exception as exc:  # a template that fails at send time: these rows only
            for k in claimed:
                self._fail(k, now, f"cannot render: {exc}", result)
            return
        parts = snapshot.calendar_parts(self.store, name, group_id, unit).get((group_id, unit), [])
        transport: Any = self.transport
        if any(self.store.row(k).attempts > 1 for k in claimed):
            # tried before: the server may have done it and its answer been lost; ask it
            try:
                parts = self._merged(group_id, unit, parts, transport.find(change.uid), result)
            except TransportError as exc:
                for d in wanted:
                    self._retry(d.key, now, str(exc), result, exc.retry_after,
                                jitter=sorted(claimed)[0])
                return
            except Exception as exc:  # a bug: never leave rows in sending
                log.exception("looking up %s/%s failed", group_id, unit)
                for k in claimed:
                    self._fail(k, now, f"{type(exc).__name__}: {exc}", result)
                return
        ops = calendar.operations(change, parts)
        try:
            parts = transport.apply_all(change, ops, parts)
        except TransportError as exc:
            log.warning("calendar %s/%s: %s", group_id, unit, exc)
            done = exc.parts
            if done is not None:
                self.store.save_parts(name, group_id, unit, done, now)
            first = sorted(claimed)[0]  # one wait for the whole change: its rows stay together
            for d in wanted:
                if done is not None and calendar.settled(
                        done, d.recipient.email, calendar.method_of(d.kind), d.revision or 0):
                    self._mark_sent([d.key], now, result)  # its part was done before the fault
                elif exc.retryable:
                    self._retry(d.key, now, str(exc), result, exc.retry_after, jitter=first)
                else:
                    self._fail(d.key, now, str(exc), result)
            return
        except Exception as exc:  # a bug or a broken setting: never leave rows in sending
            log.exception("calendar change for %s/%s failed", group_id, unit)
            for k in claimed:
                self._fail(k, now, f"{type(exc).__name__}: {exc}", result)
            return
        self.store.save_parts(name, group_id, unit, parts, now)
        self._mark_sent([d.key for d in wanted], now, result)
        log.info("calendar %s/%s: %s via %s", group_id, unit,
                 ", ".join(f"{op.action} item {op.part}" for op in ops) or "nothing to change",
                 self.transport.describe())

    def _mark_sent(self, keys: list[str], now: datetime, result: TickResult) -> None:
        with self.store.atomic() as conn:
            for k in keys:
                self.store.update_row(conn, k, now, "", state="sent", sent_at=now)
        result.sent.extend(keys)

    def _recover_calendar(self, rows: list[Any], now: datetime, result: TickResult) -> None:
        """Rows of meetings left in ``sending``: ask the server what it holds (the items carry
        the meeting's UID) and settle each row by it."""
        by_unit: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            by_unit.setdefault((row.group_id, row.meeting_id), []).append(row)
        for (group_id, unit), found in by_unit.items():
            with self.store.locked(self._lock(group_id, unit)) as got:
                if got:  # else another worker is changing it: look next tick
                    self._recover_meeting(group_id, unit, found, now, result)

    def _recover_meeting(self, group_id: str, unit: str, found: list[Any], now: datetime,
                         result: TickResult) -> None:
        transport: Any = self.transport
        kept = snapshot.calendar_parts(self.store, transport.name, group_id, unit).get(
            (group_id, unit), [])
        try:
            group = self.config.group(group_id)
            parts = self._merged(group_id, unit, kept,
                                 transport.find(render_email.invite_uid(group, unit)), result)
        except KeyError:  # the group is gone from the config: nothing to look up
            parts = kept
        except TransportError as exc:
            log.warning("cannot look up %s/%s yet: %s", group_id, unit, exc)
            return
        self.store.save_parts(transport.name, group_id, unit, parts, now)
        for row in found:
            held = calendar.settled(parts, row.recipient, calendar.method_of(row.kind),
                                    row.revision or 0)
            self._settle(row, held, now, result)

    def _merged(self, group_id: str, unit: str, kept: list[Any], found: list[Any],
                result: TickResult) -> list[Any]:
        """What clerk knew of a meeting's items, corrected by the server (calendar.merge);
        an item it no longer shows is reported: its people may need inviting again."""
        parts = calendar.merge(kept, found)
        for p in calendar.gone(kept, parts):
            message = (f"calendar {group_id}/{unit}: item {p.part} ({len(p.attendees)} "
                       "attendee(s)) is no longer in the organiser's calendar (moved to another "
                       "calendar or deleted in Outlook?); clerk counts it cancelled")
            log.warning(message)
            result.errors.append(message)
        return parts

    def read_calendar(self, now: datetime, result: TickResult) -> None:
        """Record attendees' answers from the organiser's copies of meetings still to come,
        at most every ``rsvp_every`` (kept in the store, so ``clerk tick`` from cron keeps
        it too); a few requests for all of them."""
        last = self.store.meta_value("rsvps_read_at")
        if last and now - datetime.fromisoformat(last) < self.config.settings.rsvp_every:
            return
        transport: Any = self.transport
        items: dict[str, tuple[str, str, int]] = {}
        for (group_id, unit), parts in snapshot.calendar_parts(self.store, transport.name).items():
            try:
                ends = calendar.ends(self.config.group(group_id), unit)
            except KeyError:
                continue
            if ends is None or ends <= now:
                continue  # over, or gone from the config: its answers no longer matter
            for p in parts:
                if not p.cancelled:
                    items[p.item_id] = (group_id, unit, p.revision)
        if items:
            try:
                answers = transport.responses(sorted(items))
            except TransportError as exc:  # read again next tick (what was read is kept)
                log.warning("calendar: cannot read answers yet: %s", exc)
                result.errors.append(f"calendar: {exc}")
                self._record_answers(items, getattr(exc, "answers", {}), now, result)
                return
            self._record_answers(items, answers, now, result)
        self.store.set_meta("rsvps_read_at", now.isoformat())

    def _record_answers(self, items: Mapping[str, tuple[str, str, int]],
                        answers: Mapping[str, Mapping[str, str]], now: datetime,
                        result: TickResult) -> None:
        known = snapshot.state(self.store).rsvps
        for item_id, by_email in answers.items():
            if item_id not in items:
                continue
            group_id, unit, revision = items[item_id]
            had = known.get((group_id, unit, ""), {})
            for email, partstat in by_email.items():
                if partstat not in RESPONSES or had.get(email, ("",))[0] == partstat:
                    continue
                self.store.record_rsvp(group_id, unit, "", email, partstat, "", revision, now)
                result.read += 1
                log.info("calendar: %s %s %s", email, partstat.lower(), unit)

    def _secret(self) -> bytes:
        if self._token_secret is None:
            self._token_secret = self.store.secret()
        return self._token_secret

    def _retry(self, key: str, now: datetime, error: str, result: TickResult,
               after: float | None = None, jitter: str = "", in_doubt: bool = False) -> None:
        """A failure that may clear: try again after a back-off, or park the message once it
        has failed for longer than ``park_after`` (the admin is told in a digest)."""
        row = self.store.row(key)
        s = self.config.settings
        first = row.first_failed_at or now
        with self.store.atomic() as conn:
            if now - first >= s.park_after:
                self.store.update_row(conn, key, now, error, state="parked", last_error=error,
                                      first_failed_at=first)
                self.store.bump_facts(conn)
                result.parked.append(key)
                log.error("parked %s after failing since %s: %s", key, first.isoformat(), error)
                return
            if in_doubt:  # looked up before it goes again
                error = f"{IN_DOUBT}{error}"
            wait = backoff(jitter or key, row.attempts, s.retry_base, s.retry_cap)
            if after:  # the server said when to come back
                wait = max(wait, timedelta(seconds=after))
            self.store.update_row(conn, key, now, error, state="retry", last_error=error,
                                  next_attempt_at=now + wait, first_failed_at=first)
        result.retry.append(key)
        log.warning("retry %s in %ss: %s", key, int(wait.total_seconds()), error)

    def _fail(self, key: str, now: datetime, error: str, result: TickResult) -> None:
        with self.store.atomic() as conn:
            self.store.update_row(conn, key, now, error, state="failed", last_error=error)
            self.store.bump_facts(conn)
        result.failed.append(key)
        result.errors.append(f"{key}: {error}")
        log.error("failed %s: %s", key, error)

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


class _Claim:
    """What the transport calls, once, before a message can be delivered
    (``Transport.start``): it records the message before as sent, when :meth:`settles` said
    how, and takes this message's row, in one transaction — which :meth:`begin` may open
    earlier, with the record, so the work is split between two waits for the server.
    Remembers what was done and the ledger's error, if any."""

    def __init__(self, store: Store, take: Callable[[Connection], bool]) -> None:
        self._store, self._take = store, take
        self._record: Callable[[Connection], None] = _nothing
        self._report: Callable[[], None] = _nothing
        self._tx: tuple[contextlib.ExitStack, Connection] | None = None  # the open one
        self.settled = True  # nothing to record unless settles() says what
        self.called = False
        self.claimed = False
        self.error: BaseException | None = None

    def settles(self, record: Callable[[Connection], None], report: Callable[[], None]) -> None:
        """What the claim records first (in its transaction), and reports once committed."""
        self._record, self._report, self.settled = record, report, False

    def begin(self) -> None:
        """Open the claim's transaction and record the message before in it (nothing to
        record: nothing done before the claim)."""
        if self._tx is None and not self.called and not self.settled:
            self._ledger(self._begin)

    def __call__(self) -> bool:
        if self.called:
            raise RuntimeError("a row is claimed once")
        self.called = True
        if self._tx is None:  # not begun: the record (if any) and the claim at once
            self._ledger(self._begin)
        self.claimed = bool(self._ledger(self._take_and_commit))
        if not self.settled:
            self.settled = True
            self._report()
        return self.claimed

    def close(self) -> None:
        """Roll back the transaction, when it was begun and the claim never made."""
        self._end(RuntimeError("the claim was not made"))

    def _begin(self) -> None:
        stack = contextlib.ExitStack()
        self._tx = stack, stack.enter_context(self._store.atomic())
        self._record(self._tx[1])

    def _take_and_commit(self) -> bool:
        assert self._tx is not None
        (stack, conn), self._tx = self._tx, None
        with stack:  # committed on the way out, rolled back on an error
            return self._take(conn)

    def _ledger(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except BaseException as exc:
            self.error = exc
            self._end(exc)
            raise

    def _end(self, exc: BaseException) -> None:
        if self._tx is not None:
            (stack, _), self._tx = self._tx, None
            stack.__exit__(type(exc), exc, exc.__traceback__)  # rolled back


def _nothing(*_: Any) -> None:
    pass
