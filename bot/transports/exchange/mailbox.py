"""The ``exchange`` mailbox: the organiser's inbox read over EWS (each message whole, as
MIME) and each message moved to ``clerk/processed`` or ``clerk/unprocessed``, folders made
when missing."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

from bot.transports.exchange.doctor import doctor
from bot.transports.exchange.session import Ews

log = logging.getLogger("clerk")

MIME_CHUNK = 50  # inbox messages fetched (whole, as MIME) per GetItem: bounds the memory used


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
