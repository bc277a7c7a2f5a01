"""The ``graph`` mailbox: the organiser's inbox read through Graph (each message as sent,
``…/$value``) and each message moved to ``clerk/processed`` or ``clerk/unprocessed``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from bot.transports.graph.doctor import doctor
from bot.transports.graph.session import Graph


class GraphMailbox:
    """The organiser's inbox read through Graph, as bot/transports/imap.py reads IMAP."""

    name = "graph"

    def __init__(self, options: dict[str, Any], http: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.graph = Graph(options, http, sleep)
        self._folders: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<GraphMailbox {self.graph.mailbox}>"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        g = self.graph
        folder = quote(str(self.options.get("inbox", "inbox")))
        got = g.request("GET", g.user(f"/mailFolders/{folder}/messages"), params={
            "$select": "id", "$orderby": "receivedDateTime",
            "$top": str(int(self.options.get("batch", 200)))})
        for m in (got or {}).get("value", []):
            raw = g.request("GET", g.user(f"/messages/{quote(m['id'])}/$value"))
            if raw:
                yield str(m["id"]), raw

    def file(self, uid: str, handled: bool) -> None:
        g = self.graph
        target = self._folder(str(self.options.get("processed" if handled else "unprocessed")
                                  or ("clerk/processed" if handled else "clerk/unprocessed")))
        g.request("POST", g.user(f"/messages/{quote(uid)}/move"),
                  body={"destinationId": target})

    def _folder(self, path: str) -> str:
        """The id of folder ``path`` ("clerk/processed"), made if missing."""
        if path in self._folders:
            return self._folders[path]
        g = self.graph
        parent = ""
        for name in path.split("/"):
            where = g.user(f"/mailFolders/{quote(parent)}/childFolders") if parent \
                else g.user("/mailFolders")
            escaped = name.replace("'", "''")
            got = g.request("GET", where, params={"$filter": f"displayName eq '{escaped}'",
                                                  "$select": "id"})
            found = (got or {}).get("value", [])
            parent = str(found[0]["id"]) if found else str(
                g.request("POST", where, body={"displayName": name})["id"])
        self._folders[path] = parent
        return parent

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.graph, self.options)

    def keep_sent(self, raw: bytes) -> None:
        pass  # Microsoft 365 keeps Sent Items itself (saveToSentItems)

    def find_sent(self, message_id: str) -> bool | None:
        return None  # the transport looks up by the ledger key (GraphTransport.lookup)

    def close(self) -> None:
        pass
