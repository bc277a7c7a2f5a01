"""A fake Exchange Web Services server for the ``exchange`` transport's tests.

No Exchange server can run here, so the fake sits where exchangelib's own test suite puts
it: at the HTTP layer, on requests_mock. It routes each POST on its SOAP operation (the
element inside ``soap:Body``: CreateItem, UpdateItem, FindItem, GetItem, DeleteItem, …),
records it (:attr:`FakeEws.requests`: the operation and its parsed XML, for tests to assert
on the exact request) and answers with a response shaped like the documented real one: a
``soap:Envelope`` whose header holds ``ServerVersionInfo`` (Exchange 2019, 15.2.1544) and whose
body holds one ``m:…ResponseMessage ResponseClass="Success"`` per item, with its ids.

It keeps what it is given, as a small mailbox would: items created are found, fetched,
updated, moved and deleted again; a series' occurrences are worked out from its
``Recurrence`` (so deleting occurrence 3 shows as a ``DeletedOccurrence`` at its original
start). Faults are queued: :meth:`FakeEws.busy` (``ErrorServerBusy`` with
``BackOffMilliseconds``, as a SOAP fault in an HTTP 500), :meth:`FakeEws.fail` (a
``ResponseClass="Error"`` message such as ``ErrorAccessDenied``), :meth:`FakeEws.http` (a bare
status such as 401), :meth:`FakeEws.drop` (a connection broken before the answer).

:class:`FakeEws` needs no pytest: a contract test builds one with ``FakeEws()`` inside a
``requests_mock.Mocker`` (:meth:`FakeEws.install`), or uses the :func:`ews` fixture.
"""

from __future__ import annotations

import base64
import copy
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests_mock
from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MNS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TNS = "http://schemas.microsoft.com/exchange/services/2006/types"
ENS = "http://schemas.microsoft.com/exchange/services/2006/errors"
NS = {"s": SOAP, "m": MNS, "t": TNS}
URL = "https://mail.example.org/EWS/Exchange.asmx"
MAILBOX = "organiser@example.org"
TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
SECRETS = {"CLERK_FAKE_EWS_USERNAME": "clerk-service",  # set by FakeEws.options()
           "CLERK_FAKE_EWS_PASSWORD": "not-a-real-password"}

# The header Exchange 2019 CU13 sends (EWS answers API version "V2017_07_11"; exchangelib
# keeps the version it asked for, as it does with a real server).
_HEADER = (
    '<s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" '
    f'MinorBuildNumber="4" Version="V2017_07_11" xmlns:h="{TNS}" xmlns="{TNS}" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></s:Header>'
)
DISTINGUISHED = {  # distinguished id → (display name, folder class, parent)
    "root": ("", "", ""),
    "msgfolderroot": ("Top of Information Store", "IPF.Note", "root"),
    "inbox": ("Inbox", "IPF.Note", "msgfolderroot"),
    "calendar": ("Calendar", "IPF.Appointment", "msgfolderroot"),
    "sentitems": ("Sent Items", "IPF.Note", "msgfolderroot"),
    "deleteditems": ("Deleted Items", "IPF.Note", "msgfolderroot"),
    "drafts": ("Drafts", "IPF.Note", "msgfolderroot"),
}
ALL_RIGHTS = {"CreateAssociated": True, "CreateContents": True, "CreateHierarchy": True,
              "Delete": True, "Modify": True, "Read": True, "ViewPrivateItems": True}
READ_ONLY = dict.fromkeys(ALL_RIGHTS, False) | {"Read": True}
MESSAGES = {  # the MessageText Exchange sends with an error code
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
    "ErrorInvalidRecipients": "At least one recipient isn't valid.",
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorCalendarOccurrenceIsDeletedFromRecurrence":
        "Occurrence with this index was previously deleted from the recurrence.",
    "ErrorImpersonateUserDenied": "The account does not have permission to impersonate "
                                  "the requested user.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
}


def plain(elem: Any) -> str:
    """An element as text, without its namespace declarations: for comparing request XML."""
    return re.sub(r' xmlns(:\w+)?="[^"]*"', "", etree.tostring(elem, encoding="unicode"))


def t(name: str) -> str:
    return f"{{{TNS}}}{name}"


def m(name: str) -> str:
    return f"{{{MNS}}}{name}"


@dataclass
class Call:
    """One request the fake received: ``operation`` (CreateItem, …) and its parsed XML."""

    operation: str
    xml: Any  # the operation element (lxml), e.g. <m:CreateItem …>
    envelope: Any
    headers: dict[str, str]

    def find(self, path: str) -> Any:
        return self.xml.find(path, NS)

    def findall(self, path: str) -> list[Any]:
        return list(self.xml.findall(path, NS))

    def xpath(self, path: str) -> Any:
        return self.xml.xpath(path, namespaces=NS)

    def text(self) -> str:
        return etree.tostring(self.xml, encoding="unicode")


@dataclass(frozen=True)
class Sent:
    """A message the server sent: its first To address, subject and clerk's ledger key."""

    to: str
    subject: str
    key: str


@dataclass
class _Item:
    id: str
    folder: str  # a folder id
    elem: Any  # t:CalendarItem / t:Message, as the client wrote it (ids kept apart)
    changes: int = 1
    deleted: list[str] = field(default_factory=list)  # a series: original starts taken out
    modified: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # index → times

    @property
    def changekey(self) -> str:
        return f"CK{self.changes}-{self.id}"


@dataclass
class _Folder:
    id: str
    name: str
    cls: str
    parent: str
    rights: dict[str, bool] = field(default_factory=lambda: dict(ALL_RIGHTS))


class FakeEws:
    """The organiser's mailbox behind ``url``, as EWS shows it (see the module docstring)."""

    def __init__(self, url: str = URL, mailbox: str = MAILBOX) -> None:
        self.url = url
        self.mailbox_address = mailbox
        self.requests: list[Call] = []
        self.items: dict[str, _Item] = {}
        self.folders: dict[str, _Folder] = {
            name: _Folder(f"F-{name}", shown, cls, f"F-{parent}" if parent else "")
            for name, (shown, cls, parent) in DISTINGUISHED.items()}
        self.sent: list[Any] = []  # messages and meeting mail the server sent, in order
        self.bad_recipients: set[str] = set()  # CreateItem naming one fails for that item
        self.no_mailbox = False  # every request: ErrorNonExistentMailbox
        self._queued: list[list[Any]] = []  # [operation or None, requests to let by, answer]
        self._ids = itertools.count(1)

    # --- set-up --------------------------------------------------------------------------

    def install(self, mocker: requests_mock.Mocker) -> FakeEws:
        """Answer every POST to :attr:`url` through ``mocker``."""
        mocker.post(self.url, content=self._handle)
        return self

    def options(self, **options: Any) -> dict[str, Any]:
        """[transport] options for a transport (or mailbox) talking to this fake: basic
        auth (the credentials in ``SECRETS``' variables), no retries inside exchangelib
        (``max_wait = 0``)."""
        from bot.domain.options import REQUIRED
        from bot.transports.exchange import OPTIONS

        for variable, value in SECRETS.items():
            os.environ[variable] = value
        values = {k: o.default for k, o in OPTIONS.items() if o.default is not REQUIRED}
        values.update(server=self.url, mailbox=self.mailbox_address, auth="basic",
                      username_env="CLERK_FAKE_EWS_USERNAME",
                      password_env="CLERK_FAKE_EWS_PASSWORD", max_wait=0.0)
        values.update(options)
        return values

    def transport(self, **options: Any) -> Any:
        """A ready :class:`bot.transports.exchange.ExchangeTransport` talking to this fake."""
        from bot.transports.exchange import ExchangeTransport

        return ExchangeTransport(self.options(**options))

    def mailbox(self, **options: Any) -> Any:
        from bot.transports.exchange import ExchangeMailbox

        return ExchangeMailbox(self.options(**options))

    # --- what happened -------------------------------------------------------------------

    def operations(self) -> list[str]:
        return [c.operation for c in self.requests]

    def last(self, operation: str) -> Call:
        return next(c for c in reversed(self.requests) if c.operation == operation)

    def calls(self, operation: str) -> list[Call]:
        return [c for c in self.requests if c.operation == operation]

    def sent_messages(self) -> list[Sent]:
        """The messages (not meeting mail) the server sent, in order."""
        return [Sent(m.findtext("t:ToRecipients/t:Mailbox/t:EmailAddress", "", NS),
                     m.findtext("t:Subject", "", NS),
                     m.xpath("string(t:ExtendedProperty[t:ExtendedFieldURI/@PropertyName="
                             "'ClerkKey']/t:Value)", namespaces=NS))
                for m in self.sent if etree.QName(m).localname == "Message"]

    def reset(self) -> None:
        """Forget the requests so far (the mailbox's contents stay)."""
        self.requests.clear()

    def in_folder(self, name: str) -> list[_Item]:
        folder = self.folders[name].id if name in self.folders else name
        return [i for i in self.items.values() if i.folder == folder]

    # --- faults and answers --------------------------------------------------------------

    def busy(self, back_off_ms: int = 30000, operation: str | None = None,
             after: int = 0) -> None:
        """The next request (of ``operation``; ``after`` more such requests answered first)
        is refused with ErrorServerBusy, the SOAP fault Exchange sends when a throttling
        budget is spent."""
        self._queued.append([operation, after, lambda ctx: self._fault(
            ctx, "ErrorServerBusy", MESSAGES["ErrorServerBusy"],
            f'<t:MessageXml xmlns:t="{TNS}"><t:Value Name="BackOffMilliseconds">'
            f"{back_off_ms}</t:Value></t:MessageXml>")])

    def server_busy(self) -> None:
        """The next request is throttled (:meth:`busy` with Exchange's usual back-off)."""
        self.busy()

    def fail(self, code: str, operation: str | None = None, text: str = "",
             after: int = 0) -> None:
        """The next request (of ``operation``) gets a ``ResponseClass="Error"`` message."""
        self._queued.append([operation, after, lambda ctx: self._error_response(
            ctx, code, text or MESSAGES.get(code, code))])

    def http(self, status: int, operation: str | None = None, body: bytes = b"",
             after: int = 0) -> None:
        """The next request (of ``operation``) gets a bare HTTP ``status`` (401: refused
        credentials, as IIS answers before EWS sees the request)."""
        def answer(ctx: Any) -> bytes:
            ctx.status_code = status
            if status == 401:
                ctx.headers["WWW-Authenticate"] = 'Basic realm="mail.example.org"'
            return body
        self._queued.append([operation, after, answer])

    def drop(self, operation: str | None = None, after: int = 0) -> None:
        """The connection breaks on the next request (of ``operation``): no answer at all."""
        def answer(ctx: Any) -> bytes:
            import requests

            raise requests.ConnectionError("Connection reset by peer")
        self._queued.append([operation, after, answer])

    def deliver(self, raw: bytes, subject: str = "", received: datetime | None = None) -> str:
        """Put a message in the inbox, as a mail from outside arrives; returns its id."""
        received = received or datetime(2027, 1, 10, 9, 0, tzinfo=UTC) + timedelta(
            minutes=len(self.items))
        elem = etree.Element(t("Message"), nsmap={"t": TNS})
        etree.SubElement(elem, t("MimeContent"), CharacterSet="UTF-8").text = \
            base64.b64encode(raw).decode()
        etree.SubElement(elem, t("Subject")).text = subject
        etree.SubElement(elem, t("DateTimeReceived")).text = \
            received.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._store(elem, self.folders["inbox"].id).id

    def respond(self, item_id: str, email: str, response: str) -> None:
        """An attendee answers (Accept, Tentative, Decline): the organiser's copy notes it."""
        item = self.items[item_id]
        for attendee in item.elem.iterfind(".//t:Attendee", NS):
            if attendee.findtext("t:Mailbox/t:EmailAddress", "", NS).lower() == email.lower():
                kind = attendee.find("t:ResponseType", NS)
                if kind is None:
                    kind = etree.SubElement(attendee, t("ResponseType"))
                kind.text = response
        item.changes += 1

    def attendees(self, item_id: str) -> list[str]:
        return [a.findtext("t:Mailbox/t:EmailAddress", "", NS)
                for a in self.items[item_id].elem.iterfind("t:RequiredAttendees/t:Attendee", NS)]

    # --- the server ------------------------------------------------------------------------

    def _handle(self, request: Any, context: Any) -> bytes:
        envelope = etree.fromstring(request.body)
        body = envelope.find("s:Body", NS)
        operation_elem = body[0]
        operation = etree.QName(operation_elem).localname
        self.requests.append(Call(operation, operation_elem, envelope, dict(request.headers)))
        for n, (wanted, after, answer) in enumerate(self._queued):
            if wanted in (None, operation):
                if after:
                    self._queued[n][1] -= 1
                    break
                del self._queued[n]
                result: bytes = answer(context)
                return result
        if self.no_mailbox:
            return self._error_response(context, "ErrorNonExistentMailbox")
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return self._fault(context, "ErrorInvalidRequest",
                               f"the fake does not implement {operation}")
        messages: list[str] = handler(operation_elem)
        return _envelope(f'<m:{operation}Response xmlns:m="{MNS}" xmlns:t="{TNS}">'
                         f'<m:ResponseMessages>{"".join(messages)}</m:ResponseMessages>'
                         f"</m:{operation}Response>")

    def _fault(self, context: Any, code: str, text: str, xml: str = "") -> bytes:
        context.status_code = 500
        return _envelope(
            f'<s:Fault><faultcode xmlns:a="{TNS}">a:{code}</faultcode>'
            f'<faultstring xml:lang="en-US">{text}</faultstring><detail>'
            f'<e:ResponseCode xmlns:e="{ENS}">{code}</e:ResponseCode>'
            f'<e:Message xmlns:e="{ENS}">{text}</e:Message>{xml}</detail></s:Fault>',
            header=False)

    def _error_response(self, context: Any, code: str, text: str = "") -> bytes:
        operation = self.requests[-1].operation
        return _envelope(f'<m:{operation}Response xmlns:m="{MNS}" xmlns:t="{TNS}">'
                         f"<m:ResponseMessages>{_error(operation, code, text)}"
                         f"</m:ResponseMessages></m:{operation}Response>")

    # --- operations ------------------------------------------------------------------------

    def _op_CreateItem(self, op: Any) -> list[str]:
        disposition = op.get("MessageDisposition", "SaveOnly")
        target = self._folder_of(op.find("m:SavedItemFolderId/*", NS))
        out = []
        for elem in op.find("m:Items", NS):
            kind = etree.QName(elem).localname
            addresses = {a.text.lower() for a in elem.iterfind(".//t:EmailAddress", NS) if a.text}
            if addresses & self.bad_recipients:
                out.append(_error("CreateItem", "ErrorInvalidRecipients"))
                continue
            if kind == "CancelCalendarItem":
                ref = elem.find("t:ReferenceItemId", NS)
                item = self.items.get(ref.get("Id")) if ref is not None else None
                if item is None:
                    out.append(_error("CreateItem", "ErrorItemNotFound"))
                    continue
                cancelled = item.elem.find("t:IsCancelled", NS)
                if cancelled is None:
                    cancelled = etree.SubElement(item.elem, t("IsCancelled"))
                cancelled.text = "true"
                item.folder, item.changes = self.folders["deleteditems"].id, item.changes + 1
                self.sent.append(elem)
                out.append(_ok("CreateItem", "<m:Items/>"))
                continue
            if kind == "CalendarItem":
                item = self._store(elem, target or self.folders["calendar"].id)
                if op.get("SendMeetingInvitations", "SendToNone") != "SendToNone":
                    self.sent.append(elem)
                out.append(_ok("CreateItem", f"<m:Items>{self._ids_only(item)}</m:Items>"))
                continue
            if disposition == "SendOnly":
                self.sent.append(elem)
                out.append(_ok("CreateItem", "<m:Items/>"))
                continue
            folder = target or self.folders["sentitems" if disposition == "SendAndSaveCopy"
                                             else "drafts"].id
            item = self._store(elem, folder)
            if disposition == "SendAndSaveCopy":
                self.sent.append(elem)
                out.append(_ok("CreateItem", "<m:Items/>"))  # no id when sending
            else:
                out.append(_ok("CreateItem", f"<m:Items>{self._ids_only(item)}</m:Items>"))
        return out

    def _op_GetItem(self, op: Any) -> list[str]:
        out = []
        for ref in op.find("m:ItemIds", NS):
            item = self._lookup(ref)
            if item is None:
                out.append(_error("GetItem", "ErrorItemNotFound"))
            else:
                out.append(_ok("GetItem", f"<m:Items>{self._render(item)}</m:Items>"))
        return out

    def _op_FindItem(self, op: Any) -> list[str]:
        restriction = op.find("m:Restriction/*", NS)
        page = op.find("m:IndexedPageItemView", NS)
        order = op.find("m:SortOrder/t:FieldOrder", NS)
        out = []
        for ref in op.find("m:ParentFolderIds", NS):
            folder = self._folder_of(ref)
            found = [i for i in self.items.values() if i.folder == folder
                     and (restriction is None or _matches(i.elem, restriction))]
            if order is not None:
                uri = order.find("t:FieldURI", NS)
                key = uri.get("FieldURI").partition(":")[2] if uri is not None else ""
                found.sort(key=lambda i, key=key: i.elem.findtext(f"t:{key}", "", NS),
                           reverse=order.get("Order") == "Descending")
            offset = int(page.get("Offset", "0")) if page is not None else 0
            limit = int(page.get("MaxEntriesReturned", "1000")) if page is not None else 1000
            shown = found[offset:offset + limit]
            last = offset + len(shown) >= len(found)
            items = "".join(self._render(i, find=True) for i in shown)
            out.append(_ok("FindItem", f'<m:RootFolder IndexedPagingOffset="{offset + len(shown)}"'
                           f' TotalItemsInView="{len(found)}" IncludesLastItemInRange='
                           f'"{str(last).lower()}"><t:Items>{items}</t:Items></m:RootFolder>'))
        return out

    def _op_UpdateItem(self, op: Any) -> list[str]:
        out = []
        for change in op.find("m:ItemChanges", NS):
            ref = change[0]
            item = self._lookup(ref)
            if item is None:
                out.append(_error("UpdateItem", "ErrorItemNotFound"))
                continue
            target = item.elem
            index = 0
            if etree.QName(ref).localname == "OccurrenceItemId":
                index = int(ref.get("InstanceIndex"))
                target = etree.Element(t("CalendarItem"), nsmap={"t": TNS})
            for update in change.find("t:Updates", NS):
                kind = etree.QName(update).localname
                uri = update[0]
                if kind == "DeleteItemField":
                    for old in _fields(target, uri):
                        target.remove(old)
                    continue
                new = copy.deepcopy(update[1][0])  # <t:CalendarItem><t:End>…</t:End></…>
                olds = _fields(target, uri)
                if kind == "SetItemField" and olds:
                    target.replace(olds[0], new)
                    for old in olds[1:]:
                        target.remove(old)
                elif kind == "AppendToItemField" and olds:
                    olds[0].extend(list(new))
                else:
                    target.append(new)
            if not index and any(_fields_named(change, n) for n in ("Start", "End", "Recurrence")):
                item.deleted.clear()  # a master's new time or rule drops its exceptions
                item.modified.clear()
            if index:
                start = self._occurrence_start(item, index)
                item.modified[index] = (target.findtext("t:Start", "", NS),
                                        target.findtext("t:End", "", NS), start)
            item.changes += 1
            if op.get("SendMeetingInvitationsOrCancellations", "SendToNone") != "SendToNone":
                self.sent.append(target)
            out.append(_ok("UpdateItem", f"<m:Items>{self._ids_only(item)}</m:Items>"
                           "<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>"))
        return out

    def _op_DeleteItem(self, op: Any) -> list[str]:
        out = []
        for ref in op.find("m:ItemIds", NS):
            item = self._lookup(ref)
            if item is None:
                out.append(_error("DeleteItem", "ErrorItemNotFound"))
                continue
            if etree.QName(ref).localname == "OccurrenceItemId":
                start = self._occurrence_start(item, int(ref.get("InstanceIndex")))
                if start in item.deleted:
                    out.append(_error("DeleteItem",
                                      "ErrorCalendarOccurrenceIsDeletedFromRecurrence"))
                    continue
                item.deleted.append(start)
                item.changes += 1
            elif op.get("DeleteType") == "MoveToDeletedItems":
                item.folder = self.folders["deleteditems"].id
            else:
                del self.items[item.id]
            if op.get("SendMeetingCancellations", "SendToNone") != "SendToNone":
                self.sent.append(ref)
            out.append(_ok("DeleteItem", ""))
        return out

    def _op_MoveItem(self, op: Any) -> list[str]:
        folder = self._folder_of(op.find("m:ToFolderId/*", NS))
        out = []
        for ref in op.find("m:ItemIds", NS):
            item = self._lookup(ref)
            if item is None:
                out.append(_error("MoveItem", "ErrorItemNotFound"))
                continue
            # a moved item gets a new id in its new folder, as in Exchange
            del self.items[item.id]
            item.id, item.folder = f"I{next(self._ids)}", folder or item.folder
            self.items[item.id] = item
            out.append(_ok("MoveItem", f"<m:Items>{self._ids_only(item)}</m:Items>"))
        return out

    def _op_GetFolder(self, op: Any) -> list[str]:
        out = []
        for ref in op.find("m:FolderIds", NS):
            folder = self._folder(ref)
            if folder is None:
                out.append(_error("GetFolder", "ErrorFolderNotFound",
                                  "The specified folder could not be found in the store."))
            elif not folder.rights.get("Read"):
                out.append(_error("GetFolder", "ErrorAccessDenied"))
            else:
                shown = self._render_folder(folder)
                out.append(_ok("GetFolder", f"<m:Folders>{shown}</m:Folders>"))
        return out

    def _op_FindFolder(self, op: Any) -> list[str]:
        restriction = op.find("m:Restriction/*", NS)
        out = []
        for ref in op.find("m:ParentFolderIds", NS):
            parent = self._folder(ref)
            found = [f for f in self.folders.values() if parent is not None
                     and f.parent == parent.id
                     and (restriction is None or _matches(self._folder_elem(f), restriction))]
            shown = "".join(self._render_folder(f) for f in found)
            out.append(_ok("FindFolder", f'<m:RootFolder IndexedPagingOffset="{len(found)}" '
                           f'TotalItemsInView="{len(found)}" IncludesLastItemInRange="true">'
                           f"<t:Folders>{shown}</t:Folders></m:RootFolder>"))
        return out

    def _op_CreateFolder(self, op: Any) -> list[str]:
        parent = self._folder(op.find("m:ParentFolderId/*", NS))
        out = []
        for elem in op.find("m:Folders", NS):
            name = elem.findtext("t:DisplayName", "", NS)
            folder = _Folder(f"F{next(self._ids)}", name,
                             elem.findtext("t:FolderClass", "IPF.Note", NS),
                             parent.id if parent else self.folders["msgfolderroot"].id)
            self.folders[folder.id] = folder
            out.append(_ok("CreateFolder", f'<m:Folders><t:Folder><t:FolderId Id="{folder.id}" '
                           f'ChangeKey="FCK-{folder.id}"/></t:Folder></m:Folders>'))
        return out

    # --- helpers -----------------------------------------------------------------------------

    def _store(self, elem: Any, folder: str) -> _Item:
        elem = etree.fromstring(etree.tostring(elem))  # a copy, detached from the request
        for old in elem.findall("t:ItemId", NS):
            elem.remove(old)
        item = _Item(f"I{next(self._ids)}", folder, elem)
        self.items[item.id] = item
        return item

    def _lookup(self, ref: Any) -> _Item | None:
        """ItemId, OccurrenceItemId (RecurringMasterId) or RecurringMasterItemId
        (OccurrenceId) → the stored item (a series: its master)."""
        key = ref.get("Id") or ref.get("RecurringMasterId") or ref.get("OccurrenceId")
        return self.items.get(key or "")

    def _folder(self, ref: Any) -> _Folder | None:
        if ref is None:
            return None
        key = ref.get("Id", "")
        if etree.QName(ref).localname == "DistinguishedFolderId":
            return self.folders.get(key)
        return next((f for f in self.folders.values() if f.id == key), None)

    def _folder_of(self, ref: Any) -> str:
        folder = self._folder(ref)
        return folder.id if folder else ""

    def _ids_only(self, item: _Item) -> str:
        kind = etree.QName(item.elem).localname
        return f'<t:{kind}><t:ItemId Id="{item.id}" ChangeKey="{item.changekey}"/></t:{kind}>'

    def _render(self, item: _Item, find: bool = False) -> str:
        """The item as GetItem (or FindItem: no MimeContent, Body or recipients) shows it."""
        elem = etree.fromstring(etree.tostring(item.elem))
        elem.insert(0, etree.Element(t("ItemId"), Id=item.id, ChangeKey=item.changekey))
        hidden = ("MimeContent", "Body", "Attachments", "RequiredAttendees",
                  "OptionalAttendees", "ToRecipients", "CcRecipients") if find else ()
        for child in list(elem):
            if etree.QName(child).localname in hidden:
                elem.remove(child)
        if etree.QName(elem).localname == "CalendarItem":
            if elem.find("t:IsCancelled", NS) is None:
                etree.SubElement(elem, t("IsCancelled")).text = "false"
            if item.deleted:
                deleted = etree.SubElement(elem, t("DeletedOccurrences"))
                for start in item.deleted:
                    etree.SubElement(etree.SubElement(deleted, t("DeletedOccurrence")),
                                     t("Start")).text = start
            if item.modified:
                modified = etree.SubElement(elem, t("ModifiedOccurrences"))
                for index, (start, end, original) in sorted(item.modified.items()):
                    occurrence = etree.SubElement(modified, t("Occurrence"))
                    etree.SubElement(occurrence, t("ItemId"), Id=f"{item.id}-{index}",
                                     ChangeKey=item.changekey)
                    etree.SubElement(occurrence, t("Start")).text = start
                    etree.SubElement(occurrence, t("End")).text = end
                    etree.SubElement(occurrence, t("OriginalStart")).text = original
        return etree.tostring(elem, encoding="unicode")

    def _folder_elem(self, folder: _Folder) -> Any:
        return etree.fromstring(self._render_folder(folder))

    def _render_folder(self, folder: _Folder) -> str:
        kind = "CalendarFolder" if folder.cls == "IPF.Appointment" else "Folder"
        rights = "".join(f"<t:{k}>{str(v).lower()}</t:{k}>" for k, v in folder.rights.items())
        children = sum(1 for f in self.folders.values() if f.parent == folder.id)
        count = sum(1 for i in self.items.values() if i.folder == folder.id)
        return (f'<t:{kind} xmlns:t="{TNS}"><t:FolderId Id="{folder.id}" '
                f'ChangeKey="FCK-{folder.id}"/>'
                + (f'<t:ParentFolderId Id="{folder.parent}" ChangeKey="FCK-{folder.parent}"/>'
                   if folder.parent else "")
                + f"<t:FolderClass>{folder.cls}</t:FolderClass>"
                f"<t:DisplayName>{folder.name}</t:DisplayName><t:TotalCount>{count}</t:TotalCount>"
                f"<t:ChildFolderCount>{children}</t:ChildFolderCount>"
                f"<t:EffectiveRights>{rights}</t:EffectiveRights>"
                f"<t:UnreadCount>0</t:UnreadCount></t:{kind}>")

    def _occurrence_start(self, item: _Item, index: int) -> str:
        """The original start (UTC, as EWS writes it) of occurrence ``index`` (from 1)."""
        starts = list(itertools.islice(_occurrences(item.elem), index))
        if len(starts) < index:
            raise AssertionError(f"{item.id} has no occurrence {index}")
        return starts[-1].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(body: str, header: bool = True) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}">'
            f'{_HEADER if header else ""}<s:Body '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>'
            ).encode()


def _ok(operation: str, inner: str) -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Success">'
            f"<m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{operation}ResponseMessage>")


def _error(operation: str, code: str, text: str = "") -> str:
    """An error response message; ``text`` by default the one Exchange sends for ``code``."""
    text = text or MESSAGES[code]
    return (f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{text}'
            f"</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
            f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{operation}ResponseMessage>")


def _fields(item: Any, uri: Any) -> list[Any]:
    """The children of ``item`` a FieldURI / ExtendedFieldURI names."""
    if etree.QName(uri).localname == "ExtendedFieldURI":
        return [p for p in item.iterfind("t:ExtendedProperty", NS)
                if _same_property(p.find("t:ExtendedFieldURI", NS), uri)]
    name = uri.get("FieldURI", "").partition(":")[2]
    return list(item.iterfind(f"t:{name}", NS))


def _fields_named(change: Any, name: str) -> bool:
    """Whether an ItemChange sets the field ``calendar:<name>``."""
    return any(u.get("FieldURI") == f"calendar:{name}"
               for u in change.iterfind("t:Updates/*/t:FieldURI", NS))


def _same_property(a: Any, b: Any) -> bool:
    keys = ("PropertySetId", "DistinguishedPropertySetId", "PropertyName", "PropertyTag",
            "PropertyId")
    return a is not None and all((a.get(k) or "").lower() == (b.get(k) or "").lower()
                                 for k in keys)


def _value(elem: Any, uri: Any) -> str | None:
    found = _fields(elem, uri)
    if not found:
        return None
    if etree.QName(uri).localname == "ExtendedFieldURI":
        return str(found[0].findtext("t:Value", "", NS))
    return str(found[0].text or "")


def _matches(elem: Any, restriction: Any) -> bool:
    """Whether ``elem`` passes a Restriction (the operators clerk uses)."""
    kind = etree.QName(restriction).localname
    if kind == "And":
        return all(_matches(elem, r) for r in restriction)
    if kind == "Or":
        return any(_matches(elem, r) for r in restriction)
    if kind == "Not":
        return not _matches(elem, restriction[0])
    uri = restriction[0]
    value = _value(elem, uri)
    if kind == "Exists":
        return value is not None
    wanted = restriction.find("t:FieldURIOrConstant/t:Constant", NS)
    constant = wanted.get("Value") if wanted is not None else restriction.find(
        "t:Constant", NS).get("Value")
    if kind == "IsEqualTo":
        return value is not None and value.lower() == constant.lower()
    if kind == "IsNotEqualTo":
        return value is None or value.lower() != constant.lower()
    if kind == "Contains":
        return value is not None and constant.lower() in value.lower()
    raise AssertionError(f"the fake does not evaluate {kind} restrictions")


WINDOWS_ZONES = {"GMT Standard Time": "Europe/London", "UTC": "UTC",
                 "W. Europe Standard Time": "Europe/Berlin",
                 "Eastern Standard Time": "America/New_York"}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def _occurrences(elem: Any) -> Iterator[datetime]:
    """The starts of a series master's occurrences (its Recurrence, from its Start, in its
    StartTimeZone), with dateutil's RRULE engine."""
    from dateutil import rrule

    zone_id = (elem.find("t:StartTimeZone", NS).get("Id")
               if elem.find("t:StartTimeZone", NS) is not None else "UTC")
    zone = ZoneInfo(WINDOWS_ZONES.get(zone_id, "UTC"))
    start = datetime.fromisoformat(elem.findtext("t:Start", "", NS).replace("Z", "+00:00"))
    start = start.astimezone(zone).replace(tzinfo=None)
    recurrence = elem.find("t:Recurrence", NS)
    pattern, boundary = recurrence[0], recurrence[1]
    kind = etree.QName(pattern).localname
    kwargs: dict[str, Any] = {"interval": int(pattern.findtext("t:Interval", "1", NS))}
    days = [rrule.weekdays[_DAYS.index(d)]
            for d in pattern.findtext("t:DaysOfWeek", "", NS).split()]
    index = _INDEX.get(pattern.findtext("t:DayOfWeekIndex", "", NS), 0)
    month = pattern.findtext("t:Month", "", NS)
    if month:
        kwargs["bymonth"] = _MONTHS.index(month) + 1
    if kind == "DailyRecurrence":
        freq = rrule.DAILY
    elif kind == "WeeklyRecurrence":
        freq, kwargs["byweekday"] = rrule.WEEKLY, days
    elif kind.startswith("Absolute"):
        freq = rrule.MONTHLY if "Monthly" in kind else rrule.YEARLY
        kwargs["bymonthday"] = int(pattern.findtext("t:DayOfMonth", "1", NS))
    else:
        freq = rrule.MONTHLY if "Monthly" in kind else rrule.YEARLY
        kwargs["byweekday"] = [d(index) for d in days]
    if kind.endswith("YearlyRecurrence"):
        kwargs.pop("interval")
    first = date.fromisoformat(boundary.findtext("t:StartDate", "", NS)[:10])
    dtstart = datetime.combine(first, start.time())
    if etree.QName(boundary).localname == "NumberedRecurrence":
        kwargs["count"] = int(boundary.findtext("t:NumberOfOccurrences", "1", NS))
    elif etree.QName(boundary).localname == "EndDateRecurrence":
        end = date.fromisoformat(boundary.findtext("t:EndDate", "", NS)[:10])
        kwargs["until"] = datetime.combine(end, start.time())
    for when in rrule.rrule(freq, dtstart=dtstart, **kwargs):
        yield when.replace(tzinfo=zone)


@pytest.fixture
def ews() -> Iterator[FakeEws]:
    """A :class:`FakeEws` answering every EWS request of the test (nothing else reaches the
    network): ``from tests.ews_fake import ews`` in a test module makes it a fixture there."""
    fake = FakeEws()
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        yield fake
