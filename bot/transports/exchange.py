"""The ``exchange`` transport: on-premises Exchange Server (2013 to SE) through EWS, with
exchangelib.

The organiser's mailbox does the work, as for the ``graph`` transport:

- meetings are items in the organiser's calendar with the members as attendees; Exchange
  mails the invitations, updates and cancellations (bot/plan/calendar.py says who hears what).
  A series is one recurring master; its cancelled meetings are deleted as occurrences and its
  moved ones changed as occurrences, each mailed by the server;
- messages are created and sent in the mailbox (a copy stays in Sent Items), a hundred to a
  request (:meth:`ExchangeTransport.send_many`);
- the inbox is read for replies and each message moved to ``clerk/processed`` or
  ``clerk/unprocessed`` (:class:`ExchangeMailbox`); nothing is deleted.

Every item carries clerk's extended properties (the property set ``PROPERTY_SET``, shared
with the ``graph`` transport so an item reads the same from either): a message its ledger key
(``ClerkKey``), a meeting its UID, content revision and part (``ClerkUid``,
``ClerkRevision``, ``ClerkDone``, ``ClerkPart``). After a crash clerk finds what the server
holds by them instead of sending twice.

The session — options, sign-in, exchangelib's set-up and its errors — is bot/transports/ews.py.
``server`` is the EWS endpoint: the full URL (``https://mail.example.org/EWS/Exchange.asmx``)
or a host name alone, meaning that URL on it. Nothing is autodiscovered and the version is
given (``version``), so exchangelib sends no probing requests. Sign-in: NTLM or basic with a
user name and password, or OAuth (hybrid modern authentication: an app registration's
client credentials; the app needs ``full_access_as_app`` and acts through
ApplicationImpersonation). exchangelib's own retries wait at most ``max_wait`` seconds (the
worker must not stall); past that a throttled request is a retryable TransportError carrying
the server's back-off, and the ledger waits. exchangelib is imported only when a request is
made: reading ``OPTIONS`` (``clerk --help``, config checks) stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.errors import TransportError
from bot.domain.recurrence import Pattern, pattern
from bot.transports.base import Mail
from bot.transports.calendar import CalendarTransport, HalfDone, MeetingChange, Op, Part
from bot.transports.credentials import secret
from bot.transports.ews import OPTIONS, Ews, lenient

__all__ = ["OPTIONS", "ExchangeMailbox", "ExchangeTransport", "recurrence"]

log = logging.getLogger("clerk")

ANSWERS = {"Accept": "ACCEPTED", "Tentative": "TENTATIVE", "Decline": "DECLINED"}
FETCHED = ["subject", "start", "end", "required_attendees", "is_cancelled", "clerk_revision",
           "clerk_done",
           "deleted_occurrences", "modified_occurrences"]  # what an update or a cancel reads
REQUEST_BYTES = 24 * 1024 * 1024  # attachments per CreateItem (IIS limits EWS requests)
MIME_CHUNK = 50  # inbox messages fetched (whole, as MIME) per GetItem: bounds the memory used

class ExchangeTransport(CalendarTransport):
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

    # --- messages ------------------------------------------------------------------------

    def _message(self, out: Mail) -> Any:
        from exchangelib import Body, FileAttachment, HTMLBody, Mailbox, Message

        message = Message(
            account=self.account, folder=self.ews.folder("sentitems"), subject=out.subject,
            body=HTMLBody(out.html) if out.html else Body(out.text),
            to_recipients=[Mailbox(email_address=e, name=n or None) for n, e in out.to],
            cc_recipients=[Mailbox(email_address=e, name=n or None) for n, e in out.cc] or None,
            clerk_key=out.key or None)
        for name, mime, data in out.attachments:
            message.attach(FileAttachment(name=name, content_type=mime, content=data))
        return message

    def send(self, out: Mail) -> None:
        """One CreateItem (SendAndSaveCopy): sent, and a copy kept in Sent Items."""
        self.ews.run(f"send {out.key or out.message_id}",
                     lambda: self._message(out).send_and_save())

    def send_many(self, messages: list[Mail]) -> list[TransportError | None]:
        """Every message, in CreateItem requests of up to a hundred (fewer when large
        attachments would make a request too big for the server); each one's outcome. A
        request that fails fails the messages it carried and those after it."""
        from exchangelib.items import SEND_AND_SAVE_COPY, SEND_TO_NONE

        outs = messages
        outcomes: list[TransportError | None] = []

        def send(chunk: list[Mail]) -> list[Any]:
            items = [self._message(o) for o in chunk]
            return list(lenient("CreateItem")(account=self.account, chunk_size=len(items)).call(
                items=items, folder=self.ews.folder("sentitems"),
                message_disposition=SEND_AND_SAVE_COPY, send_meeting_invitations=SEND_TO_NONE))

        try:
            for chunk in _requests(outs, self.batch):
                results = self.ews.run("send messages", functools.partial(send, chunk))
                for out, result in zip(chunk, results, strict=True):
                    outcomes.append(None if not isinstance(result, Exception) else
                                    self.ews.error(f"send {out.key}", result)
                                    or TransportError(str(result), retryable=False))
        except TransportError as exc:
            outcomes += [exc] * (len(outs) - len(outcomes))
        return outcomes

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        """Whether Sent Items holds the message carrying ``key`` (one FindItem)."""
        if not key:
            return None
        sent = self.ews.folder("sentitems")
        return bool(self.ews.run(f"look up {key} in Sent Items",
                                 lambda: sent.filter(clerk_key=key).exists()))

    # --- meetings --------------------------------------------------------------------------

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

    # --- clerk doctor ----------------------------------------------------------------------

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.ews)


def doctor(ews: Ews) -> list[tuple[bool, str, str]]:
    """(ok, what was checked, how to fix it): the credentials, then one GetFolder for the
    inbox, calendar and Sent Items with the rights clerk's account has on each."""
    from exchangelib.fields import FieldPath
    from exchangelib.folders import Folder
    from exchangelib.services import GetFolder

    missing = ews.missing()
    checks = [(not missing, f"credentials for {ews.auth} sign-in",
               f"set {', '.join(missing)}" if missing else "")]
    if missing:
        return checks
    user = "the app" if ews.auth == "oauth" else (secret(ews.options, "username") or "")
    full_access = (f"give {user} Full Access on the mailbox: Add-MailboxPermission -Identity "
                   f"{ews.address} -User {user} -AccessRights FullAccess"
                   if ews.auth != "oauth" else
                   f"assign the app's account the ApplicationImpersonation role, scoped to "
                   f"{ews.address} (New-ManagementRoleAssignment -Role ApplicationImpersonation)")
    names = {"inbox": "the inbox", "calendar": "the calendar", "sentitems": "Sent Items"}
    try:
        folders = [ews.folder(n) for n in names]
        rights = FieldPath(field=Folder.get_field_by_fieldname("effective_rights"))
        found = ews.run(f"reach the mailbox {ews.address}", lambda: list(
            GetFolder(account=ews.account).call(folders=folders, additional_fields=[rights],
                                                shape="IdOnly")))
    except TransportError as exc:
        checks.append((False, f"reach the mailbox {ews.address} at {ews.endpoint}", str(exc)))
        return checks
    checks.append((True, f"reach the mailbox {ews.address} at {ews.endpoint}", ""))
    needs = {"inbox": ("read", "delete"), "calendar": ("read", "create_contents", "modify",
                                                       "delete"), "sentitems": ("read",)}
    for (name, shown), folder in zip(names.items(), found, strict=True):
        if isinstance(folder, Exception):
            error = ews.error(f"open {shown}", folder)
            checks.append((False, f"open {shown}", str(error or folder) + "; " + full_access))
            continue
        granted = folder.effective_rights
        lacking = [r for r in needs[name] if not getattr(granted, r, False)]
        checks.append((not lacking, f"{', '.join(needs[name])} in {shown}",
                       f"{user} lacks {', '.join(lacking)}: {full_access}" if lacking else ""))
    return checks


class ExchangeMailbox:
    """The organiser's inbox, read over EWS (the same options as the transport)."""

    name = "exchange"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.ews = Ews(options)
        self._paths: dict[str, Any] = {}

    def __repr__(self) -> str:  # never shows credentials
        return f"<ExchangeMailbox {self.ews.address} at {self.ews.host}>"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(item id, the message as MIME) for what is in the inbox now, oldest first: one
        FindItem, then a GetItem per ``MIME_CHUNK`` messages."""
        inbox = self.ews.run("open the inbox", lambda: self._inbox())
        limit = int(self.options.get("batch", 200))
        if limit <= 0:
            return

        def ids() -> list[Any]:
            query = inbox.all().order_by("datetime_received").only("id", "changekey")
            query.page_size = min(max(limit, 1), 1000)
            return list(query[:limit])

        def whole(chunk: list[Any]) -> list[Any]:
            return list(self.ews.account.fetch(ids=chunk, folder=inbox, chunk_size=MIME_CHUNK,
                                               only_fields=["mime_content"]))

        found = self.ews.run("read the inbox", ids)
        for n in range(0, len(found), MIME_CHUNK):
            chunk = found[n:n + MIME_CHUNK]
            for item in self.ews.run("read the inbox", functools.partial(whole, chunk)):
                if isinstance(item, Exception):  # moved away in the meantime
                    log.warning("exchange: cannot read a message: %s", item)
                    continue
                yield item.id, bytes(item.mime_content or b"")

    def _inbox(self) -> Any:
        name = str(self.options.get("inbox") or "inbox")
        return self.ews.folder("inbox") if name.lower() == "inbox" else self._path(name)

    def _path(self, path: str) -> Any:
        """The folder at ``path`` (``clerk/processed``) under the top of the mailbox, each
        level created when missing."""
        if path not in self._paths:
            from exchangelib import Q
            from exchangelib.folders import SHALLOW, Folder, FolderCollection
            from exchangelib.services import CreateFolder

            parent, walked = self.ews.folder("msgfolderroot"), ""
            for name in [p for p in path.split("/") if p]:
                walked = f"{walked}/{name}" if walked else name
                if walked in self._paths:
                    parent = self._paths[walked]
                    continue
                found = list(FolderCollection(account=self.ews.account, folders=[parent])
                             .find_folders(q=Q(name=name), depth=SHALLOW))
                if found:
                    parent = found[0]
                else:
                    parent = CreateFolder(account=self.ews.account).get(
                        parent_folder=parent, folders=[Folder(root=parent.root, name=name)])
                    if isinstance(parent, Exception):
                        raise parent
                    log.info("created mailbox folder %s", walked)
                self._paths[walked] = parent
        return self._paths[path]

    def file(self, uid: str, handled: bool) -> None:
        """Move a message out of the inbox: to the processed or the unprocessed folder."""
        from exchangelib.properties import ItemId

        folder = str(self.options.get("processed" if handled else "unprocessed") or "") or \
            ("clerk/processed" if handled else "clerk/unprocessed")

        def move() -> None:
            target = self._path(folder)
            for result in self.ews.account.bulk_move(ids=[ItemId(id=uid)], to_folder=target):
                if isinstance(result, Exception):
                    raise result

        self.ews.run("file a message", move)

    def keep_sent(self, raw: bytes) -> None:
        """Nothing to do: Exchange keeps what the mailbox sends in Sent Items itself."""

    def find_sent(self, message_id: str) -> bool | None:
        """Whether Sent Items holds a message with this Message-ID."""
        sent = self.ews.folder("sentitems")
        return bool(self.ews.run("look in Sent Items",
                                 lambda: sent.filter(message_id=message_id).exists()))

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.ews)

    def close(self) -> None:
        self._paths.clear()
        self.ews.close()


def _requests(outs: Sequence[Mail], most: int) -> Iterator[list[Mail]]:
    """``outs`` in runs of at most ``most`` messages and about ``REQUEST_BYTES`` of
    attachments (base64 makes them a third larger): one CreateItem request each."""
    run: list[Mail] = []
    size = 0
    for out in outs:
        if run and (len(run) >= most or size + out.size * 4 // 3 > REQUEST_BYTES):
            yield run
            run, size = [], 0
        run.append(out)
        size += out.size * 4 // 3
    if run:
        yield run


# --- what an item says ------------------------------------------------------------------------


def _left(change: MeetingChange, master: Any, reset: bool,
          again: bool = False) -> tuple[list[Any], list[Any]]:
    """A series' cancelled meetings (original starts) and moved ones (EventSpecs) the
    server does not show yet (all of them after a ``reset``). The server shows a moved
    meeting's times, not its place: with new content (``again``) each moved one is sent
    again, unless the change is other meetings cancelled."""
    spec = change.content.master
    if not spec.rrule:
        return [], []
    done = set() if reset else {d.start for d in master.deleted_occurrences or ()}
    moved = {} if reset else {o.original_start: (o.start, o.end)
                              for o in master.modified_occurrences or ()}
    resend = again and change.scope != "occurrences"
    shifts = [o for o in change.content.overrides if o.recurrence_id is not None
              and (resend or moved.get(o.recurrence_id) != (o.start, o.end))]
    wanted = {o.recurrence_id for o in change.content.overrides} | set(spec.exdates)
    length = spec.end - spec.start
    zone = ZoneInfo(change.content.zone)
    usual = [datetime.fromtimestamp(at.timestamp(), tz=zone) for at, (start, end)
             in moved.items() if at not in wanted and (start, end) != (at, at + length)]
    shifts += [dataclasses.replace(spec, start=at, end=at + length, recurrence_id=at,
                                   rrule=None, exdates=())  # moved back to its usual time
               for at in usual]
    for at in done - set(spec.exdates):
        log.warning("exchange: the meeting of %s was cancelled on the server and cannot be "
                    "brought back there; add it as a [[meeting]] of its own", at.isoformat())
    return [x for x in spec.exdates if x not in done], shifts


def _done(change: MeetingChange) -> int:
    """The revision an item is complete at when its content is saved (``ClerkDone``): a
    series whose cancelled or moved meetings are still to be done says the previous one
    until they are (:meth:`ExchangeTransport._finish`), so a crash in between leaves it
    visibly unfinished, and the next tick does only what is left (``ClerkRevision`` says
    the content is saved already: nobody is mailed it twice)."""
    master = change.content.master
    pending = master.rrule and (master.exdates or change.content.overrides)
    return change.revision - 1 if pending else change.revision


def _completed(item: Any) -> int:
    """The revision an item found on the server is complete at."""
    done = item.clerk_done if item.clerk_done is not None else item.clerk_revision
    return int(done or 0)


def _tz(zone: str) -> Any:
    from exchangelib import EWSTimeZone

    return EWSTimeZone(zone)


def _when(value: datetime, tz: Any) -> Any:
    """An aware datetime as exchangelib's, in the group's zone (so Exchange keeps the zone:
    StartTimeZone, and a series recurs on the zone's wall clock)."""
    from exchangelib import EWSDateTime

    if not isinstance(value, EWSDateTime):
        value = EWSDateTime.from_datetime(value)
    return value.astimezone(tz)


def _attendee(name: str, email: str) -> Any:
    from exchangelib import Attendee, Mailbox

    return Attendee(mailbox=Mailbox(email_address=email, name=name or None),
                    response_type="Unknown")


def _content(change: MeetingChange) -> dict[str, Any]:
    """The item's fields clerk sets from the meeting (a series: its master and rule)."""
    from exchangelib import HTMLBody

    spec = change.content.master
    tz = _tz(change.content.zone)
    fields: dict[str, Any] = {"subject": change.content.subject, "start": _when(spec.start, tz),
                              "end": _when(spec.end, tz), "location": spec.location or None}
    if change.content.html:
        fields["body"] = HTMLBody(change.content.html)
    if spec.rrule:
        try:
            rule = pattern(spec.rrule, spec.start.astimezone(ZoneInfo(change.content.zone)))
            fields["recurrence"] = recurrence(rule)
        except ValueError as exc:
            raise TransportError(f"the series {change.uid} cannot be kept by Exchange: {exc}",
                                 retryable=False) from exc
    return fields


def _key(value: Any) -> Any:
    """A comparable form of a start, an end or a Recurrence (the server's and clerk's differ
    in spelling: weekday numbers or names, a date read back as a datetime)."""
    if value is None or not hasattr(value, "boundary"):
        return value

    def day(v: Any) -> Any:
        return v.date() if isinstance(v, datetime) else v

    bound = value.boundary
    return (type(value.pattern).__name__, str(value.pattern), type(bound).__name__,
            day(bound.start), getattr(bound, "number", None), day(getattr(bound, "end", None)))


def recurrence(rule: Pattern) -> Any:
    """bot.domain.recurrence's pattern as EWS's Recurrence (one element per pattern type; a
    numbered, end-dated or endless range)."""
    from exchangelib.fields import MONTHS
    from exchangelib.recurrence import (
        AbsoluteMonthlyPattern,
        AbsoluteYearlyPattern,
        DailyPattern,
        EndDatePattern,
        NoEndPattern,
        NumberedPattern,
        Recurrence,
        RelativeMonthlyPattern,
        RelativeYearlyPattern,
        WeeklyPattern,
    )

    days = [d.capitalize() for d in rule.days_of_week]
    week = rule.index.capitalize()
    month = MONTHS[rule.month - 1] if rule.month else ""
    if rule.type.endswith("Yearly") and rule.interval != 1:
        raise ValueError("Exchange repeats a yearly meeting every year only (INTERVAL=1)")
    shape: Any
    if rule.type == "daily":
        shape = DailyPattern(interval=rule.interval)
    elif rule.type == "weekly":
        shape = WeeklyPattern(interval=rule.interval, weekdays=days, first_day_of_week="Monday")
    elif rule.type == "absoluteMonthly":
        shape = AbsoluteMonthlyPattern(interval=rule.interval, day_of_month=rule.day_of_month)
    elif rule.type == "relativeMonthly":
        shape = RelativeMonthlyPattern(interval=rule.interval, weekday=days[0], week_number=week)
    elif rule.type == "absoluteYearly":
        shape = AbsoluteYearlyPattern(day_of_month=rule.day_of_month, month=month)
    elif rule.type == "relativeYearly":
        shape = RelativeYearlyPattern(weekday=days[0], week_number=week, month=month)
    else:
        raise ValueError(f"no EWS recurrence for {rule.type}")
    if rule.count:
        bound: Any = NumberedPattern(start=rule.start, number=rule.count)
    elif rule.until:
        bound = EndDatePattern(start=rule.start, end=rule.until)
    else:
        bound = NoEndPattern(start=rule.start)
    return Recurrence(pattern=shape, boundary=bound)


def _indexes(rrule: str, start: datetime, wanted: Sequence[datetime]) -> dict[datetime, int]:
    """EWS's InstanceIndex (from 1, counting the rule's meetings as first made, deleted ones
    too) of each original start in ``wanted``, found by expanding ``rrule`` from ``start``
    (aware, in the group's zone: dateutil steps on its wall clock). The rule's end plays no
    part in the numbering, so it is left out (an UNTIL may be a date or in UTC)."""
    from dateutil.rrule import rrulestr

    if not wanted:
        return {}
    steps = ";".join(p for p in rrule.split(";")
                     if p.split("=")[0].upper() not in ("UNTIL", "COUNT"))
    instants = {w.astimezone(UTC): w for w in wanted}
    last = max(instants)

    def before(when: datetime) -> bool:
        return when.astimezone(UTC) <= last

    out: dict[datetime, int] = {}
    for n, when in enumerate(itertools.takewhile(before, rrulestr(f"RRULE:{steps}",
                                                                    dtstart=start)), start=1):
        if when.astimezone(UTC) in instants:
            out[instants[when.astimezone(UTC)]] = n
    lost = [w for w in wanted if w not in out]
    if lost:
        raise TransportError(f"{lost[0].isoformat()} is not a meeting of the rule {rrule}",
                             retryable=False)
    return out
