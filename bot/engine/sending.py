"""Sending due rows: claim, render, hand to the transport, record — one message in doubt at
most. A part of :class:`bot.engine.executor.Executor`, which holds the state named here."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.domain.errors import TransportError
from bot.domain.model import Config, Desired
from bot.domain.tokens import ANSWERABLE, make_token
from bot.engine.result import TickResult
from bot.engine.store import Store
from bot.plan.admin_mail import REPORTS
from bot.plan.pack import PACK, PACK_PREVIEW
from bot.render import email as render_email
from bot.render import report_csv
from bot.transports.base import Mail, Transport

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("clerk")
PACKS = (PACK, PACK_PREVIEW)  # the agenda .docx and the papers go with these


class Sending:
    """Needs the executor's config, store, transport and mailbox."""

    config: Config
    store: Store
    transport: Transport
    mailbox: Any
    stop: threading.Event
    _token_secret: bytes | None
    _in_flight: tuple[str, Callable[[], None]] | None
    _in_hand: dict[str, Desired]  # the messages rendered this tick, by key, until recorded

    def desired(self, key: str) -> Desired | None:
        """The message the plan wants for ledger row ``key`` (None: no longer planned)."""
        raise NotImplementedError

    def _wanted(self, key: str) -> Desired:
        """The message of ``key`` as it was rendered, if it was this tick (the plan may have
        moved on meanwhile), else as the plan has it."""
        found = self._in_hand.get(key) or self.desired(key)
        if found is None:
            raise KeyError(f"{key} is not in the plan")
        return found
    def _settle(self, row: Any, found: bool | None, now: datetime, result: TickResult) -> None:
        """A row left in doubt: sent if the transport found it, else sent again."""
        with self.store.atomic() as conn:
            if found:
                self.store.update_row(conn, row.key, now, "found after a crash",
                                      expect=("sending",), state="sent", sent_at=row.updated_at)
            else:
                self.store.update_row(conn, row.key, now, "in doubt after a crash; "
                                      "sending again", expect=("sending",), state="retry",
                                      next_attempt_at=now)
        result.recovered += 1
        log.warning("recovered %s after a crash: %s", row.key,
                    "already delivered" if found else "sending again")

    def _prepare(self, key: str, now: datetime, result: TickResult) -> tuple[str, Mail] | None:
        """The rendered message of a due row (None when it is no longer planned or cannot
        be rendered: that row alone fails)."""
        desired = self.desired(key)
        if desired is None:
            return None  # not in the plan any more; the next record() withdraws it
        self._in_hand[key] = desired
        group = self.config.group(desired.group)
        token = make_token(self._secret(), key) if desired.kind in ANSWERABLE else None
        try:
            files = render_email.pack_attachments(
                group, desired, Path(self.config.settings.papers),
                self.config.settings.zip_papers_above) if desired.kind in PACKS else []
            if desired.kind in ("minutes", "approval_request"):
                files = render_email.file_attachment(group.minutes[desired.meeting])
            if desired.kind in REPORTS:  # the status report, as a spreadsheet too
                report = desired.context["report"]
                files = [(report_csv.filename(report), "text/csv",
                          report_csv.report_csv(report))]
            return key, render_email.build(group, desired, now, token, files,
                                           secret=self._secret())
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
        desired = self._wanted(key)
        if desired.kind == "notice":  # the admin now knows about these
            self.store.mark_notified(conn, desired.context.get("undelivered_keys", []), now)
        if desired.kind in REPORTS:  # ... and about the papers kept back it lists
            self.store.mark_reported(conn, [q["id"] for q in desired.context["report"][
                "quarantined"] if q["new"]], now)

    def _report_sent(self, key: str, result: TickResult) -> None:
        desired = self._wanted(key)
        result.sent.append(key)
        log.info("sent %s %s to %s via %s", desired.kind, desired.meeting,
                 desired.recipient.email, self.transport.describe())

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
                self.store.bump_facts(conn, row.group_id)
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
            self.store.bump_facts(conn, *self.store.groups_of(conn, [key]))
        result.failed.append(key)
        result.errors.append(f"{key}: {error}")
        log.error("failed %s: %s", key, error)


IN_DOUBT = "in doubt: "  # a retry's last error when its answer was lost (looked up first)


def backoff(key: str, attempts: int, base: int, cap: int) -> timedelta:
    """Capped exponential back-off with a jitter that is the same for the same key and try."""
    seconds = min(cap, base * 2 ** max(0, attempts - 1))
    jitter = int(hashlib.sha256(f"{key}/{attempts}".encode()).hexdigest()[:4], 16) / 0xFFFF
    return timedelta(seconds=seconds * (0.9 + 0.2 * jitter))


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
