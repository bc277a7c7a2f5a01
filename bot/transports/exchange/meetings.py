"""The meetings of the ``exchange`` transport: each an item in the organiser's calendar with
the members as attendees, whose server mails the invitations, updates and cancellations; a
series' cancelled meetings deleted and its moved ones changed as occurrences; the items of a
meeting found again by its UID, and the attendees' answers read. What an item says is
bot/transports/exchange/items.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.errors import TransportError
from bot.transports.calendar import HalfDone, MeetingChange, Op, Part
from bot.transports.exchange.items import (
    _attendee,
    _completed,
    _content,
    _done,
    _indexes,
    _key,
    _left,
    _tz,
    _when,
)
from bot.transports.exchange.session import Ews, lenient

log = logging.getLogger("clerk")

ANSWERS = {"Accept": "ACCEPTED", "Tentative": "TENTATIVE", "Decline": "DECLINED"}
FETCHED = ["subject", "start", "end", "required_attendees", "is_cancelled", "clerk_revision",
           "clerk_done",
           "deleted_occurrences", "modified_occurrences"]  # what an update or a cancel reads


class ExchangeMeetings:
    """The meetings side of ExchangeTransport (bot/transports/exchange/transport.py), which
    holds the session."""

    ews: Ews
    account: Any  # the session's exchangelib Account

    def apply(self, change: MeetingChange, op: Op, part: Part | None) -> tuple[str, str]:
        what = f"{op.action} item {op.part} of {change.uid}"
        if op.action == "create":
            return self.ews.run(what, lambda: self._create(change, op))
        if part is None:
            raise TransportError(f"cannot {what}: clerk has no record of that item",
                                 retryable=False)
        if op.action == "update":
            return self.ews.run(what, lambda: self._update(change, op, part))
        return self.ews.run(what, lambda: self._cancel(part))

    def _create(self, change: MeetingChange, op: Op) -> tuple[str, str]:
        from exchangelib import CalendarItem
        from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY

        item = CalendarItem(
            account=self.account, folder=self.ews.folder("calendar"), **_content(change),
            required_attendees=[_attendee(n, e) for n, e in op.attendees],
            clerk_uid=change.uid, clerk_revision=change.revision, clerk_done=_done(change),
            clerk_part=op.part)
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)  # CreateItem: invites
        self._finish(change, item)
        return item.id, item.changekey

    def _finish(self, change: MeetingChange, item: Any, reset: bool = False,
                again: bool = False) -> None:
        """A series' exceptions, once the item is made or changed; a failure keeps the item
        (:class:`bot.transports.calendar.HalfDone`): the next tick finds its revision done and
        does only these."""
        from exchangelib.items import SEND_TO_NONE

        try:
            self._exceptions(change, item, reset, again)
            if item.clerk_done != change.revision:  # all done: now it says so (mails no one)
                item.clerk_done = change.revision
                item.save(update_fields=["clerk_done"], send_meeting_invitations=SEND_TO_NONE)
        except Exception as exc:
            error = self.ews.error(f"cancel or move meetings of {change.uid}", exc)
            if error is None:
                raise
            raise HalfDone(error, item.id, item.changekey) from exc

    def _fetch(self, item_id: str) -> Any:
        """The item as the server holds it now: its change key, attendees (with their
        answers) and a series' deleted and changed occurrences. One GetItem."""
        from exchangelib.properties import ItemId

        found = next(iter(self.account.fetch(ids=[ItemId(id=item_id)],
                                             folder=self.ews.folder("calendar"),
                                             only_fields=FETCHED)))
        if isinstance(found, Exception):
            raise found
        return found

    def _update(self, change: MeetingChange, op: Op, part: Part) -> tuple[str, str]:
        from exchangelib.items import (
            SEND_TO_ALL_AND_SAVE_COPY,
            SEND_TO_CHANGED_AND_SAVE_COPY,
            SEND_TO_NONE,
        )

        item = self._fetch(part.item_id)  # fresh: a stale change key would be refused
        fields: list[str] = []
        reset = False  # a series' times or rule changed: Exchange drops its exceptions
        # the server at this revision already: done before a crash or a failure part-way
        # (saving it again would mail everyone the same update twice)
        again = op.content and item.clerk_revision != change.revision
        if again:
            # only some meetings of a series changed: the master stays as it is (nobody is
            # mailed a series update); they are done as occurrences below
            content = {} if change.scope else _content(change)
            if "recurrence" in content:  # a series: its times and rule only when changed
                for name in ("start", "end", "recurrence"):
                    if _key(getattr(item, name)) == _key(content[name]):
                        del content[name]
                    else:
                        reset = True
            for name in ("start", "end"):  # in the group's zone now, not the item's old one
                if name in content:
                    content[f"_{name}_timezone"] = _tz(change.content.zone)
            for name, value in content.items():
                setattr(item, name, value)
                fields.append(name)
            left = any(_left(change, item, reset, again))
            item.clerk_revision = change.revision
            item.clerk_done = change.revision - 1 if left else change.revision
            fields += ["clerk_revision", "clerk_done"]
        # keep the attendees who stay as the server has them: their answers stay recorded
        held = {a.mailbox.email_address.lower(): a for a in item.required_attendees or ()}
        wanted = [e.lower() for _, e in op.attendees]
        if set(held) != set(wanted):
            item.required_attendees = [held.get(e.lower()) or _attendee(n, e)
                                       for n, e in op.attendees]
            fields.append("required_attendees")
        if fields:
            # a new time or place must reach everyone (SendToAll); an attendee change alone
            # is sent to the changed attendees (SendToChanged: the removed get the
            # cancellation — Exchange may mail the others too, exchangelib #746); clerk's
            # own properties alone, to nobody
            said = set(fields) - {"clerk_revision", "clerk_done", "required_attendees"}
            item.save(update_fields=fields, send_meeting_invitations=(
                SEND_TO_ALL_AND_SAVE_COPY if said else SEND_TO_CHANGED_AND_SAVE_COPY
                if "required_attendees" in fields else SEND_TO_NONE))
        if op.content:
            self._finish(change, item, reset, bool(again))
        return item.id, item.changekey

    def _cancel(self, part: Part) -> tuple[str, str]:
        """CancelCalendarItem: the server mails the cancellation to everyone on the item
        and moves the organiser's copy to Deleted Items."""
        from exchangelib.errors import ErrorItemNotFound
        from exchangelib.items import CancelCalendarItem
        from exchangelib.properties import ReferenceItemId

        try:
            item = self._fetch(part.item_id)
        except ErrorItemNotFound:
            log.warning("exchange: item %s is already gone from the calendar", part.item_id)
            return part.item_id, part.change_key
        if item.is_cancelled:
            return item.id, item.changekey
        CancelCalendarItem(account=self.account, reference_item_id=ReferenceItemId(
            id=item.id, changekey=item.changekey)).send(copy_to_folder=self.ews.folder("sentitems"))
        return item.id, item.changekey

    def _exceptions(self, change: MeetingChange, master: Any, reset: bool = False,
                    again: bool = False) -> None:
        """A series' cancelled meetings deleted as occurrences (each attendee is mailed the
        cancellation) and its moved meetings changed as occurrences (mailed as updates),
        skipping what the server already shows (nothing, after a ``reset``: a new time or
        rule on the master drops its exceptions): at most one DeleteItem and one
        UpdateItem."""
        from exchangelib import CalendarItem
        from exchangelib.errors import ErrorCalendarOccurrenceIsDeletedFromRecurrence
        from exchangelib.items import (
            ALL_OCCURRENCES,
            ALWAYS_OVERWRITE,
            MOVE_TO_DELETED_ITEMS,
            SEND_TO_ALL_AND_SAVE_COPY,
        )
        from exchangelib.properties import OccurrenceItemId

        spec = change.content.master
        gone, shifts = _left(change, master, reset, again)
        if not gone and not shifts:
            return
        zone = ZoneInfo(change.content.zone)
        index = _indexes(spec.rrule, spec.start.astimezone(zone),
                         [x for x in (*gone, *(o.recurrence_id for o in shifts))])

        def occurrence(when: datetime) -> Any:
            return OccurrenceItemId(id=master.id, changekey=master.changekey,
                                    instance_index=index[when])

        if gone:
            results = lenient("DeleteItem")(account=self.account).call(
                items=[occurrence(x) for x in gone], delete_type=MOVE_TO_DELETED_ITEMS,
                send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY,
                affected_task_occurrences=ALL_OCCURRENCES, suppress_read_receipts=True)
            for result in list(results):
                if isinstance(result, Exception) and not isinstance(
                        result, ErrorCalendarOccurrenceIsDeletedFromRecurrence):
                    raise result
        if shifts:
            tz = _tz(change.content.zone)
            changes = []
            for o in shifts:
                item = CalendarItem(account=self.account, folder=self.ews.folder("calendar"),
                                    _id=occurrence(o.recurrence_id), start=_when(o.start, tz),
                                    end=_when(o.end, tz), location=o.location or None)
                changes.append((item, ["start", "end", "location"]))
            # clerk owns these fields: a change key made stale by the deletions above, or by
            # an attendee's answer, must not stop the move
            results = self.account.bulk_update(
                items=changes, conflict_resolution=ALWAYS_OVERWRITE,
                send_meeting_invitations_or_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
            for result in results:
                if isinstance(result, Exception):
                    raise result

    def find(self, uid: str) -> list[Part]:
        """The items carrying ``uid`` in the calendar: one FindItem restricted on ClerkUid,
        one GetItem for their attendees (FindItem cannot return them). A cancelled item is
        in Deleted Items, so not found: the same as gone for clerk."""
        return self.ews.run(f"find {uid} in the calendar", lambda: self._find(uid))

    def _find(self, uid: str) -> list[Part]:
        calendar = self.ews.folder("calendar")
        found = list(calendar.filter(clerk_uid=uid).only("id", "changekey"))
        if not found:
            return []
        items = self.account.fetch(ids=found, folder=calendar, only_fields=[
            "required_attendees", "is_cancelled", "clerk_revision", "clerk_done", "clerk_part"])
        parts = []
        for n, item in enumerate(items):
            if isinstance(item, Exception):
                continue  # gone between the two requests
            attendees = tuple((a.mailbox.name or "", (a.mailbox.email_address or "").lower())
                              for a in item.required_attendees or ())
            parts.append(Part(
                part=item.clerk_part if item.clerk_part is not None else n, item_id=item.id,
                attendees=attendees, revision=_completed(item),
                cancelled=bool(item.is_cancelled), change_key=item.changekey))
        return sorted(parts, key=lambda p: p.part)

    def responses(self, items: Sequence[str]) -> dict[str, dict[str, str]]:
        """item id → {email → ACCEPTED | TENTATIVE | DECLINED}: each attendee's answer as the
        organiser's copy records it; one GetItem for all the items."""
        if not items:
            return {}
        return self.ews.run("read the attendees' answers", lambda: self._responses(items))

    def _responses(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        from exchangelib.properties import ItemId

        fetched = self.account.fetch(ids=[ItemId(id=i) for i in ids],
                                     folder=self.ews.folder("calendar"),
                                     only_fields=["required_attendees"], chunk_size=len(ids))
        out: dict[str, dict[str, str]] = {}
        for item_id, item in zip(ids, fetched, strict=True):
            if isinstance(item, Exception):
                log.warning("exchange: cannot read answers of %s: %s", item_id, item)
                continue
            out[item_id] = {a.mailbox.email_address.lower(): ANSWERS[a.response_type]
                            for a in item.required_attendees or ()
                            if a.response_type in ANSWERS and a.mailbox.email_address}
        return out
