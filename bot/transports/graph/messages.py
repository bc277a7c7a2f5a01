"""The messages of the ``graph`` transport: ``POST …/sendMail``, four to a ``$batch``; with
attachments over 3 MB together, a draft, an upload session per large attachment, then
``…/send``; Sent Items searched by the ledger key after a crash."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from bot.domain.errors import TransportError
from bot.transports.base import Mail
from bot.transports.graph.session import ADVICE, KEY_PROP, THROTTLED, Graph, _has, _recipient

INLINE_LIMIT = 3 * 1024 * 1024  # larger attachments need an upload session
CHUNK = 320 * 1024 * 10  # upload chunks: a multiple of 320 KiB


def message_body(out: Mail, attachments: bool = True) -> dict[str, Any]:
    """The Graph message JSON: addresses, HTML, the ledger key, small attachments inline."""
    body: dict[str, Any] = {
        "subject": out.subject,
        "body": {"contentType": "HTML", "content": out.html},
        "toRecipients": [_recipient(n, e) for n, e in out.to],
        "internetMessageHeaders": [{"name": "X-Clerk-Key", "value": out.key}],
        "singleValueExtendedProperties": [{"id": KEY_PROP, "value": out.key}],
    }
    if out.cc:
        body["ccRecipients"] = [_recipient(n, e) for n, e in out.cc]
    if attachments and out.attachments:
        body["attachments"] = [_file(name, mime, data) for name, mime, data in out.attachments]
    return body


def _file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.fileAttachment", "name": name,
            "contentType": mime, "contentBytes": base64.b64encode(data).decode()}


class GraphMessages:
    """The messages side of GraphTransport (bot/transports/graph/transport.py), which holds
    the session."""

    graph: Graph

    def send(self, out: Mail) -> None:
        g = self.graph
        if out.size <= INLINE_LIMIT:
            g.request("POST", g.user("/sendMail"),
                      body={"message": message_body(out), "saveToSentItems": True})
            return
        # large: a draft, each attachment (an upload session above 3 MB), then send
        draft = g.request("POST", g.user("/messages"), body=message_body(out, False))
        path = g.user(f"/messages/{quote(draft['id'])}")
        for name, mime, data in out.attachments:
            if len(data) <= INLINE_LIMIT:
                g.request("POST", f"{path}/attachments", body=_file(name, mime, data))
            else:
                self._upload(path, name, mime, data)
        g.request("POST", f"{path}/send")

    def send_many(self, messages: list[Mail]) -> list[TransportError | None]:
        """Messages without attachments go BATCH to a ``$batch`` (one round trip); the rest
        one at a time. Each part's own status is that message's outcome."""
        outs = messages
        outcomes: list[TransportError | None] = [None] * len(messages)
        small = [i for i, o in enumerate(outs) if not o.attachments]
        for i, out in enumerate(outs):
            if i not in small:
                try:
                    self.send(out)
                except TransportError as exc:
                    outcomes[i] = exc
        if not small:
            return outcomes
        g = self.graph
        requests = [{"id": str(i), "method": "POST", "url": g.user("/sendMail"),
                     "headers": {"Content-Type": "application/json"},
                     "body": {"message": message_body(outs[i]), "saveToSentItems": True}}
                    for i in small]
        try:
            answers = g.batch(requests)
        except TransportError as exc:
            for i in small:
                outcomes[i] = exc
            return outcomes
        for i in small:
            r = answers.get(str(i), {})
            status = int(r.get("status", 0))
            if status >= 400 or not status:
                wait = float((r.get("headers") or {}).get("Retry-After", 0) or 0) or None
                error = (r.get("body") or {}).get("error", {})
                outcomes[i] = TransportError(
                    f"graph: sendMail: {status} {error.get('code', '')}: "
                    f"{error.get('message', '')}" + (f" ({ADVICE[status]})"
                                                     if status in ADVICE else ""),
                    retryable=status in THROTTLED or status >= 500 or not status,
                    retry_after=wait)
        return outcomes

    def _upload(self, path: str, name: str, mime: str, data: bytes) -> None:
        g = self.graph
        session = g.request("POST", f"{path}/attachments/createUploadSession", body={
            "AttachmentItem": {"attachmentType": "file", "name": name, "size": len(data),
                               "contentType": mime}})
        url = session["uploadUrl"]  # pre-authorised: no Authorization header
        for start in range(0, len(data), CHUNK):
            chunk = data[start:start + CHUNK]
            g.request("PUT", "", url=url, content=chunk, auth=False, headers={
                "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}",
                "Content-Type": "application/octet-stream"})

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        """Whether Sent Items holds the message with ledger key ``key``."""
        if not key:
            return None
        g = self.graph
        got = g.request("GET", g.user("/mailFolders/sentitems/messages"), params={
            "$filter": _has(KEY_PROP, key), "$select": "id", "$top": "1"})
        return bool((got or {}).get("value"))
