"""Meetings a server owns (``exchange``, ``graph``): a tick's due invitation rows of one
meeting become one change on the server (the operations are decided in bot/plan/calendar.py),
and the attendees' answers are read back. A part of :class:`bot.engine.executor.Executor`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.domain.errors import TransportError
from bot.engine import snapshot
from bot.engine.result import TickResult
from bot.engine.sending import Sending
from bot.plan import calendar
from bot.render import email as render_email
from bot.transports.calendar import RESPONSES, is_calendar

log = logging.getLogger("clerk")


class CalendarSync(Sending):
    """The executor's calendar side; its sending comes before it."""

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
        claimed = {k for k in keys if self.desired(k) is not None and self.store.claim(
            k, now, render_email.message_id(k, group.organiser, self._secret()), name)}
        if not claimed:
            return
        wanted = [self._wanted(k) for k in keys if k in claimed]
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
